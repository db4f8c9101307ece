"""GPT-2 (Radford et al. 2019) as ``flax.nnx`` modules built from the shared blocks of ``nn.py``.

Learned positions, pre-LN blocks, GELU (tanh approximation, ``gelu_new``), a fused q/k/v
projection and a head tied to the token embedding, as transformers' ``GPT2LMHeadModel``. The
parameter tree mirrors the Hugging Face names (``convert.py``'s key table):

    transformer/wte/embedding                          (V, D)   tied LM head
    transformer/wpe/embedding                          (P, D)
    transformer/h/{i}/ln_1/{scale,bias}, ln_2/{scale,bias}
    transformer/h/{i}/attn/c_attn/{kernel,bias}        (D, 3D)  q | k | v
    transformer/h/{i}/attn/c_proj/{kernel,bias}        (D, D)
    transformer/h/{i}/mlp/c_fc/{kernel,bias}           (D, F)
    transformer/h/{i}/mlp/c_proj/{kernel,bias}         (F, D)
    transformer/ln_f/{scale,bias}

HF's ``Conv1D`` stores its weight (in, out), already the Flax layout: it is copied as it is
(a torch ``Linear`` would be transposed). Positions are ``generate``'s: ``cumsum(mask) - 1`` on
real tokens and 0 on padding (the table has no row for -1). Dropout as HF: after the embeddings
(``embd_pdrop``), on attention probabilities (``attn_pdrop``), after each residual branch
(``resid_pdrop``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from collapse_jax import errors
from collapse_jax.families.lm import decoder, nn


@dataclasses.dataclass(frozen=True)
class GPT2Config(decoder.HFConfig):
    """transformers' ``GPT2Config`` fields (GPT-2 124M defaults) plus the compute ``dtype``."""

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None
    activation_function: str = "gelu_new"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False  # float32 scores either way here
    bos_token_id: int = 50256
    eos_token_id: int = 50256
    pad_token_id: int | None = None
    dtype: str = "float32"

    architecture: ClassVar[str] = "gpt2"
    hf_class: ClassVar[str] = "GPT2LMHeadModel"
    nullable: ClassVar[tuple[str, ...]] = ("pad_token_id", "n_inner")

    def __post_init__(self):
        errors.require(
            self.n_embd % self.n_head == 0,
            "gpt2.n_embd",
            f"a multiple of n_head={self.n_head}",
            self.n_embd,
        )
        self.check_names()

    # The names the rest of the package reads from any architecture's config.
    @property
    def hidden_size(self) -> int:
        return self.n_embd

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layer

    @property
    def num_attention_heads(self) -> int:
        return self.n_head

    @property
    def num_kv_heads(self) -> int:
        return self.n_head

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def ffn_dim(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @property
    def max_position_embeddings(self) -> int:
        return self.n_positions

    def build(self, key) -> GPT2:
        return GPT2(self, key)

    @classmethod
    def from_hf(cls, hf_config, dtype: str = "float32") -> GPT2Config:
        """From a ``transformers.GPT2Config`` or its ``config.json`` dict."""
        d = cls.hf_dict(hf_config)
        errors.require(
            d.get("tie_word_embeddings", True) is not False,
            "config.tie_word_embeddings",
            "True (GPT2LMHeadModel ties its head)",
            False,
        )
        errors.require(
            not d.get("add_cross_attention", False),
            "config.add_cross_attention",
            "False (a decoder-only LM)",
            True,
        )
        return cls(**cls.read_fields(d), dtype=dtype)

    def hf_extra(self, d: dict) -> dict:
        return dict(tie_word_embeddings=True, use_cache=True)


class GPT2MLP(nnx.Module):
    def __init__(self, keys, config: GPT2Config, out_std: float):
        d, f, std = config.n_embd, config.ffn_dim, config.initializer_range
        self.c_fc = nn.Dense(keys[0], d, f, bias=True, std=std)
        self.c_proj = nn.Dense(keys[1], f, d, bias=True, std=out_std)


class GPT2Block(nnx.Module):
    def __init__(self, key, config: GPT2Config, layer_idx: int):
        d, eps, std = config.n_embd, config.layer_norm_epsilon, config.initializer_range
        # HF scales the residual projections' init by 1/sqrt(2 n_layer).
        out_std = std / math.sqrt(2 * config.n_layer)
        k_qkv, k_proj, k_fc, k_out = jax.random.split(key, 4)
        scale = config.head_dim**-0.5 if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            scale /= float(layer_idx + 1)
        self.config = config
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.attn = nn.Attention(
            (k_qkv, k_proj),
            d,
            config.n_head,
            config.n_head,
            config.head_dim,
            names=("c_attn", "c_proj"),
            bias=True,
            out_bias=True,
            std=std,
            out_std=out_std,
            score_scale=scale,
            scale_query=False,
        )
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.mlp = GPT2MLP((k_fc, k_out), config, out_std)

    def __call__(self, x, mask, layer_cache, index, key, deterministic, extra=None):
        c = self.config
        dtype = c.compute_dtype
        keys = jax.random.split(key, 3) if key is not None else (None, None, None)
        h, new_layer_cache = self.attn(
            self.ln_1(x, dtype),
            mask,
            layer_cache,
            index,
            dtype,
            dropout_rate=c.attn_pdrop,
            dropout_key=keys[0],
            deterministic=deterministic,
        )
        x = x + nn.dropout(h, c.resid_pdrop, keys[1], deterministic)
        h = nn.mlp(
            self.mlp.c_fc, self.mlp.c_proj, c.activation_function, self.ln_2(x, dtype), dtype
        )
        return x + nn.dropout(h, c.resid_pdrop, keys[2], deterministic), new_layer_cache


class GPT2Model(nnx.Module):
    def __init__(self, key, config: GPT2Config):
        d, std = config.n_embd, config.initializer_range
        k_wte, k_wpe, k_h = jax.random.split(key, 3)
        self.wte = nn.Embed(k_wte, config.vocab_size, d, std=std)
        self.wpe = nn.Embed(k_wpe, config.n_positions, d, std=std)
        self.h = nn.layer_dict(
            lambda i: GPT2Block(jax.random.fold_in(k_h, i), config, i), config.n_layer
        )
        self.ln_f = nn.LayerNorm(d, eps=config.layer_norm_epsilon)


class GPT2(decoder.CausalLM):
    """``GPT2LMHeadModel``: the transformer and the head tied to ``wte``; its output before the
    head is ``ln_f``'s."""

    def __init__(self, config: GPT2Config, key):
        self.config = config
        self.transformer = GPT2Model(key, config)

    def embed(self, input_ids_BxL, position_ids_BxL, dtype, dropout_key, deterministic):
        t = self.transformer
        x = t.wte(input_ids_BxL, dtype) + t.wpe(jnp.maximum(position_ids_BxL, 0), dtype)
        embed_key = layers_key = None
        if not deterministic:
            embed_key, layers_key = jax.random.split(dropout_key)
        return nn.dropout(x, self.config.embd_pdrop, embed_key, deterministic), layers_key, None

    def layers(self):
        return self.transformer.h

    def final(self, x, dtype):
        return self.transformer.ln_f(x, dtype)

    def logits(self, hidden_BxLxD):
        return self.transformer.wte.attend(hidden_BxLxD, self.config.compute_dtype)


# The tests' GPT-2: every structural path at a size that compiles in a fraction of a second.
TINY_FIELDS = dict(vocab_size=97, n_positions=40, n_embd=32, n_layer=2, n_head=4, n_inner=48)


def tiny_config(**overrides) -> GPT2Config:
    return GPT2Config(**{**TINY_FIELDS, **overrides})
