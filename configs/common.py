"""Fields every experiment shares; each ``configs/NAME.py`` starts from ``base(...)``."""

import ml_collections

VARIANTS = ("paper", "cpu", "smoke")


def variant(arg: str | None) -> str:
    """The variant named after ``:`` in ``--config=configs/NAME.py:VARIANT`` (default ``paper``)."""
    arg = arg or "paper"
    if arg not in VARIANTS:
        raise ValueError(f"config variant: expected one of {VARIANTS}, got {arg!r}")
    return arg


def log_spaced_generations(num_generations: int) -> list[int]:
    """0 and the 1-2-5 sequence below ``num_generations``: kept generations of long chains."""
    gens = [0]
    decade = 1
    while decade < num_generations:
        gens += [g for g in (decade, 2 * decade, 5 * decade) if g < num_generations]
        decade *= 10
    return gens


def base(experiment: str) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict()
    cfg.experiment = experiment
    cfg.variant = "paper"
    cfg.seed = 0
    cfg.num_seeds = 1
    cfg.num_generations = 10  # generations 0 .. num_generations - 1; generation 0 fits D_0
    cfg.samples_per_generation = 1000  # M

    cfg.mixing = ml_collections.ConfigDict()
    # replace | accumulate | accumulate_subsample | keep_real | custom | augment | fresh
    cfg.mixing.regime = "replace"
    cfg.mixing.alpha = 1.0  # model samples (custom)
    cfg.mixing.beta = 0.0  # kept from the previous dataset (custom)
    cfg.mixing.gamma = 0.0  # original data (custom, keep_real)
    # fresh: gamma, the fraction of each generation's M that is new original data, in (0, 1].
    cfg.mixing.fresh_fraction = 0.1
    # augment: lambda, model samples per generation in units of M, added to all of D_0.
    cfg.mixing.augment_ratio = 1.0
    # Frequency weights in the fit (a slot of weight w counts as w samples): real = D_0 and fresh
    # draws, synthetic = model samples and kept data. Generation 0 fits D_0 with weight 1.
    cfg.mixing.real_weight = 1.0
    cfg.mixing.synthetic_weight = 1.0
    # Curation of model samples: draw oversample x as many, keep num_model of them by rule.
    cfg.mixing.curation = ml_collections.ConfigDict()
    cfg.mixing.curation.score = "none"  # none | oracle (true log-density) | initial | current
    cfg.mixing.curation.rule = "top"  # top (highest scores) | resample (P ~ exp(score / T))
    cfg.mixing.curation.oversample = 2  # candidates drawn per kept model sample (integer >= 1)
    cfg.mixing.curation.temperature = 1.0  # T of rule resample, in nats of score

    # How a fitted model is sampled for the next generation (collapse_jax/sampling.py): the
    # temperature lambda (1 = as fitted) every sampling family reads, and the discrete chain's tail
    # cutting (top_k 0 and top_p 1.0 switch it off).
    cfg.sampling = ml_collections.ConfigDict()
    cfg.sampling.temperature = 1.0
    cfg.sampling.top_k = 0
    cfg.sampling.top_p = 1.0

    cfg.checkpoint = ml_collections.ConfigDict()
    cfg.checkpoint.every_generations = 10  # also sets how many generations one XLA call scans
    cfg.checkpoint.max_to_keep = 3  # the latest checkpoints kept; the last one always is
    # Generations kept for good beside the latest max_to_keep (runs.open_run restores them); each
    # is also a chunk end of chain.run. Generations the chain does not reach are ignored.
    cfg.checkpoint.keep_generations = []

    cfg.metrics = ml_collections.ConfigDict()
    # metrics.jsonl lists every seed's value while num_seeds <= this (what a person reads; the
    # smoke runs and the LM keep that format byte for byte), else each metric's seed statistics:
    # at 1000 seeds formatting per-seed text cost more than the chain itself. DIR/metrics/per_seed
    # always holds every seed.
    cfg.metrics.per_seed_max_seeds = 100
    # Seed quantiles kept per generation beside the mean and median (the plots' bands use 0.1, 0.9).
    cfg.metrics.quantiles = (0.0, 0.05, 0.1, 0.25, 0.75, 0.9, 0.95, 1.0)
    # Seeds per stored chunk (at most; evened out): one seed's series reads its chunk's seeds.
    cfg.metrics.seeds_per_chunk = 256
    # Also write each generation's seed statistics as TensorBoard scalars under
    # DIR/metrics/tensorboard (needs the [tensorboard] extra); off, the run's files are unchanged.
    cfg.metrics.tensorboard = False

    cfg.log_every_seconds = 10.0
    # GPUs default to TF32 matmuls; "highest" keeps CPU and GPU in agreement for the statistics.
    cfg.matmul_precision = "highest"
    cfg.enable_x64 = False
    # Devices the seed axis is sharded over: 0 means all of them, 1 keeps one device.
    cfg.num_devices = 1
    # Seeds vmapped at once: 0 vmaps all of them; k > 0 loops (lax.map) over batches of k, which
    # bounds the program's memory (chain.over_seeds).
    cfg.seed_batch = 0
    return cfg
