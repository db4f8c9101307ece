"""Beam search, greedy and ancestral decoding, each one compiled ``lax.while_loop``.

Semantics follow transformers v5's ``generate`` token for token (``_beam_search`` and ``_sample``
in ``transformers/generation/utils.py``, the processors in ``logits_process.py``):

- ``beam``: beam search (``beam.py``); ``sampling``: greedy and ancestral sampling
  (``sampling.py``); ``processors``: repetition penalty, no-repeat n-grams, EOS blocked before
  ``min_new_tokens``, ``suppress_tokens``, then temperature, top-k and top-p for sampling;
  ``loop``: the model protocol, prefill and one-token steps, and the one compiled-or-debug loop
  scaffold both decoders are built with; ``strategy``: ``continue_blocks``, the pipeline's entry.

One deliberate difference: left padding is not "a token present in the sequence" here, so the
repetition penalty and n-gram ban ignore padded slots (transformers counts the pad id as seen).
Without padding, and for the paper's fixed 64-token blocks, the two agree exactly.

The model is anything with the ``LanguageModel`` interface: a prefill and one-token steps through
the same ``next_logits`` on a fixed-length KV cache. A model may share the prompt between beams
(``fork_cache``) and reorder only what is its own (``reorder_cache``); otherwise every array leaf
of the cache is batch-major, copied per beam and gathered with a ``jax.tree.map``.
``causal_lm(config)`` (``collapse_jax.families.lm.opt_cache``; ``opt_model`` is its old name)
adapts OPT, GPT-2 and Llama configs, whose ``KVCache`` does the former.
"""

from collapse_jax.families.lm.decode.beam import BeamOutput, BeamState, beam_search, top_k
from collapse_jax.families.lm.decode.loop import LanguageModel, Settings
from collapse_jax.families.lm.decode.processors import process, warp
from collapse_jax.families.lm.decode.sampling import (
    SampleOutput,
    SampleState,
    greedy,
    row_keys,
    sample,
)
from collapse_jax.families.lm.decode.strategy import STRATEGIES, continue_blocks, validate
from collapse_jax.families.lm.opt_cache import CausalLM, OPTModel, causal_lm, opt_model

__all__ = [
    "STRATEGIES",
    "BeamOutput",
    "BeamState",
    "CausalLM",
    "LanguageModel",
    "OPTModel",
    "SampleOutput",
    "SampleState",
    "Settings",
    "beam_search",
    "causal_lm",
    "continue_blocks",
    "greedy",
    "opt_model",
    "process",
    "row_keys",
    "sample",
    "top_k",
    "validate",
    "warp",
]
