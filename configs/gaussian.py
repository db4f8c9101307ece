"""Gaussian chains (Shumailov et al., Theorem 3.1): refit N(mu, sigma^2) to its own samples.

    python -m launch.run --config=configs/gaussian.py:cpu --workdir=/tmp/gaussian_cpu
    python -m launch.report --workdir=/tmp/gaussian_cpu

Variants:
  paper  M = samples_per_generation in {10, 100, 1000, 10000} (``cfg.sweep``; a single run uses
         M = 100), 1000 generations, 1000 seeds (the paper ran one chain per M). A GPU run per M
         takes seconds to a minute; on a CPU, M = 10000 takes tens of minutes.
  cpu    M = 100, 1000 generations, 1000 seeds: about a minute on 2 CPU cores (most of it compile).
         Expected: the seed-mean variance stays at 1 (the unbiased estimator, theory overlay) while
         the median falls to about exp(-10) ~ 5e-5 by generation 1000, and E[W2^2] grows about
         linearly, ~ (n+1)/M + 2 - 2 E[sigma_n] ~ 12 at generation 999, matching ``theory.py``.
  smoke  M = 20, 20 generations, 8 seeds: seconds.
  regimes  one sweep over the data regimes of ``mixing.py`` (replace, accumulate,
         accumulate_subsample, augment with lambda = 1, fresh with gamma = 0.1), mle estimator,
         M = 20, 100 generations, 1000 seeds; then the comparison figure with theory overlaid:
             python -m launch.sweep --config=configs/gaussian.py:regimes --workdir=/tmp/regimes
             python -m launch.regimes --workdir=/tmp/regimes
         Expected (``theory.py``): E[sigma^2] falls as (19/20)^(g+1) under replace (0.006 at
         g = 99) but stays at or above sin(pi/sqrt 20)/(pi/sqrt 20) = 0.918 under accumulate and at
         the augment / fresh fixed points. ``regimes_smoke``: the same sweep at smoke size.
  temperature  sampling bias (``cfg.sampling.temperature`` lambda; MAD's knob): one sweep over
         lambda in {0.9, 1, 1.1} x regime in {replace, accumulate}, mle, M = 20, 100 generations,
         1000 seeds, the exact expectations overlaid:
             python -m launch.sweep --config=configs/gaussian.py:temperature --workdir=/tmp/temp
             python -m launch.ecosystem --workdir=/tmp/temp
         Expected (``theory.py``): E[sigma^2] is geometric with ratio lambda^2 (M-1)/M under
         replace; under accumulate it tends to 0.92 at lambda = 1 but decays like
         g^(lambda^2 - 1) at lambda = 0.9 and grows at 1.1. ``temperature_smoke``: smoke size.

Precision: sampling rounds x = mu_n + sigma_n z to the float grid around mu_n, which adds rounding
noise of variance ~ (eps |mu_n|)^2 / 12 and, once sigma_n is below half a grid step, makes every
sample equal (variance exactly 0, absorbing). That floor is ~1e-15 in float32 and ~1e-33 in
float64 for |mu_n| ~ 1; with M = 10 the typical seed (E[log sigma_n^2] falls 0.116 a generation)
reaches it after ~300 generations in float32 and ~650 in float64. The paper variant runs in
float64, like the authors' NumPy notebook; ``cpu`` and ``smoke`` stay float32
(``--config.enable_x64=True`` changes that).
"""

import ml_collections

from configs import common

VARIANTS = (*common.VARIANTS, "regimes", "regimes_smoke", "temperature", "temperature_smoke")
REGIMES = ["replace", "accumulate", "accumulate_subsample", "augment", "fresh"]


def get_config(arg=None):
    name = arg or "paper"
    if name not in VARIANTS:
        raise ValueError(f"config variant: expected one of {VARIANTS}, got {name!r}")
    variant = name if name in common.VARIANTS else "cpu"
    cfg = common.base("gaussian")
    cfg.variant = name

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

    if variant == "paper":
        cfg.num_seeds = 1000
        cfg.num_generations = 1000
        cfg.samples_per_generation = 100
        cfg.sweep.samples_per_generation = [10, 100, 1000, 10000]
        cfg.checkpoint.every_generations = 100
        cfg.enable_x64 = True  # the variance floor from rounding (see above) sits at 1e-33
    elif variant == "cpu":
        cfg.num_seeds = 1000
        cfg.num_generations = 1000
        cfg.samples_per_generation = 100
        cfg.checkpoint.every_generations = 250
    else:
        cfg.num_seeds = 8
        cfg.num_generations = 20
        cfg.samples_per_generation = 20
        cfg.checkpoint.every_generations = 5
    if name.startswith("regimes"):
        cfg.gaussian.estimator = "mle"  # accumulate's product formula (Kazdan et al.) is the mle's
        cfg.samples_per_generation = 20
        cfg.mixing.augment_ratio = 1.0
        cfg.mixing.fresh_fraction = 0.1
        cfg.sweep.mixing = ml_collections.ConfigDict({"regime": list(REGIMES)})
        cfg.num_seeds, cfg.num_generations = (1000, 100) if name == "regimes" else (8, 6)
        cfg.checkpoint.every_generations = 50 if name == "regimes" else 3
    if name.startswith("temperature"):
        cfg.gaussian.estimator = "mle"
        cfg.samples_per_generation = 20
        cfg.sweep.mixing = ml_collections.ConfigDict({"regime": ["replace", "accumulate"]})
        cfg.sweep.sampling = ml_collections.ConfigDict({"temperature": [0.9, 1.0, 1.1]})
        cfg.num_seeds, cfg.num_generations = (1000, 100) if name == "temperature" else (8, 6)
        cfg.checkpoint.every_generations = 50 if name == "temperature" else 3
    cfg.checkpoint.keep_generations = common.log_spaced_generations(cfg.num_generations)
    return cfg
