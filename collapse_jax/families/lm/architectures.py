"""The LM architectures by name: OPT, GPT-2 and the Llama architecture.

``lm.architecture`` (a scratch model) or a checkpoint's ``config.json`` ``model_type`` picks one;
everything else (fine-tuning, perplexity, the decoders, the chain) works through the shared
functional API of ``nn.py`` on any of them.
"""

from __future__ import annotations

from collapse_jax import errors
from collapse_jax.families.lm import gpt2, llama, opt

CONFIGS = {"opt": opt.OPTConfig, "gpt2": gpt2.GPT2Config, "llama": llama.LlamaConfig}
NAMES = tuple(CONFIGS)


def config_from_hf(hf_config, dtype: str = "float32", source: str = "config.json"):
    """The config of a transformers config (object or ``config.json`` dict), by ``model_type``."""
    d = hf_config if isinstance(hf_config, dict) else hf_config.to_dict()
    kind = d.get("model_type")
    if kind not in CONFIGS:
        raise errors.DataError(f"{source}: model_type: expected one of {NAMES}, got {kind!r}")
    return CONFIGS[kind].from_hf(d, dtype=dtype)


# cfg.lm.scratch field -> the fields of each architecture's config it sets.
SCRATCH_FIELDS = {
    "opt": {
        "hidden_size": ("hidden_size", "word_embed_proj_dim"),
        "num_hidden_layers": ("num_hidden_layers",),
        "ffn_dim": ("ffn_dim",),
        "num_attention_heads": ("num_attention_heads",),
        "max_position_embeddings": ("max_position_embeddings",),
        "dropout": ("dropout",),
        "attention_dropout": ("attention_dropout",),
    },
    "gpt2": {
        "hidden_size": ("n_embd",),
        "num_hidden_layers": ("n_layer",),
        "ffn_dim": ("n_inner",),
        "num_attention_heads": ("n_head",),
        "max_position_embeddings": ("n_positions",),
        "dropout": ("resid_pdrop", "embd_pdrop"),
        "attention_dropout": ("attn_pdrop",),
    },
    "llama": {
        "hidden_size": ("hidden_size",),
        "num_hidden_layers": ("num_hidden_layers",),
        "ffn_dim": ("intermediate_size",),
        "num_attention_heads": ("num_attention_heads",),
        "num_key_value_heads": ("num_key_value_heads",),
        "max_position_embeddings": ("max_position_embeddings",),
        "attention_dropout": ("attention_dropout",),
        "tie_word_embeddings": ("tie_word_embeddings",),
    },
}


def scratch_config(lm_cfg, vocab_size: int, special_ids: dict):
    """A randomly initialised model's config from ``cfg.lm`` (``lm.architecture``, ``lm.scratch``,
    ``lm.dtype``); ``special_ids``: the tokenizer's ``pad_token_id``/``bos_token_id``/
    ``eos_token_id``, which the model must share."""
    kind, s = lm_cfg.architecture, lm_cfg.scratch
    errors.require(kind in CONFIGS, "lm.architecture", f"one of {NAMES}", kind)
    fields = {name: s[key] for key, names in SCRATCH_FIELDS[kind].items() for name in names}
    if kind == "llama":
        errors.require(
            s.hidden_size % s.num_attention_heads == 0,
            "lm.scratch.hidden_size",
            f"a multiple of num_attention_heads={s.num_attention_heads}",
            s.hidden_size,
        )
        fields.update(
            head_dim=s.hidden_size // s.num_attention_heads,
            initializer_range=0.02,
            rms_norm_eps=1e-5,
            rope_theta=float(s.rope_theta),
        )
    return CONFIGS[kind](vocab_size=vocab_size, dtype=lm_cfg.dtype, **fields, **special_ids)
