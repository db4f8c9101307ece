"""Linear-regression chains (Gerstgrasser et al. 2024): replace grows the test error, accumulate not.

    python -m launch.sweep --config=configs/linear_regression.py:cpu --workdir=/tmp/lr_cpu
    # the sweep's report: both regimes with theory per (d, T, sigma^2), every run's figures
    python -m launch.report --workdir=/tmp/lr_cpu
    python -m launch.report --workdir="/tmp/lr_cpu/mixing.regime=replace+samples_per_generation=32"

Per seed a fixed Gaussian design X (T x d, T = samples_per_generation), w* ~ N(0, I_d) and label
noise sigma^2; each generation relabels X with the last fit plus fresh noise and refits least
squares (``collapse_jax/families/linear_regression.py``). ``theory.py`` gives the exact expectations:
replace ``sigma^2 d n / (T - d - 1)``, accumulate ``sigma^2 d / (T - d - 1) sum_{i<=n} 1/i^2``.

Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):
  variant  paper (default) | cpu | smoke

variant=paper  Gerstgrasser et al. / Kazdan et al.'s grid, 100 generations (their 100
  model-fitting iterations), 100 seeds: ``cfg.sweep`` over the regime {replace, accumulate}, d in
  {1, 3, 10, 32}, T in {100, 316, 1000} and sigma^2 in {0.1, 1, 10} (72 runs). Their grid also has
  d = 100 and T in {10, 32}; the points with T <= d + 1 need the pseudo-inverse (underdetermined)
  and have no closed form, and a Cartesian sweep cannot drop only those, so they are left out
  (``--config.linear_regression.dim=100 --config.samples_per_generation=1000`` runs one).
  Accumulating runs hold 100 T rows per seed: the T = 1000 ones want an accelerator. Not timed
  yet.
variant=cpu  d = 10, T in {32, 100}, sigma^2 = 1, both regimes (4 runs), 100 generations, 200
  seeds. Expected: replace's test error grows linearly in n, accumulate's stays below
  (pi^2 / 6) sigma^2 d / (T - d - 1), both on their closed forms within Monte Carlo error. The
  seeds of both regimes share their designs and noise at generation 0, so their errors against
  theory are correlated.

  Measured 2026-12-07 with ``python -m launch.sweep --config=configs/linear_regression.py:cpu
  --workdir=/tmp/lr_cpu`` on the shared 2-core AMD EPYC dev machine (loaded: load average 13-24 that
  hour; no XLA compile cache): 327 s wall for the 4 runs, 83 s CPU. Test error at generation 99 (fit
  n = 100), seed mean ± standard error (theory): replace T = 32: 45.3 ± 1.7 (47.6), T = 100: 10.9 ±
  0.36 (11.2); accumulate T = 32: 0.720 ± 0.027 (0.779), T = 100: 0.174 ± 0.006 (0.184), below the
  limits 0.78 and 0.18 (``theory.linear_regression_accumulate_limit``).
variant=smoke  d = 3, T = 12, 5 generations, 8 seeds: what the tests run.

  Measured 2026-12-07 with ``python -m launch.run --config=configs/linear_regression.py:smoke
  --workdir=/tmp/linear_regression_smoke`` on the shared 2-core AMD EPYC dev machine (loaded: load
  average 13-24 that hour; no XLA compile cache): 109 s wall, 14 s CPU, compilation included.
"""

import ml_collections

from configs import common

ARGS = common.ARGS


def get_config(arg=None):
    a = common.parse_arg(arg, ARGS)
    cfg = common.base("linear_regression", a)

    c = cfg.linear_regression = ml_collections.ConfigDict()
    c.dim = 10  # d
    c.noise_variance = 1.0  # sigma^2 of the label noise
    c.ridge = 0.0  # lambda on the mean squared loss; 0 is least squares (theory needs 0)
    c.heldout_samples = 1000  # test set for test_mse (Kazdan et al. use 1000), shared by seeds
    c.heldout_seed = 2024  # its key: jax.random.key(heldout_seed), independent of cfg.seed
    c.truth_seed = 0  # w* = normal(key(truth_seed)); shared by seeds (see the family docstring)

    # Field path -> values; launch/sweep.py runs one job per point of the product.
    cfg.sweep = ml_collections.ConfigDict()
    cfg.sweep.mixing = ml_collections.ConfigDict()
    cfg.sweep.linear_regression = ml_collections.ConfigDict()

    cfg.num_generations = 100  # generation g is fit n = g + 1
    cfg.samples_per_generation = 100  # T
    if a.variant == "paper":
        cfg.num_seeds = 100
        cfg.checkpoint.every_generations = 25
        cfg.sweep.mixing.regime = ("replace", "accumulate")
        cfg.sweep.linear_regression.dim = (1, 3, 10, 32)
        cfg.sweep.samples_per_generation = (100, 316, 1000)
        cfg.sweep.linear_regression.noise_variance = (0.1, 1.0, 10.0)
    elif a.variant == "cpu":
        cfg.num_seeds = 200
        cfg.checkpoint.every_generations = 50
        cfg.sweep.mixing.regime = ("replace", "accumulate")
        cfg.sweep.samples_per_generation = (32, 100)
    else:
        cfg.num_seeds = 8
        cfg.num_generations = 5
        cfg.samples_per_generation = 12
        cfg.checkpoint.every_generations = 2
        c.dim = 3
        c.heldout_samples = 200
    cfg.checkpoint.keep_generations = common.log_spaced_generations(cfg.num_generations)
    return cfg
