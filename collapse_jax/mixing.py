"""The sampling step of learning with generational data (Shumailov et al., Sec. 3).

The next dataset is drawn from ``p_(i+1) = alpha * p_theta(i+1) + beta * p_i + gamma * p_0``: model
samples, data kept from the previous dataset, and original data. The counts are fixed at trace
time, so every generation has static shapes.

A pool is a ``Data``: samples ``x`` with a leading sample axis and a 0/1 ``weight`` per slot. Only
the accumulating regimes have empty slots (a buffer of ``num_generations * M`` filled as the chain
goes); every family's ``fit`` honours the weights.

Named regimes:
  replace               alpha = 1: each generation sees only its predecessor's samples.
  accumulate            all data so far (D_0 .. D_i), as the authors' accumulate experiment and
                        Gerstgrasser et al. (2024).
  accumulate_subsample  M samples drawn without replacement from all data so far.
  keep_real             a fraction gamma of original data each generation (the paper's 10% LLM
                        regime), alpha = 1 - gamma.
  custom                explicit alpha, beta, gamma.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from collapse_jax.errors import ConfigError, require

REGIMES = ("replace", "accumulate", "accumulate_subsample", "keep_real", "custom")


class Data(NamedTuple):
    """Samples ``x_N...`` and their weights ``weight_N`` (1 for a sample, 0 for an empty slot)."""

    x: jax.Array
    weight: jax.Array


def full(x) -> Data:
    """All slots filled."""
    return Data(x, jnp.ones(x.shape[:1], jnp.float32))


class Plan(NamedTuple):
    """Static counts of one generation's dataset."""

    regime: str
    num_model: int  # alpha * M samples from the current model
    num_kept: int  # beta * M samples kept from the previous dataset
    num_original: int  # gamma * M samples of D_0
    samples_per_generation: int  # M
    capacity: int  # slots in the pool carried between generations

    @property
    def accumulates(self) -> bool:
        return self.regime in ("accumulate", "accumulate_subsample")


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
    elif regime == "keep_real":
        require(0.0 < g < 1.0, "mixing.gamma", "a fraction in (0, 1) for regime keep_real", g)
        require(b == 0.0, "mixing.beta", "0 for regime keep_real", b)
        a = 1.0 - g
    else:
        s = a + b + g
        if abs(s - 1.0) > 1e-9:
            raise ConfigError(f"mixing.alpha + mixing.beta + mixing.gamma: expected 1, got {s!r}")
    num_original = round(g * m)
    num_kept = round(b * m)
    num_model = m - num_original - num_kept
    require(num_model >= 0, "mixing", "alpha * samples_per_generation >= 0 after rounding", a)
    capacity = m * num_generations if regime == "accumulate" else m
    if regime == "accumulate_subsample":
        capacity = m * num_generations
    return Plan(regime, num_model, num_kept, num_original, m, capacity)


def choose(key, data: Data, n: int) -> jax.Array:
    """``n`` samples of ``data`` drawn without replacement among the filled slots.

    Gumbel top-k on log-weights: empty slots get -inf and are never chosen while n <= filled.
    """
    if n == 0:
        return data.x[:0]
    logits = jnp.where(data.weight > 0, jnp.log(jnp.maximum(data.weight, 1e-30)), -jnp.inf)
    scores = logits + jax.random.gumbel(key, logits.shape, jnp.float32)
    _, idx = jax.lax.top_k(scores, n)
    return data.x[idx]


def initial_pool(p: Plan, x0) -> Data:
    """The pool at generation 0: D_0, padded with empty slots for the accumulating regimes."""
    if not p.accumulates:
        return full(x0)
    pad = p.capacity - x0.shape[0]
    x = jnp.concatenate([x0, jnp.zeros((pad, *x0.shape[1:]), x0.dtype)])
    w = jnp.concatenate([jnp.ones((x0.shape[0],), jnp.float32), jnp.zeros((pad,), jnp.float32)])
    return Data(x, w)


def next_pool(key, p: Plan, pool: Data, model_x, data0, generation) -> Data:
    """The pool of generation ``generation`` (>= 1) from the model's samples ``model_x``.

    ``model_x`` holds ``p.num_model`` samples; ``data0`` is D_0 (``x`` only).
    """
    if p.accumulates:
        # All indices int32: under jax_enable_x64 a bare 0 would be int64 next to an int32 start.
        start = jnp.asarray(generation, jnp.int32) * p.samples_per_generation
        start = (start,) + (jnp.zeros((), jnp.int32),) * (pool.x.ndim - 1)
        x = jax.lax.dynamic_update_slice(pool.x, model_x.astype(pool.x.dtype), start)
        w = jax.lax.dynamic_update_slice(
            pool.weight, jnp.ones((p.samples_per_generation,), jnp.float32), start[:1]
        )
        return Data(x, w)
    k_keep, k_orig = jax.random.split(key)
    parts = [model_x.astype(pool.x.dtype)]
    if p.num_kept:
        parts.append(choose(k_keep, pool, p.num_kept))
    if p.num_original:
        parts.append(choose(k_orig, full(data0), p.num_original).astype(pool.x.dtype))
    return full(jnp.concatenate(parts))


def training_data(key, p: Plan, pool: Data) -> Data:
    """The dataset the next model is fitted on: the pool itself, or M of it (accumulate_subsample)."""
    if p.regime == "accumulate_subsample":
        return full(choose(key, pool, p.samples_per_generation))
    return pool
