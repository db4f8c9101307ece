"""The sampling step on a plan: the pool carried between generations, the rows each fit sees, and
curation of the model's candidates."""

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax import curation
from collapse_jax.family import Data, full
from collapse_jax.mixing.regimes import Plan


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


def synthetic_mask(p: Plan) -> np.ndarray:
    """Which slots of a composed pool (generation >= 1) hold model samples, from the layout alone
    (static, so the pool carries no mask): ``[L S model rows, R real rows]`` per block, after
    D_0's M rows under ``pool=accumulate``."""
    rows = p.num_lineages * p.num_model + p.num_original
    slot = np.arange(p.capacity)
    if not p.accumulates:
        return slot % rows < p.num_lineages * p.num_model
    m = p.samples_per_generation
    return (slot >= m) & ((slot - m) % rows < p.num_lineages * p.num_model)


def training_data(key, p: Plan, pool: Data, detector_key=None) -> Data:
    """The dataset the next model is fitted on: the pool itself, or M of it (accumulate_subsample;
    composed: ``fit_samples`` of it). Provenance detector (``detector_key``, ``rng.detector_key``):
    the K rows are drawn one after another with P proportional to ``(1 - p_synthetic)^b`` among
    the filled slots left (``curation.importance_choose``)."""
    k = p.samples_per_generation if p.regime == "accumulate_subsample" else p.fit_samples
    if k and p.provenance == "detector":
        log_w = curation.detector_log_weights(
            detector_key, synthetic_mask(p), p.detector_separation, p.detector_exponent
        )
        idx = curation.importance_choose(key, jnp.where(pool.weight > 0, log_w, -jnp.inf), k)
        if not p.weighted:
            return full(pool.x[idx])
        return Data(pool.x[idx], pool.weight[idx])
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
