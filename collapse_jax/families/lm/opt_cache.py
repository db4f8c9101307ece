"""OPT in decoding mode: the decoders' ``LanguageModel`` over ``opt.py``'s fixed-length KV cache.

The model (``opt.py``: parameters, forward, ``KVCache``), this adapter and the decoding loops
(``decode/``) are three modules, as penzai's ``models/transformer`` splits ``model_parts.py``,
``sampling_mode.py`` and ``simple_decoding_loop.py``: the loops know only the
``decode.LanguageModel`` protocol, and never import a concrete model.
"""

from __future__ import annotations

import dataclasses

from collapse_jax.families.lm import opt


@dataclasses.dataclass(frozen=True)
class OPTModel:
    """``decode.LanguageModel`` for an ``opt.OPTConfig`` (hashable through the frozen config)."""

    config: opt.OPTConfig

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def max_positions(self) -> int:
        return self.config.max_position_embeddings

    @property
    def eos_token_id(self) -> int:
        return self.config.eos_token_id

    @property
    def pad_token_id(self) -> int:
        return self.config.pad_token_id

    def next_logits(self, params, input_ids_BxL, attention_mask_BxT, position_ids_BxL, cache):
        hidden_BxLxD, cache = opt.hidden_states(
            params,
            self.config,
            input_ids_BxL,
            attention_mask_BxT,
            position_ids_BxL=position_ids_BxL,
            cache=cache,
        )
        # The LM head on the last position only: a 64-token prefill of 128 prompts would
        # otherwise materialise 1.6 GB of OPT-125m logits to keep 1/64 of them.
        return opt.lm_logits(params, self.config, hidden_BxLxD[:, -1:])[:, 0], cache

    def init_cache(self, batch_size: int, max_length: int) -> opt.KVCache:
        return opt.init_cache(self.config, batch_size, max_length)

    def fork_cache(self, cache: opt.KVCache, rows: int, max_length: int) -> opt.KVCache:
        return cache.fork(rows, max_length)

    def reorder_cache(self, cache: opt.KVCache, indices_R) -> opt.KVCache:
        return cache.gather(indices_R)


def opt_model(config: opt.OPTConfig) -> OPTModel:
    """The decoders' view of an OPT config."""
    return OPTModel(config)
