"""What every decoder shares: the model protocol, static settings, prefill and one-token steps
on a fixed-length KV cache, and the one compiled-or-debug loop scaffold."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax import errors


class LanguageModel(Protocol):
    """What the decoders need from a model; implementations must be hashable (they are static)."""

    vocab_size: int
    max_positions: int  # size of the position table: prompt length + new tokens must fit
    eos_token_id: int
    pad_token_id: int

    def next_logits(self, params, input_ids_BxL, attention_mask_BxT, position_ids_BxL, cache):
        """Write L tokens at ``cache.index``; return (float32 logits_BxV after the last, cache)."""

    def init_cache(self, batch_size: int, max_length: int):
        """An empty cache of ``max_length`` slots."""

    # Optional, for caches that share a prompt between rows (see opt_cache.OPTModel); without
    # them the decoders allocate prompt + new slots, copy the prefilled cache ``rows`` times and
    # reorder every batch-major leaf of it.
    #
    # def fork_cache(self, cache, rows: int, max_length: int):
    #     """A cache of B * rows rows that share the B prefilled rows as a read-only prefix,
    #     with ``max_length`` own slots after it."""
    #
    # def reorder_cache(self, cache, indices_R):
    #     """Rows ``indices_R`` of the own (not shared) slots."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Static decoding settings (transformers' names and defaults, except the paper's EOS block)."""

    max_new_tokens: int
    min_new_tokens: int = 0
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    suppress_tokens: tuple[int, ...] = ()  # ids never generated (transformers' suppress_tokens)
    # sampling only
    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


def settings(
    *,
    max_new_tokens: int,
    min_new_tokens: int = 0,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    suppress_tokens=(),
    **strategy,
) -> Settings:
    """``Settings`` from the arguments every strategy takes, plus the strategy's own, in canonical
    Python types so that equal settings make one static key (one compiled program)."""
    return Settings(
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        repetition_penalty=float(repetition_penalty),
        no_repeat_ngram_size=no_repeat_ngram_size,
        suppress_tokens=tuple(int(t) for t in suppress_tokens),
        **strategy,
    )


def check(model: LanguageModel, prompt_ids_BxL, prompt_mask_BxL, s: Settings) -> None:
    """One-line errors for settings transformers would reject, checked before tracing."""
    L = prompt_ids_BxL.shape[1]
    errors.require(
        L + s.max_new_tokens <= model.max_positions,
        "max_new_tokens",
        f"prompt length {L} + max_new_tokens <= max_position_embeddings {model.max_positions}",
        s.max_new_tokens,
    )
    errors.require(s.max_new_tokens >= 1, "max_new_tokens", ">= 1", s.max_new_tokens)
    errors.require(
        0 <= s.min_new_tokens <= s.max_new_tokens,
        "min_new_tokens",
        f"in [0, max_new_tokens={s.max_new_tokens}]",
        s.min_new_tokens,
    )
    errors.require(s.num_beams >= 1, "num_beams", ">= 1", s.num_beams)
    errors.require(
        s.early_stopping in (True, False, "never"),
        "early_stopping",
        'True, False or "never"',
        s.early_stopping,
    )
    errors.require(s.repetition_penalty > 0, "repetition_penalty", "> 0", s.repetition_penalty)
    errors.require(
        s.no_repeat_ngram_size >= 0, "no_repeat_ngram_size", ">= 0", s.no_repeat_ngram_size
    )
    errors.require(
        all(0 <= t < model.vocab_size for t in s.suppress_tokens)
        and len(set(s.suppress_tokens)) < model.vocab_size,
        "suppress_tokens",
        f"ids in [0, vocab_size={model.vocab_size}), at least one id left",
        s.suppress_tokens,
    )
    errors.require(s.temperature > 0, "temperature", "> 0", s.temperature)
    errors.require(s.top_k >= 0, "top_k", ">= 0", s.top_k)
    errors.require(0 < s.top_p <= 1, "top_p", "in (0, 1]", s.top_p)
    errors.require(
        prompt_mask_BxL.shape == prompt_ids_BxL.shape,
        "prompt_mask_BxL",
        f"shape {prompt_ids_BxL.shape}",
        prompt_mask_BxL.shape,
    )
    try:
        mask_BxL = np.asarray(prompt_mask_BxL)
    except jax.errors.TracerArrayConversionError:  # traced by a caller's jit: nothing to check
        return
    errors.require(
        bool(np.all(mask_BxL[:, -1] == 1) and np.all(np.diff(mask_BxL, axis=1) >= 0)),
        "prompt_mask_BxL",
        "left padding (0s then 1s in every row, at least one 1)",
        "another pattern",
    )


def cache_map(fn: Callable, cache):
    """Apply ``fn`` to the batch-major array leaves of a cache (not to scalar leaves like ``index``)."""
    return jax.tree.map(lambda x: fn(x) if jnp.ndim(x) > 0 else x, cache)


def reorder(model, cache, indices_R):
    """The cache rows of the beams kept, through the model's ``reorder_cache`` if it has one."""
    reorder_cache = getattr(model, "reorder_cache", None)
    if reorder_cache is not None:
        return reorder_cache(cache, indices_R)
    return cache_map(lambda x: jnp.take(x, indices_R, axis=0), cache)


def prefill(model, params, prompt_ids_BxL, prompt_mask_BxL, max_new_tokens: int, rows: int):
    """Run the prompt once, then give each of the ``rows`` copies of it room for the new tokens:
    (last logits_BxV, cache of B * rows rows). A model with ``fork_cache`` shares the prompt's
    keys and values between the copies; otherwise the cache is copied ``rows`` times."""
    B, L = prompt_ids_BxL.shape
    # transformers' positions: 0, 1, ... over real tokens, -1 on padding (masked anyway).
    positions_BxL = (jnp.cumsum(prompt_mask_BxL, axis=1) * prompt_mask_BxL - 1).astype(jnp.int32)
    fork = getattr(model, "fork_cache", None)
    if fork is not None:
        cache = model.init_cache(B, L)
        logits_BxV, cache = model.next_logits(
            params, prompt_ids_BxL, prompt_mask_BxL, positions_BxL, cache
        )
        return logits_BxV.astype(jnp.float32), fork(cache, rows, max_new_tokens)
    cache = model.init_cache(B, L + max_new_tokens)
    mask_BxT = jnp.concatenate(
        [prompt_mask_BxL, jnp.zeros((B, max_new_tokens), prompt_mask_BxL.dtype)], axis=1
    )
    logits_BxV, cache = model.next_logits(params, prompt_ids_BxL, mask_BxT, positions_BxL, cache)
    if rows > 1:
        cache = cache_map(lambda x: jnp.repeat(x, rows, axis=0), cache)
    return logits_BxV.astype(jnp.float32), cache


def step_logits(model, params, last_R, step, prompt_mask_BxL, cache, rows: int, max_new: int):
    """Feed token number ``step - 1`` of every row (slot L + step - 1): (logits_RxV, cache)."""
    B = prompt_mask_BxL.shape[0]
    mask_BxL = jnp.repeat(prompt_mask_BxL, rows, axis=0)
    new_N = (jnp.arange(max_new) < step).astype(mask_BxL.dtype)
    mask_RxT = jnp.concatenate([mask_BxL, jnp.broadcast_to(new_N, (B * rows, max_new))], axis=1)
    positions_R = jnp.sum(mask_BxL, axis=1).astype(jnp.int32) + step - 1
    logits_RxV, cache = model.next_logits(
        params, last_R[:, None], mask_RxT, positions_R[:, None], cache
    )
    return logits_RxV.astype(jnp.float32), cache


_STATIC = ("model", "s")


def decoder(start: Callable, body: Callable, output: Callable) -> Callable:
    """The entry of a decoder given as pure pieces over a loop state with a ``done`` flag:

        start(model, params, prompt_ids_BxL, prompt_mask_BxL, aux, s) -> state
        body(model, params, prompt_ids_BxL, prompt_mask_BxL, aux, s, state) -> state
        output(state) -> result

    (``aux``: any pytree the pieces need, e.g. the sampling keys). The entry
    ``run(model, params, prompt_ids_BxL, prompt_mask_BxL, aux, s, debug)`` checks the settings,
    then runs one ``lax.while_loop`` under jit, or with ``debug`` the same start and body driven
    from Python one step at a time (each step jitted: op-by-op dispatch of a decoder step is
    ~100x slower; ``jax.debug.print`` works either way).
    """

    @functools.partial(jax.jit, static_argnames=_STATIC)
    def compiled(model, params, prompt_ids_BxL, prompt_mask_BxL, aux, s):
        state = start(model, params, prompt_ids_BxL, prompt_mask_BxL, aux, s)
        step = functools.partial(body, model, params, prompt_ids_BxL, prompt_mask_BxL, aux, s)
        return output(jax.lax.while_loop(lambda st: ~st.done, step, state))

    start_jit = jax.jit(start, static_argnames=_STATIC)
    body_jit = jax.jit(body, static_argnames=_STATIC)

    def debug_loop(model, params, prompt_ids_BxL, prompt_mask_BxL, aux, s):
        state = start_jit(model, params, prompt_ids_BxL, prompt_mask_BxL, aux, s)
        while not bool(state.done):
            state = body_jit(model, params, prompt_ids_BxL, prompt_mask_BxL, aux, s, state)
        return output(state)

    def run(model, params, prompt_ids_BxL, prompt_mask_BxL, aux, s: Settings, debug: bool):
        prompt_ids_BxL = jnp.asarray(prompt_ids_BxL, jnp.int32)
        if prompt_mask_BxL is None:
            prompt_mask_BxL = jnp.ones_like(prompt_ids_BxL)
        prompt_mask_BxL = jnp.asarray(prompt_mask_BxL, jnp.int32)
        check(model, prompt_ids_BxL, prompt_mask_BxL, s)
        fn = debug_loop if debug else compiled
        return fn(model, params, prompt_ids_BxL, prompt_mask_BxL, aux, s)

    return run
