"""The sampling step of learning with generational data (Shumailov et al., Sec. 3).

The next dataset is drawn from ``p_(i+1) = alpha * p_theta(i+1) + beta * p_i + gamma * p_0``: model
samples, data kept from the previous dataset, and original data. The counts are fixed at trace
time, so every generation has static shapes.

A pool is a ``family.Data``: samples ``x`` with a leading sample axis and a ``weight`` per slot (0
for an empty slot). Only the accumulating regimes have empty slots (a buffer of ``num_generations * M`` filled as the chain
goes); every family's ``fit`` honours the weights.

Named regimes:
  replace               alpha = 1: each generation sees only its predecessor's samples.
  accumulate            all data so far (D_0 .. D_i), as the authors' accumulate experiment and
                        Gerstgrasser et al. (2024).
  accumulate_subsample  M samples drawn without replacement from all data so far.
  keep_real             a fraction gamma of original data each generation (the paper's 10% LLM
                        regime), alpha = 1 - gamma.
  custom                explicit alpha, beta, gamma.
  augment               all of D_0 plus round(lambda * M) new model samples each generation
                        (``mixing.augment_ratio`` = lambda; Alemohammad et al. 2024's synthetic
                        augmentation loop): the synthetic part is replaced, the real part stays.
  fresh                 round(gamma * M) new draws from the original distribution each generation
                        (never seen before) plus M - round(gamma * M) model samples, with gamma =
                        ``mixing.fresh_fraction`` (Alemohammad et
                        al.'s fresh-data loop). The family's ``fresh_data`` draws them (a new sample
                        of the truth for the small families; unused real examples for the VAE
                        and the LM).
  composed              the regime spelled as orthogonal axes (``docs/ecosystems.md``), each a
                        field of ``cfg.mixing``:
      pool               replace (each pool is the generation's new rows) | accumulate (the new
                         rows join every earlier pool, D_0 included)
      real_source        none | original (rows of the fixed D_0, drawn without replacement; all
                         of it, in order, when real_samples = M) | fresh (new draws of the truth,
                         the family's ``fresh_data``)
      real_samples       R real rows per generation (0 with real_source none)
      synthetic_samples  S model samples per generation; -1 is M - R (a fixed total of M rows)
      fit_samples        K rows each fit draws from the pool without replacement; 0 the whole pool
      num_lineages       L models per seed sharing each pool (``chain/lineages.py``): each draws
                         S samples, the pool holds all L S and the R real rows, and each fits its
                         own K rows of it (1: the chain of one model, as every other regime)
                        Every named regime but custom is one point of these axes (``as_composed``)
                        and runs the same program there, so its metrics are the same bytes.

Per-source weights (``mixing.real_weight``, ``mixing.synthetic_weight``) are frequency weights in
the fit: a slot of weight w counts as w samples (the Gaussian's ``n`` is the weights' sum). Real
slots are D_0 and fresh draws; model samples and data kept from the previous pool (beta) are
synthetic. Generation 0 always fits D_0 with weight 1.

Curation (``mixing.curation``): instead of ``num_model`` model samples, draw ``oversample`` times
as many candidates, score each, and keep ``num_model`` of them by ``rule``:
  top       the highest scores (with the model's own density and oversample k: the central 1/k).
  resample  ``num_model`` draws with replacement, P(candidate) proportional to exp(score / T)
            (importance resampling, as GeorgeDrayson/model_collapse).
Scores: ``oracle`` the true log-density (a verifier, Feng et al. 2024: ``truth_log_prob``),
``initial`` the generation-0 model's log-likelihood, ``current`` the sampling model's own
(``log_prob``); ``none`` switches curation off.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from collapse_jax.errors import ConfigError, require
from collapse_jax.family import Data, full

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
    axes = _axes(mix_cfg, m, num_generations) if regime == "composed" else None
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
    )


def _axes(mix_cfg, m: int, num_generations: int) -> tuple[int, int, int, int, int]:
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


def plan_for(cfg, fam=None, rows: int | None = None) -> Plan:
    """The plan of a run of ``cfg``. M, a dataset's rows: ``rows`` when given (a host family's
    D_0, known once its data is read), else the family's ``rows_per_generation`` (a statistics
    sampler's records), else ``cfg.samples_per_generation``."""
    if rows is None:
        per_gen = getattr(fam, "rows_per_generation", None)
        rows = per_gen(cfg) if per_gen is not None else cfg.samples_per_generation
    return plan(cfg.mixing, rows, cfg.num_generations)


def _pick(key, data: Data, n: int) -> jax.Array:
    """Indices of ``n`` filled slots drawn without replacement (Gumbel top-k; empty slots -inf)."""
    # 0 for every filled slot whatever its fit weight: fit weights must not bias which samples
    # are drawn.
    logits = jnp.where(data.weight > 0, 0.0, -jnp.inf)
    scores = logits + jax.random.gumbel(key, logits.shape, jnp.float32)
    return jax.lax.top_k(scores, n)[1]


def choose(key, data: Data, n: int) -> jax.Array:
    """``n`` samples of ``data`` drawn without replacement among the filled slots.

    Gumbel top-k: empty slots get -inf and are never chosen while n <= filled.
    """
    if n == 0:
        return data.x[:0]
    return data.x[_pick(key, data, n)]


def _const(n: int, w: float) -> jax.Array:
    return jnp.full((n,), w, jnp.float32)


def initial_pool(p: Plan, x0) -> Data:
    """The pool at generation 0: D_0, padded with empty slots to the pool's capacity.

    The generation-0 fit sees D_0 alone (weight 1); this only fixes the carried pool's shape and
    D_0's fit weight in the accumulating regimes.
    """
    m = x0.shape[0]
    if not p.accumulates and p.regime != "augment" and p.capacity <= m:
        # (composed with a smaller pool: only the shape is carried, the contents are never read)
        return full(x0[: p.capacity])
    pad = p.capacity - m
    zeros = jnp.zeros((pad, *x0.shape[1:]), x0.dtype)
    if not p.accumulates:  # augment and larger composed pools: [model samples, D_0]
        return Data(
            jnp.concatenate([zeros, x0]),
            jnp.concatenate([_const(pad, 0.0), _const(m, p.real_weight)]),
        )
    x = jnp.concatenate([x0, zeros])
    w = jnp.concatenate([_const(m, p.real_weight), _const(pad, 0.0)])
    return Data(x, w)


def next_pool(key, p: Plan, pool: Data, model_x, data0, generation, fresh_x=None) -> Data:
    """The pool of generation ``generation`` (>= 1) from the model's samples ``model_x``.

    ``model_x`` holds ``p.num_model`` samples; ``data0`` is D_0 (``x`` only); ``fresh_x`` holds
    ``p.num_original`` new draws of the original distribution (regime ``fresh`` only).
    Layout: ``[model samples, kept, original]`` (``augment``: ``[model samples, D_0]``).
    """
    if p.regime == "composed":
        return _composed_pool(key, p, pool, model_x, data0, generation, fresh_x)
    if p.accumulates:
        # All indices int32: under jax_enable_x64 a bare 0 would be int64 next to an int32 start.
        start = jnp.asarray(generation, jnp.int32) * p.samples_per_generation
        start = (start,) + (jnp.zeros((), jnp.int32),) * (pool.x.ndim - 1)
        x = jax.lax.dynamic_update_slice(pool.x, model_x.astype(pool.x.dtype), start)
        w = jax.lax.dynamic_update_slice(
            pool.weight, _const(p.samples_per_generation, p.synthetic_weight), start[:1]
        )
        return Data(x, w)
    model_x = model_x.astype(pool.x.dtype)
    if p.regime == "augment":
        return Data(
            jnp.concatenate([model_x, data0.astype(pool.x.dtype)]),
            jnp.concatenate(
                [_const(p.num_model, p.synthetic_weight), _const(p.num_original, p.real_weight)]
            ),
        )
    k_keep, k_orig = jax.random.split(key)
    parts = [(model_x, p.synthetic_weight)]
    if p.num_kept:
        parts.append((choose(k_keep, pool, p.num_kept), p.synthetic_weight))
    if p.num_original:
        if p.regime == "fresh":
            orig = fresh_x
        else:
            orig = choose(k_orig, full(data0), p.num_original)
        parts.append((orig.astype(pool.x.dtype), p.real_weight))
    x = jnp.concatenate([x for x, _ in parts])
    return Data(x, jnp.concatenate([_const(x.shape[0], w) for x, w in parts]))


def _composed_pool(key, p: Plan, pool: Data, model_x, data0, generation, fresh_x) -> Data:
    """``next_pool`` of regime composed: ``[S model samples, R real rows]``, replacing the pool or
    written after its filled slots. The keys and layouts are those of the named regimes it spells
    (keep_real's ``k_orig``, augment's whole D_0, accumulate's slice), so they run one program."""
    parts = [(model_x.astype(pool.x.dtype), p.synthetic_weight)]
    if p.num_original:
        if p.real_source == "fresh":
            real = fresh_x
        elif p.num_original == data0.shape[0]:
            real = data0
        else:
            real = choose(jax.random.split(key)[1], full(data0), p.num_original)
        parts.append((real.astype(pool.x.dtype), p.real_weight))
    x = jnp.concatenate([x for x, _ in parts])
    w = jnp.concatenate([_const(x.shape[0], w) for x, w in parts])
    if not p.accumulates:
        return Data(x, w)
    m, rows = p.samples_per_generation, x.shape[0]
    g = jnp.asarray(generation, jnp.int32)
    start = (m + (g - 1) * rows,) + (jnp.zeros((), jnp.int32),) * (pool.x.ndim - 1)
    x = jax.lax.dynamic_update_slice(pool.x, x, start)
    return Data(x, jax.lax.dynamic_update_slice(pool.weight, w, start[:1]))


def training_data(key, p: Plan, pool: Data) -> Data:
    """The dataset the next model is fitted on: the pool itself, or M of it (accumulate_subsample;
    composed: ``fit_samples`` of it)."""
    k = p.samples_per_generation if p.regime == "accumulate_subsample" else p.fit_samples
    if k:
        idx = _pick(key, pool, k)
        if not p.weighted:
            # Constant ones, which XLA folds away: the fit's sums are those of an unweighted fit,
            # bit for bit.
            return full(pool.x[idx])
        return Data(pool.x[idx], pool.weight[idx])
    return pool


def curate(key, p: Plan, candidates_x, scores_C) -> jax.Array:
    """``p.num_model`` of the ``p.num_model * p.oversample`` candidates, by ``p.rule``.

    Non-finite scores count as the lowest (never kept by ``top`` while finite ones remain; weight
    ~0 for ``resample``), so a lost state or a collapsed model cannot turn the draw into NaN.
    """
    scores_C = jnp.where(jnp.isnan(scores_C), -jnp.inf, scores_C)
    scores_C = jnp.maximum(scores_C.astype(jnp.float32), jnp.float32(-1e30))
    if p.rule == "top":
        idx = jax.lax.top_k(scores_C, p.num_model)[1]
    else:
        logits = scores_C / p.temperature
        logits = jnp.where(jnp.isfinite(logits), logits, jnp.float32(-1e30))
        idx = jax.random.categorical(key, logits, shape=(p.num_model,))
    return candidates_x[idx]
