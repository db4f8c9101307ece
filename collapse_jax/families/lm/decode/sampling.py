"""Greedy and ancestral decoding as one compiled ``lax.while_loop``, as transformers v5's ``_sample``.

The processors see the raw logits; sampling then warps them (temperature, top-k, top-p) and
draws. Each prompt row has its own key and step t of a row draws with ``fold_in(row key, t)``, so
a row's continuation does not depend on the batch it was decoded in.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from collapse_jax.families.lm.decode import loop
from collapse_jax.families.lm.decode.loop import LanguageModel, Settings
from collapse_jax.families.lm.decode.processors import process, warp


@flax.struct.dataclass
class SampleState:
    """Loop state of greedy and ancestral decoding."""

    step: jax.Array
    tokens_BxN: jax.Array
    finished_B: jax.Array
    lengths_B: jax.Array
    cache: Any
    done: jax.Array


@flax.struct.dataclass
class SampleOutput:
    tokens_BxN: jax.Array  # padded with the pad id after EOS
    lengths_B: jax.Array  # new tokens including the EOS, if any


def _select(model, prompt_ids_BxL, prompt_mask_BxL, keys_B, s: Settings, state, logits_BxV):
    """Processors on the raw logits, then argmax or a draw from the warped distribution."""
    N = state.tokens_BxN.shape[1]
    t = state.step
    eos, pad = model.eos_token_id, model.pad_token_id
    scores_BxV = process(logits_BxV, prompt_ids_BxL, prompt_mask_BxL, state.tokens_BxN, t, s, eos)
    if s.greedy:
        next_B = jnp.argmax(scores_BxV, axis=-1)
    else:
        step_keys_B = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys_B, t)
        next_B = jax.vmap(jax.random.categorical)(step_keys_B, warp(scores_BxV, s))
    next_B = jnp.where(state.finished_B, pad, next_B.astype(jnp.int32))
    finished_B = state.finished_B | (next_B == eos)
    return state.replace(
        step=t + 1,
        tokens_BxN=jnp.where((jnp.arange(N) == t)[None], next_B[:, None], state.tokens_BxN),
        lengths_B=state.lengths_B + (~state.finished_B).astype(jnp.int32),
        finished_B=finished_B,
        done=jnp.all(finished_B) | (t + 1 >= N),
    )


def _start(model, params, prompt_ids_BxL, prompt_mask_BxL, keys_B, s: Settings) -> SampleState:
    B, N = prompt_ids_BxL.shape[0], s.max_new_tokens
    logits_BxV, cache = loop.prefill(model, params, prompt_ids_BxL, prompt_mask_BxL, N, 1)
    state = SampleState(
        step=jnp.int32(0),
        tokens_BxN=jnp.full((B, N), model.pad_token_id, jnp.int32),
        finished_B=jnp.zeros((B,), bool),
        lengths_B=jnp.zeros((B,), jnp.int32),
        cache=cache,
        done=jnp.bool_(False),
    )
    return _select(model, prompt_ids_BxL, prompt_mask_BxL, keys_B, s, state, logits_BxV)


def _body(model, params, prompt_ids_BxL, prompt_mask_BxL, keys_B, s: Settings, state):
    last_B = jax.lax.dynamic_index_in_dim(state.tokens_BxN, state.step - 1, 1, keepdims=False)
    logits_BxV, cache = loop.step_logits(
        model, params, last_B, state.step, prompt_mask_BxL, state.cache, 1, s.max_new_tokens
    )
    state = state.replace(cache=cache)
    return _select(model, prompt_ids_BxL, prompt_mask_BxL, keys_B, s, state, logits_BxV)


def _output(state: SampleState) -> SampleOutput:
    return SampleOutput(tokens_BxN=state.tokens_BxN, lengths_B=state.lengths_B)


_run = loop.decoder(_start, _body, _output)


def row_keys(key: jax.Array, first_row: int, rows: int) -> jax.Array:
    """The keys of prompt rows ``first_row .. first_row + rows - 1``: ``fold_in(key, row)``."""
    index_B = jnp.arange(first_row, first_row + rows, dtype=jnp.uint32)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index_B)


def greedy(
    model: LanguageModel,
    params,
    prompt_ids_BxL,
    prompt_mask_BxL=None,
    *,
    max_new_tokens: int,
    min_new_tokens: int = 0,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    suppress_tokens: tuple[int, ...] = (),
    debug: bool = False,
) -> SampleOutput:
    """Greedy decoding, as ``generate(num_beams=1, do_sample=False)``."""
    s = loop.settings(
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        suppress_tokens=suppress_tokens,
        greedy=True,
    )
    return _run(model, params, prompt_ids_BxL, prompt_mask_BxL, None, s, debug)


def sample(
    model: LanguageModel,
    params,
    prompt_ids_BxL,
    prompt_mask_BxL=None,
    *,
    key: jax.Array,
    max_new_tokens: int,
    min_new_tokens: int = 0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    suppress_tokens: tuple[int, ...] = (),
    first_row: int = 0,
    debug: bool = False,
) -> SampleOutput:
    """Ancestral sampling, as ``generate(do_sample=True, ...)``; row b of the batch draws with
    ``row_keys(key, first_row, B)[b]`` (so batches of one prompt list can share ``key``)."""
    s = loop.settings(
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat_ngram_size,
        suppress_tokens=suppress_tokens,
        greedy=False,
        temperature=float(temperature),
        top_k=top_k,
        top_p=float(top_p),
    )
    keys_B = row_keys(key, first_row, len(prompt_ids_BxL))
    return _run(model, params, prompt_ids_BxL, prompt_mask_BxL, keys_B, s, debug)
