r"""The Gaussian chain: our jitted, vmapped chain (both samplers) against NumPy vectorised over seeds.

  python benchmarks/gaussian_vs_numpy.py [--seeds 1000] [--generations 1000] [--samples 100] \
      [--rounds 3] [--[no-]large]

With the default sizes it also runs M = 10^3 and 10^4 over 100 generations (``--large``): the
statistics sampler's cost is flat in M, NumPy's (and ``sampler=samples``') linear.

All sides run the same chain: D_0 = M draws of N(0, 1), then each generation fits the mean and
``np.std`` (ddof=0, the authors' notebook; our ``estimator=mle``), pure replace, with the
per-generation metrics. NumPy draws all seeds' M samples at once (``(S, M)`` arrays, a Python loop
over generations only): the fastest plain-NumPy form, not the notebook's loop over seeds. Ours is
``chain.build`` for ``configs/gaussian.py`` (vmap over seeds, ``lax.scan`` over generations), with
``gaussian.sampler = samples`` (draws the M samples) and ``statistics`` (draws their mean and
scatter directly: same law, O(1) in M). Every side is warmed up (compile) and the rounds are
interleaved (``_common.py``).
"""

import argparse

import _common  # first: puts the repository root on sys.path
import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax import chain, experiments, rng
from configs import gaussian as gaussian_config


def ours(seeds: int, generations: int, samples: int, sampler: str):
    """A blocking call running the whole chain; returns the final variances."""
    cfg = gaussian_config.get_config("paper")
    cfg.num_seeds, cfg.num_generations, cfg.samples_per_generation = seeds, generations, samples
    cfg.gaussian.estimator, cfg.gaussian.sampler = "mle", sampler
    cfg.enable_x64 = jax.config.jax_enable_x64
    fam = experiments.family("gaussian")
    steps = chain.build(cfg, fam)
    truth = fam.reference(cfg)
    keys_S = rng.seed_keys(cfg.seed, seeds)
    gens = jnp.arange(1, generations, dtype=jnp.int32)

    def once():
        with jax.default_matmul_precision(cfg.matmul_precision):
            carry, _ = steps.first(keys_S, truth)
            _, m = steps.chunk(keys_S, truth, carry, gens)
            return np.asarray(jax.block_until_ready(m["variance"])[:, -1])

    return once


def numpy_vectorised(seeds: int, generations: int, samples: int):
    rs = np.random.default_rng(0)

    def once():
        x = rs.normal(0.0, 1.0, (seeds, samples))
        for _ in range(generations):
            mu, sd = x.mean(1), x.std(1)
            metrics = dict(mean=mu, variance=sd**2, std=sd, mean_error=mu**2)
            metrics["std_error"] = np.abs(sd - 1.0)
            metrics["w2_squared"] = mu**2 + (sd - 1.0) ** 2
            x = mu[:, None] + sd[:, None] * rs.standard_normal((seeds, samples))
        return metrics["variance"]

    return once


def rows(seeds=1000, generations=1000, samples=100, rounds=3, quick=False, large=True):
    """The chain at ``samples`` = M and, with ``large``, also at M = 10^3 and 10^4 over a tenth
    of the generations (the statistics sampler's cost does not depend on M, NumPy's grows with
    it)."""
    if quick:
        seeds, generations, rounds = 100, 100, 2
    out = _rows(seeds, generations, samples, rounds, quick)
    for m in LARGE_M if large else ():
        if m > samples:
            out += _rows(seeds, max(generations // 10, 2), m, rounds, quick, large=True)
    return out


LARGE_M = (1_000, 10_000)


def _rows(seeds, generations, samples, rounds, quick, large=False):
    sides = {
        "numpy": numpy_vectorised(seeds, generations, samples),
        "samples": ours(seeds, generations, samples, "samples"),
        "statistics": ours(seeds, generations, samples, "statistics"),
    }
    t = _common.interleave(sides, rounds)
    cmd = "python benchmarks/gaussian_vs_numpy.py" + (" --quick" if quick else "")
    if large:
        cmd += f" --samples={samples} --generations={generations}"
    work = f"Gaussian chain, {seeds} seeds x {generations} generations, M={samples}"
    return [
        _common.Row(
            f"{work}, sampler={name}, vs NumPy vectorised over seeds",
            cmd,
            _common.Cell(_common.spread(t[name]), suffix=" s"),
            _common.Cell(_common.spread(t["numpy"]), "NumPy ", " s"),
            _common.Cell(_common.ratio(t["numpy"], t[name]), suffix="x"),
        )
        for name in ("samples", "statistics")
    ]


def parts(seeds: int, generations: int, rounds: int) -> dict[str, float]:
    """Median seconds of the statistics sampler's random draws alone, each in the chain's shape (a
    ``lax.scan`` over generations of ``vmap`` over seeds, one key per seed and generation): what
    bounds its speed at small M, where NumPy's whole generation costs only M normals per seed."""
    keys_S = rng.seed_keys(0, seeds)
    df = jnp.float32(49.5)  # chi^2_99 / 2: M = 100

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

    sides = {
        "fold_in + 4-way split (each generation's keys)": scan(split),
        "normal (the mean)": scan(lambda k: jax.random.normal(k, ())),
        "gamma (the chi-square of the scatter)": scan(lambda k: jax.random.gamma(k, df, ())),
    }
    t = _common.interleave(sides, rounds)
    return {k: float(np.median(v)) for k, v in t.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=1000)
    p.add_argument("--generations", type=int, default=1000)
    p.add_argument("--samples", type=int, default=100, help="M, samples per generation")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="100 seeds x 100 generations, 2 rounds")
    p.add_argument(
        "--large",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"also M = {', '.join(f'{m:,}' for m in LARGE_M)} over a tenth of the generations "
        "(default: with the default sizes only)",
    )
    p.add_argument(
        "--parts", action="store_true", help="time the statistics sampler's random draws alone"
    )
    a = p.parse_args()
    if a.parts:
        print(_common.machine())
        for k, v in parts(a.seeds, a.generations, a.rounds).items():
            print(
                f"{k}: {v:.3f} s ({1e9 * v / (a.seeds * a.generations):.0f} ns per seed-generation)"
            )
        return
    large = a.large if a.large is not None else (a.generations, a.samples) == (1000, 100)
    print(_common.machine())
    print(_common.table(rows(a.seeds, a.generations, a.samples, a.rounds, a.quick, large)))


if __name__ == "__main__":
    main()
