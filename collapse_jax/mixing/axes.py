"""Regime ``composed``: the regime spelled as orthogonal axes (pool, real source, real and
synthetic rows per generation, rows per fit, the learner's provenance), their checks, and every
named regime but custom as one point of them (``as_composed``)."""

import math

from collapse_jax.errors import require

POOLS = ("replace", "accumulate")
REAL_SOURCES = ("none", "original", "fresh")
# The axes' defaults: what every regime but composed requires of them.
AXES_DEFAULTS = {
    "pool": "replace",
    "real_source": "none",
    "real_samples": 0,
    "synthetic_samples": -1,
    "fit_samples": 0,
}
# How the learner draws its K rows: unknown (uniform, it cannot tell real from synthetic) or
# detector (weighted by a synthetic-data detector's score, Drayson et al. 2025).
PROVENANCES = ("unknown", "detector")
PROVENANCE_DEFAULTS = {
    "provenance": "unknown",
    "detector_separation": 0.0,
    "detector_exponent": 1.0,
}


def provenance(mix_cfg, fit_samples: int) -> tuple[str, float, float]:
    """``(provenance, d, b)`` of ``cfg.mixing``, checked: the detector takes regime composed and
    a draw of K >= 1 rows; d >= 0 and b >= 0 finite; with unknown provenance d and b keep their
    defaults (they would do nothing)."""
    name = mix_cfg.provenance
    d, b = mix_cfg.detector_separation, mix_cfg.detector_exponent
    require(name in PROVENANCES, "mixing.provenance", f"one of {PROVENANCES}", name)
    for field, v, what in (
        ("detector_separation", d, "a finite separation d >= 0 (0: a blind detector)"),
        ("detector_exponent", b, "a finite exponent b >= 0 (weights (1 - p_synthetic)^b)"),
    ):
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        require(ok and v >= 0, f"mixing.{field}", what, v)
    if name == "unknown":
        for field in ("detector_separation", "detector_exponent"):
            default = PROVENANCE_DEFAULTS[field]
            v = mix_cfg[field]
            require(
                v == default, f"mixing.{field}", f"{default!r} unless mixing.provenance=detector", v
            )
        return name, float(d), float(b)
    ok = mix_cfg.regime == "composed"
    require(ok, "mixing.provenance", "unknown unless mixing.regime=composed", name)
    require(
        fit_samples >= 1,
        "mixing.fit_samples",
        ">= 1 with mixing.provenance=detector (the detector weights a draw of K rows)",
        fit_samples,
    )
    return name, float(d), float(b)


def composed_counts(mix_cfg, m: int, num_generations: int) -> tuple[int, int, int, int, int]:
    """``(S, 0, R, capacity, K)`` of regime composed, every axis checked."""
    pool, source = mix_cfg.pool, mix_cfg.real_source
    r, s, k = mix_cfg.real_samples, mix_cfg.synthetic_samples, mix_cfg.fit_samples
    lineages = mix_cfg.num_lineages
    require(pool in POOLS, "mixing.pool", f"one of {POOLS}", pool)
    require(source in REAL_SOURCES, "mixing.real_source", f"one of {REAL_SOURCES}", source)

    def count(name, v, low):
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= low
        require(ok, f"mixing.{name}", f"an integer >= {low}", v)

    count("real_samples", r, 0)
    count("synthetic_samples", s, -1)
    count("fit_samples", k, 0)
    if source == "none":
        require(r == 0, "mixing.real_samples", "0 with mixing.real_source=none", r)
    else:
        require(r >= 1, "mixing.real_samples", f">= 1 with mixing.real_source={source}", r)
    if source == "original":
        require(
            r <= m, "mixing.real_samples", f"at most M = {m} rows of D_0 (real_source original)", r
        )
    if source == "fresh":
        require(r <= m, "mixing.real_samples", f"at most M = {m} (a fresh draw has D_0's size)", r)
    s = m - r if s == -1 else s
    rows = lineages * s + r  # new rows per generation
    require(rows >= 1, "mixing.synthetic_samples", "S + R >= 1 new rows per generation", s)
    capacity = rows if pool == "replace" else m + (num_generations - 1) * rows
    smallest = rows if pool == "replace" else m + rows  # the pool at generation 1
    require(k <= smallest, "mixing.fit_samples", f"at most the {smallest} rows of the pool", k)
    return s, 0, r, capacity, k


def as_composed(mix_cfg, samples_per_generation: int) -> dict:
    """The axes of a named regime (every one but custom; ``mix_cfg`` a ``cfg.mixing`` or its
    dict): the ``cfg.mixing`` fields that spell it as ``regime=composed`` and run the same
    program. A composed ``mix_cfg`` gives its own axes."""
    m, regime = samples_per_generation, mix_cfg["regime"]
    if regime == "composed":
        # (a run saved before lineages existed has one)
        lineages = mix_cfg["num_lineages"] if "num_lineages" in mix_cfg else 1
        return {
            "regime": regime,
            **{k: mix_cfg[k] for k in AXES_DEFAULTS},
            "num_lineages": lineages,
        }
    axes = dict(AXES_DEFAULTS, regime="composed", num_lineages=1)
    if regime.startswith("accumulate"):
        axes.update(pool="accumulate", fit_samples=m if regime == "accumulate_subsample" else 0)
    elif regime in ("keep_real", "fresh"):
        frac = mix_cfg["gamma"] if regime == "keep_real" else mix_cfg["fresh_fraction"]
        r = round(frac * m)
        source = "original" if regime == "keep_real" else "fresh"
        axes.update(real_source=source, real_samples=r, synthetic_samples=m - r)
    elif regime == "augment":
        s = round(mix_cfg["augment_ratio"] * m)
        axes.update(real_source="original", real_samples=m, synthetic_samples=s)
    elif regime != "replace":
        raise ValueError(f"mixing.regime: {regime} is not a point of the axes")
    return axes
