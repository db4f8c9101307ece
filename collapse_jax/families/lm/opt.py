"""OPT decoder (Zhang et al. 2022) as pure functions over a params dict.

The parameter tree mirrors the Hugging Face names so that `convert.py` is a flat key table:

    decoder/embed_tokens/embedding                 (V, Dw)      tied LM head
    decoder/embed_positions/embedding              (P + 2, D)   OPT's +2 offset kept in the table
    decoder/project_in/kernel, project_out/kernel  only when word_embed_proj_dim != hidden_size
    decoder/final_layer_norm/{scale,bias}          only when do_layer_norm_before (and not removed)
    decoder/layers/{i}/self_attn/{q,k,v,out}_proj/{kernel,bias}
    decoder/layers/{i}/{self_attn_layer_norm,final_layer_norm}/{scale,bias}
    decoder/layers/{i}/{fc1,fc2}/{kernel,bias}

Kernels are (in, out) as in Flax (torch Linear stores (out, in)). Layer keys are the strings
"0".."N-1" (string-keyed dicts round-trip through Orbax unchanged). Parameters stay float32;
``OPTConfig.dtype`` is the compute dtype (parameters are cast at use, softmax, layer-norm
statistics and logits stay float32).

The semantics follow transformers' PyTorch ``modeling_opt.py``: q is scaled after its bias,
masked scores take the dtype's minimum (a fully masked row is uniform, as in torch), positions
are ``cumsum(mask) * mask - 1`` (padding maps to row 1 of the position table), dropout only on
attention probabilities, after ``out_proj`` and after ``fc2``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from collapse_jax import errors

Params = dict[str, Any]

# OPT's learned position table has two extra leading rows (a fairseq padding_idx artefact).
POSITION_OFFSET = 2

_ACTIVATIONS = {
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class OPTConfig:
    """transformers' ``OPTConfig`` fields (OPT-125m defaults) plus the compute ``dtype``.

    Frozen and hashable, so it can be a static argument of ``jax.jit``.
    """

    vocab_size: int = 50272
    hidden_size: int = 768
    num_hidden_layers: int = 12
    ffn_dim: int = 3072
    num_attention_heads: int = 12
    max_position_embeddings: int = 2048
    do_layer_norm_before: bool = True
    word_embed_proj_dim: int = 768
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_function: str = "relu"
    layer_norm_elementwise_affine: bool = True
    enable_bias: bool = True
    pad_token_id: int = 1
    bos_token_id: int = 2
    eos_token_id: int = 2
    init_std: float = 0.02
    # HF's `_remove_final_layer_norm`: only old fine-tuned checkpoints set it.
    remove_final_layer_norm: bool = False
    dtype: str = "float32"

    def __post_init__(self):
        errors.require(
            self.hidden_size % self.num_attention_heads == 0,
            "opt.hidden_size",
            f"a multiple of num_attention_heads={self.num_attention_heads}",
            self.hidden_size,
        )
        errors.require(
            self.activation_function in _ACTIVATIONS,
            "opt.activation_function",
            f"one of {sorted(_ACTIVATIONS)}",
            self.activation_function,
        )
        errors.require(self.dtype in _DTYPES, "opt.dtype", f"one of {sorted(_DTYPES)}", self.dtype)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def has_projections(self) -> bool:
        return self.word_embed_proj_dim != self.hidden_size

    @property
    def has_final_layer_norm(self) -> bool:
        return self.do_layer_norm_before and not self.remove_final_layer_norm

    @property
    def compute_dtype(self):
        return _DTYPES[self.dtype]

    @classmethod
    def from_hf(cls, hf_config, dtype: str = "float32") -> OPTConfig:
        """From a ``transformers.OPTConfig`` or its ``config.json`` dict."""
        d = hf_config if isinstance(hf_config, dict) else hf_config.to_dict()
        errors.require(
            d.get("model_type", "opt") == "opt", "config.model_type", "'opt'", d.get("model_type")
        )
        errors.require(
            d.get("tie_word_embeddings", True),
            "config.tie_word_embeddings",
            "True (tied head)",
            False,
        )
        errors.require(
            not d.get("layerdrop", 0.0),
            "config.layerdrop",
            "0 (no OPT uses it)",
            d.get("layerdrop"),
        )
        defaults = cls()
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name in ("dtype", "remove_final_layer_norm"):
                continue
            value = d.get(f.name)
            kw[f.name] = getattr(defaults, f.name) if value is None else value
        if d.get("word_embed_proj_dim") is None:
            kw["word_embed_proj_dim"] = kw["hidden_size"]
        # A list of eos ids is legal in HF; OPT checkpoints use one.
        if isinstance(kw["eos_token_id"], list):
            kw["eos_token_id"] = kw["eos_token_id"][0]
        kw["remove_final_layer_norm"] = bool(d.get("_remove_final_layer_norm", False))
        return cls(**kw, dtype=dtype)

    def to_hf_dict(self) -> dict[str, Any]:
        """A ``config.json`` dict that ``transformers.OPTConfig(**d)`` accepts."""
        d = dataclasses.asdict(self)
        del d["dtype"]
        d["_remove_final_layer_norm"] = d.pop("remove_final_layer_norm")
        d.update(
            model_type="opt",
            architectures=["OPTForCausalLM"],
            layerdrop=0.0,
            tie_word_embeddings=True,
            use_cache=True,
            dtype="float32",
        )
        return d


@flax.struct.dataclass
class KVCache:
    """Fixed-length key/value cache: per-layer ``key``/``value`` of shape (B, H, T, Dh).

    ``index`` (int32 scalar) is the next slot to write; every row of the batch writes the same
    slot, so rows of different prompt lengths are left padded and masked.

    An optional read-only ``prefix_key``/``prefix_value`` (P, H, Lp, Dh) per layer is shared by
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
        b, h, _, dh = self.key[0].shape
        zeros = tuple(jnp.zeros((b * rows, h, max_length, dh), x.dtype) for x in self.key)
        return KVCache(
            key=zeros,
            value=zeros,
            index=jnp.zeros((), jnp.int32),
            prefix_key=self.key,
            prefix_value=self.value,
        )


def init_cache(config: OPTConfig, batch_size: int, max_length: int) -> KVCache:
    """An empty cache of ``max_length`` slots in the compute dtype."""
    shape = (batch_size, config.num_attention_heads, max_length, config.head_dim)
    zeros = tuple(jnp.zeros(shape, config.compute_dtype) for _ in range(config.num_hidden_layers))
    return KVCache(key=zeros, value=zeros, index=jnp.zeros((), jnp.int32))


# ----------------------------------------------------------------------------------- params


def _dense(key, n_in: int, n_out: int, config: OPTConfig, bias: bool) -> Params:
    p = {"kernel": config.init_std * jax.random.normal(key, (n_in, n_out), jnp.float32)}
    if bias:
        p["bias"] = jnp.zeros((n_out,), jnp.float32)
    return p


def _layer_norm(n: int, config: OPTConfig) -> Params:
    if not config.layer_norm_elementwise_affine:
        return {}
    return {"scale": jnp.ones((n,), jnp.float32), "bias": jnp.zeros((n,), jnp.float32)}


def init_params(key: jax.Array, config: OPTConfig) -> Params:
    """Random float32 parameters with HF's initialisation (normal(init_std), zero biases)."""
    d, dw, b = config.hidden_size, config.word_embed_proj_dim, config.enable_bias
    k_tok, k_pos, k_in, k_out, k_layers = jax.random.split(key, 5)
    embed = config.init_std * jax.random.normal(k_tok, (config.vocab_size, dw), jnp.float32)
    # HF zeroes the padding row (nn.Embedding padding_idx).
    embed = embed.at[config.pad_token_id].set(0.0)
    n_pos = config.max_position_embeddings + POSITION_OFFSET
    decoder: Params = {
        "embed_tokens": {"embedding": embed},
        "embed_positions": {
            "embedding": config.init_std * jax.random.normal(k_pos, (n_pos, d), jnp.float32)
        },
    }
    if config.has_projections:
        decoder["project_in"] = _dense(k_in, dw, d, config, bias=False)
        decoder["project_out"] = _dense(k_out, d, dw, config, bias=False)
    if config.has_final_layer_norm:
        decoder["final_layer_norm"] = _layer_norm(d, config)
    layers = {}
    for i in range(config.num_hidden_layers):
        kq, kk, kv, ko, k1, k2 = jax.random.split(jax.random.fold_in(k_layers, i), 6)
        layers[str(i)] = {
            "self_attn": {
                "q_proj": _dense(kq, d, d, config, b),
                "k_proj": _dense(kk, d, d, config, b),
                "v_proj": _dense(kv, d, d, config, b),
                "out_proj": _dense(ko, d, d, config, b),
            },
            "self_attn_layer_norm": _layer_norm(d, config),
            "fc1": _dense(k1, d, config.ffn_dim, config, b),
            "fc2": _dense(k2, config.ffn_dim, d, config, b),
            "final_layer_norm": _layer_norm(d, config),
        }
    decoder["layers"] = layers
    return {"decoder": decoder}


def param_count(params: Params) -> int:
    """Number of scalars; the LM head is the token embedding, so it is counted once."""
    return sum(int(x.size) for x in jax.tree.leaves(params))


# ---------------------------------------------------------------------------------- forward


def _lift(v, ndim: int):
    """A feature vector with leading unit axes (the tests run with rank promotion raising)."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def _apply_dense(p: Params, x, dtype):
    # A 2-D dot: the kernel gradient then contracts one axis, not (B, L), which XLA:CPU runs
    # ~2x slower (measured) and which dominated the backward pass.
    kernel = p["kernel"].astype(dtype)
    y = jnp.dot(x.reshape(-1, x.shape[-1]), kernel).reshape(*x.shape[:-1], kernel.shape[-1])
    if "bias" in p:
        y = y + _lift(p["bias"].astype(dtype), y.ndim)
    return y


def _apply_layer_norm(p: Params, x, dtype, eps: float = 1e-5):
    # Statistics in float32 whatever the compute dtype (bf16 variance is too coarse).
    x32 = x.astype(jnp.float32)
    mean = x32.mean(-1, keepdims=True)
    var = jnp.square(x32 - mean).mean(-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + eps)
    if p:
        y = y * _lift(p["scale"], y.ndim) + _lift(p["bias"], y.ndim)
    return y.astype(dtype)


def _dropout(x, rate: float, key, deterministic: bool):
    if deterministic or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)).astype(x.dtype)


def _attention(p, config, x_BxLxD, mask_Bx1xLxT, layer_cache, index, dropout_keys, deterministic):
    dtype = config.compute_dtype
    b, l, _ = x_BxLxD.shape
    h, dh = config.num_attention_heads, config.head_dim
    # HF scales q after its bias (and before the product); the order matters at 1e-5.
    q = _apply_dense(p["q_proj"], x_BxLxD, dtype) * jnp.asarray(dh**-0.5, dtype)
    k = _apply_dense(p["k_proj"], x_BxLxD, dtype)
    v = _apply_dense(p["v_proj"], x_BxLxD, dtype)
    q_BxLxHxDh = q.reshape(b, l, h, dh)
    k_BxLxHxDh = k.reshape(b, l, h, dh)
    v_BxLxHxDh = v.reshape(b, l, h, dh)
    new_layer_cache = None
    if layer_cache is None:
        scores_BxHxLxT = jnp.einsum(
            "blhk,bthk->bhlt", q_BxLxHxDh, k_BxLxHxDh, preferred_element_type=jnp.float32
        )
    else:
        # The cache is head-major (B, H, T, Dh): both attention products then read it in place.
        # A (B, T, H, Dh) cache made XLA:CPU transpose every layer's whole cache at every
        # decoding step (measured: 1.3 ms of a 4.2 ms beam-search step on the small OPT).
        key_cache, value_cache, prefix = layer_cache
        start = (0, 0, index, 0)
        k_BxHxTxDh = jax.lax.dynamic_update_slice(
            key_cache, k_BxLxHxDh.transpose(0, 2, 1, 3).astype(key_cache.dtype), start
        )
        v_BxHxTxDh = jax.lax.dynamic_update_slice(
            value_cache, v_BxLxHxDh.transpose(0, 2, 1, 3).astype(value_cache.dtype), start
        )
        new_layer_cache = (k_BxHxTxDh, v_BxHxTxDh)
        scores_BxHxLxT = jnp.einsum(
            "blhk,bhtk->bhlt", q_BxLxHxDh, k_BxHxTxDh, preferred_element_type=jnp.float32
        )
        if prefix is not None:
            # The G = B / P rows of a group read their shared prefix once, as a batch of queries.
            prefix_key, prefix_value = prefix
            p_, lp = prefix_key.shape[0], prefix_key.shape[2]
            q_PxGxLxHxDh = q_BxLxHxDh.reshape(p_, b // p_, l, h, dh)
            prefix_scores = jnp.einsum(
                "pglhk,phsk->pghls", q_PxGxLxHxDh, prefix_key, preferred_element_type=jnp.float32
            )
            scores_BxHxLxT = jnp.concatenate(
                [prefix_scores.reshape(b, h, l, lp), scores_BxHxLxT], axis=-1
            )
    scores_BxHxLxT = jnp.where(mask_Bx1xLxT, scores_BxHxLxT, jnp.finfo(jnp.float32).min)
    probs_BxHxLxT = jax.nn.softmax(scores_BxHxLxT, axis=-1).astype(dtype)
    probs_BxHxLxT = _dropout(
        probs_BxHxLxT, config.attention_dropout, dropout_keys[0], deterministic
    )
    if layer_cache is None:
        out_BxLxHxDh = jnp.einsum("bhlt,bthk->blhk", probs_BxHxLxT, v_BxLxHxDh.astype(dtype))
    elif prefix is None:
        out_BxLxHxDh = jnp.einsum("bhlt,bhtk->blhk", probs_BxHxLxT, v_BxHxTxDh.astype(dtype))
    else:
        out_BxLxHxDh = jnp.einsum(
            "bhlt,bhtk->blhk", probs_BxHxLxT[..., lp:], v_BxHxTxDh.astype(dtype)
        )
        prefix_probs = probs_BxHxLxT[..., :lp].reshape(p_, b // p_, h, l, lp)
        out_BxLxHxDh = out_BxLxHxDh + jnp.einsum(
            "pghls,phsk->pglhk", prefix_probs, prefix_value.astype(dtype)
        ).reshape(b, l, h, dh)
    out = _apply_dense(p["out_proj"], out_BxLxHxDh.reshape(b, l, h * dh), dtype)
    return out, new_layer_cache


def _decoder_layer(p, config, x, mask, layer_cache, index, key, deterministic):
    dtype = config.compute_dtype
    keys = jax.random.split(key, 3) if key is not None else (None, None, None)
    residual = x
    if config.do_layer_norm_before:
        x = _apply_layer_norm(p["self_attn_layer_norm"], x, dtype)
    x, new_layer_cache = _attention(
        p["self_attn"], config, x, mask, layer_cache, index, keys[:1], deterministic
    )
    x = residual + _dropout(x, config.dropout, keys[1], deterministic)
    if not config.do_layer_norm_before:
        x = _apply_layer_norm(p["self_attn_layer_norm"], x, dtype)
    residual = x
    if config.do_layer_norm_before:
        x = _apply_layer_norm(p["final_layer_norm"], x, dtype)
    x = _ACTIVATIONS[config.activation_function](_apply_dense(p["fc1"], x, dtype))
    x = _apply_dense(p["fc2"], x, dtype)
    x = residual + _dropout(x, config.dropout, keys[2], deterministic)
    if not config.do_layer_norm_before:
        x = _apply_layer_norm(p["final_layer_norm"], x, dtype)
    return x, new_layer_cache


def default_position_ids(attention_mask_BxL: jax.Array) -> jax.Array:
    """HF's ``cumsum(mask) * mask - 1``: 0, 1, ... over real tokens, -1 (table row 1) on padding."""
    mask = attention_mask_BxL.astype(jnp.int32)
    return jnp.cumsum(mask, axis=1) * mask - 1


def hidden_states(
    params: Params,
    config: OPTConfig,
    input_ids_BxL: jax.Array,
    attention_mask_BxT: jax.Array | None = None,
    *,
    position_ids_BxL: jax.Array | None = None,
    cache: KVCache | None = None,
    deterministic: bool = True,
    dropout_key: jax.Array | None = None,
) -> tuple[jax.Array, KVCache | None]:
    """The decoder output before the LM head, (B, L, word_embed_proj_dim); see ``forward``."""
    dec = params["decoder"]
    dtype = config.compute_dtype
    b, l = input_ids_BxL.shape
    if not deterministic and dropout_key is None:
        raise errors.ConfigError("dropout_key: expected a key when deterministic=False, got None")
    if cache is None:
        if attention_mask_BxT is None:
            attention_mask_BxT = jnp.ones((b, l), jnp.int32)
        if position_ids_BxL is None:
            position_ids_BxL = default_position_ids(attention_mask_BxT)
        query_slots_L = jnp.arange(l)
        key_slots_T = jnp.arange(l)
        index = None
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
    causal_LxT = query_slots_L[:, None] >= key_slots_T[None, :]
    mask_Bx1xLxT = causal_LxT[None, None] & (attention_mask_BxT[:, None, None, :] != 0)

    tokens = jnp.take(dec["embed_tokens"]["embedding"], input_ids_BxL, axis=0).astype(dtype)
    if config.has_projections:
        tokens = _apply_dense(dec["project_in"], tokens, dtype)
    positions = jnp.take(
        dec["embed_positions"]["embedding"], position_ids_BxL + POSITION_OFFSET, axis=0
    )
    x_BxLxD = tokens + positions.astype(dtype)

    new_keys, new_values = [], []
    for i in range(config.num_hidden_layers):
        layer_cache = None
        if cache is not None:
            prefix = None
            if cache.prefix_key is not None:
                prefix = (cache.prefix_key[i], cache.prefix_value[i])
            layer_cache = (cache.key[i], cache.value[i], prefix)
        layer_key = None if deterministic else jax.random.fold_in(dropout_key, i)
        x_BxLxD, new_layer_cache = _decoder_layer(
            dec["layers"][str(i)],
            config,
            x_BxLxD,
            mask_Bx1xLxT,
            layer_cache,
            index,
            layer_key,
            deterministic,
        )
        if new_layer_cache is not None:
            new_keys.append(new_layer_cache[0])
            new_values.append(new_layer_cache[1])

    if config.has_final_layer_norm:
        x_BxLxD = _apply_layer_norm(dec["final_layer_norm"], x_BxLxD, dtype)
    if config.has_projections:
        x_BxLxD = _apply_dense(dec["project_out"], x_BxLxD, dtype)
    new_cache = None
    if cache is not None:
        new_cache = cache.replace(key=tuple(new_keys), value=tuple(new_values), index=index + l)
    return x_BxLxD, new_cache


def lm_logits(params: Params, config: OPTConfig, hidden_BxLxW: jax.Array) -> jax.Array:
    """The tied LM head: float32 logits (B, L, V) from decoder outputs."""
    embed_VxW = params["decoder"]["embed_tokens"]["embedding"].astype(config.compute_dtype)
    b, l, w = hidden_BxLxW.shape
    # 2-D, as in _apply_dense: the embedding gradient then contracts a single axis.
    logits_NxV = jax.lax.dot_general(
        hidden_BxLxW.reshape(b * l, w),
        embed_VxW,
        (((1,), (1,)), ((), ())),
        preferred_element_type=jnp.float32,
    )
    return logits_NxV.reshape(b, l, -1)


def forward(
    params: Params,
    config: OPTConfig,
    input_ids_BxL: jax.Array,
    attention_mask_BxT: jax.Array | None = None,
    *,
    position_ids_BxL: jax.Array | None = None,
    cache: KVCache | None = None,
    deterministic: bool = True,
    dropout_key: jax.Array | None = None,
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
    )
    return lm_logits(params, config, h), new_cache
