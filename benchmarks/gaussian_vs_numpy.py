r"""The Gaussian chain: our jitted, vmapped chain against a plain NumPy loop, in one process.

  python benchmarks/gaussian_vs_numpy.py [--seeds 1000] [--generations 1000] [--samples 100] \
      [--numpy_seeds 1000]

Both sides run the same chain: D_0 = M draws of N(0, 1), then each generation fits the mean and
``np.std`` (ddof=0, the authors' notebook; our ``estimator=mle``) and draws M new samples, pure
replace, with the same per-generation metrics (mean, variance, std, mean error, std error, W2^2).
NumPy is the notebook's style: a Python loop over seeds and generations with ``np.random.normal``,
``np.mean`` and ``np.std``. Ours is ``chain.build`` for ``configs/gaussian.py`` (vmap over seeds,
``lax.scan`` over generations, one XLA call), timed on a second identical call after compiling;
compile time is printed apart. ``--numpy_seeds`` < ``--seeds`` times NumPy on a subset and scales
its time to all seeds (its cost is linear in seeds).

Timings are wall clock; on a loaded machine read the ratio rather than the absolute numbers.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax import chain, family, rng
from configs import gaussian as gaussian_config


def ours(seeds: int, generations: int, samples: int) -> tuple[float, float, dict]:
    """(compile + first run seconds, run seconds, final metrics) of the jitted chain."""
    cfg = gaussian_config.get_config("paper")
    cfg.num_seeds, cfg.num_generations, cfg.samples_per_generation = seeds, generations, samples
    cfg.gaussian.estimator = "mle"
    cfg.enable_x64 = jax.config.jax_enable_x64  # float32 unless JAX_ENABLE_X64=1 (NumPy: float64)
    fam = family.get("gaussian")
    with jax.default_matmul_precision(cfg.matmul_precision):
        steps = chain.build(cfg, fam)
        truth = fam.reference(cfg)
        keys_S = rng.seed_keys(cfg.seed, seeds)
        gens = jnp.arange(1, generations, dtype=jnp.int32)

        def once():
            t = time.perf_counter()
            carry, _ = steps.first(keys_S, truth)
            _, m = steps.chunk(keys_S, truth, carry, gens)
            m = jax.block_until_ready(m)
            return time.perf_counter() - t, m

        t_compile, _ = once()
        t_run, m = once()
    return t_compile, t_run, {k: np.asarray(v)[:, -1] for k, v in m.items()}


def numpy_loop(seeds: int, generations: int, samples: int) -> tuple[float, dict]:
    """Seconds for ``seeds`` chains in a Python loop (notebook style), and final metrics."""
    rs = np.random.default_rng(0)
    mu0, sigma0 = 0.0, 1.0
    last = {k: [] for k in ("variance", "mean_error", "w2_squared")}
    t = time.perf_counter()
    for _ in range(seeds):
        x = rs.normal(mu0, sigma0, samples)
        for _ in range(generations):
            mu, sd = np.mean(x), np.std(x)
            metrics = dict(
                mean=mu,
                variance=sd**2,
                std=sd,
                mean_error=(mu - mu0) ** 2,
                std_error=abs(sd - sigma0),
                w2_squared=(mu - mu0) ** 2 + (sd - sigma0) ** 2,
            )
            x = rs.normal(mu, sd, samples)
        for k in last:
            last[k].append(metrics[k])
    return time.perf_counter() - t, {k: np.asarray(v) for k, v in last.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=1000)
    p.add_argument("--generations", type=int, default=1000)
    p.add_argument("--samples", type=int, default=100, help="M, samples per generation")
    p.add_argument("--numpy_seeds", type=int, default=None, help="time NumPy on this many seeds")
    a = p.parse_args()
    numpy_seeds = min(a.numpy_seeds or a.seeds, a.seeds)

    print(f"devices: {jax.devices()}")
    print(f"work: {a.seeds} seeds x {a.generations} generations x M = {a.samples} (mle)")
    t_compile, t_ours, m_ours = ours(a.seeds, a.generations, a.samples)
    t_np_sub, m_np = numpy_loop(numpy_seeds, a.generations, a.samples)
    t_np = t_np_sub * a.seeds / numpy_seeds
    scaled = "" if numpy_seeds == a.seeds else f" (timed on {numpy_seeds} seeds, scaled)"
    print(
        f"ours (jit + vmap + scan): {t_ours:.3f} s   [first call incl. compile {t_compile:.2f} s]"
    )
    print(f"numpy loop:               {t_np:.3f} s{scaled}")
    print(f"ratio numpy / ours:       {t_np / t_ours:.1f}x")
    # The two sides use different random streams; their final-generation statistics must still
    # agree in distribution (a sanity check that the same work was done).
    g = a.generations - 1
    for k in ("variance", "mean_error", "w2_squared"):
        print(
            f"  generation {g} {k}: median ours {np.median(m_ours[k]):.4g}, "
            f"numpy {np.median(m_np[k]):.4g}"
        )


if __name__ == "__main__":
    main()
