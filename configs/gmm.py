r"""GMM-EM chains: a 2-component, full-covariance GMM refitted by EM to its own samples (Fig. 2).

    python -m launch.run --config=configs/gmm.py:cpu --workdir=/tmp/gmm_cpu
    python -m launch.report --workdir=/tmp/gmm_cpu
    python -m launch.sweep --config=configs/gmm.py:cpu --workdir=/tmp/gmm_sweep   # every M

Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):
  variant  paper (default) | cpu | smoke
  truth    blob (default) | separated
Legacy names, kept so that the runs they started resume: ``separated``
(``variant=paper,truth=separated``), ``separated_cpu`` and ``separated_smoke``.

truth=blob  the paper's setting: 2-D N(0, I) data (the authors' ``make_blobs`` gives one 2-D
  blob), K = 2, sklearn's EM defaults with tol 1e-5 and max_iter 2000, pure replace.
truth=separated  the supplement's "two Gaussians": weights (0.7, 0.3) at (-3, 0) and (3, 0),
  unit covariances. The component weights drift like Wright-Fisher allele frequencies; a seed
  that loses a mode re-splits the surviving blob in two (see the snapshots and l2_to_truth).

variant=paper  2050 generations, 100 seeds; with the blob ``cfg.sweep`` runs M in
  {500, 1000, 10000, 50000, 200000} (``launch.sweep``), with the separated truth M = 500. Cost
  grows about linearly in M (``benchmarks/gmm_vs_sklearn.py`` measures a generation); the
  largest M want an accelerator. Not timed yet.
variant=cpu  16 seeds; blob: M = 500 (``cfg.sweep`` adds 1000), 400 generations; separated:
  M = 200, 600 generations. Expected: l2_to_gmm0 grows by orders of magnitude over the
  generations, faster for the smaller M (the paper's Fig. 2 trend), and component_std falls
  towards near-deltas.

  Measured 2026-12-07 on the shared 2-core AMD EPYC dev machine (loaded: load average 13-24 that
  hour; no XLA compile cache). ``python -m launch.sweep --config=configs/gmm.py:cpu
  --workdir=/tmp/gmm_sweep``: 414 s wall for both M (the M = 500 run 237 s), 96 s CPU; median
  l2_to_gmm0 over the seeds at generations 1, 60, 399: 0.00059, 0.082, 11 (M = 500) and 0.00028,
  0.038, 0.95 (M = 1000); median component_std 0.89 at generation 1, 0.10 (M = 500) and 0.29 (M =
  1000) at 399. ``python -m launch.run --config=configs/gmm.py:variant=cpu,truth=separated
  --workdir=/tmp/gmm_sep``: 198 s wall, 42 s CPU; median l2_to_gmm0 0.00082, 0.76, 714 at
  generations 1, 100, 599, median component_std 0.0092 at 599; the minority component's weight at
  generation 599 ranges from 0.025 to 0.45 across the seeds.
variant=smoke  M = 200, 4 generations, 2 seeds: what the tests run.

  Measured 2026-12-07 with ``python -m launch.run --config=configs/gmm.py:smoke
  --workdir=/tmp/gmm_smoke`` on the shared 2-core AMD EPYC dev machine (loaded: load average 13-24
  that hour; no XLA compile cache): 273 s wall, 39 s CPU, compilation included.
"""

import ml_collections

from configs import common

ARGS = {"variant": common.VARIANTS, "truth": ("blob", "separated")}
LEGACY = {
    "separated": "variant=paper,truth=separated",
    "separated_cpu": "variant=cpu,truth=separated",
    "separated_smoke": "variant=smoke,truth=separated",
}
_IDENTITY = ((1.0, 0.0), (0.0, 1.0))


def get_config(arg=None):
    a = common.parse_arg(arg, ARGS, LEGACY)
    cfg = common.base("gmm", a)
    cfg.num_seeds = 100
    cfg.num_generations = 2050
    cfg.samples_per_generation = 1000
    # The sweep runner expands this into one run per value (the field above is the default).
    cfg.sweep = ml_collections.ConfigDict()
    cfg.checkpoint.every_generations = 50

    g = cfg.gmm = ml_collections.ConfigDict()
    g.num_components = 2  # K
    g.dim = 2  # D
    # sklearn.mixture.GaussianMixture defaults, with the paper's tol and max_iter.
    g.tol = 1e-5
    g.max_iter = 2000
    g.reg_covar = 1e-6  # keeps a collapsed covariance positive definite
    g.init_params = "kmeans"  # kmeans | k-means++ | random | random_from_data
    g.kmeans_max_iter = 300  # sklearn KMeans defaults
    g.kmeans_tol = 1e-4
    # False: every generation refits from a fresh k-means init, as sklearn refitting does;
    # True: EM starts from the previous generation's parameters.
    g.warm_start = False
    # The true distribution, a GMM.
    if a.truth == "blob":
        g.truth_weights = (1.0,)
        g.truth_means = ((0.0, 0.0),)
        g.truth_covariances = (_IDENTITY,)
    else:
        g.truth_weights = (0.7, 0.3)
        g.truth_means = ((-3.0, 0.0), (3.0, 0.0))
        g.truth_covariances = (_IDENTITY, _IDENTITY)
    g.heldout_samples = 10_000  # held-out original sample for heldout_loglik, shared by all seeds
    g.heldout_seed = 2024  # its key: jax.random.key(heldout_seed), independent of cfg.seed
    # Record each seed's means [K, D] and covariances [K, D, D] per generation (for the scatter
    # snapshots; 12 numbers per seed and generation at K = D = 2).
    g.record_params = True
    g.snapshot_generations = (0, 50, 100, 150, 200, 350, 2000)

    if a.truth == "blob":
        if a.variant == "paper":
            cfg.sweep.samples_per_generation = (500, 1000, 10_000, 50_000, 200_000)
        elif a.variant == "cpu":
            cfg.num_seeds = 16
            cfg.num_generations = 400
            cfg.samples_per_generation = 500
            cfg.sweep.samples_per_generation = (500, 1000)
            g.snapshot_generations = (0, 50, 100, 150, 200, 350)
    else:
        cfg.samples_per_generation = 500
        if a.variant == "cpu":
            cfg.num_seeds = 16
            cfg.num_generations = 600
            cfg.samples_per_generation = 200
            g.snapshot_generations = (0, 50, 100, 200, 350, 599)
    if a.variant == "smoke":
        cfg.num_seeds = 2
        cfg.num_generations = 4
        cfg.samples_per_generation = 200
        cfg.checkpoint.every_generations = 2
        g.max_iter = 100
        g.heldout_samples = 500
        g.snapshot_generations = (0, 3)
    # The figure's generations are restorable later (runs.open_run).
    cfg.checkpoint.keep_generations = g.snapshot_generations
    return cfg
