r"""GMM-EM chains: our vmapped EM against a sklearn fit-and-sample loop, in one process.

  python benchmarks/gmm_vs_sklearn.py [--seeds 1,16,256] [--samples 1000,10000] \
      [--generations 10] [--sklearn_seeds 2] [--rounds 3] [--[no-]x64] [--quick]

Both sides run the paper's chain: 2-D N(0, I) data, a 2-component full-covariance GMM refitted each
generation (k-means init, tol 1e-5, max_iter 2000, reg_covar 1e-6), pure replace, generation 0
(the fit of D_0) and ``--generations`` more. Ours is the chain of ``configs/gmm.py``
(``_common.chain_fn``: all seeds vmapped, through the programs ``chain.run`` executes, metrics
included, compiled by an untimed first call); sklearn is the authors' notebook loop ``GaussianMixture(...).fit(X)`` then
``X = gmm.sample(M)[0]``, run for ``--sklearn_seeds`` seeds (it costs the same per seed whatever
S, so a subset gives its per seed-generation cost). Each ratio is sklearn's wall time per
seed-generation over ours.

Rows, per (S, M), each side's dtype and threads in the table:
  ours float32 (JAX's default; XLA, one thread per core) against sklearn float64 with its thread
      pools limited to one thread (``threadpoolctl``): sklearn's k-means runs OpenMP, which on a
      shared 2-core machine is tens of times slower with the default pools;
  the same against sklearn with its default thread pools (what a user gets without threadpoolctl);
  ours float64 (traced and run under ``jax.enable_x64(True)``, JAX's scoped x64 switch) against
      sklearn float64 on one thread: the same dtype on both sides (``--no-x64`` leaves it out).

Both sides are warmed up (our compile) and run in alternating rounds (``_common.py``); the table
gives the median [min-max] over rounds of the time per seed-generation and of the ratio.
"""

import argparse
import warnings

import _common  # first: puts the repository root on sys.path
import jax
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_info, threadpool_limits

from collapse_jax import compile_cache
from configs import gmm as gmm_config


def ours(num_seeds: int, samples: int, generations: int, x64: bool = False):
    """A blocking call: generation 0 and ``generations`` EM generations of ``num_seeds`` seeds, in
    float64 (``x64``: built and called under ``jax.enable_x64``) or JAX's default float32."""
    with jax.enable_x64(x64):
        cfg = gmm_config.get_config("paper")
        cfg.num_seeds, cfg.samples_per_generation = num_seeds, samples
        cfg.num_generations = generations + 1
        cfg.gmm.record_params = False
        cfg.enable_x64 = x64
        fn = _common.chain_fn(cfg)
        keys_S, truth = _common.chain_inputs(cfg)
    iters = []

    def once():
        with jax.enable_x64(x64):
            _, m = jax.block_until_ready(fn(keys_S, truth))
        iters.append(float(np.mean(m["em_iterations"][1:])))

    return once, iters


def sklearn_loop(num_seeds: int, samples: int, generations: int):
    """A blocking call of the notebook's loop (generation 0 included: the same fit)."""
    iters = []

    def once():
        for s in range(num_seeds):
            x = np.random.default_rng(s).standard_normal((samples, 2))
            for g in range(generations + 1):
                gm = GaussianMixture(2, tol=1e-5, max_iter=2000, random_state=1000 * s + g).fit(x)
                x = gm.sample(samples)[0]
                if g:
                    iters.append(gm.n_iter_)

    return once, iters


def sklearn_threads() -> str:
    """sklearn's default pools: their APIs and sizes (``threadpoolctl.threadpool_info``)."""
    pools = sorted({(p["user_api"], p["num_threads"]) for p in threadpool_info()})
    return "sklearn, default threads (" + ", ".join(f"{api} {n}" for api, n in pools) + ")"


def compare(s, m, generations, sklearn_seeds, rounds, x64=True):
    """Per-round ms per seed-generation of each side, and their mean EM iterations."""
    ours_fn, it_ours = ours(s, m, generations)
    sides = {"ours float32": ours_fn}
    if x64:
        sides["ours float64"], it_ours64 = ours(s, m, generations, x64=True)
    sk_seeds = min(s, sklearn_seeds)
    sk_fn, it_sk = sklearn_loop(sk_seeds, m, generations)

    def sk_one_thread():
        with threadpool_limits(1):
            sk_fn()

    sides["sklearn 1 thread"], sides["sklearn default threads"] = sk_one_thread, sk_fn
    t = _common.interleave(sides, rounds)
    per_call = {k: (s if k.startswith("ours") else sk_seeds) * (generations + 1) for k in sides}
    ms = {k: [1e3 * v / per_call[k] for v in t[k]] for k in sides}
    iters = {"ours float32": float(np.mean(it_ours)), "sklearn": float(np.mean(it_sk))}
    if x64:
        iters["ours float64"] = float(np.mean(it_ours64))
    return ms, iters


def rows(
    seeds=(1, 16, 256),
    samples=(1000, 10000),
    generations=10,
    sklearn_seeds=2,
    rounds=3,
    quick=False,
    x64=True,
):
    """Per (S, M): ours float32 against sklearn on one thread and with its default threads, and
    (``x64``) ours float64 against sklearn on one thread."""
    if quick:
        seeds, samples, generations, sklearn_seeds, rounds = QUICK
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    sk_one = _common.Side("float64", "sklearn, 1 thread (threadpoolctl)")
    sk_default = _common.Side("float64", sklearn_threads())
    out = []
    for m in samples:
        for s in seeds:
            ms, iters = compare(s, m, generations, sklearn_seeds, rounds, x64)
            cmd = f"python benchmarks/gmm_vs_sklearn.py --seeds={s} --samples={m}"
            cmd += " --quick" if quick else ""
            pairs = [
                ("ours float32", "sklearn 1 thread", sk_one),
                ("ours float32", "sklearn default threads", sk_default),
            ]
            if x64:
                pairs.append(("ours float64", "sklearn 1 thread", sk_one))
            for mine, ref, side in pairs:
                dtype = mine.split()[-1]
                out.append(
                    _common.Row(
                        f"GMM-EM chain, S={s}, M={m}, 1 + {generations} generations, {mine} "
                        f"vs sklearn `GaussianMixture` fit+sample loop, {ref}, ms per "
                        f"seed-generation; EM iterations {iters[mine]:.0f} / "
                        f"{iters['sklearn']:.0f}",
                        cmd,
                        _common.Cell(_common.spread(ms[mine])),
                        _common.Cell(_common.spread(ms[ref]), "sklearn "),
                        _common.Cell(_common.ratio(ms[ref], ms[mine]), suffix="x"),
                        ours_side=_common.jax_side()._replace(dtype=dtype),
                        reference_side=side,
                    )
                )
    return out


# --quick: S=2, M=100, 1 + 1 generations, sklearn on 1 seed, 1 round.
QUICK = ((2,), (100,), 1, 1, 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="1,16,256")
    p.add_argument("--samples", default="1000,10000")
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--sklearn_seeds", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="S=2, M=100, 1 + 1 generations, 1 round")
    p.add_argument(
        "--x64",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also ours in float64 against sklearn on one thread",
    )
    a = p.parse_args(argv)
    compile_cache.enable()
    seeds = tuple(int(v) for v in a.seeds.split(","))
    samples = tuple(int(v) for v in a.samples.split(","))
    print(_common.machine())
    out = rows(seeds, samples, a.generations, a.sklearn_seeds, a.rounds, a.quick, a.x64)
    print(_common.table(out))


if __name__ == "__main__":
    main()
