"""Discrete chains: resample a categorical distribution and refit it by frequencies (Sec. 3.1).

The original distribution q over K states (``cfg.discrete.distribution``):
  zipf      q_i proportional to (i + 1)^(-zipf_exponent): a few heavy states and a real tail.
  uniform   q_i = 1 / K.
  explicit  ``cfg.discrete.probs`` (K non-negative numbers summing to 1).

Data are integer states ``x_N`` (int32). ``fit`` counts them with the pool's 0/1 weights; the state
keeps the integer counts, so sampling by inverse CDF on their cumulative sum is exact: a lost state
(count 0) can never come back from rounding, which a float ``categorical`` could not promise.

With pure replace the fitted ``p_n`` is a martingale absorbed in a delta at state i with probability
q_i (``theory.absorption_probability``); states with ``q_i <= 1/M`` disappear first.

Metrics (finite numbers; -1 is the "not yet" sentinel): support_size, tail_mass (the original mass
of the tail states ``q_i <= 1/M`` still present), entropy (nats), gini_simpson (1 - sum p^2,
``theory.expected_gini_simpson``), tv_distance (to q), absorbed (0/1: the fit is a delta now),
absorbing_state (its state, else -1) and absorbed_generation (the first generation whose fit was a
delta, else -1; with ``keep_real`` a chain can leave the delta again, and this keeps the first);
with ``discrete.record_frequencies`` also ``frequencies``, the fitted p_K.

Sampling bias (``cfg.sampling``, ``collapse_jax/sampling.py``): the next generation is drawn from
the fitted frequencies tempered, ``p_i^(1/lambda)`` renormalised, then cut to the ``top_k`` most
probable states and to the smallest most-probable set of mass ``top_p`` (``truncate``; ties go to
the lower state index), Dohmatob et al.'s tail cutting. Without a temperature the cut weights are
still the integer counts, so sampling stays exact; a cut state is lost for good. Its exact law for
small K and M is ``theory.truncated_chain_law``.

Samplers (``cfg.discrete.sampler``): ``samples`` draws M states and counts them; ``statistics``
draws the counts directly, ``Multinomial(M, counts / sum(counts))`` by conditional binomials:
exact in distribution, O(K) a generation whatever M is, and a lost state (probability exactly 0)
still never returns. Pool rows are then count records ``x_NxK`` (``sufficient.py``), and counts
are exact integers in the float sampler below 2^24 (float32) per state.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax import family, sampling, sufficient, theory
from collapse_jax.errors import require
from collapse_jax.family import Data

DISTRIBUTIONS = ("zipf", "uniform", "explicit")


class Truth(NamedTuple):
    q_K: jax.Array
    tail_K: jax.Array  # bool: q_i <= 1 / M


class State(NamedTuple):
    counts_K: jax.Array  # int32 counts of the data the model was fitted on
    generation: jax.Array  # int32: the generation of this fit (-1 before the first)
    absorbed_generation: jax.Array  # int32: first generation whose fit was a delta, -1 if none


def original_probs(cfg) -> np.ndarray:
    """The original distribution ``q_K`` (float64, sums to 1)."""
    c = cfg.discrete
    k = c.num_states
    if c.distribution == "zipf":
        q = np.arange(1, k + 1, dtype=float) ** (-float(c.zipf_exponent))
    elif c.distribution == "uniform":
        q = np.ones(k)
    else:
        q = np.asarray(c.probs, dtype=float)
    return q / q.sum()


def validate(cfg) -> None:
    c = cfg.discrete
    k = c.num_states
    require(isinstance(k, int) and k > 0, "discrete.num_states", "a positive integer", k)
    require(
        c.distribution in DISTRIBUTIONS,
        "discrete.distribution",
        f"one of {DISTRIBUTIONS}",
        c.distribution,
    )
    require(
        math.isfinite(c.zipf_exponent) and c.zipf_exponent >= 0,
        "discrete.zipf_exponent",
        "a finite exponent >= 0",
        c.zipf_exponent,
    )
    if c.distribution == "explicit":
        p = np.asarray(c.probs, dtype=float)
        require(
            p.shape == (k,), "discrete.probs", f"{k} probabilities (discrete.num_states)", c.probs
        )
        require(bool(np.all(p >= 0)), "discrete.probs", "non-negative probabilities", c.probs)
        require(abs(p.sum() - 1.0) < 1e-6, "discrete.probs", "probabilities summing to 1", c.probs)
    m = cfg.samples_per_generation
    require(isinstance(m, int) and m > 0, "samples_per_generation", "a positive integer", m)
    # The fit keeps integer counts: a fit weight must be a whole number of samples.
    for name in ("real_weight", "synthetic_weight"):
        w = cfg.mixing[name]
        require(float(w).is_integer(), f"mixing.{name}", "a whole number for discrete", w)
    samplers = sufficient.SAMPLERS
    require(c.sampler in samplers, "discrete.sampler", f"one of {samplers}", c.sampler)
    if c.sampler == "statistics":
        sufficient.check_regime(cfg, "discrete.sampler")
    sampling.validate(cfg, "discrete", tail_cutting=True)
    rf = c.record_frequencies
    require(isinstance(rf, bool), "discrete.record_frequencies", "a bool", rf)


def reference(cfg) -> Truth:
    q = original_probs(cfg)
    return Truth(jnp.asarray(q), jnp.asarray(theory.tail_mask(q, cfg.samples_per_generation)))


def _sample_counts(key, counts_K, n: int) -> jax.Array:
    """``n`` states drawn with probability ``counts / sum(counts)``, exactly (integer CDF)."""
    cdf_K = jnp.cumsum(counts_K)
    u_N = jax.random.randint(key, (n,), 0, cdf_K[-1])
    # side="right": the first state whose cumulative count exceeds u; zero-count states never are.
    return jnp.searchsorted(cdf_K, u_N, side="right").astype(jnp.int32)


def _draw_counts(key, p_K, count: int) -> jax.Array:
    """``Multinomial(count, p_K)`` as int32 counts (one record)."""
    if count == 0:
        return jnp.zeros(p_K.shape, jnp.int32)
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    counts_K = jax.random.multinomial(key, float(count), p_K.astype(dtype), dtype=dtype)
    return jnp.round(counts_K).astype(jnp.int32)


def original_data(key, truth: Truth, cfg) -> jax.Array:
    """D_0 for one seed: ``x_M`` int32 states drawn from q (statistics sampler: count records)."""
    m = cfg.samples_per_generation
    if cfg.discrete.sampler == "statistics" and not sufficient.real_rows(cfg):
        return _draw_counts(key, truth.q_K, m)[None]
    x_M = jax.random.categorical(key, jnp.log(truth.q_K), shape=(m,)).astype(jnp.int32)
    if cfg.discrete.sampler == "statistics":
        # Real samples stay one record each so mixing can choose among them.
        return jax.nn.one_hot(x_M, cfg.discrete.num_states, dtype=jnp.int32)
    return x_M


def init(key, cfg, data0: Data) -> State:
    """No model yet (generation -1); generation 0 is ``fit`` on D_0."""
    del key, data0
    k = cfg.discrete.num_states
    minus_one = jnp.asarray(-1, jnp.int32)
    return State(jnp.zeros((k,), jnp.int32), minus_one, minus_one)


def fit(key, state: State, data: Data, cfg) -> State:
    """Empirical frequencies: weighted counts of each state (0-weight slots count for nothing)."""
    del key
    k = cfg.discrete.num_states
    if cfg.discrete.sampler == "statistics":
        counts_K = jnp.sum(jnp.where(data.weight[:, None] > 0, data.x, 0), axis=0)
    else:
        counts_K = jnp.zeros((k,), data.weight.dtype).at[data.x].add(data.weight)
        counts_K = jnp.round(counts_K).astype(jnp.int32)
    generation = state.generation + 1
    is_delta = jnp.sum(counts_K > 0) == 1
    first = jnp.where(is_delta, generation, -1)
    absorbed = jnp.where(state.absorbed_generation >= 0, state.absorbed_generation, first)
    return State(counts_K, generation, absorbed.astype(jnp.int32))


def truncate(w_K, top_k: int, top_p: float) -> jax.Array:
    """``w_K`` with every state outside the top-k / top-p set zeroed (``top_k`` 0, ``top_p`` 1 off).

    States are ranked by weight, ties to the lower index (a stable sort). Top-k keeps ranks below
    k; top-p then keeps a state while the weight ranked strictly before it is below ``top_p`` times
    the (top-k-cut) total, so the most probable state always stays and the kept mass reaches
    ``top_p``. Integer weights (counts) stay integers, and the comparison is one float32 product
    ``float32(top_p) * float32(total)`` against an exact integer, which ``theory`` repeats.
    """
    if not top_k and top_p >= 1.0:
        return w_K
    k = w_K.shape[0]
    order_K = jnp.argsort(-w_K, stable=True)
    rank_K = jnp.zeros((k,), jnp.int32).at[order_K].set(jnp.arange(k, dtype=jnp.int32))
    keep_K = w_K > 0
    if top_k:
        keep_K &= rank_K < top_k
    if top_p < 1.0:
        sorted_K = jnp.where(keep_K, w_K, 0)[order_K]
        before_K = (jnp.cumsum(sorted_K) - sorted_K)[rank_K]
        total = jnp.sum(sorted_K).astype(jnp.float32)
        keep_K &= before_K.astype(jnp.float32) < jnp.float32(top_p) * total
    return jnp.where(keep_K, w_K, jnp.zeros_like(w_K))


def sampling_weights(counts_K, cfg) -> jax.Array:
    """What the next generation is drawn with: the counts themselves (int32) when untempered, else
    ``p^(1/lambda)`` (float, max 1); either cut by ``truncate``. Zero stays zero."""
    t = cfg.sampling.temperature
    w_K = counts_K
    if t != 1.0:
        c_K = counts_K.astype(jnp.float32)
        log_K = jnp.log(jnp.where(c_K > 0, c_K, 1.0)) - jnp.log(jnp.max(c_K))
        w_K = jnp.where(c_K > 0, jnp.exp(log_K / t), 0.0)
    return truncate(w_K, cfg.sampling.top_k, cfg.sampling.top_p)


def _biased(cfg) -> bool:
    s = cfg.sampling
    return (s.temperature, s.top_k, s.top_p) != (1.0, 0, 1.0)


def sample(key, state: State, n: int, cfg) -> jax.Array:
    """``n`` states ``x_n`` from the fitted frequencies (statistics sampler: ``n`` count rows),
    tempered and cut by ``cfg.sampling`` (``sampling_weights``)."""
    w_K = sampling_weights(state.counts_K, cfg) if _biased(cfg) else state.counts_K
    if cfg.discrete.sampler == "statistics":
        p_K = w_K / jnp.sum(w_K)
        counts_K = _draw_counts(key, p_K, sufficient.model_count(cfg))
        return sufficient.pad_rows(counts_K, n)
    if jnp.issubdtype(w_K.dtype, jnp.integer):
        return _sample_counts(key, w_K, n)
    logits_K = jnp.where(w_K > 0, jnp.log(jnp.where(w_K > 0, w_K, 1.0)), -jnp.inf)
    return jax.random.categorical(key, logits_K, shape=(n,)).astype(jnp.int32)


def log_prob(state: State, x_N, cfg) -> jax.Array:
    """``log p_n(x)`` per sample; a lost state (count 0) scores the float floor, not -inf."""
    del cfg
    counts_K = state.counts_K.astype(jnp.float32)
    p_K = counts_K / counts_K.sum()
    return jnp.log(jnp.maximum(p_K, jnp.finfo(jnp.float32).tiny))[x_N]


def truth_log_prob(truth: Truth, x_N, cfg) -> jax.Array:
    """``log q(x)`` per sample (curation score ``oracle``)."""
    del cfg
    return jnp.log(truth.q_K)[x_N]


def metrics(state: State, data: Data, origin: family.Origin, cfg) -> dict:
    del data
    truth = origin.truth
    counts_K = state.counts_K
    p_K = counts_K / counts_K.sum()
    present_K = counts_K > 0
    absorbed = jnp.sum(present_K) == 1
    # 0 log 0 = 0: mask before the log so no nan appears even in the gradient-free path.
    plogp_K = jnp.where(present_K, p_K * jnp.log(jnp.where(present_K, p_K, 1.0)), 0.0)
    q_K = truth.q_K.astype(p_K.dtype)
    out = {
        "support_size": jnp.sum(present_K),
        "tail_mass": jnp.sum(jnp.where(present_K & truth.tail_K, q_K, 0.0)),
        "entropy": 0.0 - jnp.sum(plogp_K),  # 0.0 - x, not -x: a delta reads 0, not -0
        "gini_simpson": 1.0 - jnp.sum(p_K**2),
        "tv_distance": 0.5 * jnp.sum(jnp.abs(p_K - q_K)),
        "absorbed": absorbed.astype(jnp.int32),
        "absorbing_state": jnp.where(absorbed, jnp.argmax(counts_K), -1).astype(jnp.int32),
        "absorbed_generation": state.absorbed_generation,
    }
    if cfg.discrete.record_frequencies:
        out["frequencies"] = p_K
    return out


FAMILY = family.Family(
    name="discrete",
    validate=validate,
    reference=reference,
    original_data=original_data,
    init=init,
    fit=fit,
    sample=sample,
    metrics=metrics,
    log_prob=log_prob,
    truth_log_prob=truth_log_prob,
    location=lambda state, cfg: state.counts_K / jnp.sum(state.counts_K),  # the frequencies
    rows_per_generation=lambda cfg: (
        sufficient.rows_per_generation(cfg)
        if cfg.discrete.sampler == "statistics"
        else cfg.samples_per_generation
    ),
)
