"""Fields every experiment shares (``base``), and the one grammar of a config's argument.

``--config=configs/NAME.py:ARG`` passes ``ARG`` to ``get_config``. ``ARG`` is big_vision's argument
string, ``KEY=VALUE[,KEY=VALUE...]``, over the keys a config declares in its ``ARGS`` (each a
fixed tuple of values, the first the default); a part without ``=`` is the variant, so
``:cpu`` is ``variant=cpu`` and ``:cpu,truth=separated`` is ``variant=cpu,truth=separated``.
Every config has the key ``variant``: ``paper`` (the default), ``cpu``, ``smoke``. A config may
also accept ``LEGACY`` names, the compound names of the versions before this grammar (gmm's
``separated_cpu``), so that the command that started an old run still resumes it.

``cfg.variant`` (written to ``config.json``) holds the canonical argument, from which
``get_config`` rebuilds the same defaults: the variant alone when every other key is at its
default (``cpu``), else every key that is not, after the variant (``variant=cpu,truth=separated``).
A legacy name builds the config its version built, ``cfg.variant`` included (the name itself;
opt_wikitext's names stored only their variant there), so the command of an old run still resumes
it. The KEY=VALUE spelling of the same config differs from it only in ``cfg.variant``.
"""

import itertools

import ml_collections

VARIANTS = ("paper", "cpu", "smoke")
# The keys of a config that has no other: ``ARGS = common.ARGS``.
ARGS = {"variant": VARIANTS}
_RESERVED = ("name", "legacy")


def parse_arg(
    arg: str | None, keys: dict[str, tuple[str, ...]], legacy: dict[str, str] | None = None
) -> ml_collections.FrozenConfigDict:
    """``ARG`` of ``configs/NAME.py:ARG`` -> every key's value, ``name`` (what ``cfg.variant``
    stores) and ``legacy`` (whether ``ARG`` was a legacy name).

    ``keys`` maps each key to its values (the first is the default); ``legacy`` maps a legacy
    name to the argument it stands for. Raises ``ValueError`` with one line naming the key and
    its allowed values (the launchers print it as ``error: --config=...: ...``).
    """
    assert "variant" in keys and not set(keys) & set(_RESERVED), keys
    legacy = legacy or {}
    arg = (arg or "").strip()
    values = {}
    for part in legacy.get(arg, arg).split(",") if arg else ():
        key, eq, value = (s.strip() for s in part.partition("="))
        if not key:
            raise ValueError(
                f"config argument: expected KEY=VALUE,... (no empty part), got {arg!r}"
            )
        if not eq:
            key, value = "variant", key
            if value not in keys["variant"]:
                raise ValueError(
                    f"variant: expected one of {keys['variant']} or KEY=VALUE with KEY in "
                    f"{tuple(keys)}, got {value!r}"
                )
        if key not in keys:
            raise ValueError(f"config argument: expected a key of {tuple(keys)}, got {key!r}")
        if value not in keys[key]:
            raise ValueError(f"{key}: expected one of {keys[key]}, got {value!r}")
        if key in values:
            raise ValueError(f"{key}: expected once, got {values[key]!r} and {value!r}")
        values[key] = value
    values = {k: values.get(k, v[0]) for k, v in keys.items()}
    is_legacy = arg in legacy
    name = arg if is_legacy else canonical(values, keys)
    return ml_collections.FrozenConfigDict({**values, "name": name, "legacy": is_legacy})


def variant(arg: str | None) -> str:
    """The variant of ``arg`` for a config whose only key is ``variant`` (``ARGS``)."""
    return parse_arg(arg, ARGS).variant


def canonical(values: dict[str, str], keys: dict[str, tuple[str, ...]]) -> str:
    """The canonical argument of ``values``: ``cpu``, or ``variant=cpu,truth=separated``."""
    rest = [f"{k}={values[k]}" for k in keys if k != "variant" and values[k] != keys[k][0]]
    return ",".join([f"variant={values['variant']}", *rest]) if rest else values["variant"]


def every_arg(keys: dict[str, tuple[str, ...]]) -> list[str]:
    """The canonical argument of every combination of the values of ``keys``."""
    return [
        canonical(dict(zip(keys, c, strict=True)), keys) for c in itertools.product(*keys.values())
    ]


def arguments_doc(keys: dict[str, tuple[str, ...]]) -> str:
    """The block every config's docstring holds verbatim (``tests/test_configs.py`` checks it)."""
    width = max(map(len, keys))
    lines = ["Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):"]
    for k, vs in keys.items():
        lines.append(f"  {k:<{width}}  " + " | ".join([f"{vs[0]} (default)", *vs[1:]]))
    return "\n".join(lines)


def log_spaced_generations(num_generations: int) -> tuple[int, ...]:
    """0 and the 1-2-5 sequence below ``num_generations``: kept generations of long chains."""
    gens = [0]
    decade = 1
    while decade < num_generations:
        gens += [g for g in (decade, 2 * decade, 5 * decade) if g < num_generations]
        decade *= 10
    return tuple(gens)


def base(
    experiment: str, arg: ml_collections.FrozenConfigDict | None = None
) -> ml_collections.ConfigDict:
    """The shared fields at their defaults; ``arg`` is ``parse_arg``'s result (None: paper)."""
    cfg = ml_collections.ConfigDict()
    cfg.experiment = experiment
    cfg.variant = parse_arg(None, ARGS).name if arg is None else arg.name  # see the docstring
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
    # regime composed: the regime as orthogonal axes (collapse_jax/mixing/; every other regime
    # requires these defaults). pool: replace | accumulate; real_source: none | original | fresh;
    # real_samples R and synthetic_samples S per generation (S = -1: M - R, a fixed total);
    # fit_samples K drawn from the pool for each fit (0: the whole pool).
    cfg.mixing.pool = "replace"
    cfg.mixing.real_source = "none"
    cfg.mixing.real_samples = 0
    cfg.mixing.synthetic_samples = -1
    cfg.mixing.fit_samples = 0
    # num_lineages L (regime composed; collapse_jax/chain/lineages.py): models per seed sharing
    # each pool; each draws synthetic_samples S and fits fit_samples K of the L S + R pooled rows.
    cfg.mixing.num_lineages = 1
    # provenance (regime composed): unknown (each fit's K rows are a uniform draw: the learner
    # cannot tell real from synthetic) | detector (a draw weighted by (1 - p_synthetic)^b of a
    # synthetic-data detector of separation d, AUC Phi(d / sqrt 2); Drayson et al. 2025;
    # needs fit_samples >= 1). d and b keep their defaults under unknown.
    cfg.mixing.provenance = "unknown"
    cfg.mixing.detector_separation = 0.0
    cfg.mixing.detector_exponent = 1.0
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
    cfg.checkpoint.keep_generations = ()

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
