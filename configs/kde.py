"""Kernel density chains (Kazdan et al. 2024, "Collapse or thrive?"): replace vs accumulate.

    python -m launch.sweep --config=configs/kde.py:cpu --workdir=/tmp/kde_cpu
    # the sweep's report: replace against accumulate per dataset, every run's figures
    python -m launch.report --workdir=/tmp/kde_cpu
    python -m launch.report --workdir="/tmp/kde_cpu/kde.dataset=moons+mixing.regime=replace"

A Gaussian KDE on 2-D toy data is refitted to its own samples (``collapse_jax/families/kde.py``); the
held-out NLL of real data and the MMD to the truth are tracked per generation.

Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):
  variant  paper (default) | cpu | smoke

variant=paper  Kazdan et al.'s grid: ``cfg.sweep`` over dataset {blobs, circles, moons,
  swiss_roll} (noise 0.05; blobs with std 1), fixed bandwidth {0.1, 0.5, 1.0}, M in
  {10, 32, 100, 316, 1000}, regime {replace, accumulate}: 120 runs of 100 generations (their 100
  model-fitting iterations) and 100 seeds; held-out NLL on 500 fresh samples. The accumulating
  runs hold 100 M centres and score 500 points against all of them per generation: M = 1000
  wants an accelerator. Not timed yet.
variant=cpu  the four datasets x {replace, accumulate} (8 runs), M = 100, bandwidth 0.1, 50
  generations, 20 seeds. Expected: replace's held-out NLL and MMD climb every generation (the
  samples drift and cluster), accumulate's level off near their generation-0 values (blobs and
  swiss_roll even improve: h = 0.1 is narrow for them and the pool fills in).

  Measured 2026-11-30 with ``python -m launch.sweep --config=configs/kde.py:cpu
  --workdir=/tmp/kde_cpu`` on a 2-core machine shared with five other jobs (load average ~11): 9 min
  44 s wall for the 8 runs, 3 min 20 s of CPU.
variant=smoke  moons, M = 24, 4 generations, 4 seeds, both regimes: what the tests run.

  Measured 2026-12-07 with ``python -m launch.run --config=configs/kde.py:smoke
  --workdir=/tmp/kde_smoke`` (one run: moons, replace) on the shared 2-core AMD EPYC dev machine
  (loaded: load average 13-24 that hour; no XLA compile cache): 94 s wall, 15 s CPU, compilation
  included.
"""

import ml_collections

from configs import common

ARGS = common.ARGS


def get_config(arg=None):
    a = common.parse_arg(arg, ARGS)
    cfg = common.base("kde", a)

    k = cfg.kde = ml_collections.ConfigDict()
    k.dataset = "moons"  # blobs | circles | moons | swiss_roll
    k.noise = 0.05  # std of the Gaussian noise of circles, moons and swiss_roll (sklearn's noise)
    # Angles of circles and moons: "linspace" (sklearn's make_circles / make_moons, which Kazdan
    # et al. used: an even grid per group, shuffled) or "iid" (uniform draws; same marginal, a
    # noisier dataset). families/kde.py says how they differ.
    k.angles = "linspace"
    k.circles_factor = 0.8  # inner radius of circles (sklearn's factor)
    # sklearn make_blobs(n_features=2, random_state=0)'s three centres, std 1 (sklearn defaults).
    k.blob_centers = ((0.976, 4.304), (2.055, 0.898), (-1.527, 2.918))
    k.blob_std = 1.0
    k.bandwidth_rule = "fixed"  # fixed | scott | silverman (sklearn's rules)
    k.bandwidth = 0.1  # h for bandwidth_rule = fixed, in data units
    k.heldout_samples = 500  # fresh truth samples scored for the NLL (Kazdan et al.: 500)
    k.mmd_features = 512  # random Fourier features of the MMD kernel
    k.mmd_truth_samples = 20_000  # truth draws averaged for the truth's feature mean
    k.heldout_seed = 2024  # key of held-out data and MMD features, independent of cfg.seed
    k.snapshot_points = 0  # points of each generation's data recorded for the scatter figure

    cfg.sweep = ml_collections.ConfigDict()
    cfg.sweep.mixing = ml_collections.ConfigDict()
    cfg.sweep.kde = ml_collections.ConfigDict()
    cfg.sweep.mixing.regime = ("replace", "accumulate")
    cfg.sweep.kde.dataset = ("blobs", "circles", "moons", "swiss_roll")

    if a.variant == "paper":
        cfg.num_seeds = 100
        cfg.num_generations = 100
        cfg.samples_per_generation = 100
        cfg.checkpoint.every_generations = 25
        cfg.sweep.kde.bandwidth = (0.1, 0.5, 1.0)
        cfg.sweep.samples_per_generation = (10, 32, 100, 316, 1000)
        k.snapshot_points = 10
    elif a.variant == "cpu":
        cfg.num_seeds = 20
        cfg.num_generations = 50
        cfg.samples_per_generation = 100
        cfg.checkpoint.every_generations = 25
        k.snapshot_points = 100
    else:
        cfg.num_seeds = 4
        cfg.num_generations = 4
        cfg.samples_per_generation = 24
        cfg.checkpoint.every_generations = 2
        k.heldout_samples = 64
        k.mmd_features = 64
        k.mmd_truth_samples = 2000
        k.snapshot_points = 8
        del cfg.sweep.kde["dataset"]  # the smoke sweep: moons, replace and accumulate
    cfg.checkpoint.keep_generations = common.log_spaced_generations(cfg.num_generations)
    return cfg
