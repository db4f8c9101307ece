"""Beam search, greedy and ancestral decoding as one compiled ``lax.while_loop`` each.

Semantics follow transformers v5's ``generate`` token for token (``_beam_search`` and ``_sample`` in
``transformers/generation/utils.py`` and the logits processors in ``logits_process.py``):

- beam search keeps the top ``2W`` of the ``W * V`` continuations each step; a continuation ending
  in EOS (or reaching ``max_new_tokens``) is a finished hypothesis only if it ranks in the top ``W``;
  its score is ``sum log p / num_generated_tokens ** length_penalty`` (the prompt does not count);
  ``early_stopping`` is ``True`` / ``False`` / ``"never"`` with transformers' stopping heuristics;
- logits processors see the log-softmaxed scores in beam search and the raw logits in greedy and
  sampling (as in transformers): repetition penalty (over every token of the sequence so far,
  prompt included), no-repeat n-grams, EOS blocked before ``min_new_tokens``; sampling then applies
  temperature, top-k and top-p in that order.

One deliberate difference: left padding is not "a token present in the sequence" here, so the
repetition penalty and n-gram ban ignore padded slots (transformers counts the pad id as seen).
Without padding, and for the paper's fixed 64-token blocks, the two agree exactly.

The model is anything with the ``LanguageModel`` interface: a prefill and one-token steps through
the same ``next_logits`` on a fixed-length KV cache. A model may share the prompt between beams
(``fork_cache``) and reorder only what is its own (``reorder_cache``); otherwise every array leaf
of the cache is batch-major, copied per beam and gathered with a ``jax.tree.map``.
``opt_model(config)`` adapts ``collapse_jax.families.lm.opt``, whose ``KVCache`` does the former.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, Protocol

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from collapse_jax import errors

# transformers masks beams with this additive constant (not -inf) so that sums stay finite; the
# same constant keeps near-ties and float32 rounding identical to theirs.
_NEG = -1.0e9


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

    # Optional, for caches that share a prompt between rows (see OPTModel); without them the
    # decoders allocate prompt + new slots, copy the prefilled cache ``rows`` times and reorder
    # every batch-major leaf of it.
    #
    # def fork_cache(self, cache, rows: int, max_length: int):
    #     """A cache of B * rows rows that share the B prefilled rows as a read-only prefix,
    #     with ``max_length`` own slots after it."""
    #
    # def reorder_cache(self, cache, indices_R):
    #     """Rows ``indices_R`` of the own (not shared) slots."""


@dataclasses.dataclass(frozen=True)
class OPTModel:
    """``LanguageModel`` adapter for ``collapse_jax.families.lm.opt`` (hashable through its frozen config)."""

    config: Any

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
        from collapse_jax.families.lm import opt

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

    def init_cache(self, batch_size: int, max_length: int):
        from collapse_jax.families.lm import opt

        return opt.init_cache(self.config, batch_size, max_length)

    def fork_cache(self, cache, rows: int, max_length: int):
        return cache.fork(rows, max_length)

    def reorder_cache(self, cache, indices_R):
        return cache.gather(indices_R)


def opt_model(config) -> OPTModel:
    """The decoders' view of an OPT config."""
    return OPTModel(config)


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
    # sampling only
    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


@flax.struct.dataclass
class BeamState:
    """Loop state of beam search; ``step`` = number of new tokens already chosen."""

    step: jax.Array  # int32 scalar
    running_tokens_BxWxN: jax.Array
    running_scores_BxW: jax.Array  # summed log-probs of the live beams, best first
    cache: Any  # batch axis B*W
    finished_tokens_BxWxN: jax.Array
    finished_scores_BxW: jax.Array  # length-penalised scores, best first (-1e9: empty slot)
    finished_lengths_BxW: jax.Array
    finished_BxW: jax.Array  # is_sent_finished: slot holds a real hypothesis
    improvable_B: jax.Array  # transformers' is_early_stop_heuristic_unsatisfied
    done: jax.Array  # bool scalar


@flax.struct.dataclass
class BeamOutput:
    """Best hypothesis per prompt (``tokens_BxN`` padded with the pad id after its end) and all W."""

    tokens_BxN: jax.Array
    scores_B: jax.Array  # transformers' sequences_scores
    lengths_B: jax.Array  # new tokens including the EOS, if any
    beam_tokens_BxWxN: jax.Array
    beam_scores_BxW: jax.Array
    beam_lengths_BxW: jax.Array


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


# ----------------------------------------------------------------------------- shared pieces


def _check(model: LanguageModel, prompt_ids_BxL, prompt_mask_BxL, s: Settings) -> None:
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


def _cache_map(fn: Callable, cache):
    """Apply ``fn`` to the batch-major array leaves of a cache (not to scalar leaves like ``index``)."""
    return jax.tree.map(lambda x: fn(x) if jnp.ndim(x) > 0 else x, cache)


def _reorder(model, cache, indices_R):
    """The cache rows of the beams kept, through the model's ``reorder_cache`` if it has one."""
    reorder = getattr(model, "reorder_cache", None)
    if reorder is not None:
        return reorder(cache, indices_R)
    return _cache_map(lambda x: jnp.take(x, indices_R, axis=0), cache)


def _prefill(model, params, prompt_ids_BxL, prompt_mask_BxL, max_new_tokens: int, rows: int):
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
        cache = _cache_map(lambda x: jnp.repeat(x, rows, axis=0), cache)
    return logits_BxV.astype(jnp.float32), cache


def _step_logits(model, params, last_R, step, prompt_mask_BxL, cache, rows: int, max_new: int):
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


def _process(scores_RxV, prompt_RxL, prompt_mask_RxL, new_RxN, step, s: Settings, eos: int):
    """transformers' logits processors: repetition penalty, no-repeat n-grams, min new tokens."""
    R, V = scores_RxV.shape
    L = prompt_RxL.shape[1]
    N = new_RxN.shape[1]
    tokens_RxS = jnp.concatenate([prompt_RxL, new_RxN], axis=1)
    valid_RxS = jnp.concatenate(
        [prompt_mask_RxL.astype(bool), jnp.broadcast_to(jnp.arange(N) < step, (R, N))], axis=1
    )
    rows_Rx1 = jnp.arange(R)[:, None]
    if s.repetition_penalty != 1.0:
        # Invalid slots scatter into a spare column V, dropped afterwards (as transformers does).
        seen_RxV = (
            jnp.zeros((R, V + 1), bool).at[rows_Rx1, jnp.where(valid_RxS, tokens_RxS, V)].set(True)
        )[:, :V]
        p = s.repetition_penalty
        penalised = jnp.where(scores_RxV < 0, scores_RxV * p, scores_RxV / p)
        scores_RxV = jnp.where(seen_RxV, penalised, scores_RxV)
    n = s.no_repeat_ngram_size
    if n > 0:
        S = L + N
        if n > S:
            return _block_eos(scores_RxV, step, s, eos)
        # A window (n-gram) at slots [i, i+n) bans its last token when its first n-1 tokens equal
        # the current suffix; windows and the suffix must lie in real (unpadded) slots.
        end = L + step  # slots [0, end) are filled
        windows_RxIxn = jnp.stack([tokens_RxS[:, k : S - n + 1 + k] for k in range(n)], axis=-1)
        starts_I = jnp.arange(S - n + 1)
        first_real_R = L - jnp.sum(prompt_mask_RxL.astype(jnp.int32), axis=1)
        window_ok_RxI = (starts_I[None] >= first_real_R[:, None]) & (starts_I[None] + n <= end)
        suffix_Rxm = jax.lax.dynamic_slice_in_dim(
            tokens_RxS, jnp.maximum(end - (n - 1), 0), n - 1, 1
        )
        suffix_ok_R = end - (n - 1) >= first_real_R
        match_RxI = jnp.all(windows_RxIxn[..., :-1] == suffix_Rxm[:, None, :], axis=-1)
        match_RxI = match_RxI & window_ok_RxI & suffix_ok_R[:, None]
        banned_RxV = (
            jnp.zeros((R, V + 1), bool)
            .at[rows_Rx1, jnp.where(match_RxI, windows_RxIxn[..., -1], V)]
            .set(True)
        )[:, :V]
        scores_RxV = jnp.where(banned_RxV, -jnp.inf, scores_RxV)
    return _block_eos(scores_RxV, step, s, eos)


def _block_eos(scores_RxV, step, s: Settings, eos: int):
    if s.min_new_tokens == 0:
        return scores_RxV
    block_1xV = ((jnp.arange(scores_RxV.shape[1]) == eos) & (step < s.min_new_tokens))[None]
    return jnp.where(block_1xV, -jnp.inf, scores_RxV)


# ----------------------------------------------------------------------------- beam search


def _length_table(s: Settings) -> np.ndarray:
    """``n ** length_penalty`` for n in [0, N], computed in float64 then rounded, as torch does."""
    n = np.arange(s.max_new_tokens + 1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return (n**s.length_penalty).astype(np.float32)


def top_k(x, k: int):
    """``jax.lax.top_k(x, k)`` over the last axis, exactly (ties included), in two stages.

    The last axis is cut into chunks of ``c`` (about ``sqrt(n / k)``; the tail is padded with
    -inf); the top k chunks by their maximum are gathered in index order and ``lax.top_k`` runs
    on those ``k * c`` candidates. Exact under top_k's order (larger first, lower index first
    among equals): each of the k best elements lies in a chunk whose best element ranks at
    least as high, and a chunk outside the top k is outranked by the best elements of k other
    chunks. On XLA:CPU ``lax.top_k`` costs about 1.5 ns per element, so beam search's
    5 x 8192 candidates per prompt took a sixth of a decoding step; this reads them once for the
    chunk maxima and sorts 2 * sqrt(n * k) of them.
    """
    n = x.shape[-1]
    c = 1 << max(0, round(np.log2(np.sqrt(n / k))))
    nc = -(-n // c)
    if nc <= k or k * c >= n // 2:  # too small to gain
        return jax.lax.top_k(x, k)
    lead = x.shape[:-1]
    if nc * c > n:
        pad = [(0, 0)] * len(lead) + [(0, nc * c - n)]
        x = jnp.pad(x, pad, constant_values=-jnp.inf)
    chunks = x.reshape(*lead, nc, c)
    _, chunk_idx = jax.lax.top_k(jnp.max(chunks, axis=-1), k)
    chunk_idx = jnp.sort(chunk_idx, axis=-1)  # candidates in index order keep the tie rule
    cand = jnp.take_along_axis(chunks, chunk_idx[..., None], axis=-2).reshape(*lead, k * c)
    values, pos = jax.lax.top_k(cand, k)
    return values, jnp.take_along_axis(chunk_idx, pos // c, axis=-1) * c + pos % c


def _beam_select(state: BeamState, logprobs_BxWxV, s: Settings, eos: int) -> tuple[BeamState, Any]:
    """One beam step from processed log-probs; returns the new state (cache not yet reordered)
    and the origin beam (flat index into B*W) of every new running beam."""
    B, W, V = logprobs_BxWxV.shape
    N = s.max_new_tokens
    t = state.step
    denom_N1 = jnp.asarray(_length_table(s))

    acc_BxWxV = logprobs_BxWxV + state.running_scores_BxW[:, :, None]
    top_scores_BxK, top_idx_BxK = top_k(acc_BxWxV.reshape(B, W * V), 2 * W)
    origin_BxK = top_idx_BxK // V
    token_BxK = (top_idx_BxK % V).astype(jnp.int32)
    cand_tokens_BxKxN = jnp.take_along_axis(state.running_tokens_BxWxN, origin_BxK[:, :, None], 1)
    at_t_11N = (jnp.arange(N) == t)[None, None]
    cand_tokens_BxKxN = jnp.where(at_t_11N, token_BxK[:, :, None], cand_tokens_BxKxN)
    hits_BxK = (token_BxK == eos) | (t + 1 >= N)

    # Live beams: the best W continuations that did not stop.
    live_scores_BxK = top_scores_BxK + hits_BxK.astype(jnp.float32) * _NEG
    running_scores_BxW, sel_BxW = jax.lax.top_k(live_scores_BxK, W)
    running_tokens_BxWxN = jnp.take_along_axis(cand_tokens_BxKxN, sel_BxW[:, :, None], 1)
    origin_BxW = jnp.take_along_axis(origin_BxK, sel_BxW, 1)
    flat_origin_BW = (origin_BxW + jnp.arange(B)[:, None] * W).reshape(B * W)

    # Finished hypotheses: only stopped continuations among the top W count (transformers' rule).
    just_BxK = hits_BxK & (jnp.arange(2 * W) < W)[None]
    fin_BxK = top_scores_BxK / denom_N1[t + 1]
    if s.early_stopping is True:
        full_Bx1 = jnp.all(state.finished_BxW, axis=1, keepdims=True)
        fin_BxK = fin_BxK + full_Bx1.astype(jnp.float32) * _NEG
    fin_BxK = fin_BxK + (~state.improvable_B[:, None]).astype(jnp.float32) * _NEG
    fin_BxK = fin_BxK + (~just_BxK).astype(jnp.float32) * _NEG
    merged_scores = jnp.concatenate([state.finished_scores_BxW, fin_BxK], axis=1)
    merged_tokens = jnp.concatenate([state.finished_tokens_BxWxN, cand_tokens_BxKxN], axis=1)
    merged_lengths = jnp.concatenate(
        [state.finished_lengths_BxW, jnp.broadcast_to(t + 1, (B, 2 * W)).astype(jnp.int32)], axis=1
    )
    merged_finished = jnp.concatenate([state.finished_BxW, just_BxK], axis=1)
    finished_scores_BxW, keep_BxW = jax.lax.top_k(merged_scores, W)
    finished_tokens_BxWxN = jnp.take_along_axis(merged_tokens, keep_BxW[:, :, None], 1)
    finished_lengths_BxW = jnp.take_along_axis(merged_lengths, keep_BxW, 1)
    finished_BxW = jnp.take_along_axis(merged_finished, keep_BxW, 1)

    # Can a live beam still beat the worst kept hypothesis? (transformers' early-stop heuristic)
    t1 = t + 1
    if s.early_stopping == "never" and s.length_penalty > 0.0:
        best_len = N
    else:
        best_len = t1
    best_live_B = running_scores_BxW[:, 0] / denom_N1[best_len]
    worst_BxW = jnp.where(
        finished_BxW, jnp.min(finished_scores_BxW, axis=1, keepdims=True), jnp.float32(_NEG)
    )
    improvable_B = state.improvable_B & jnp.any(best_live_B[:, None] > worst_BxW, axis=1)
    open_beam = ~(jnp.all(finished_BxW) & (s.early_stopping is True))
    done = ~(jnp.any(improvable_B) & open_beam & ~jnp.all(hits_BxK))

    new = state.replace(
        step=t1,
        running_tokens_BxWxN=running_tokens_BxWxN,
        running_scores_BxW=running_scores_BxW,
        finished_tokens_BxWxN=finished_tokens_BxWxN,
        finished_scores_BxW=finished_scores_BxW,
        finished_lengths_BxW=finished_lengths_BxW,
        finished_BxW=finished_BxW,
        improvable_B=improvable_B,
        done=done,
    )
    return new, flat_origin_BW


def _beam_scores(logits_RxV, state: BeamState, prompt_ids_BxL, prompt_mask_BxL, s, eos):
    """Log-softmax, then the logits processors (transformers' order for beam search)."""
    B, W, N = state.running_tokens_BxWxN.shape
    logprobs_RxV = _process(
        jax.nn.log_softmax(logits_RxV, axis=-1),
        jnp.repeat(prompt_ids_BxL, W, axis=0),
        jnp.repeat(prompt_mask_BxL, W, axis=0),
        state.running_tokens_BxWxN.reshape(B * W, N),
        state.step,
        s,
        eos,
    )
    return logprobs_RxV.reshape(B, W, -1)


def _beam_start(model, params, prompt_ids_BxL, prompt_mask_BxL, s: Settings) -> BeamState:
    """Prefill (once per prompt, outside the loop) and choose the first token of every beam."""
    B = prompt_ids_BxL.shape[0]
    W, N = s.num_beams, s.max_new_tokens
    logits_BxV, cache = _prefill(model, params, prompt_ids_BxL, prompt_mask_BxL, N, W)
    # Only beam 0 is live at first (the others start at -1e9), so the W copies pick distinct tokens.
    state = BeamState(
        step=jnp.int32(0),
        running_tokens_BxWxN=jnp.full((B, W, N), model.pad_token_id, jnp.int32),
        running_scores_BxW=jnp.zeros((B, W), jnp.float32).at[:, 1:].set(_NEG),
        cache=cache,
        finished_tokens_BxWxN=jnp.full((B, W, N), model.pad_token_id, jnp.int32),
        finished_scores_BxW=jnp.full((B, W), _NEG, jnp.float32),
        finished_lengths_BxW=jnp.zeros((B, W), jnp.int32),
        finished_BxW=jnp.zeros((B, W), bool),
        improvable_B=jnp.ones((B,), bool),
        done=jnp.bool_(False),
    )
    logits_RxV = jnp.repeat(logits_BxV, W, axis=0)
    eos = model.eos_token_id
    scores = _beam_scores(logits_RxV, state, prompt_ids_BxL, prompt_mask_BxL, s, eos)
    state, origin_R = _beam_select(state, scores, s, eos)
    return state.replace(cache=_reorder(model, state.cache, origin_R))


def _beam_body(model, params, prompt_ids_BxL, prompt_mask_BxL, s: Settings, state: BeamState):
    """One step: feed every beam's last token, score 2W continuations, reorder the cache."""
    B, W, N = state.running_tokens_BxWxN.shape
    last_R = jax.lax.dynamic_index_in_dim(
        state.running_tokens_BxWxN.reshape(B * W, N), state.step - 1, 1, keepdims=False
    )
    logits_RxV, cache = _step_logits(
        model, params, last_R, state.step, prompt_mask_BxL, state.cache, W, N
    )
    state = state.replace(cache=cache)
    eos = model.eos_token_id
    scores = _beam_scores(logits_RxV, state, prompt_ids_BxL, prompt_mask_BxL, s, eos)
    state, origin_R = _beam_select(state, scores, s, eos)
    return state.replace(cache=_reorder(model, state.cache, origin_R))


def _beam_output(state: BeamState) -> BeamOutput:
    return BeamOutput(
        tokens_BxN=state.finished_tokens_BxWxN[:, 0],
        scores_B=state.finished_scores_BxW[:, 0],
        lengths_B=state.finished_lengths_BxW[:, 0],
        beam_tokens_BxWxN=state.finished_tokens_BxWxN,
        beam_scores_BxW=state.finished_scores_BxW,
        beam_lengths_BxW=state.finished_lengths_BxW,
    )


_STATIC = ("model", "s")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _beam_search_compiled(model, params, prompt_ids_BxL, prompt_mask_BxL, s: Settings):
    state = _beam_start(model, params, prompt_ids_BxL, prompt_mask_BxL, s)
    body = functools.partial(_beam_body, model, params, prompt_ids_BxL, prompt_mask_BxL, s)
    return _beam_output(jax.lax.while_loop(lambda st: ~st.done, body, state))


_beam_start_jit = jax.jit(_beam_start, static_argnames=_STATIC)
_beam_body_jit = jax.jit(_beam_body, static_argnames=_STATIC)


def _beam_search_debug(model, params, prompt_ids_BxL, prompt_mask_BxL, s: Settings):
    """The same start and body, driven from Python one step at a time (each step jitted:
    op-by-op dispatch of a decoder step is ~100x slower; ``jax.debug.print`` works either way)."""
    state = _beam_start_jit(model, params, prompt_ids_BxL, prompt_mask_BxL, s)
    while not bool(state.done):
        state = _beam_body_jit(model, params, prompt_ids_BxL, prompt_mask_BxL, s, state)
    return _beam_output(state)


def beam_search(
    model: LanguageModel,
    params,
    prompt_ids_BxL,
    prompt_mask_BxL=None,
    *,
    num_beams: int,
    max_new_tokens: int,
    min_new_tokens: int = 0,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    debug: bool = False,
) -> BeamOutput:
    """Beam search over left-padded prompts, as ``generate(num_beams=W, do_sample=False)``.

    The paper's "exactly 64 new tokens" is ``min_new_tokens = max_new_tokens = 64``. ``debug``
    drives the same loop body from Python, op by op, instead of ``lax.while_loop`` under jit.
    """
    prompt_ids_BxL = jnp.asarray(prompt_ids_BxL, jnp.int32)
    if prompt_mask_BxL is None:
        prompt_mask_BxL = jnp.ones_like(prompt_ids_BxL)
    prompt_mask_BxL = jnp.asarray(prompt_mask_BxL, jnp.int32)
    errors.require(
        early_stopping in (True, False, "never"),
        "early_stopping",
        'True, False or "never"',
        early_stopping,
    )
    s = Settings(
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        num_beams=num_beams,
        length_penalty=float(length_penalty),
        # transformers tests `early_stopping is True`; normalise 1/0 so the static key is canonical
        early_stopping=early_stopping if early_stopping == "never" else bool(early_stopping),
        repetition_penalty=float(repetition_penalty),
        no_repeat_ngram_size=no_repeat_ngram_size,
    )
    _check(model, prompt_ids_BxL, prompt_mask_BxL, s)
    fn = _beam_search_debug if debug else _beam_search_compiled
    return fn(model, params, prompt_ids_BxL, prompt_mask_BxL, s)


def continue_blocks(
    params, model_cfg, prompts_NxL, key, gen_cfg, prompt_mask_NxL=None
) -> np.ndarray:
    """``gen_cfg.max_new_tokens`` new tokens after every prompt, decoded as ``cfg.generate`` says:
    ``new_NxT`` int32 on the host.

    Beam search (the paper's decoder) is deterministic and ignores ``key``; the LM chain passes the
    generation's key anyway so a sampling decoder needs no other call. Prompts go in batches of
    ``gen_cfg.batch_size`` rows, the last padded (one compiled shape); ``prompt_mask_NxL`` marks
    left padding (default: none).
    """
    from collapse_jax.families.lm import perplexity

    del key
    prompts_NxL = np.asarray(prompts_NxL, np.int32)
    n, L = prompts_NxL.shape
    mask_NxL = np.ones_like(prompts_NxL) if prompt_mask_NxL is None else prompt_mask_NxL
    both_Nx2L = np.concatenate([prompts_NxL, np.asarray(mask_NxL, np.int32)], axis=1)
    model = opt_model(model_cfg)
    out, done, t0 = [], 0, time.perf_counter()
    for batch, real in perplexity.padded_batches(both_Nx2L, gen_cfg.batch_size):
        res = beam_search(
            model,
            params,
            batch[:, :L],
            batch[:, L:],
            num_beams=gen_cfg.num_beams,
            max_new_tokens=gen_cfg.max_new_tokens,
            min_new_tokens=gen_cfg.min_new_tokens,
            length_penalty=gen_cfg.length_penalty,
            early_stopping=gen_cfg.early_stopping,
            repetition_penalty=gen_cfg.repetition_penalty,
            no_repeat_ngram_size=gen_cfg.no_repeat_ngram_size,
        )
        out.append(np.asarray(jax.device_get(res.tokens_BxN), np.int32)[:real])
        done += real
        rate = done / max(time.perf_counter() - t0, 1e-9)
        logging.info("beam search %d/%d prompts | %.1f prompts/s", done, n, rate)
    return np.concatenate(out)


# ----------------------------------------------------------------------------- greedy and sampling


def _warp(scores_RxV, s: Settings):
    """transformers' TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, in that order."""
    if s.temperature != 1.0:
        scores_RxV = scores_RxV / s.temperature
    V = scores_RxV.shape[-1]
    if 0 < s.top_k < V:
        kth_Rx1 = jax.lax.top_k(scores_RxV, s.top_k)[0][:, -1:]
        scores_RxV = jnp.where(scores_RxV < kth_Rx1, -jnp.inf, scores_RxV)
    if s.top_p < 1.0:
        order_RxV = jnp.argsort(scores_RxV, axis=-1)  # ascending, as transformers sorts
        sorted_RxV = jnp.take_along_axis(scores_RxV, order_RxV, axis=-1)
        cum_RxV = jnp.cumsum(jax.nn.softmax(sorted_RxV, axis=-1), axis=-1)
        remove_sorted_RxV = (cum_RxV <= 1 - s.top_p).at[:, -1].set(False)
        remove_RxV = (
            jnp.zeros_like(remove_sorted_RxV)
            .at[jnp.arange(scores_RxV.shape[0])[:, None], order_RxV]
            .set(remove_sorted_RxV)
        )
        scores_RxV = jnp.where(remove_RxV, -jnp.inf, scores_RxV)
    return scores_RxV


def _sample_select(model, prompt_ids_BxL, prompt_mask_BxL, key, s, state, logits_BxV):
    """Processors on the raw logits, then argmax or a draw from the warped distribution."""
    N = state.tokens_BxN.shape[1]
    t = state.step
    eos, pad = model.eos_token_id, model.pad_token_id
    scores_BxV = _process(logits_BxV, prompt_ids_BxL, prompt_mask_BxL, state.tokens_BxN, t, s, eos)
    if s.greedy:
        next_B = jnp.argmax(scores_BxV, axis=-1)
    else:
        step_key = jax.random.fold_in(key, t)
        next_B = jax.random.categorical(step_key, _warp(scores_BxV, s), axis=-1)
    next_B = jnp.where(state.finished_B, pad, next_B.astype(jnp.int32))
    finished_B = state.finished_B | (next_B == eos)
    return state.replace(
        step=t + 1,
        tokens_BxN=jnp.where((jnp.arange(N) == t)[None], next_B[:, None], state.tokens_BxN),
        lengths_B=state.lengths_B + (~state.finished_B).astype(jnp.int32),
        finished_B=finished_B,
        done=jnp.all(finished_B) | (t + 1 >= N),
    )


def _sample_start(model, params, prompt_ids_BxL, prompt_mask_BxL, key, s: Settings):
    B, N = prompt_ids_BxL.shape[0], s.max_new_tokens
    logits_BxV, cache = _prefill(model, params, prompt_ids_BxL, prompt_mask_BxL, N, 1)
    state = SampleState(
        step=jnp.int32(0),
        tokens_BxN=jnp.full((B, N), model.pad_token_id, jnp.int32),
        finished_B=jnp.zeros((B,), bool),
        lengths_B=jnp.zeros((B,), jnp.int32),
        cache=cache,
        done=jnp.bool_(False),
    )
    return _sample_select(model, prompt_ids_BxL, prompt_mask_BxL, key, s, state, logits_BxV)


def _sample_body(model, params, prompt_ids_BxL, prompt_mask_BxL, key, s: Settings, state):
    last_B = jax.lax.dynamic_index_in_dim(state.tokens_BxN, state.step - 1, 1, keepdims=False)
    logits_BxV, cache = _step_logits(
        model, params, last_B, state.step, prompt_mask_BxL, state.cache, 1, s.max_new_tokens
    )
    state = state.replace(cache=cache)
    return _sample_select(model, prompt_ids_BxL, prompt_mask_BxL, key, s, state, logits_BxV)


def _sample_output(state: SampleState) -> SampleOutput:
    return SampleOutput(tokens_BxN=state.tokens_BxN, lengths_B=state.lengths_B)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _sample_compiled(model, params, prompt_ids_BxL, prompt_mask_BxL, key, s: Settings):
    state = _sample_start(model, params, prompt_ids_BxL, prompt_mask_BxL, key, s)
    body = functools.partial(_sample_body, model, params, prompt_ids_BxL, prompt_mask_BxL, key, s)
    return _sample_output(jax.lax.while_loop(lambda st: ~st.done, body, state))


_sample_start_jit = jax.jit(_sample_start, static_argnames=_STATIC)
_sample_body_jit = jax.jit(_sample_body, static_argnames=_STATIC)


def _sample_debug(model, params, prompt_ids_BxL, prompt_mask_BxL, key, s: Settings):
    """``_sample_compiled``'s start and body driven from Python (see ``_beam_search_debug``)."""
    state = _sample_start_jit(model, params, prompt_ids_BxL, prompt_mask_BxL, key, s)
    while not bool(state.done):
        state = _sample_body_jit(model, params, prompt_ids_BxL, prompt_mask_BxL, key, s, state)
    return _sample_output(state)


def _sample_entry(model, params, prompt_ids_BxL, prompt_mask_BxL, key, s: Settings, debug: bool):
    prompt_ids_BxL = jnp.asarray(prompt_ids_BxL, jnp.int32)
    if prompt_mask_BxL is None:
        prompt_mask_BxL = jnp.ones_like(prompt_ids_BxL)
    prompt_mask_BxL = jnp.asarray(prompt_mask_BxL, jnp.int32)
    _check(model, prompt_ids_BxL, prompt_mask_BxL, s)
    fn = _sample_debug if debug else _sample_compiled
    return fn(model, params, prompt_ids_BxL, prompt_mask_BxL, key, s)


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
    debug: bool = False,
) -> SampleOutput:
    """Greedy decoding, as ``generate(num_beams=1, do_sample=False)``."""
    s = Settings(
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        repetition_penalty=float(repetition_penalty),
        no_repeat_ngram_size=no_repeat_ngram_size,
        greedy=True,
    )
    key = jax.random.key(0)  # unused by greedy; keeps one traced signature
    return _sample_entry(model, params, prompt_ids_BxL, prompt_mask_BxL, key, s, debug)


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
    debug: bool = False,
) -> SampleOutput:
    """Ancestral sampling, as ``generate(do_sample=True, ...)``; step t draws with fold_in(key, t)."""
    s = Settings(
        max_new_tokens=max_new_tokens,
        min_new_tokens=min_new_tokens,
        repetition_penalty=float(repetition_penalty),
        no_repeat_ngram_size=no_repeat_ngram_size,
        greedy=False,
        temperature=float(temperature),
        top_k=top_k,
        top_p=float(top_p),
    )
    return _sample_entry(model, params, prompt_ids_BxL, prompt_mask_BxL, key, s, debug)
