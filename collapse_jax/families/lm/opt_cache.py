"""Any of the LMs in decoding mode: the decoders' ``LanguageModel`` over ``nn.py``'s
fixed-length KV cache.

The model (``opt.py``, ``gpt2.py``, ``llama.py`` on ``nn.py``: parameters, forward, ``KVCache``),
this adapter and the decoding loops (``decode/``) are three modules, as penzai's
``models/transformer`` splits ``model_parts.py``, ``sampling_mode.py`` and
``simple_decoding_loop.py``: the loops know only the ``decode.LanguageModel`` protocol, and never
import a concrete model. (The file keeps its first name, from when OPT was the only model.)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from collapse_jax.families.lm import nn


@dataclasses.dataclass(frozen=True)
class CausalLM:
    """``decode.LanguageModel`` for an OPT, GPT-2 or Llama config (hashable through the frozen
    config). A config without a pad id (GPT-2, most Llamas) pads with its EOS id, as
    transformers' ``generate`` does."""

    config: Any

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def max_positions(self) -> int:
        return self.config.max_positions

    @property
    def eos_token_id(self) -> int:
        return self.config.eos_token_id

    @property
    def pad_token_id(self) -> int:
        pad = self.config.pad_token_id
        return self.config.eos_token_id if pad is None else pad

    def next_logits(self, params, input_ids_BxL, attention_mask_BxT, position_ids_BxL, cache):
        model = nn.bind(params, self.config)
        hidden_BxLxD, cache = model(input_ids_BxL, attention_mask_BxT, position_ids_BxL, cache)
        # The LM head on the last position only: a 64-token prefill of 128 prompts would
        # otherwise materialise 1.6 GB of OPT-125m logits to keep 1/64 of them.
        return model.logits(hidden_BxLxD[:, -1:])[:, 0], cache

    def init_cache(self, batch_size: int, max_length: int) -> nn.KVCache:
        return nn.init_cache(self.config, batch_size, max_length)

    def fork_cache(self, cache: nn.KVCache, rows: int, max_length: int) -> nn.KVCache:
        return cache.fork(rows, max_length)

    def reorder_cache(self, cache: nn.KVCache, indices_R) -> nn.KVCache:
        return cache.gather(indices_R)


def causal_lm(config) -> CausalLM:
    """The decoders' view of a model config."""
    return CausalLM(config)


# The names from when OPT was the only model.
OPTModel = CausalLM
opt_model = causal_lm
