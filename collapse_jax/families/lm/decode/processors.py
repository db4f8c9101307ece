"""transformers' logits processors and warpers, on fixed shapes.

Processors (beam search applies them to log-softmaxed scores, greedy and sampling to raw
logits, as transformers does): repetition penalty over every real token of the sequence so far,
no-repeat n-grams, EOS blocked before ``min_new_tokens``, ``suppress_tokens``. Warpers (sampling
only, after the processors): temperature, top-k, top-p, in that order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from collapse_jax.families.lm.decode.loop import Settings


def process(scores_RxV, prompt_RxL, prompt_mask_RxL, new_RxN, step, s: Settings, eos: int):
    """Repetition penalty, no-repeat n-grams, min new tokens, suppressed tokens."""
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
    if 0 < n <= L + N:
        S = L + N
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
    if s.min_new_tokens > 0:
        block_1xV = ((jnp.arange(V) == eos) & (step < s.min_new_tokens))[None]
        scores_RxV = jnp.where(block_1xV, -jnp.inf, scores_RxV)
    if s.suppress_tokens:
        suppressed_V = jnp.zeros((V,), bool).at[jnp.asarray(s.suppress_tokens)].set(True)
        scores_RxV = jnp.where(suppressed_V[None], -jnp.inf, scores_RxV)
    return scores_RxV


def warp(scores_RxV, s: Settings):
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
