"""Gaussian chains (Shumailov et al., Theorem 3.1): refit N(mu, sigma^2) to its own samples.

    python -m launch.run --config=configs/gaussian.py:cpu --workdir=/tmp/gaussian_cpu
    python -m launch.report --workdir=/tmp/gaussian_cpu

Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):
  variant  paper (default) | cpu | smoke
  sweep    default (default) | regimes | temperature | ecosystem | lineages | detector
Legacy names, kept so that the runs they started resume: ``regimes`` (``variant=cpu,sweep=regimes``)
and ``regimes_smoke`` (``variant=smoke,sweep=regimes``); from the ``eco`` branch, ``temperature``
(``variant=cpu,sweep=temperature``) and ``temperature_smoke`` (``variant=smoke,sweep=temperature``).

variant=paper  M = samples_per_generation in {10, 100, 1000, 10000} (``cfg.sweep``, run by
  ``launch.sweep``; a single run uses M = 100), 1000 generations, 1000 seeds (the paper ran one
  chain per M), float64 like the authors' NumPy notebook. Not timed yet; the largest M wants an
  accelerator.
variant=cpu  M = 100, 1000 generations, 1000 seeds, float32. Expected: E[sigma_n^2] stays 1 for
  the unbiased estimator (``theory.expected_variance``) while the variance of the typical seed
  collapses: the seed median falls by orders of magnitude. A mean over 1000 seeds can follow
  E[sigma_n^2] only up to the Monte Carlo horizon, ``theory.monte_carlo_horizon(1000, 100)`` =
  344 generations; past it the expectation is carried by seeds too rare to be drawn, and the seed
  mean falls. W2^2 to the original grows (``theory.expected_w2_squared``); its seed mean is
  carried by a few seeds as well, noisy, and below the theory line late in the chain.

  Measured 2026-12-07 with ``python -m launch.run --config=configs/gaussian.py:cpu
  --workdir=/tmp/gaussian_cpu`` on the shared 2-core AMD EPYC dev machine (loaded: load average
  13-24 that hour; no XLA compile cache): 76 s wall, 13 s CPU. Seed mean of the variance 1.00, 1.03,
  0.82, 0.37, 0.043 at generations 0, 99, 344, 500, 999 (seed median 0.99, 0.39, 0.031, 0.0072,
  3.4e-5); seed mean of W2^2, ± its standard error (theory): 1.46 ± 0.11 at generation 99 (1.45),
  5.6 ± 1.2 at 344 (4.6), 8.0 ± 1.4 at 999 (11.8).
variant=smoke  M = 20, 20 generations, 8 seeds: what the tests run.

  Measured 2026-12-07 with ``python -m launch.run --config=configs/gaussian.py:smoke
  --workdir=/tmp/gaussian_smoke`` on the shared 2-core AMD EPYC dev machine (loaded: load average
  13-24 that hour; no XLA compile cache): 38 s wall, 9 s CPU, compilation included.

sweep=default  the variant's own sweep (paper: the four M; cpu and smoke: none, a single run).
sweep=regimes  one sweep over the data regimes of ``mixing`` (replace, accumulate,
  accumulate_subsample, augment with lambda = 1, fresh with gamma = 0.1), mle estimator, M = 20,
  1000 seeds; 100 generations at cpu size, 1000 at paper size (float64), 6 generations and 8
  seeds at smoke size. Then the comparison figure with theory overlaid:
      python -m launch.sweep --config=configs/gaussian.py:cpu,sweep=regimes --workdir=/tmp/regimes
      python -m launch.regimes --workdir=/tmp/regimes
  Expected (``theory.py``): E[sigma^2] falls as (19/20)^(g+1) under replace (0.0059 at g = 99)
  but stays at or above ``theory.accumulate_variance_limit(20)`` = sin(pi/sqrt 20)/(pi/sqrt 20)
  = 0.9198 under accumulate, and levels off at the augment and fresh fixed points (0.934 and
  0.787, ``theory.augment_fixed_point``, ``theory.fresh_fixed_point``). At 1000 seeds the replace
  seed mean follows its theory only to the Monte Carlo horizon, generation 68 at M = 20.

  Measured 2026-12-07 with ``python -m launch.sweep --config=configs/gaussian.py:cpu,sweep=regimes
  --workdir=/tmp/regimes`` and ``python -m launch.regimes --workdir=/tmp/regimes`` on the shared
  2-core AMD EPYC dev machine (loaded: load average 13-24 that hour; no XLA compile cache): 313 s
  wall for the 5 runs, 54 s CPU. Seed mean of the variance at generation 99, ± its standard error
  (theory): replace 0.0047 ± 0.0024 (0.0059), accumulate 0.923 ± 0.012 (0.920), augment 0.931 ±
  0.011 (0.934), fresh 0.798 ± 0.026 (0.787), accumulate_subsample 0.859 ± 0.016 (no closed form).
sweep=temperature  sampling bias (``cfg.sampling.temperature`` lambda; MAD's quality-over-diversity
  knob): one sweep over lambda in {0.9, 1, 1.1} x regime in {replace, accumulate}, mle, M = 20,
  1000 seeds, 100 generations at cpu and paper size, 6 generations and 8 seeds at smoke size; then
  the arms against their exact expectations:
      python -m launch.sweep --config=configs/gaussian.py:cpu,sweep=temperature --workdir=/tmp/temp
      python -m launch.ecosystem --workdir=/tmp/temp
  Expected (``theory.tempered_expected_variance``): E[sigma^2] is geometric with ratio
  lambda^2 (M-1)/M under replace; under accumulate it levels off at lambda = 1 but decays at
  lambda = 0.9 and grows at 1.1. Measurements: ``docs/ecosystems.md``.
sweep=ecosystem  regime composed (``mixing``'s axes): pool in {replace, accumulate} x
  real_source in {original, fresh}, 4 real rows and 16 model samples a generation, every fit on 20
  rows drawn from the pool (a compute-matched control: the same training set size in every arm),
  mle, M = 20; 1000 seeds and 100 generations at cpu size (1000 at paper size), 8 seeds and 6
  generations at smoke size. Then the arms against ``theory.axes_moments`` (every arm but
  accumulate x original, which has no closed form) and the collapse profiles:
      python -m launch.sweep --config=configs/gaussian.py:cpu,sweep=ecosystem --workdir=/tmp/eco
      python -m launch.ecosystem --workdir=/tmp/eco
sweep=lineages  many lineages, one pool (``chain/lineages.py``): num_lineages L in {1, 4, 16}
  (a single run: 4) models per seed, regime composed with no real data, each lineage drawing
  M = 20 samples a generation into the shared pool of 20 L rows and fitting 20 of them, mle;
  1000 seeds and 100 generations at cpu and paper size, 8 seeds and 6 generations at smoke size.
  Then the arms against ``theory.pool_moments`` (variance, mean error, and the spread between two
  lineages' means, ``theory.lineage_spread``):
      python -m launch.sweep --config=configs/gaussian.py:cpu,sweep=lineages --workdir=/tmp/lin
      python -m launch.ecosystem --workdir=/tmp/lin --metrics=variance,mean_error,lineage_spread
  Expected: the shared pool slows the collapse (E[sigma^2] at g = 99: 0.0059, 0.107, 0.505 for
  L = 1, 4, 16) but does not stop it. Measurements: ``docs/ecosystems.md``.
sweep=detector  a learner that weights the pool by a synthetic-data detector (``mixing.provenance=
  detector``, Drayson et al. 2025): regime composed, 20 fresh real rows and 20 model samples a
  generation, each fit on 20 of the 40 pooled rows drawn with P proportional to
  (1 - p_synthetic)^b, a detector of separation d = 2 (AUC 0.92), b in {0, 1, 4} (a single run:
  4), mle, M = 20; 1000 seeds and 100 generations at cpu and paper size, 8 seeds and 6
  generations at smoke size. b = 0 is the uniform draw of unknown provenance (its arm against
  ``theory.pool_moments``); larger b keeps more of the real rows, and the variance nearer the
  truth's 19/20 (all real rows). Measurements: ``docs/ecosystems.md``.

Precision: sampling rounds x = mu_n + sigma_n z to the float grid around mu_n, which adds rounding
noise of variance ~ (eps |mu_n|)^2 / 12 and, once sigma_n is below half a grid step, makes every
sample equal (variance exactly 0, absorbing). That floor is ~1e-15 in float32 and ~1e-33 in
float64 for |mu_n| ~ 1; with M = 10 the typical seed (E[log sigma_n^2] falls 0.115 a generation,
``theory.expected_log_variance``) reaches it after ~300 generations in float32 and ~660 in
float64. The paper variant runs in float64, like the authors' NumPy notebook; ``cpu`` and
``smoke`` stay float32 (``--config.enable_x64=True`` changes that).
"""

import ml_collections

from configs import common

ARGS = {
    "variant": common.VARIANTS,
    "sweep": ("default", "regimes", "temperature", "ecosystem", "lineages", "detector"),
}
LEGACY = {
    "regimes": "variant=cpu,sweep=regimes",
    "regimes_smoke": "variant=smoke,sweep=regimes",
    "temperature": "variant=cpu,sweep=temperature",
    "temperature_smoke": "variant=smoke,sweep=temperature",
}
REGIMES = ("replace", "accumulate", "accumulate_subsample", "augment", "fresh")


def _sweep_scale(cfg, variant: str) -> None:
    """The temperature, lineages and detector sweeps' scale: the MLE at M = 20, 1000 seeds and
    100 generations (smoke: 8 and 6)."""
    cfg.gaussian.estimator = "mle"
    cfg.samples_per_generation = 20
    small = variant == "smoke"
    cfg.num_seeds, cfg.num_generations = (8, 6) if small else (1000, 100)
    cfg.checkpoint.every_generations = 3 if small else 50


def get_config(arg=None):
    a = common.parse_arg(arg, ARGS, LEGACY)
    cfg = common.base("gaussian", a)

    cfg.gaussian = ml_collections.ConfigDict()
    cfg.gaussian.dim = 1  # d; d = 1 is the paper's case
    cfg.gaussian.estimator = "unbiased"  # unbiased (ddof=1, Theorem 3.1) | mle (ddof=0, np.std)
    cfg.gaussian.source = "normal"  # D_0: normal | student_t | mixture (all mean mu0, cov std^2 I)
    cfg.gaussian.mean = 0.0  # mu0, every coordinate
    cfg.gaussian.std = 1.0  # sigma0
    cfg.gaussian.df = 5.0  # student_t degrees of freedom (> 2), rescaled to unit variance
    cfg.gaussian.mixture_weight = 0.3  # mixture: weight of the second component
    cfg.gaussian.mixture_separation = 2.0  # mixture: component means apart, in units of std
    # samples (draw M samples, fit them) | statistics (draw the fit's sufficient statistics of
    # those M samples directly: exact in distribution, O(d^3) a generation whatever M is)
    cfg.gaussian.sampler = "samples"

    # Field path -> values; launch/sweep.py runs one job per value, a single run uses the field.
    cfg.sweep = ml_collections.ConfigDict()

    if a.variant == "paper":
        cfg.num_seeds = 1000
        cfg.num_generations = 1000
        cfg.samples_per_generation = 100
        cfg.checkpoint.every_generations = 100
        cfg.enable_x64 = True  # the variance floor from rounding (see above) sits at 1e-33
        if a.sweep == "default":
            cfg.sweep.samples_per_generation = (10, 100, 1000, 10000)
    elif a.variant == "cpu":
        cfg.num_seeds = 1000
        cfg.num_generations = 1000
        cfg.samples_per_generation = 100
        cfg.checkpoint.every_generations = 250
    else:
        cfg.num_seeds = 8
        cfg.num_generations = 20
        cfg.samples_per_generation = 20
        cfg.checkpoint.every_generations = 5
    if a.sweep == "regimes":
        cfg.gaussian.estimator = "mle"  # accumulate's product formula (Kazdan et al.) is the mle's
        cfg.samples_per_generation = 20
        cfg.mixing.augment_ratio = 1.0
        cfg.mixing.fresh_fraction = 0.1
        cfg.sweep.mixing = ml_collections.ConfigDict({"regime": REGIMES})
        cfg.num_generations, cfg.checkpoint.every_generations = {
            "paper": (1000, 100),
            "cpu": (100, 50),
            "smoke": (6, 3),
        }[a.variant]
        cfg.num_seeds = 8 if a.variant == "smoke" else 1000
    if a.sweep == "temperature":
        cfg.sweep.mixing = ml_collections.ConfigDict({"regime": ("replace", "accumulate")})
        cfg.sweep.sampling = ml_collections.ConfigDict({"temperature": (0.9, 1.0, 1.1)})
        _sweep_scale(cfg, a.variant)
    if a.sweep == "ecosystem":
        cfg.gaussian.estimator = "mle"
        cfg.samples_per_generation = 20
        cfg.mixing.regime = "composed"
        cfg.mixing.real_samples, cfg.mixing.synthetic_samples = 4, 16
        cfg.mixing.real_source = "fresh"  # the single run's; the sweep sets both sources
        cfg.mixing.fit_samples = 20
        cfg.sweep.mixing = ml_collections.ConfigDict(
            {"pool": ("replace", "accumulate"), "real_source": ("original", "fresh")}
        )
        cfg.num_generations, cfg.checkpoint.every_generations = {
            "paper": (1000, 100),
            "cpu": (100, 50),
            "smoke": (6, 3),
        }[a.variant]
        cfg.num_seeds = 8 if a.variant == "smoke" else 1000
    if a.sweep == "lineages":
        cfg.mixing.regime = "composed"
        cfg.mixing.synthetic_samples, cfg.mixing.fit_samples = 20, 20  # S and K per lineage
        cfg.mixing.num_lineages = 4  # the single run's
        cfg.sweep.mixing = ml_collections.ConfigDict({"num_lineages": (1, 4, 16)})
        _sweep_scale(cfg, a.variant)
    if a.sweep == "detector":
        cfg.mixing.regime, cfg.mixing.real_source = "composed", "fresh"
        cfg.mixing.real_samples, cfg.mixing.synthetic_samples, cfg.mixing.fit_samples = 20, 20, 20
        cfg.mixing.provenance, cfg.mixing.detector_separation = "detector", 2.0
        cfg.mixing.detector_exponent = 4.0  # the single run's
        cfg.sweep.mixing = ml_collections.ConfigDict({"detector_exponent": (0.0, 1.0, 4.0)})
        _sweep_scale(cfg, a.variant)
    cfg.checkpoint.keep_generations = common.log_spaced_generations(cfg.num_generations)
    return cfg
