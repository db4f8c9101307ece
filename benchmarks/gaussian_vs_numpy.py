r"""The Gaussian chain: our jitted, vmapped chain (both samplers) against NumPy vectorised over seeds.

  python benchmarks/gaussian_vs_numpy.py [--seeds 1000] [--generations 1000] [--samples 100] \
      [--rounds 3] [--[no-]large] [--one_core] [--quick] [--parts]

With the default sizes it also runs M = 10^3 and 10^4 over 100 generations (``--large``): the
statistics samplers' cost is flat in M, the sample-drawing chains' linear.

Every side runs the same chain: D_0 = M draws of N(0, 1), then each generation fits the mean and
``np.std`` (ddof=0, the authors' notebook; our ``estimator=mle``), pure replace, with the
per-generation metrics. Ours is the chain of ``configs/gaussian.py`` (vmap over seeds, a loop over
generations; ``_common.chain_fn``) with ``gaussian.sampler = samples`` (draws the M samples) and
``statistics`` (draws their mean and scatter directly: same law, O(1) in M). The references are
NumPy, all seeds at once (``(S, M)`` arrays, a Python loop over generations only: the fastest
plain-NumPy form, not the notebook's loop over seeds):

  NumPy samples        draws the M samples of every seed (``standard_normal``) and fits them;
                       float64 (NumPy's default) and float32 (``dtype=np.float32``: ours).
  NumPy statistics     draws what ours' ``statistics`` draws: the mean ``N(mu, sigma^2 / M)`` and
                       the scatter ``sigma^2 chi^2_{M-1}`` (``2 standard_gamma((M-1)/2)``), in
                       float32.

Rows, per M: ours ``samples`` against NumPy samples in float64 and in float32; ours
``statistics`` against NumPy samples in float32 (what the statistics sampler buys over drawing the
samples) and against NumPy statistics in float32 (what JAX buys a user who already knows the
sufficient statistics). Threads: NumPy's generators and ufuncs run on one thread (they have no
thread option); XLA:CPU runs on one thread per core. ``--one_core`` pins the whole process to one
core first (``os.sched_setaffinity``), so both sides run on one core. Every side is warmed up
(compile) and the rounds are interleaved (``_common.py``).
"""

import argparse
import os
import sys

if __name__ == "__main__" and "--one_core" in sys.argv:
    # Before JAX starts its thread pool: XLA sizes it from the cores the process may use.
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import _common  # first: puts the repository root on sys.path
import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax import compile_cache, rng, sufficient
from configs import gaussian as gaussian_config


def ours(seeds: int, generations: int, samples: int, sampler: str):
    """A blocking call running the whole chain; returns the final variances."""
    cfg = gaussian_config.get_config("paper")
    cfg.num_seeds, cfg.num_generations, cfg.samples_per_generation = seeds, generations, samples
    cfg.gaussian.estimator, cfg.gaussian.sampler = "mle", sampler
    cfg.enable_x64 = jax.config.jax_enable_x64
    fn = _common.chain_fn(cfg)
    keys_S, truth = _common.chain_inputs(cfg)

    def once():
        _, m = fn(keys_S, truth)
        return np.asarray(jax.block_until_ready(m["variance"])[-1])

    return once


def _metrics(mu, sd):
    """The chain's per-generation metrics, as ours records them."""
    out = dict(mean=mu, variance=sd**2, std=sd, mean_error=mu**2)
    out["std_error"] = np.abs(sd - 1)
    out["w2_squared"] = mu**2 + (sd - 1) ** 2
    return out


def numpy_samples(seeds: int, generations: int, samples: int, dtype=np.float64):
    """The sample-drawing chain in NumPy, in ``dtype`` (draws, sums and fit alike)."""
    rs = np.random.default_rng(0)

    def once():
        x = rs.standard_normal((seeds, samples), dtype=dtype)
        for _ in range(generations):
            mu, sd = x.mean(1), x.std(1)
            metrics = _metrics(mu, sd)
            x = mu[:, None] + sd[:, None] * rs.standard_normal((seeds, samples), dtype=dtype)
        return metrics["variance"]

    return once


def numpy_statistics(seeds: int, generations: int, samples: int, dtype=np.float32):
    """The exact-statistics chain in NumPy: each generation draws the mean and the scatter of M
    draws from the fitted N(mu, sd^2), never the draws (the law ours' ``statistics`` draws)."""
    rs = np.random.default_rng(0)
    m, half_dof = samples, dtype((samples - 1) / 2)
    root_m = dtype(np.sqrt(samples))

    def once():
        mu, sd = np.zeros(seeds, dtype), np.ones(seeds, dtype)
        for _ in range(generations):
            mean = mu + sd * rs.standard_normal(seeds, dtype=dtype) / root_m
            scatter = sd**2 * 2 * rs.standard_gamma(half_dof, seeds, dtype=dtype)
            mu, sd = mean, np.sqrt(scatter / m)  # estimator mle: scatter / M
            metrics = _metrics(mu, sd)
        return metrics["variance"]

    return once


def rows(
    seeds=1000, generations=1000, samples=100, rounds=3, quick=False, large=True, one_core=False
):
    """The chain at ``samples`` = M and, with ``large``, also at M = 10^3 and 10^4 over a tenth
    of the generations (the statistics samplers' cost does not depend on M, the others' grows with
    it). ``quick``: 100 seeds x 20 generations, M = 100 only, 2 rounds (checks the script)."""
    if quick:
        seeds, generations, rounds, large = 100, 20, 2, False
    out = _rows(seeds, generations, samples, rounds, quick, one_core)
    for m in LARGE_M if large else ():
        if m > samples:
            out += _rows(seeds, max(generations // 10, 2), m, rounds, quick, one_core, large=True)
    return out


LARGE_M = (1_000, 10_000)


def _rows(seeds, generations, samples, rounds, quick, one_core, large=False):
    sides = {
        "numpy samples float64": numpy_samples(seeds, generations, samples, np.float64),
        "numpy samples float32": numpy_samples(seeds, generations, samples, np.float32),
        "numpy statistics float32": numpy_statistics(seeds, generations, samples, np.float32),
        "samples": ours(seeds, generations, samples, "samples"),
        "statistics": ours(seeds, generations, samples, "statistics"),
    }
    t = _common.interleave(sides, rounds)
    cmd = "python benchmarks/gaussian_vs_numpy.py" + (" --quick" if quick else "")
    cmd += " --one_core" if one_core else ""
    if large:
        cmd += f" --samples={samples} --generations={generations}"
    work = f"Gaussian chain, {seeds} seeds x {generations} generations, M={samples}"
    numpy_threads = f"NumPy, 1 thread{' (1 core)' if one_core else ''}"
    ours_side = _common.jax_side()
    if ours_side.device == "cpu":
        # XLA's pool has one thread per core; NumPy's generators and ufuncs have no threads.
        note = "" if one_core else "; NumPy has no threads option, XLA uses every core"
    else:
        note = ""
    out = []
    for name, ref, why in (
        ("samples", "numpy samples float64", "NumPy's default dtype"),
        ("samples", "numpy samples float32", "the same dtype"),
        ("statistics", "numpy samples float32", "what drawing the statistics buys"),
        ("statistics", "numpy statistics float32", "what JAX buys over NumPy's own statistics"),
    ):
        what, dtype = ref.rsplit(" ", 1)
        out.append(
            _common.Row(
                f"{work}, ours sampler={name} vs {what.replace('numpy', 'NumPy')} chain "
                f"vectorised over seeds ({why}{note})",
                cmd,
                _common.Cell(_common.spread(t[name]), suffix=" s"),
                _common.Cell(_common.spread(t[ref]), "NumPy ", " s"),
                _common.Cell(_common.ratio(t[ref], t[name]), suffix="x"),
                ours_side=ours_side,
                reference_side=_common.Side(dtype, numpy_threads),
            )
        )
    return out


def parts(seeds: int, generations: int, rounds: int, samples: int = 100) -> dict[str, float]:
    """Median seconds of the statistics sampler's random draws alone, each in the chain's shape (a
    ``lax.scan`` over generations of ``vmap`` over seeds, one key per seed and generation): what
    bounds its speed at small M, where NumPy's whole generation costs only M normals per seed.
    The chi-square of the scatter is timed as ``jax.random.gamma`` (a rejection loop splitting
    its key per try) and as ``sufficient.chi2`` (what the family draws: one batch of candidates)."""
    keys_S = rng.seed_keys(0, seeds)
    dof = samples - 1
    df = jnp.float32(dof / 2)

    def scan(draw):
        @jax.jit
        def f(keys_S):
            def body(acc, g):
                k_S = jax.vmap(lambda k: jax.random.fold_in(k, g))(keys_S)
                return acc + jax.vmap(draw)(k_S), None

            return jax.lax.scan(body, jnp.zeros(seeds), jnp.arange(generations))[0]

        return lambda: np.asarray(f(keys_S))

    def split(k):
        return jax.random.key_data(jax.random.split(k, 4)).sum().astype(jnp.float32)

    def record(k):
        f_W = jax.random.uniform(k, (1 + sufficient.chi2_width(dof),))
        return sufficient.normals_from(f_W[0], f_W.dtype) + sufficient.chi2_from(k, f_W[1:], dof)

    sides = {
        "fold_in + 4-way split (each generation's keys)": scan(split),
        "normal (the mean)": scan(lambda k: jax.random.normal(k, ())),
        "jax.random.gamma (the chi-square of the scatter, before)": scan(
            lambda k: jax.random.gamma(k, df, ())
        ),
        "sufficient.chi2 (the chi-square of the scatter)": scan(lambda k: sufficient.chi2(k, dof)),
        "the mean's normal and sufficient.chi2 from one uniform draw (the family's record)": scan(
            record
        ),
    }
    t = _common.interleave(sides, rounds)
    return {k: float(np.median(v)) for k, v in t.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=1000)
    p.add_argument("--generations", type=int, default=1000)
    p.add_argument("--samples", type=int, default=100, help="M, samples per generation")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="100 seeds x 20 generations, 2 rounds")
    p.add_argument(
        "--large",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"also M = {', '.join(f'{m:,}' for m in LARGE_M)} over a tenth of the generations "
        "(default: with the default sizes only)",
    )
    p.add_argument(
        "--one_core", action="store_true", help="pin the process to one core (both sides)"
    )
    p.add_argument(
        "--parts", action="store_true", help="time the statistics sampler's random draws alone"
    )
    a = p.parse_args(argv)
    if a.one_core and _common.cores() != 1:
        p.error(
            f"--one_core: expected the script run with it (pinned before JAX starts), got "
            f"{_common.cores()} cores"
        )
    compile_cache.enable()
    if a.parts:
        if a.quick:
            a.seeds, a.generations, a.rounds = 100, 20, 2
        print(_common.machine())
        for k, v in parts(a.seeds, a.generations, a.rounds, a.samples).items():
            print(
                f"{k}: {v:.3f} s ({1e9 * v / (a.seeds * a.generations):.0f} ns per seed-generation)"
            )
        return
    large = a.large if a.large is not None else (a.generations, a.samples) == (1000, 100)
    print(_common.machine())
    out = rows(a.seeds, a.generations, a.samples, a.rounds, a.quick, large, a.one_core)
    print(_common.table(out))


if __name__ == "__main__":
    main()
