"""Diversity of a generation's data blocks over token ids: self-BLEU and repetition.

Definitions (GeorgeDrayson/model_collapse, ``src/utils/data_analysis.py``):

- ``rep_n`` of a block: the share of its n-gram windows that repeat an earlier window of the
  same block, ``1 - distinct n-grams / (L - n + 1)`` (0 when the block has no n-gram);
- ``diversity`` of a block: ``prod_n (1 - rep_n)`` over n = 2, 3, 4; both averaged over blocks;
- ``self_bleu_4``: each hypothesis block of a fixed sample is scored by NLTK's ``sentence_bleu``
  (weights 1/4 each, ``SmoothingFunction().method1``) against every other block of the data as
  references; the mean over the sample. Blocks all have length L, so the brevity penalty is 1.

Drayson counts whitespace words of the decoded text and samples the hypotheses at random; here
they are token ids and an evenly spaced fixed sample, so a run's numbers need no RNG. Both
computations are vectorised: the clipped counts of BLEU's modified precision take, for every
n-gram, the largest and second-largest count over all blocks, so "the most in any other block"
is one lookup per hypothesis n-gram (NLTK loops over the references).
"""

from __future__ import annotations

import numpy as np

from collapse_jax import errors

# NLTK's SmoothingFunction().method1: a precision with no match becomes epsilon / denominator.
_EPSILON = 0.1


def ngram_ids(blocks_NxL: np.ndarray, n: int) -> np.ndarray:
    """Compact ids of every n-gram window, equal windows equal ids: ``ids_NxI``, I = L - n + 1."""
    x_NxL = np.asarray(blocks_NxL, np.int64)
    N, L = x_NxL.shape
    windows_NxIxn = np.lib.stride_tricks.sliding_window_view(x_NxL, n, axis=1)
    base = int(x_NxL.max(initial=0)) + 1
    if base**n < 2**63:  # one int64 key per window (OPT's 50272 ids: up to 4-grams)
        keys = (windows_NxIxn * base ** np.arange(n - 1, -1, -1, dtype=np.int64)).sum(-1)
        _, ids = np.unique(keys, return_inverse=True)
    else:
        _, ids = np.unique(windows_NxIxn.reshape(-1, n), axis=0, return_inverse=True)
    return ids.reshape(N, L - n + 1)


def _block_counts(ids_NxI: np.ndarray):
    """Distinct (block, n-gram) pairs: ``(block_E, ngram_E, count_E)``."""
    N = ids_NxI.shape[0]
    K = int(ids_NxI.max(initial=-1)) + 1
    pairs, count_E = np.unique(np.arange(N)[:, None] * K + ids_NxI, return_counts=True)
    return pairs // K, pairs % K, count_E


def rep_n(blocks_NxL: np.ndarray, n: int) -> np.ndarray:
    """``rep_N``: the share of repeated n-grams within each block (0 if L < n)."""
    N, L = np.shape(blocks_NxL)
    if L < n:
        return np.zeros((N,), np.float64)
    block_E, _, _ = _block_counts(ngram_ids(blocks_NxL, n))
    distinct_N = np.bincount(block_E, minlength=N)
    return 1.0 - distinct_N / (L - n + 1)


def diversity(blocks_NxL: np.ndarray, orders=(2, 3, 4)) -> np.ndarray:
    """Drayson's per-block ``diversity_N = prod_n (1 - rep_n)``."""
    out = np.ones((np.shape(blocks_NxL)[0],), np.float64)
    for n in orders:
        out *= 1.0 - rep_n(blocks_NxL, n)
    return out


def fixed_sample(num_blocks: int, size: int) -> np.ndarray:
    """``size`` evenly spaced block indices (every block when ``size`` is 0 or too large)."""
    if size <= 0 or size >= num_blocks:
        return np.arange(num_blocks)
    return (np.arange(size) * num_blocks) // size


def self_bleu(blocks_NxL: np.ndarray, hypotheses_K: np.ndarray, order: int = 4) -> np.ndarray:
    """``bleu_K``: BLEU-``order`` of each hypothesis block against all other blocks (NLTK's
    ``sentence_bleu`` with uniform weights and smoothing method1)."""
    x_NxL = np.asarray(blocks_NxL)
    N, L = x_NxL.shape
    hyp_K = np.asarray(hypotheses_K)
    K = hyp_K.shape[0]
    row_of_block_N = np.full((N,), -1)
    row_of_block_N[hyp_K] = np.arange(K)
    log_p_K = np.zeros((K,), np.float64)
    for m in range(1, order + 1):
        total = max(1, L - m + 1)
        if L < m:
            numerator_K = np.zeros((K,), np.int64)
        else:
            block_E, ngram_E, count_E = _block_counts(ngram_ids(x_NxL, m))
            # The two largest counts of every n-gram over all blocks (second: 0 if in one block;
            # the top count again if two blocks tie for it).
            G = int(ngram_E.max()) + 1
            top1_G = np.zeros((G,), np.int64)
            np.maximum.at(top1_G, ngram_E, count_E)
            at_top_E = count_E == top1_G[ngram_E]
            top2_G = np.zeros((G,), np.int64)
            np.maximum.at(top2_G, ngram_E[~at_top_E], count_E[~at_top_E])
            ties_G = np.bincount(ngram_E[at_top_E], minlength=G) >= 2
            top2_G = np.where(ties_G, top1_G, top2_G)
            # The most any other block holds: the top count, unless this block is what holds it.
            hyp = row_of_block_N[block_E] >= 0
            g, c = ngram_E[hyp], count_E[hyp]
            best_other = np.where(c == top1_G[g], top2_G[g], top1_G[g])
            numerator_K = np.bincount(
                row_of_block_N[block_E[hyp]], np.minimum(c, best_other), minlength=K
            )
            numerator_K = numerator_K.astype(np.int64)
            if m == 1:
                unigram_matches_K = numerator_K
        p_K = np.where(numerator_K == 0, _EPSILON, numerator_K) / total
        log_p_K += np.log(p_K) / order
    bleu_K = np.exp(log_p_K)
    # NLTK returns 0 outright when not even a unigram matches.
    return np.where(unigram_matches_K == 0, 0.0, bleu_K)


def validate(cfg) -> None:
    """One-line ``ConfigError`` for a bad ``cfg.diversity`` field."""
    L = cfg.data.block_size
    errors.check(
        cfg,
        "diversity.rep_orders",
        lambda v: len(v) > 0 and all(isinstance(n, int) and 1 <= n <= L for n in v),
        f"integers in [1, data.block_size={L}]",
    )
    errors.check(
        cfg,
        "diversity.self_bleu_order",
        lambda v: isinstance(v, int) and 1 <= v <= L,
        f"an integer in [1, data.block_size={L}]",
    )
    errors.check(
        cfg,
        "diversity.self_bleu_blocks",
        lambda v: isinstance(v, int) and v >= 0,
        "an integer >= 0 (0: every block)",
    )


def metrics(blocks_NxL: np.ndarray, div_cfg) -> dict[str, float]:
    """A generation's diversity metrics: ``self_bleu_{order}``, ``rep_{n}`` and ``diversity``
    (means over blocks), from ``cfg.diversity``."""
    x_NxL = np.asarray(blocks_NxL)
    hyp_K = fixed_sample(x_NxL.shape[0], div_cfg.self_bleu_blocks)
    order = div_cfg.self_bleu_order
    out = {f"self_bleu_{order}": float(np.mean(self_bleu(x_NxL, hyp_K, order)))}
    for n in div_cfg.rep_orders:
        out[f"rep_{n}"] = float(np.mean(rep_n(x_NxL, n)))
    out["diversity"] = float(np.mean(diversity(x_NxL, tuple(div_cfg.rep_orders))))
    return out
