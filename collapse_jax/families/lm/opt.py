"""OPT (Zhang et al. 2022) as ``flax.nnx`` modules built from the shared blocks of ``nn.py``.

The parameter tree (``nn.init_params``: ``nnx.to_pure_dict`` of the module's parameters) mirrors
the Hugging Face names so that ``convert.py`` is a flat key table:

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
attention probabilities, after ``out_proj`` and after ``fc2``. The initialisation draws the same
numbers as the pure-function port this module replaced (one key per table, six per layer).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
from flax import nnx

from collapse_jax import errors
from collapse_jax.families.lm import decoder, nn

Params = dict[str, Any]

# OPT's learned position table has two extra leading rows (a fairseq padding_idx artefact).
POSITION_OFFSET = 2


@dataclasses.dataclass(frozen=True)
class OPTConfig(decoder.HFConfig):
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

    architecture: ClassVar[str] = "opt"
    hf_class: ClassVar[str] = "OPTForCausalLM"

    def __post_init__(self):
        errors.require(
            self.hidden_size % self.num_attention_heads == 0,
            "opt.hidden_size",
            f"a multiple of num_attention_heads={self.num_attention_heads}",
            self.hidden_size,
        )
        self.check_names()

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
    def num_kv_heads(self) -> int:
        return self.num_attention_heads

    def build(self, key) -> OPT:
        return OPT(self, key)

    @classmethod
    def from_hf(cls, hf_config, dtype: str = "float32") -> OPTConfig:
        """From a ``transformers.OPTConfig`` or its ``config.json`` dict."""
        d = cls.hf_dict(hf_config)
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
        kw = cls.read_fields(d, skip=("remove_final_layer_norm",))
        if d.get("word_embed_proj_dim") is None:
            kw["word_embed_proj_dim"] = kw["hidden_size"]
        kw["remove_final_layer_norm"] = bool(d.get("_remove_final_layer_norm", False))
        return cls(**kw, dtype=dtype)

    def hf_extra(self, d: dict) -> dict:
        d["_remove_final_layer_norm"] = d.pop("remove_final_layer_norm")
        return dict(layerdrop=0.0, tie_word_embeddings=True, use_cache=True)


KVCache = nn.KVCache


class OPTDecoderLayer(nnx.Module):
    """One OPT block: attention and the fc1/fc2 feed-forward, each with its residual, layer
    norms before (``do_layer_norm_before``, 125m) or after (350m) them."""

    def __init__(self, key, config: OPTConfig):
        d, b, std = config.hidden_size, config.enable_bias, config.init_std
        kq, kk, kv, ko, k1, k2 = jax.random.split(key, 6)
        affine = config.layer_norm_elementwise_affine
        self.config = config
        self.self_attn = nn.Attention(
            (kq, kk, kv, ko),
            d,
            config.num_attention_heads,
            config.num_attention_heads,
            config.head_dim,
            names=("q_proj", "k_proj", "v_proj", "out_proj"),
            bias=b,
            out_bias=b,
            std=std,
            out_std=std,
            score_scale=config.head_dim**-0.5,
            scale_query=True,  # HF scales q after its bias; the order matters at 1e-5
        )
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=1e-5, affine=affine)
        self.fc1 = nn.Dense(k1, d, config.ffn_dim, bias=b, std=std)
        self.fc2 = nn.Dense(k2, config.ffn_dim, d, bias=b, std=std)
        self.final_layer_norm = nn.LayerNorm(d, eps=1e-5, affine=affine)

    def __call__(self, x, mask, layer_cache, index, key, deterministic, extra=None):
        c = self.config
        dtype = c.compute_dtype
        keys = jax.random.split(key, 3) if key is not None else (None, None, None)
        residual = x
        if c.do_layer_norm_before:
            x = self.self_attn_layer_norm(x, dtype)
        x, new_layer_cache = self.self_attn(
            x,
            mask,
            layer_cache,
            index,
            dtype,
            dropout_rate=c.attention_dropout,
            dropout_key=keys[0],
            deterministic=deterministic,
        )
        x = residual + nn.dropout(x, c.dropout, keys[1], deterministic)
        if not c.do_layer_norm_before:
            x = self.self_attn_layer_norm(x, dtype)
        residual = x
        if c.do_layer_norm_before:
            x = self.final_layer_norm(x, dtype)
        x = nn.mlp(self.fc1, self.fc2, c.activation_function, x, dtype)
        x = residual + nn.dropout(x, c.dropout, keys[2], deterministic)
        if not c.do_layer_norm_before:
            x = self.final_layer_norm(x, dtype)
        return x, new_layer_cache


class OPTDecoder(nnx.Module):
    """HF's ``OPTDecoder``: embeddings (tokens, positions with the +2 offset, optional
    project_in/out), the layers and the optional final layer norm."""

    def __init__(self, key, config: OPTConfig):
        d, dw, std = config.hidden_size, config.word_embed_proj_dim, config.init_std
        k_tok, k_pos, k_in, k_out, k_layers = jax.random.split(key, 5)
        self.config = config
        self.embed_tokens = nn.Embed(
            k_tok, config.vocab_size, dw, std=std, zero_row=config.pad_token_id
        )
        n_pos = config.max_position_embeddings + POSITION_OFFSET
        self.embed_positions = nn.Embed(k_pos, n_pos, d, std=std)
        proj = config.has_projections
        self.project_in = nn.Dense(k_in, dw, d, bias=False, std=std) if proj else None
        self.project_out = nn.Dense(k_out, d, dw, bias=False, std=std) if proj else None
        affine = config.layer_norm_elementwise_affine
        self.final_layer_norm = (
            nn.LayerNorm(d, eps=1e-5, affine=affine) if config.has_final_layer_norm else None
        )
        self.layers = nn.layer_dict(
            lambda i: OPTDecoderLayer(jax.random.fold_in(k_layers, i), config),
            config.num_hidden_layers,
        )


class OPT(decoder.CausalLM):
    """``OPTForCausalLM``: the decoder and the tied LM head (the token embedding). Its output
    before the head is (B, L, word_embed_proj_dim)."""

    def __init__(self, config: OPTConfig, key):
        self.config = config
        self.decoder = OPTDecoder(key, config)

    def embed(self, input_ids_BxL, position_ids_BxL, dtype, dropout_key, deterministic):
        dec = self.decoder
        tokens = dec.embed_tokens(input_ids_BxL, dtype)
        if dec.project_in is not None:
            tokens = dec.project_in(tokens, dtype)
        x = tokens + dec.embed_positions(position_ids_BxL + POSITION_OFFSET, dtype)
        return x, dropout_key, None

    def layers(self):
        return self.decoder.layers

    def final(self, x, dtype):
        dec = self.decoder
        if dec.final_layer_norm is not None:
            x = dec.final_layer_norm(x, dtype)
        if dec.project_out is not None:
            x = dec.project_out(x, dtype)
        return x

    def logits(self, hidden_BxLxW):
        """The tied LM head: float32 logits (B, L, V)."""
        return self.decoder.embed_tokens.attend(hidden_BxLxW, self.config.compute_dtype)


# The functional API every architecture shares (nn.py), under the names opt.py always had.
init_params = nn.init_params
param_count = nn.param_count
hidden_states = nn.hidden_states
lm_logits = nn.lm_logits
forward = nn.forward
init_cache = nn.init_cache
default_position_ids = nn.default_position_ids


# ----------------------------------------------------------------------------------- tiny


# The tests' and quick benchmarks' OPT: every structural path of OPT-125m at a size that
# compiles and runs in a fraction of a second on a CPU.
TINY_FIELDS = dict(
    vocab_size=97,
    hidden_size=32,
    num_hidden_layers=2,
    ffn_dim=48,
    num_attention_heads=4,
    max_position_embeddings=40,
)


def tiny_config(**overrides) -> OPTConfig:
    """``TINY_FIELDS`` with ``overrides``; ``word_embed_proj_dim`` follows ``hidden_size`` unless
    given (no projections)."""
    fields = {**TINY_FIELDS, **overrides}
    fields.setdefault("word_embed_proj_dim", fields["hidden_size"])
    return OPTConfig(**fields)
