"""The discrete chain with sampling bias (``cfg.sampling``): tempered and tail-cut resampling
(Dohmatob et al. 2024, "A tale of tails"), and the Bradley-Terry curated law (Ferbach et al. 2024).

Each state's count is no longer a Markov chain of its own (whether a state survives a top-k / top-p
cut depends on every other count), so the Wright-Fisher oracle of ``theory/regimes.py`` extends by
running the chain on whole count vectors: the compositions of M into K parts, C(M + K - 1, K - 1)
of them, with the multinomial transition ``P(c' | c) = Multinomial(c'; M, cut(c))``. Exact for any
K and M whose composition count fits in memory (a dense S x S matrix: K = 5, M = 12 gives
S = 1820).
"""

import math

import numpy as np

from collapse_jax.theory.replace import tail_mask


def compositions(total: int, parts: int) -> np.ndarray:
    """Every vector of ``parts`` non-negative integers summing to ``total``: int64 ``[S, parts]``."""
    import itertools

    rows = []
    for bars in itertools.combinations(range(total + parts - 1), parts - 1):
        edges = (-1, *bars, total + parts - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(parts)])
    return np.asarray(rows, dtype=np.int64).reshape(-1, parts)


def truncate(w_SxK, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """``discrete.truncate`` in NumPy, row by row: the same ranks (ties to the lower index), and for
    integer weights the same float32 comparison ``before < float32(top_p) * float32(total)``."""
    w = np.asarray(w_SxK)
    if not top_k and top_p >= 1.0:
        return w
    order = np.argsort(-w, axis=-1, kind="stable")
    rank = np.argsort(order, axis=-1, kind="stable")
    keep = w > 0
    if top_k:
        keep &= rank < top_k
    if top_p < 1.0:
        sorted_w = np.take_along_axis(np.where(keep, w, 0), order, axis=-1)
        before = np.take_along_axis(np.cumsum(sorted_w, -1) - sorted_w, rank, axis=-1)
        total = sorted_w.sum(-1, keepdims=True)
        if np.issubdtype(w.dtype, np.integer):
            keep &= before.astype(np.float32) < np.float32(top_p) * total.astype(np.float32)
        else:
            keep &= before < top_p * total
    return np.where(keep, w, 0)


def biased_probabilities(counts_SxK, temperature=1.0, top_k=0, top_p=1.0) -> np.ndarray:
    """What a fit of counts ``c`` is sampled with: ``c^(1/lambda)`` renormalised, then cut."""
    c = np.asarray(counts_SxK, dtype=np.int64)
    if temperature == 1.0:
        w = truncate(c, top_k, top_p).astype(float)
    else:
        with np.errstate(divide="ignore"):
            logc = np.where(c > 0, np.log(np.maximum(c, 1)), -np.inf)
        w = np.exp((logc - logc.max(-1, keepdims=True)) / temperature)
        w = truncate(np.where(c > 0, w, 0.0), top_k, top_p)
    return w / w.sum(-1, keepdims=True)


def truncated_chain_law(
    q_K,
    samples_per_generation,
    num_generations,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    max_states=6000,
):
    """``(P_GxS, compositions_SxK)``: the exact law of the fitted counts of the discrete chain
    (pure replace) whose generation g >= 1 samples M states from ``biased_probabilities`` of
    generation g - 1's counts; generation 0 fits M draws of q (untempered, uncut).

    With no bias it equals the Wright-Fisher law (``wright_fisher_count_distributions`` are its
    margins). Tempered probabilities are compared in float64 here and float32 in the chain, so a
    top-p cut that ties to the last bit may differ; without a temperature both compare integers
    the same way, and the law is the chain's exactly.
    """
    from scipy.special import gammaln as lg

    q = np.asarray(q_K, dtype=float)
    m, k = int(samples_per_generation), q.size
    size = math.comb(m + k - 1, k - 1)
    if size > max_states:
        raise ValueError(
            f"samples_per_generation, num_states: C(M + K - 1, K - 1) = {size} compositions "
            f"exceed max_states = {max_states}"
        )
    comps = compositions(m, k)
    log_coef = lg(m + 1) - lg(comps + 1).sum(-1)  # [S]

    def log_pmf(logp_XxK):
        # sum_j c_j log p_j with 0 log 0 = 0: a -inf log-probability becomes a huge negative.
        return log_coef[None, :] + np.maximum(logp_XxK, -1e30) @ comps.T

    with np.errstate(divide="ignore"):
        p0 = np.exp(log_pmf(np.log(q)[None]))[0]
        step = np.exp(log_pmf(np.log(biased_probabilities(comps, temperature, top_k, top_p))))
    out = [p0]
    for _ in range(1, int(num_generations)):
        out.append(out[-1] @ step)
    return np.stack(out), comps


def truncated_support_and_tail(q_K, samples_per_generation, num_generations, **bias):
    """``(E[support size]_G, E[tail mass]_G, P(absorbed by g)_G)`` of ``truncated_chain_law``; the
    tail is ``tail_mask`` (q_i <= 1/M), its mass the original q of the tail states present."""
    q = np.asarray(q_K, dtype=float)
    law, comps = truncated_chain_law(q, samples_per_generation, num_generations, **bias)
    present = comps > 0
    tail = np.where(tail_mask(q, samples_per_generation), q, 0.0)
    absorbed = present.sum(-1) == 1
    return law @ present.sum(-1), law @ (present @ tail), law @ absorbed


def expected_rank_frequencies(q_K, samples_per_generation, num_generations, **bias):
    """``E[p_(g,(r))]_GxK``: the expected r-th largest fitted frequency (the rank-frequency curve of
    "A tale of tails"), from ``truncated_chain_law``."""
    law, comps = truncated_chain_law(q_K, samples_per_generation, num_generations, **bias)
    ranked = -np.sort(-comps, axis=-1) / float(samples_per_generation)
    return law @ ranked


def bradley_terry_curated(p_K, reward_K, num_candidates, beta=1.0):
    """The law of one Bradley-Terry choice among K i.i.d. candidates of p (Ferbach et al. 2024).

    Candidate j of the K is kept with probability ``w_j / sum_k w_k``, ``w = exp(beta r)``. By
    symmetry of the K draws, ``P(keep state i) = K p_i E[w_i / (w_i + sum_{m<K} w_(X_m))]`` with
    ``X_1 .. X_(K-1)`` i.i.d. p; the expectation is a finite sum over the compositions of K - 1.
    A discrete chain refitted by frequencies on M such choices has ``E[p_(g+1) | p_g] =`` this
    law of ``p_g``, so ``E[r]`` under it never decreases (Ferbach et al.'s Lemma; here a
    submartingale at any M, since E_p[r] is linear in p).
    """
    p = np.asarray(p_K, dtype=float)
    # Renormalised: off the simplex the map is not mass-preserving, and iterating it would
    # amplify a rounding error in sum(p) about K-fold per step.
    p = p / p.sum()
    w = np.exp(beta * (np.asarray(reward_K, dtype=float) - np.max(reward_K)))
    k = int(num_candidates)
    if k == 1:
        return p.copy()
    others = compositions(k - 1, p.size)  # counts of the other K - 1 candidates per state
    from scipy.special import gammaln as lg

    with np.errstate(divide="ignore"):
        logp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf)
    log_prob = lg(k) - lg(others + 1).sum(-1) + np.maximum(logp, -1e30) @ others.T
    prob = np.exp(log_prob)  # [C]
    rest = others @ w  # [C]
    share = w[:, None] / (w[:, None] + rest[None, :])  # [K, C]
    return k * p * (share @ prob)
