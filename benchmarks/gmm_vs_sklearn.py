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

Timings are wall clock; on a loaded machine run both sides back to back (this script does) and
read the ratio rather than the absolute numbers.
"""

import argparse
import time
import warnings

import jax
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from collapse_jax import chain, family, rng
from configs import gmm as gmm_config


def ours(num_seeds: int, samples: int, generations: int) -> tuple[float, float]:
    """Seconds per seed-generation (compiled; compile excluded) and the mean EM iterations."""
    cfg = gmm_config.get_config("paper")
    cfg.num_seeds, cfg.samples_per_generation = num_seeds, samples
    cfg.num_generations = generations + 1
    cfg.gmm.record_params = False
    fam = family.get("gmm")
    with jax.default_matmul_precision(cfg.matmul_precision):
        steps = chain.build(cfg, fam)
        truth = fam.reference(cfg)
        keys_S = rng.seed_keys(cfg.seed, num_seeds)
        gens = jax.numpy.arange(1, generations + 1, dtype=jax.numpy.int32)

        def once():
            carry, _ = steps.first(keys_S, truth)
            carry = jax.block_until_ready(carry)
            t = time.perf_counter()
            _, m = steps.chunk(keys_S, truth, carry, gens)
            m = jax.block_until_ready(m)
            return time.perf_counter() - t, m

        once()  # compile
        dt, m = once()
    return dt / (num_seeds * generations), float(np.mean(m["em_iterations"]))


def sklearn_loop(num_seeds: int, samples: int, generations: int) -> tuple[float, float]:
    """Seconds per seed-generation of the notebook's loop, and the mean EM iterations."""
    iters = []
    t = time.perf_counter()
    for s in range(num_seeds):
        x = np.random.default_rng(s).standard_normal((samples, 2))
        for g in range(generations + 1):
            gm = GaussianMixture(2, tol=1e-5, max_iter=2000, random_state=1000 * s + g).fit(x)
            x = gm.sample(samples)[0]
            if g:
                iters.append(gm.n_iter_)
    dt = time.perf_counter() - t
    # Generation 0 is timed too (it is the same fit); divide by all fits made.
    return dt / (num_seeds * (generations + 1)), float(np.mean(iters))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="1,16,256")
    p.add_argument("--samples", default="1000,10000")
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--sklearn_seeds", type=int, default=2)
    a = p.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {a.generations} generations")
    with threadpool_limits(None):
        t_default, _ = sklearn_loop(1, 1000, 2)
    print(f"sklearn (default threads), M=1000: {t_default * 1e3:.1f} ms per seed-generation")
    header = "| S | M | ours ms/seed-gen | sklearn ms/seed-gen | ratio | EM iters ours / sklearn |"
    print(header)
    print("|---|---|---|---|---|---|")
    for m in (int(v) for v in a.samples.split(",")):
        for s in (int(v) for v in a.seeds.split(",")):
            t_ours, it_ours = ours(s, m, a.generations)
            with threadpool_limits(1):
                t_sk, it_sk = sklearn_loop(min(s, a.sklearn_seeds), m, a.generations)
            print(
                f"| {s} | {m} | {t_ours * 1e3:.3f} | {t_sk * 1e3:.1f} | {t_sk / t_ours:.1f}x "
                f"| {it_ours:.0f} / {it_sk:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
