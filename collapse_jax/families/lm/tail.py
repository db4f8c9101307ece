"""Tail metrics of the LM: how much of the original corpus's rare tokens and n-grams survive.

Metrics (per generation and seed):
  test_perplexity                       of model g on the real test blocks
  data_log_ppl_mean, data_log_ppl_std,  per-block perplexity of generation g's training data under
  data_ppl_q{05,50,95,99}                the generation-0 model of the same seed (the paper's Fig. 1
                                        histograms; the arrays are DIR/arrays/gen_{g}_seed_{s}.npy)
  distinct_{n}                          distinct n-grams / all n-grams (within blocks) of the data
  data_rare_share_q{Q}                  share of the data's tokens that are rare at level Q
  rare_mass_q{Q}                        model g's mean probability, over the real test positions,
                                        of the next token being rare at level Q (the tail mass that
                                        collapse removes; DIR/reference.json holds the empirical
                                        share of such tokens among the test targets)
  rare_token_nll_q{Q}, rare_{n}gram_nll_q{Q}
                                        mean negative log-likelihood under model g of the test
                                        occurrences of rare tokens / n-grams: for an n-gram
                                        x_{t-n+1..t}, -log p(x_{t-n+2..t} | x_{<t-n+2})
``rare`` at level q (``cfg.tail.quantiles``, reported as Q = round(100 q)) is defined on the
original training blocks D_0: sort the token (n-gram) types that occur in D_0 by count and take
whole count classes, from the rarest up, until they hold at least a fraction q of D_0's tokens
(n-grams); ties in count are all in or all out, so the set is well defined and never empty.
N-grams are counted within blocks. For the test n-gram metrics only n-grams that occur in D_0
count (an unseen n-gram has no training frequency).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.errors import ConfigError, require
from collapse_jax.families.lm import nn, perplexity


def qname(q: float) -> str:
    return f"q{round(100 * q):02d}"


def validate(cfg) -> None:
    """The ``tail`` fields (one ConfigError line naming the field)."""
    L = cfg.data.block_size
    qs = tuple(cfg.tail.quantiles)
    require(
        len(qs) > 0 and all(0 < q < 1 for q in qs),
        "tail.quantiles",
        "fractions in (0, 1)",
        qs,
    )
    require(len({qname(q) for q in qs}) == len(qs), "tail.quantiles", "distinct percentages", qs)
    orders = tuple(cfg.tail.ngram_orders)
    require(
        all(isinstance(n, int) and 2 <= n <= L for n in orders),
        "tail.ngram_orders",
        f"integers in [2, {L}]",
        orders,
    )
    dist = tuple(cfg.tail.distinct_orders)
    require(
        all(isinstance(n, int) and 1 <= n <= L for n in dist),
        "tail.distinct_orders",
        f"integers in [1, {L}]",
        dist,
    )


# ----------------------------------------------------------------------------------------------
# The reference: rare tokens and n-grams of D_0


def ngram_keys(blocks_NxL: np.ndarray, n: int, vocab_size: int) -> np.ndarray:
    """Every n-gram within each block as one int64 key: ``keys_Nx(L-n+1)``."""
    if vocab_size**n >= 2**63:
        raise ConfigError(f"tail: {n}-grams over a vocabulary of {vocab_size} overflow int64 keys")
    blocks = np.asarray(blocks_NxL, np.int64)
    L = blocks.shape[1]
    keys = np.zeros((blocks.shape[0], L - n + 1), np.int64)
    for k in range(n):
        keys = keys * vocab_size + blocks[:, k : L - n + 1 + k]
    return keys


def rare_classes(counts_T: np.ndarray, q: float) -> np.ndarray:
    """Mask of the rare types: whole count classes from the rarest up until they hold >= q of the
    mass (``counts_T`` > 0 are the types that occur)."""
    values, per_class = np.unique(counts_T[counts_T > 0], return_counts=True)
    cum = np.cumsum(values * per_class) / counts_T.sum()
    threshold = values[min(int(np.searchsorted(cum, q)), len(values) - 1)]
    return (counts_T > 0) & (counts_T <= threshold)


class TailReference(NamedTuple):
    rare_QxV: np.ndarray  # bool: token v is rare at level q
    # (name, target mask Bx(L-1) of rare occurrences in the test blocks, n) per order and level
    test_masks: tuple
    summary: dict  # thresholds, set sizes and empirical shares (DIR/reference.json)


def reference(cfg, train_MxL: np.ndarray, test_NxL: np.ndarray, vocab_size: int) -> TailReference:
    """The rare sets of D_0 = ``train_MxL`` and where they occur in ``test_NxL``."""
    train, test = train_MxL, test_NxL
    qs = tuple(cfg.tail.quantiles)
    counts_V = np.bincount(train.ravel(), minlength=vocab_size)
    rare_QxV = np.stack([rare_classes(counts_V, q) for q in qs])
    targets = test[:, 1:]
    summary: dict = {"num_train_blocks": int(train.shape[0]), "vocab_size": vocab_size}
    masks = []
    for q, rare_V in zip(qs, rare_QxV, strict=True):
        name = f"rare_token_nll_{qname(q)}"
        masks.append((name, rare_V[targets], 1))
        summary[f"rare_tokens_{qname(q)}"] = {
            "types": int(rare_V.sum()),
            "max_count": int(counts_V[rare_V].max()),
            "train_share": float(counts_V[rare_V].sum() / counts_V.sum()),
            "test_share": float(rare_V[targets].mean()),
        }
    for n in cfg.tail.ngram_orders:
        uniq, counts = np.unique(ngram_keys(train, n, vocab_size), return_counts=True)
        test_keys = ngram_keys(test, n, vocab_size)
        # The n-gram ending at target j (token j + 1) starts at token j + 2 - n.
        pad = np.zeros((test.shape[0], n - 2), bool)
        for q in qs:
            rare = uniq[rare_classes(counts, q)]
            mask = np.concatenate([pad, np.isin(test_keys, rare)], axis=1)
            masks.append((f"rare_{n}gram_nll_{qname(q)}", mask, n))
            summary[f"rare_{n}grams_{qname(q)}"] = {
                "types": int(rare.size),
                "test_occurrences": int(mask.sum()),
            }
    for name, mask, _ in masks:
        if not mask.any():
            raise ConfigError(
                f"tail: {name} has no occurrence in the {test.shape[0]} test blocks; use fewer "
                "tail.ngram_orders, larger tail.quantiles or more data.max_eval_blocks"
            )
    return TailReference(rare_QxV, tuple(masks), summary)


# ----------------------------------------------------------------------------------------------
# Model-side metrics on the test blocks


def _test_scores(params, config, blocks_BxL, rare_QxV):
    """Next-token NLL ``nll_Bx(L-1)`` and the probability of a rare next token ``mass_Bx(L-1)xQ``."""
    logits_BxLxV, _ = nn.forward(params, config, blocks_BxL)
    logp_BxTxV = jax.nn.log_softmax(logits_BxLxV[:, :-1].astype(jnp.float32), axis=-1)
    nll_BxT = -jnp.take_along_axis(logp_BxTxV, blocks_BxL[:, 1:, None], axis=-1)[..., 0]
    mass_BxTxQ = jnp.einsum(
        "btv,qv->btq",
        jnp.exp(logp_BxTxV),
        rare_QxV.astype(jnp.float32),
        precision=jax.lax.Precision.HIGHEST,
    )
    return nll_BxT, mass_BxTxQ


_test_scores_jit = jax.jit(_test_scores, static_argnames="config")


def model_metrics(params, config, test_NxL, tail: TailReference, cfg) -> dict[str, float]:
    """Test perplexity and the tail metrics of one model (batches padded to one shape)."""
    bs = cfg.finetune.eval_batch_size
    rare = jnp.asarray(tail.rare_QxV)
    n = test_NxL.shape[0]
    nll, mass = [], []
    for batch, real in perplexity.padded_batches(test_NxL, bs):
        a, b = jax.device_get(_test_scores_jit(params, config, jnp.asarray(batch), rare))
        nll.append(np.asarray(a, np.float64)[:real])
        mass.append(np.asarray(b, np.float64)[:real])
    nll_NxT, mass_NxTxQ = np.concatenate(nll), np.concatenate(mass)
    out = {"test_perplexity": float(np.exp(nll_NxT.mean()))}
    for i, q in enumerate(cfg.tail.quantiles):
        out[f"rare_mass_{qname(q)}"] = float(mass_NxTxQ[..., i].mean())
    # Sum of the last n - 1 token NLLs of each n-gram, by a cumulative sum along the targets.
    csum = np.concatenate([np.zeros((n, 1)), np.cumsum(nll_NxT, axis=1)], axis=1)
    for name, mask, order in tail.test_masks:
        j = np.nonzero(mask)
        span = max(order - 1, 1)  # a rare token (order 1) is scored on itself
        total = csum[j[0], j[1] + 1] - csum[j[0], j[1] + 1 - span]
        out[name] = float(total.mean())
    return out


# ----------------------------------------------------------------------------------------------
# Data-side metrics


def data_metrics(data_ppl_N: np.ndarray, x_NxL: np.ndarray, tail: TailReference, cfg, vocab_size):
    log_ppl = np.log(data_ppl_N)
    out = {"data_log_ppl_mean": float(log_ppl.mean()), "data_log_ppl_std": float(log_ppl.std())}
    for p in (5, 50, 95, 99):
        out[f"data_ppl_q{p:02d}"] = float(np.percentile(data_ppl_N, p))
    for q, rare_V in zip(cfg.tail.quantiles, tail.rare_QxV, strict=True):
        out[f"data_rare_share_{qname(q)}"] = float(rare_V[x_NxL].mean())
    for n in cfg.tail.distinct_orders:
        keys = ngram_keys(x_NxL, n, vocab_size)
        out[f"distinct_{n}"] = float(np.unique(keys).size / keys.size)
    return out
