"""The Llama architecture (Touvron et al. 2023) as ``flax.nnx`` modules from ``nn.py``'s blocks.

RMSNorm, rotary embeddings with the config's theta and scaling, SwiGLU, grouped-query attention
and a tied or untied head, as transformers' ``LlamaForCausalLM``: SmolLM2 and the TinyStories
Llamas (llama2.c's) are configs of it. The parameter tree mirrors the Hugging Face names:

    model/embed_tokens/embedding                               (V, D)
    model/layers/{i}/input_layernorm/scale, post_attention_layernorm/scale
    model/layers/{i}/self_attn/{q,k,v,o}_proj/kernel[, bias]   q: (D, H Dh), k, v: (D, K Dh)
    model/layers/{i}/mlp/{gate,up,down}_proj/kernel[, bias]
    model/norm/scale
    lm_head/kernel                                             (D, V), only when untied

Rotary embeddings rotate halves (``rotate_half``, HF's layout, not the interleaved pairs of
Meta's original checkpoints, which HF's converter permutes). Positions are ``cumsum(mask) - 1``
(padding is masked, its position unused).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
from flax import nnx

from collapse_jax import errors
from collapse_jax.families.lm import decoder, nn

ROPE_TYPES = ("default", "linear", "dynamic", "llama3", "yarn")


@dataclasses.dataclass(frozen=True)
class LlamaConfig(decoder.HFConfig):
    """transformers' ``LlamaConfig`` fields plus the compute ``dtype``; defaults: SmolLM2-135M's
    shape (30 layers, hidden 576, 9 heads sharing 3 key/value heads, theta 1e5, tied head).

    ``rope_scaling``: transformers' ``rope_parameters`` other than ``rope_theta`` as sorted
    (name, value) pairs (a hashable config: it is a static argument of ``jax.jit``); ``()`` is
    the default rope.
    """

    vocab_size: int = 49152
    hidden_size: int = 576
    intermediate_size: int = 1536
    num_hidden_layers: int = 30
    num_attention_heads: int = 9
    num_key_value_heads: int = 3
    head_dim: int = 64
    hidden_act: str = "silu"
    max_position_embeddings: int = 8192
    initializer_range: float = 0.041666666666666664
    rms_norm_eps: float = 1e-5
    rope_theta: float = 100000.0
    rope_scaling: tuple = ()
    attention_bias: bool = False
    attention_dropout: float = 0.0
    mlp_bias: bool = False
    tie_word_embeddings: bool = True
    pad_token_id: int | None = None
    bos_token_id: int = 0
    eos_token_id: int = 0
    dtype: str = "float32"

    architecture: ClassVar[str] = "llama"
    hf_class: ClassVar[str] = "LlamaForCausalLM"
    activation_field: ClassVar[str] = "hidden_act"
    nullable: ClassVar[tuple[str, ...]] = ("pad_token_id", "head_dim")

    def __post_init__(self):
        errors.require(
            self.num_attention_heads % self.num_key_value_heads == 0,
            "llama.num_attention_heads",
            f"a multiple of num_key_value_heads={self.num_key_value_heads}",
            self.num_attention_heads,
        )
        self.check_names()
        kind = dict(self.rope_scaling).get("rope_type", "default")
        errors.require(
            kind in ROPE_TYPES, "llama.rope_scaling", f"a rope_type in {ROPE_TYPES}", kind
        )

    @property
    def num_kv_heads(self) -> int:
        return self.num_key_value_heads

    @property
    def ffn_dim(self) -> int:
        return self.intermediate_size

    def rope(self):
        """``(inv_freq, attention_factor)`` of this config's rotary embeddings."""
        return nn.rope_frequencies(
            self.head_dim, self.rope_theta, self.rope_scaling, self.max_position_embeddings
        )

    def build(self, key) -> Llama:
        return Llama(self, key)

    @classmethod
    def from_hf(cls, hf_config, dtype: str = "float32") -> LlamaConfig:
        """From a ``transformers.LlamaConfig`` or its ``config.json`` dict (transformers 5's
        ``rope_parameters`` or the older ``rope_theta`` + ``rope_scaling``)."""
        d = cls.hf_dict(hf_config)
        errors.require(
            d.get("pretraining_tp", 1) in (1, None),
            "config.pretraining_tp",
            "1 (no sliced projections)",
            d.get("pretraining_tp"),
        )
        rope = dict(d.get("rope_parameters") or d.get("rope_scaling") or {})
        theta = rope.pop("rope_theta", d.get("rope_theta", 10000.0))
        if "type" in rope:  # transformers 4's name
            rope.setdefault("rope_type", rope.pop("type"))
        if rope.get("rope_type", "default") == "default":
            rope = {}
        elif rope["rope_type"] in ("llama3", "yarn"):
            rope.setdefault("original_max_position_embeddings", d.get("max_position_embeddings"))
        if d.get("head_dim") is None:
            d["head_dim"] = d["hidden_size"] // d["num_attention_heads"]
        if d.get("num_key_value_heads") is None:
            d["num_key_value_heads"] = d["num_attention_heads"]
        d["tie_word_embeddings"] = d.get("tie_word_embeddings", False)
        kw = cls.read_fields(d)
        kw["rope_theta"] = float(theta)
        kw["rope_scaling"] = tuple(sorted((k, v) for k, v in rope.items() if v is not None))
        return cls(**kw, dtype=dtype)

    def hf_extra(self, d: dict) -> dict:
        del d["rope_scaling"], d["rope_theta"]
        rope = {"rope_type": "default", **dict(self.rope_scaling), "rope_theta": self.rope_theta}
        return dict(rope_parameters=rope, use_cache=True, pretraining_tp=1)


class LlamaDecoderLayer(nnx.Module):
    def __init__(self, key, config: LlamaConfig):
        d, std, eps = config.hidden_size, config.initializer_range, config.rms_norm_eps
        kq, kk, kv, ko, k_mlp = jax.random.split(key, 5)
        self.config = config
        self.input_layernorm = nn.RMSNorm(d, eps=eps)
        self.self_attn = nn.Attention(
            (kq, kk, kv, ko),
            d,
            config.num_attention_heads,
            config.num_key_value_heads,
            config.head_dim,
            names=("q_proj", "k_proj", "v_proj", "o_proj"),
            bias=config.attention_bias,
            out_bias=config.attention_bias,
            std=std,
            out_std=std,
            score_scale=config.head_dim**-0.5,
            scale_query=False,
        )
        self.post_attention_layernorm = nn.RMSNorm(d, eps=eps)
        self.mlp = nn.GatedMLP(
            k_mlp,
            d,
            config.intermediate_size,
            activation=config.hidden_act,
            bias=config.mlp_bias,
            std=std,
        )

    def __call__(self, x, mask, layer_cache, index, key, deterministic, rope):
        c = self.config
        dtype = c.compute_dtype
        h, new_layer_cache = self.self_attn(
            self.input_layernorm(x, dtype),
            mask,
            layer_cache,
            index,
            dtype,
            rope=rope,
            dropout_rate=c.attention_dropout,
            dropout_key=key,
            deterministic=deterministic,
        )
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x, dtype), dtype), new_layer_cache


class LlamaModel(nnx.Module):
    def __init__(self, key, config: LlamaConfig):
        k_embed, k_layers = jax.random.split(key)
        self.embed_tokens = nn.Embed(
            k_embed,
            config.vocab_size,
            config.hidden_size,
            std=config.initializer_range,
            zero_row=config.pad_token_id,
        )
        self.layers = nn.layer_dict(
            lambda i: LlamaDecoderLayer(jax.random.fold_in(k_layers, i), config),
            config.num_hidden_layers,
        )
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class Llama(decoder.CausalLM):
    """``LlamaForCausalLM``: the model and its head (the token embedding when tied)."""

    def __init__(self, config: LlamaConfig, key):
        k_model, k_head = jax.random.split(key)
        self.config = config
        self.model = LlamaModel(k_model, config)
        self.lm_head = (
            None
            if config.tie_word_embeddings
            else nn.Dense(
                k_head,
                config.hidden_size,
                config.vocab_size,
                bias=False,
                std=config.initializer_range,
            )
        )

    def embed(self, input_ids_BxL, position_ids_BxL, dtype, dropout_key, deterministic):
        """The token embeddings, and the rotary cos/sin every layer reads."""
        inv_freq, factor = self.config.rope()
        rope = nn.rope_cos_sin(position_ids_BxL, inv_freq, factor, dtype)
        return self.model.embed_tokens(input_ids_BxL, dtype), dropout_key, rope

    def layers(self):
        return self.model.layers

    def final(self, x, dtype):
        """The final norm."""
        return self.model.norm(x, dtype)

    def logits(self, hidden_BxLxD):
        dtype = self.config.compute_dtype
        if self.lm_head is None:
            return self.model.embed_tokens.attend(hidden_BxLxD, dtype)
        return nn.head_logits(
            hidden_BxLxD, self.lm_head.kernel[...].astype(dtype), transposed=False
        )


# The tests' Llama: 4 query heads over 2 key/value heads, untied head, at a tiny size.
TINY_FIELDS = dict(
    vocab_size=97,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    max_position_embeddings=40,
    rope_theta=10000.0,
    initializer_range=0.02,
    tie_word_embeddings=False,
    pad_token_id=1,
    bos_token_id=2,
    eos_token_id=2,
)


def tiny_config(**overrides) -> LlamaConfig:
    return LlamaConfig(**{**TINY_FIELDS, **overrides})
