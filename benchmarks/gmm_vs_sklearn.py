r"""GMM-EM chains: our vmapped EM against a sklearn fit-and-sample loop, in one process.

  python benchmarks/gmm_vs_sklearn.py [--seeds 1,16,256] [--samples 1000,10000] \
      [--generations 10] [--sklearn_seeds 2]

Both sides run the paper's chain: 2-D N(0, I) data, a 2-component full-covariance GMM refitted each
generation (k-means init, tol 1e-5, max_iter 2000, reg_covar 1e-6), pure replace. Ours is
``chain.build`` (compiled once per shape, then timed on a second, identical call, metrics
included); sklearn is the authors' notebook loop ``GaussianMixture(...).fit(X)`` then
``X = gmm.sample(M)[0]``, run for ``--sklearn_seeds`` seeds (it costs the same per seed whatever S,
so a subset gives its per seed-generation cost). The ratio is sklearn's wall time per
seed-generation over ours. sklearn runs with its thread pools limited to one thread: on a shared
2-core machine its OpenMP k-means is tens of times slower with the default pools (also printed
once as ``sklearn (default threads)``).

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
from threadpoolctl import threadpool_limits

from collapse_jax import chain, experiments, rng
from configs import gmm as gmm_config


def ours(num_seeds: int, samples: int, generations: int):
    """A blocking call: ``generations`` EM generations of ``num_seeds`` seeds, one XLA call."""
    cfg = gmm_config.get_config("paper")
    cfg.num_seeds, cfg.samples_per_generation = num_seeds, samples
    cfg.num_generations = generations + 1
    cfg.gmm.record_params = False
    fam = experiments.family("gmm")
    with jax.default_matmul_precision(cfg.matmul_precision):
        steps = chain.build(cfg, fam)
        truth = fam.reference(cfg)
        keys_S = rng.seed_keys(cfg.seed, num_seeds)
        gens = jax.numpy.arange(1, generations + 1, dtype=jax.numpy.int32)
        carry0, _ = steps.first(keys_S, truth)
        carry0 = jax.block_until_ready(carry0)
    iters = []

    def once():
        # The chunk donates its carry: start every call from a copy of generation 0.
        carry = jax.tree.map(jax.numpy.copy, carry0)
        with jax.default_matmul_precision(cfg.matmul_precision):
            _, m = steps.chunk(keys_S, truth, carry, gens)
        iters.append(float(np.mean(jax.block_until_ready(m)["em_iterations"])))

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


def compare(s, m, generations, sklearn_seeds, rounds):
    """Per-round ms per seed-generation of both sides, and their mean EM iterations."""
    ours_fn, it_ours = ours(s, m, generations)
    sk_seeds = min(s, sklearn_seeds)
    sk_fn, it_sk = sklearn_loop(sk_seeds, m, generations)

    def sk_one_thread():
        with threadpool_limits(1):
            sk_fn()

    t = _common.interleave({"ours": ours_fn, "sklearn": sk_one_thread}, rounds)
    ms_ours = [1e3 * v / (s * generations) for v in t["ours"]]
    ms_sk = [1e3 * v / (sk_seeds * (generations + 1)) for v in t["sklearn"]]
    return ms_ours, ms_sk, float(np.mean(it_ours)), float(np.mean(it_sk))


def rows(
    seeds=(1, 16, 256),
    samples=(1000, 10000),
    generations=10,
    sklearn_seeds=2,
    rounds=3,
    quick=False,
):
    if quick:
        seeds, samples, generations, rounds = (16,), (1000,), 3, 2
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    out = []
    for m in samples:
        for s in seeds:
            ms_ours, ms_sk, it_ours, it_sk = compare(s, m, generations, sklearn_seeds, rounds)
            out.append(
                _common.Row(
                    f"GMM-EM chain, S={s}, M={m}, {generations} generations, vs sklearn "
                    f"`GaussianMixture` fit+sample loop (1 thread), ms per seed-generation; "
                    f"EM iterations {it_ours:.0f} / {it_sk:.0f}",
                    f"python benchmarks/gmm_vs_sklearn.py --seeds={s} --samples={m}",
                    _common.Cell(_common.spread(ms_ours)),
                    _common.Cell(_common.spread(ms_sk), "sklearn "),
                    _common.Cell(_common.ratio(ms_sk, ms_ours), suffix="x"),
                )
            )
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="1,16,256")
    p.add_argument("--samples", default="1000,10000")
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--sklearn_seeds", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="S=16, M=1000, 3 generations, 2 rounds")
    a = p.parse_args()
    print(_common.machine())
    seeds = tuple(int(v) for v in a.seeds.split(","))
    samples = tuple(int(v) for v in a.samples.split(","))
    print(_common.table(rows(seeds, samples, a.generations, a.sklearn_seeds, a.rounds, a.quick)))


if __name__ == "__main__":
    main()
