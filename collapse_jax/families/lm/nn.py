"""The blocks the three decoder-only LMs share, as ``flax.nnx`` modules, and their functional API.

OPT (``opt.py``), GPT-2 (``gpt2.py``) and the Llama architecture (``llama.py``) are built from
the same parts, as penzai's ``llamalike_common`` builds Llama, Mistral and Gemma from one set of
layers and Flax's NNX Gemma example keeps attention, feed-forward and block apart:

  ``Dense``        a (in, out) kernel and optional bias, applied as one 2-D dot
  ``Embed``        a (V, D) table: lookup, and the tied LM head (``attend``)
  ``LayerNorm``    float32 statistics whatever the compute dtype (OPT, GPT-2)
  ``RMSNorm``      the Llama norm, normalised in float32 then cast (transformers' order)
  ``Attention``    causal self-attention with grouped-query heads, optional fused q/k/v (GPT-2's
                   ``c_attn``), optional rotary embeddings, and the fixed-length ``KVCache``
  ``mlp``          fc -> activation -> fc (OPT, GPT-2); ``GatedMLP`` SwiGLU (Llama)
  ``rope_frequencies`` / ``apply_rope``  rotary embeddings with transformers' scaling types

Each submodule is named as in the Hugging Face checkpoint (``q_proj``, ``c_attn``, ...), so the
parameter tree read with ``nnx.to_pure_dict`` is the key table of ``convert.py`` and the layout
that checkpoints and Orbax store: a plain dict of float32 arrays, layers keyed "0".."N-1".

The rest of the package (fine-tuning, perplexity, the decoders, the chain) passes ``(params,
config)`` pairs around: ``params`` the pure dict (a pytree Orbax, optax and ``jax.jit`` take as
it is), ``config`` a frozen, hashable dataclass (a static argument) whose ``build(key)`` makes
the module. ``bind`` merges the two into a module with ``nnx.merge`` on a graph definition made
once per config; under ``jax.jit`` that costs only tracing time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from collapse_jax import errors

Params = dict[str, Any]

ACTIVATIONS: dict[str, Callable] = {
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# jax.checkpoint_policies by name (``finetune.remat_policy``); "none" keeps every activation.
REMAT_POLICIES = (
    "none",
    "nothing_saveable",
    "dots_saveable",
    "dots_with_no_batch_dims_saveable",
    "everything_saveable",
)


def lift(v, ndim: int):
    """A feature vector with leading unit axes (the tests run with rank promotion raising)."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def normal(key, shape, std: float):
    return std * jax.random.normal(key, shape, jnp.float32)


# ----------------------------------------------------------------------------------- layers


class Dense(nnx.Module):
    """``x @ kernel (+ bias)`` with a Flax-layout (in, out) kernel (torch Linear stores (out, in)).

    Applied as one 2-D dot: the kernel gradient then contracts one axis, not (B, L), which
    XLA:CPU runs ~2x slower (measured on the OPT port) and which dominated the backward pass.
    """

    def __init__(self, key, n_in: int, n_out: int, *, bias: bool, std: float):
        self.kernel = nnx.Param(normal(key, (n_in, n_out), std))
        self.bias = nnx.Param(jnp.zeros((n_out,), jnp.float32)) if bias else None

    def __call__(self, x, dtype):
        kernel = self.kernel[...].astype(dtype)
        y = jnp.dot(x.reshape(-1, x.shape[-1]), kernel).reshape(*x.shape[:-1], kernel.shape[-1])
        if self.bias is not None:
            y = y + lift(self.bias[...].astype(dtype), y.ndim)
        return y


class Embed(nnx.Module):
    """A (V, D) table; ``attend`` is the tied LM head (float32 logits)."""

    def __init__(self, key, n: int, d: int, *, std: float, zero_row: int | None = None):
        table = normal(key, (n, d), std)
        if zero_row is not None:  # HF zeroes nn.Embedding's padding_idx row at init
            table = table.at[zero_row].set(0.0)
        self.embedding = nnx.Param(table)

    def __call__(self, ids, dtype):
        return jnp.take(self.embedding[...], ids, axis=0).astype(dtype)

    def attend(self, hidden_BxLxD, dtype):
        return head_logits(hidden_BxLxD, self.embedding[...].astype(dtype), transposed=True)


def head_logits(hidden_BxLxD, weight, transposed: bool):
    """Float32 logits (B, L, V) from a (V, D) table (``transposed``) or a (D, V) kernel.

    2-D, as ``Dense``: the weight's gradient then contracts a single axis."""
    b, l, d = hidden_BxLxD.shape
    contract = ((1,), (1,)) if transposed else ((1,), (0,))
    logits_NxV = jax.lax.dot_general(
        hidden_BxLxD.reshape(b * l, d),
        weight,
        (contract, ((), ())),
        preferred_element_type=jnp.float32,
    )
    return logits_NxV.reshape(b, l, -1)


class LayerNorm(nnx.Module):
    """LayerNorm with float32 statistics whatever the compute dtype (bf16 variance is too
    coarse); ``affine=False`` has no parameters (OPT's ``layer_norm_elementwise_affine``)."""

    def __init__(self, d: int, *, eps: float, affine: bool = True):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((d,), jnp.float32)) if affine else None
        self.bias = nnx.Param(jnp.zeros((d,), jnp.float32)) if affine else None

    def __call__(self, x, dtype):
        x32 = x.astype(jnp.float32)
        mean = x32.mean(-1, keepdims=True)
        var = jnp.square(x32 - mean).mean(-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        if self.scale is not None:
            y = y * lift(self.scale[...], y.ndim) + lift(self.bias[...], y.ndim)
        return y.astype(dtype)


class RMSNorm(nnx.Module):
    """Llama's RMSNorm in transformers' order: normalise in float32, cast to the compute dtype,
    then multiply by the weight."""

    def __init__(self, d: int, *, eps: float):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((d,), jnp.float32))

    def __call__(self, x, dtype):
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + self.eps)
        return lift(self.scale[...].astype(dtype), x.ndim) * y.astype(dtype)


def dropout(x, rate: float, key, deterministic: bool):
    if deterministic or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)).astype(x.dtype)


def mlp(fc_in: Dense, fc_out: Dense, activation: str, x, dtype):
    """The two-layer feed-forward of OPT (``fc1``/``fc2``) and GPT-2 (``c_fc``/``c_proj``)."""
    return fc_out(ACTIVATIONS[activation](fc_in(x, dtype)), dtype)


class GatedMLP(nnx.Module):
    """SwiGLU (Shazeer 2020) as Llama: ``down(act(gate(x)) * up(x))``."""

    def __init__(self, key, d: int, ffn: int, *, activation: str, bias: bool, std: float):
        kg, ku, kd = jax.random.split(key, 3)
        self.activation = activation
        self.gate_proj = Dense(kg, d, ffn, bias=bias, std=std)
        self.up_proj = Dense(ku, d, ffn, bias=bias, std=std)
        self.down_proj = Dense(kd, ffn, d, bias=bias, std=std)

    def __call__(self, x, dtype):
        gate = ACTIVATIONS[self.activation](self.gate_proj(x, dtype))
        return self.down_proj(gate * self.up_proj(x, dtype), dtype)


# ------------------------------------------------------------------------------------ rope


def rope_frequencies(head_dim: int, theta: float, scaling: tuple, max_positions: int):
    """``(inv_freq, attention_factor)`` of transformers' ``ROPE_INIT_FUNCTIONS`` for a rope type.

    ``scaling``: ``()`` or sorted ``(name, value)`` pairs of the HF ``rope_parameters`` besides
    ``rope_theta`` (``rope_type`` among them). Computed in float64 NumPy and rounded to float32:
    transformers computes them in float32 torch, which agrees to an ulp or two.
    Types: ``default``; ``linear`` (frequencies / factor); ``dynamic`` (NTK scaling that changes
    nothing until a sequence exceeds ``max_position_embeddings``, which the decoders never allow);
    ``llama3`` (Llama 3.1's smoothed band); ``yarn`` (Peng et al. 2023, with its attention
    factor). Others (``longrope``, ...) are refused.
    """
    p = dict(scaling)
    kind = p.get("rope_type", "default")
    exponent = np.arange(0, head_dim, 2, dtype=np.float64) / head_dim
    inv = 1.0 / (theta**exponent)
    factor_attn = 1.0
    if kind in ("default", "dynamic"):
        pass
    elif kind == "linear":
        inv = inv / p["factor"]
    elif kind == "llama3":
        factor, lo, hi = p["factor"], p["low_freq_factor"], p["high_freq_factor"]
        old = p["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        inv = np.where(medium, smoothed, scaled)
    elif kind == "yarn":
        factor = p.get("factor") or max_positions / p["original_max_position_embeddings"]
        old = p["original_max_position_embeddings"]

        def mscale(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        factor_attn = p.get("attention_factor")
        if factor_attn is None:
            if p.get("mscale") and p.get("mscale_all_dim"):
                factor_attn = mscale(factor, p["mscale"]) / mscale(factor, p["mscale_all_dim"])
            else:
                factor_attn = mscale(factor)
        fast, slow = p.get("beta_fast") or 32, p.get("beta_slow") or 1

        def correction_dim(rotations):
            return head_dim * math.log(old / (rotations * 2 * math.pi)) / (2 * math.log(theta))

        low, high = correction_dim(fast), correction_dim(slow)
        if p.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, head_dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(head_dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        extrapolation = 1 - ramp
        inv = (inv / factor) * (1 - extrapolation) + inv * extrapolation
    else:
        raise errors.ConfigError(
            f"rope_parameters.rope_type: expected default, linear, dynamic, llama3 or yarn, "
            f"got {kind!r}"
        )
    return inv.astype(np.float32), float(factor_attn)


def rotate_half(x):
    """transformers' ``rotate_half``: (x1, x2) -> (-x2, x1) over the last axis's halves."""
    x1, x2 = jnp.split(x, 2, axis=-1)
    return jnp.concatenate([-x2, x1], axis=-1)


def apply_rope(x_BxLxHxDh, cos_BxLxDh, sin_BxLxDh):
    """Rotary embeddings on (B, L, H, Dh) with the cos/sin of each token's position."""
    cos, sin = cos_BxLxDh[:, :, None], sin_BxLxDh[:, :, None]
    return x_BxLxHxDh * cos + rotate_half(x_BxLxHxDh) * sin


def rope_cos_sin(positions_BxL, inv_freq, attention_factor: float, dtype):
    """cos and sin (B, L, Dh) in float32, then cast to the compute dtype, as transformers."""
    freqs = positions_BxL.astype(jnp.float32)[..., None] * lift(jnp.asarray(inv_freq), 3)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return (jnp.cos(emb) * attention_factor).astype(dtype), (
        jnp.sin(emb) * attention_factor
    ).astype(dtype)


# ------------------------------------------------------------------------------- KV cache


@flax.struct.dataclass
class KVCache:
    """Fixed-length key/value cache: per-layer ``key``/``value`` of shape (B, K, T, Dh), K the
    key/value heads (grouped-query attention stores K < H heads).

    ``index`` (int32 scalar) is the next slot to write; every row of the batch writes the same
    slot, so rows of different prompt lengths are left padded and masked. Keys are stored after
    the rotary embedding (as transformers caches them).

    An optional read-only ``prefix_key``/``prefix_value`` (P, K, Lp, Dh) per layer is shared by
    groups of B / P consecutive rows (beam search: the prompt, shared by the W beams of a
    prompt, see ``fork``). The prefix comes before the T own slots: attention masks then cover
    Lp + T slots and own slot j is position Lp + j of the sequence.
    """

    key: tuple[jax.Array, ...]
    value: tuple[jax.Array, ...]
    index: jax.Array
    prefix_key: tuple[jax.Array, ...] | None = None
    prefix_value: tuple[jax.Array, ...] | None = None

    @property
    def max_length(self) -> int:
        """Own slots T (not counting the prefix)."""
        return self.key[0].shape[2]

    @property
    def prefix_length(self) -> int:
        return 0 if self.prefix_key is None else self.prefix_key[0].shape[2]

    def gather(self, indices_B: jax.Array) -> KVCache:
        """Rows ``indices_B`` of every own key/value (beam reordering); ``index`` and the
        prefix are shared. Rows are gathered from a (B, -1) view: XLA:CPU then copies whole
        rows (measured 1.6x faster than a gather of the 4-D array)."""

        def take(x):
            rows = jnp.take(x.reshape(x.shape[0], -1), indices_B, axis=0)
            return rows.reshape(indices_B.shape + x.shape[1:])

        return self.replace(key=jax.tree.map(take, self.key), value=jax.tree.map(take, self.value))

    def fork(self, rows: int, max_length: int) -> KVCache:
        """Each of the B rows becomes the shared prefix of ``rows`` new rows with ``max_length``
        empty own slots (every slot of this cache must be written: prefill a cache of exactly
        the prompt length). Beam search forks the prefilled prompt into its W beams:
        the prompt's keys and values are then neither copied W times nor reordered each step."""
        if self.prefix_key is not None:
            raise ValueError("KVCache.fork: this cache already has a prefix")
        b, k, _, dh = self.key[0].shape
        zeros = tuple(jnp.zeros((b * rows, k, max_length, dh), x.dtype) for x in self.key)
        return KVCache(
            key=zeros,
            value=zeros,
            index=jnp.zeros((), jnp.int32),
            prefix_key=self.key,
            prefix_value=self.value,
        )


def empty_cache(layers: int, batch: int, kv_heads: int, slots: int, head_dim: int, dtype):
    zeros = tuple(jnp.zeros((batch, kv_heads, slots, head_dim), dtype) for _ in range(layers))
    return KVCache(key=zeros, value=zeros, index=jnp.zeros((), jnp.int32))


# ------------------------------------------------------------------------------ attention


class Attention(nnx.Module):
    """Causal self-attention with H query heads sharing K key/value heads (grouped-query
    attention: query head h reads key/value head h // (H / K), transformers' ``repeat_kv``).

    ``names``: the projections' HF names, ``(q, k, v, out)`` or ``(qkv, out)`` for a fused
    (D, 3 H Dh) projection (GPT-2's ``c_attn``). ``scale_query``: scale q after its bias (OPT)
    instead of the scores (GPT-2, Llama); the order changes float32 results by an ulp, which the
    parity tests would see. ``score_scale``: the factor (1/sqrt(Dh), GPT-2's inverse layer index).
    ``keys``: one initialisation key per projection, in the order of ``names``.
    """

    def __init__(
        self,
        keys: tuple,
        d: int,
        heads: int,
        kv_heads: int,
        head_dim: int,
        *,
        names: tuple[str, ...],
        bias: bool,
        out_bias: bool,
        std: float,
        out_std: float,
        score_scale: float,
        scale_query: bool,
    ):
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.names = names
        self.score_scale, self.scale_query = score_scale, scale_query
        *inputs, out = names
        *k_inputs, k_out = keys
        sizes = [heads + 2 * kv_heads] if len(inputs) == 1 else [heads, kv_heads, kv_heads]
        for name, k, n in zip(inputs, k_inputs, sizes, strict=True):
            setattr(self, name, Dense(k, d, n * head_dim, bias=bias, std=std))
        setattr(self, out, Dense(k_out, heads * head_dim, d, bias=out_bias, std=out_std))

    def project(self, x_BxLxD, dtype):
        """q (B, L, H, Dh), k and v (B, L, K, Dh)."""
        b, l, _ = x_BxLxD.shape
        h, kv, dh = self.heads, self.kv_heads, self.head_dim
        *inputs, _ = self.names
        if len(inputs) == 1:
            qkv = getattr(self, inputs[0])(x_BxLxD, dtype)
            q, k, v = jnp.split(qkv, [h * dh, (h + kv) * dh], axis=-1)
        else:
            q, k, v = (getattr(self, n)(x_BxLxD, dtype) for n in inputs)
        if self.scale_query:
            q = q * jnp.asarray(self.score_scale, dtype)
        return q.reshape(b, l, h, dh), k.reshape(b, l, kv, dh), v.reshape(b, l, kv, dh)

    def __call__(
        self,
        x_BxLxD,
        mask_BxLxT,
        layer_cache,
        index,
        dtype,
        *,
        rope=None,
        dropout_rate: float = 0.0,
        dropout_key=None,
        deterministic: bool = True,
    ):
        """``(out_BxLxD, (key_cache, value_cache) or None)``. ``rope``: (cos, sin) of the L
        tokens' positions, or None. ``layer_cache``: None or (key, value, prefix or None)."""
        q, k, v = self.project(x_BxLxD, dtype)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out_BxLxHxDh, new_cache = attend(
            q,
            k,
            v,
            mask_BxLxT,
            layer_cache,
            index,
            None if self.scale_query else self.score_scale,
            dtype,
            lambda p: dropout(p, dropout_rate, dropout_key, deterministic),
        )
        b, l, h, dh = out_BxLxHxDh.shape
        return getattr(self, self.names[-1])(out_BxLxHxDh.reshape(b, l, h * dh), dtype), new_cache


def attend(q_BxLxHxDh, k_BxLxKxDh, v_BxLxKxDh, mask_BxLxT, layer_cache, index, scale, dtype, drop):
    """Masked softmax attention with grouped heads, optionally through a ``KVCache`` layer.

    Scores and softmax in float32; masked scores take float32's minimum, so a fully masked row
    is uniform, as transformers' eager attention. The cache is head-major (B, K, T, Dh): both
    products then read it in place (a (B, T, K, Dh) cache made XLA:CPU transpose every layer's
    whole cache at every decoding step: 1.3 ms of a 4.2 ms beam-search step on the small OPT).
    """
    b, l, h, dh = q_BxLxHxDh.shape
    kv = k_BxLxKxDh.shape[2]
    g = h // kv
    # Query head h = j * g + i reads key/value head j: one einsum per product over (K, G). With
    # one query head per key/value head (OPT, GPT-2) the group axis is left out, so their
    # programs are the ones the 4-D port compiled (measured: a unit axis added 4% more ops).
    grouped = g > 1
    q = q_BxLxHxDh.reshape(b, l, kv, g, dh) if grouped else q_BxLxHxDh
    qs, ss = ("blkgd", "bkglt") if grouped else ("blkd", "bklt")
    new_cache, prefix = None, None
    if layer_cache is None:
        keys, values, kvs = k_BxLxKxDh, v_BxLxKxDh, "btkd"
    else:
        key_cache, value_cache, prefix = layer_cache
        start = (0, 0, index, 0)
        keys = jax.lax.dynamic_update_slice(
            key_cache, k_BxLxKxDh.transpose(0, 2, 1, 3).astype(key_cache.dtype), start
        )
        values = jax.lax.dynamic_update_slice(
            value_cache, v_BxLxKxDh.transpose(0, 2, 1, 3).astype(value_cache.dtype), start
        )
        new_cache, kvs = (keys, values), "bktd"
    scores = jnp.einsum(
        f"{qs},{kvs}->{ss}", q, keys.astype(dtype), preferred_element_type=jnp.float32
    )
    lp = 0
    if prefix is not None:
        # The R = B / P rows of a group read their shared prefix once, as a batch of queries.
        prefix_key, prefix_value = prefix
        p, lp = prefix_key.shape[0], prefix_key.shape[2]
        q_P = q.reshape(p, b // p, *q.shape[1:])
        pq, ps = "pr" + qs[1:], "pr" + ss[1:].replace("t", "s")
        prefix_scores = jnp.einsum(
            f"{pq},pksd->{ps}", q_P, prefix_key.astype(dtype), preferred_element_type=jnp.float32
        )
        scores = jnp.concatenate([prefix_scores.reshape(b, *scores.shape[1:-1], lp), scores], -1)
    if scale is not None:
        scores = scores * jnp.float32(scale)
    mask = mask_BxLxT[:, None, None] if grouped else mask_BxLxT[:, None]
    scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    probs = drop(jax.nn.softmax(scores, axis=-1).astype(dtype))
    out = jnp.einsum(f"{ss},{kvs}->{qs}", probs[..., lp:], values.astype(dtype))
    if prefix is not None:
        prefix_probs = probs[..., :lp].reshape(p, b // p, *probs.shape[1:-1], lp)
        out = out + jnp.einsum(
            f"{ps},pksd->{pq}", prefix_probs, prefix_value.astype(dtype)
        ).reshape(out.shape)
    return out.reshape(b, l, h, dh), new_cache


def causal_mask(attention_mask_BxT, query_slots_L, key_slots_T):
    """(B, L, T) bool: key slot t is visible from query slot l and is a real token."""
    causal_LxT = query_slots_L[:, None] >= key_slots_T[None, :]
    return causal_LxT[None] & (attention_mask_BxT[:, None, :] != 0)


def default_position_ids(attention_mask_BxL: jax.Array) -> jax.Array:
    """HF's ``cumsum(mask) * mask - 1``: 0, 1, ... over real tokens, -1 on padding."""
    mask = attention_mask_BxL.astype(jnp.int32)
    return jnp.cumsum(mask, axis=1) * mask - 1


def slots(config, input_ids_BxL, attention_mask_BxT, position_ids_BxL, cache):
    """The mask, positions, index and (B, L, T) attention mask of one forward call (see
    ``forward``): ``(attention_mask_BxT, position_ids_BxL, index, mask_BxLxT)``."""
    b, l = input_ids_BxL.shape
    if cache is None:
        if attention_mask_BxT is None:
            attention_mask_BxT = jnp.ones((b, l), jnp.int32)
        if position_ids_BxL is None:
            position_ids_BxL = default_position_ids(attention_mask_BxT)
        query_slots_L, key_slots_T, index = jnp.arange(l), jnp.arange(l), None
    else:
        if position_ids_BxL is None:
            raise errors.ConfigError(
                "position_ids_BxL: expected explicit positions when decoding with a cache, got None"
            )
        t = cache.prefix_length + cache.max_length  # a prefix takes the first slots
        if attention_mask_BxT is None:
            attention_mask_BxT = jnp.ones((b, t), jnp.int32)
        index = cache.index
        query_slots_L = cache.prefix_length + index + jnp.arange(l)
        key_slots_T = jnp.arange(t)
    mask = causal_mask(attention_mask_BxT, query_slots_L, key_slots_T)
    return attention_mask_BxT, position_ids_BxL, index, mask


def layer_caches(cache, i: int):
    """Layer ``i``'s (key, value, prefix or None) of a ``KVCache``, or None."""
    if cache is None:
        return None
    prefix = None
    if cache.prefix_key is not None:
        prefix = (cache.prefix_key[i], cache.prefix_value[i])
    return cache.key[i], cache.value[i], prefix


def run_layers(layers, x, mask, cache, index, *, key, deterministic, remat_policy, extra=None):
    """Apply each layer ("0".."N-1" of an ``nnx.Dict``) as
    ``layer(x, mask, layer_cache, index, key, deterministic, extra)``; ``extra``: what every layer
    reads besides (the rotary cos/sin). With a ``remat_policy`` other than "none" each layer is
    rematerialised (``nnx.remat``, ``jax.checkpoint`` with that named policy; training only, no
    cache). Returns ``(x, new_cache)``."""

    def call(layer, x, mask, layer_cache, index, layer_key, deterministic, extra):
        return layer(x, mask, layer_cache, index, layer_key, deterministic, extra)

    fn = call
    if remat_policy != "none":
        if cache is not None:
            raise errors.ConfigError("remat_policy: expected 'none' when decoding with a cache")
        fn = nnx.remat(
            call, policy=getattr(jax.checkpoint_policies, remat_policy), static_argnums=(6,)
        )
    new_keys, new_values = [], []
    for i in range(len(layers)):
        layer_key = None if deterministic else jax.random.fold_in(key, i)
        x, new_layer_cache = fn(
            layers[str(i)], x, mask, layer_caches(cache, i), index, layer_key, deterministic, extra
        )
        if new_layer_cache is not None:
            new_keys.append(new_layer_cache[0])
            new_values.append(new_layer_cache[1])
    new_cache = None
    if cache is not None:
        l = x.shape[1]
        new_cache = cache.replace(key=tuple(new_keys), value=tuple(new_values), index=index + l)
    return x, new_cache


def layer_dict(make, n: int) -> nnx.Dict:
    """Layers keyed "0".."N-1" (string keys round-trip through Orbax unchanged)."""
    return nnx.Dict({str(i): make(i) for i in range(n)})


# -------------------------------------------------------------------------- functional API


@functools.lru_cache(maxsize=64)
def graphdef(config):
    """The module's graph definition for ``config`` (made once, from abstract parameters)."""
    return nnx.split(nnx.eval_shape(lambda: config.build(jax.random.key(0))))[0]


def bind(params: Params, config) -> nnx.Module:
    """The module of ``config`` holding ``params`` (a pure dict, ``init_params``' layout)."""
    return nnx.merge(graphdef(config), params)


def init_params(key: jax.Array, config) -> Params:
    """Random float32 parameters with transformers' initialisation for the architecture."""
    return nnx.to_pure_dict(nnx.state(config.build(key), nnx.Param))


def param_count(params: Params) -> int:
    """Number of scalars (a tied LM head is the token embedding, counted once)."""
    return sum(int(x.size) for x in jax.tree.leaves(params))


def hidden_states(
    params: Params,
    config,
    input_ids_BxL: jax.Array,
    attention_mask_BxT: jax.Array | None = None,
    *,
    position_ids_BxL: jax.Array | None = None,
    cache: KVCache | None = None,
    deterministic: bool = True,
    dropout_key: jax.Array | None = None,
    remat_policy: str = "none",
) -> tuple[jax.Array, KVCache | None]:
    """The decoder output before the LM head, (B, L, D); see ``forward``."""
    if not deterministic and dropout_key is None:
        raise errors.ConfigError("dropout_key: expected a key when deterministic=False, got None")
    errors.require(
        remat_policy in REMAT_POLICIES, "remat_policy", f"one of {REMAT_POLICIES}", remat_policy
    )
    model = bind(params, config)
    return model(
        jnp.asarray(input_ids_BxL),
        attention_mask_BxT,
        position_ids_BxL,
        cache,
        deterministic=deterministic,
        dropout_key=dropout_key,
        remat_policy=remat_policy,
    )


def lm_logits(params: Params, config, hidden_BxLxD: jax.Array) -> jax.Array:
    """The LM head: float32 logits (B, L, V) from decoder outputs."""
    return bind(params, config).logits(hidden_BxLxD)


def forward(
    params: Params,
    config,
    input_ids_BxL: jax.Array,
    attention_mask_BxT: jax.Array | None = None,
    *,
    position_ids_BxL: jax.Array | None = None,
    cache: KVCache | None = None,
    deterministic: bool = True,
    dropout_key: jax.Array | None = None,
    remat_policy: str = "none",
) -> tuple[jax.Array, KVCache | None]:
    """Float32 logits (B, L, V) and the updated cache (None without one).

    Without a cache the mask covers the L inputs (default all ones) and positions default to
    ``default_position_ids(mask)``, so left padding works. With a cache the L inputs are written
    at slots ``cache.index .. cache.index + L - 1``; ``attention_mask_BxT`` covers all T slots,
    after the prefix's Lp if the cache has one (1 for real past and current tokens), and
    ``position_ids_BxL`` must be given. Prefill and one-token steps are the same code. Dropout
    runs only with ``deterministic=False``.
    """
    h, new_cache = hidden_states(
        params,
        config,
        input_ids_BxL,
        attention_mask_BxT,
        position_ids_BxL=position_ids_BxL,
        cache=cache,
        deterministic=deterministic,
        dropout_key=dropout_key,
        remat_policy=remat_policy,
    )
    return lm_logits(params, config, h), new_cache


def init_cache(config, batch_size: int, max_length: int) -> KVCache:
    """An empty cache of ``max_length`` slots in the compute dtype."""
    return empty_cache(
        config.num_hidden_layers,
        batch_size,
        config.num_kv_heads,
        max_length,
        config.head_dim,
        config.compute_dtype,
    )
