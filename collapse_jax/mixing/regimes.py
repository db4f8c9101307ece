"""The named regimes and the static plan of a run: ``cfg.mixing`` resolved into counts, every
field checked."""

import math
from typing import NamedTuple

from collapse_jax.errors import ConfigError, require
from collapse_jax.mixing.axes import AXES_DEFAULTS, composed_counts, provenance

REGIMES = (
    "replace",
    "accumulate",
    "accumulate_subsample",
    "keep_real",
    "custom",
    "augment",
    "fresh",
    "composed",
)

SCORES = ("none", "oracle", "initial", "current")
RULES = ("top", "resample")


class Plan(NamedTuple):
    """Static counts of one generation's dataset."""

    regime: str
    num_model: int  # alpha * M samples from the current model (composed: S)
    num_kept: int  # beta * M samples kept from the previous dataset
    num_original: int  # gamma * M samples of D_0 (composed: R real rows of real_source)
    samples_per_generation: int  # M
    capacity: int  # slots in the pool carried between generations
    real_weight: float = 1.0  # fit weight of D_0 and fresh draws
    synthetic_weight: float = 1.0  # fit weight of model samples and kept data
    score: str = "none"  # curation score (SCORES)
    rule: str = "top"  # curation rule (RULES)
    oversample: int = 1  # candidates per kept model sample
    temperature: float = 1.0  # resample: P proportional to exp(score / temperature)
    pool: str = "replace"  # composed: POOLS
    real_source: str = "none"  # composed: REAL_SOURCES
    fit_samples: int = 0  # composed: rows each fit draws from the pool (0: the whole pool)
    num_lineages: int = 1  # composed: L models per seed sharing each pool (num_model each)
    provenance: str = "unknown"  # composed: PROVENANCES, how each fit draws its K rows
    detector_separation: float = 0.0  # provenance detector: d (AUC Phi(d / sqrt 2))
    detector_exponent: float = 1.0  # provenance detector: b of the weights (1 - p_synthetic)^b

    @property
    def accumulates(self) -> bool:
        return self.regime in ("accumulate", "accumulate_subsample") or (
            self.regime == "composed" and self.pool == "accumulate"
        )

    @property
    def fresh(self) -> bool:
        """Whether each generation draws new original data (the family's ``fresh_data``)."""
        return self.regime == "fresh" or (self.regime == "composed" and self.real_source == "fresh")

    @property
    def curates(self) -> bool:
        return self.score != "none"

    @property
    def weighted(self) -> bool:
        return (self.real_weight, self.synthetic_weight) != (1.0, 1.0)


def plan(mix_cfg, samples_per_generation: int, num_generations: int) -> Plan:
    """Resolve ``cfg.mixing`` into static counts, with a clear error for any bad field."""
    regime, a, b, g = mix_cfg.regime, mix_cfg.alpha, mix_cfg.beta, mix_cfg.gamma
    require(regime in REGIMES, "mixing.regime", f"one of {REGIMES}", regime)
    m = samples_per_generation
    require(isinstance(m, int) and m > 0, "samples_per_generation", "a positive integer", m)
    for name, v in (("alpha", a), ("beta", b), ("gamma", g)):
        require(0.0 <= v <= 1.0, f"mixing.{name}", "a value in [0, 1]", v)
    if regime in ("replace", "accumulate", "accumulate_subsample"):
        if (a, b, g) != (1.0, 0.0, 0.0):
            raise ConfigError(
                f"mixing.regime={regime} takes alpha=1, beta=0, gamma=0 (got {a}, {b}, {g}); "
                "use mixing.regime=custom or keep_real to mix"
            )
    elif regime in ("augment", "fresh", "composed"):
        # Their parameters have fields of their own (augment_ratio, fresh_fraction), so one sweep
        # over mixing.regime can hold every regime with the rest of mixing at its defaults.
        if (a, b, g) != (1.0, 0.0, 0.0):
            knob = {"augment": "augment_ratio", "fresh": "fresh_fraction"}.get(regime, "pool, ...")
            raise ConfigError(
                f"mixing.regime={regime} takes alpha=1, beta=0, gamma=0 (got {a}, {b}, {g}) "
                f"and is set by mixing.{knob}"
            )
    elif regime == "keep_real":
        require(0.0 < g < 1.0, "mixing.gamma", "a fraction in (0, 1) for regime keep_real", g)
        require(b == 0.0, "mixing.beta", "0 for regime keep_real", b)
        a = 1.0 - g
    else:
        s = a + b + g
        if abs(s - 1.0) > 1e-9:
            raise ConfigError(f"mixing.alpha + mixing.beta + mixing.gamma: expected 1, got {s!r}")
    fresh = mix_cfg.fresh_fraction
    require(
        isinstance(fresh, int | float) and 0.0 < fresh <= 1.0,
        "mixing.fresh_fraction",
        "a fraction in (0, 1] (regime fresh: new original draws / M)",
        fresh,
    )
    if regime == "fresh":
        require(
            round(fresh * m) >= 1, "mixing.fresh_fraction", f"round(it * M) >= 1 (M={m})", fresh
        )
        g, a = fresh, 1.0 - fresh
    lam = mix_cfg.augment_ratio
    require(
        isinstance(lam, int | float) and math.isfinite(lam) and lam >= 0,
        "mixing.augment_ratio",
        "a finite lambda >= 0 (model samples per generation / M, regime augment)",
        lam,
    )
    for name in ("real_weight", "synthetic_weight"):
        w = mix_cfg[name]
        require(
            isinstance(w, int | float) and math.isfinite(w) and w > 0,
            f"mixing.{name}",
            "a finite weight > 0",
            w,
        )
    num_original = round(g * m)
    num_kept = round(b * m)
    num_model = m - num_original - num_kept
    require(num_model >= 0, "mixing", "alpha * samples_per_generation >= 0 after rounding", a)
    capacity = m * num_generations if regime == "accumulate" else m
    if regime == "accumulate_subsample":
        capacity = m * num_generations
    if regime == "augment":
        num_model, num_original = round(lam * m), m
        capacity = num_model + m
    lineages = mix_cfg.num_lineages
    ok = isinstance(lineages, int) and not isinstance(lineages, bool) and lineages >= 1
    require(ok, "mixing.num_lineages", "an integer >= 1", lineages)
    if regime != "composed":
        require(lineages == 1, "mixing.num_lineages", "1 unless mixing.regime=composed", lineages)
    axes = composed_counts(mix_cfg, m, num_generations) if regime == "composed" else None
    if axes is None:
        for name, default in AXES_DEFAULTS.items():
            require(
                mix_cfg[name] == default,
                f"mixing.{name}",
                f"{default!r} (it takes effect with mixing.regime=composed only)",
                mix_cfg[name],
            )
    else:
        num_model, num_kept, num_original, capacity = axes[:4]
    prov = provenance(mix_cfg, axes[4] if axes else 0)
    c = mix_cfg.curation
    require(c.score in SCORES, "mixing.curation.score", f"one of {SCORES}", c.score)
    require(c.rule in RULES, "mixing.curation.rule", f"one of {RULES}", c.rule)
    require(
        isinstance(c.oversample, int) and c.oversample >= 1,
        "mixing.curation.oversample",
        "a positive integer (candidates per kept model sample)",
        c.oversample,
    )
    require(
        isinstance(c.temperature, int | float)
        and math.isfinite(c.temperature)
        and c.temperature > 0,
        "mixing.curation.temperature",
        "a finite temperature > 0",
        c.temperature,
    )
    return Plan(
        regime,
        num_model,
        num_kept,
        num_original,
        m,
        capacity,
        float(mix_cfg.real_weight),
        float(mix_cfg.synthetic_weight),
        c.score,
        c.rule,
        c.oversample,
        float(c.temperature),
        *((mix_cfg.pool, mix_cfg.real_source, axes[4]) if axes else ()),
        num_lineages=mix_cfg.num_lineages,
        **dict(zip(("provenance", "detector_separation", "detector_exponent"), prov, strict=True)),
    )


def plan_for(cfg, fam=None, rows: int | None = None) -> Plan:
    """The plan of a run of ``cfg``. M, a dataset's rows: ``rows`` when given (a host family's
    D_0, known once its data is read), else the family's ``rows_per_generation`` (a statistics
    sampler's records), else ``cfg.samples_per_generation``."""
    if rows is None:
        per_gen = getattr(fam, "rows_per_generation", None)
        rows = per_gen(cfg) if per_gen is not None else cfg.samples_per_generation
    return plan(cfg.mixing, rows, cfg.num_generations)
