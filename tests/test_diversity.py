"""Self-BLEU and rep-n of token blocks against direct computations, hand values and NLTK."""

import collections

import ml_collections
import numpy as np
import pytest

from collapse_jax import errors
from collapse_jax.families.lm import diversity
from configs import opt_wikitext

HAND_NxL = np.asarray(
    [
        [1, 2, 1, 2, 1, 2],  # 2-grams 12 21 12 21 12: 2 distinct of 5
        [1, 2, 3, 4, 5, 6],  # nothing repeats
        [7, 7, 7, 7, 7, 7],  # one n-gram of every order
    ]
)


def _ngrams(row, n):
    return [tuple(row[i : i + n]) for i in range(len(row) - n + 1)]


def _direct_rep(row, n):
    grams = _ngrams(list(row), n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def _direct_bleu(blocks, i, order=4):
    """NLTK's sentence_bleu(method1) written out: hypothesis block i, references all others."""
    hyp = list(blocks[i])
    refs = [list(r) for j, r in enumerate(blocks) if j != i]
    log_p = 0.0
    for n in range(1, order + 1):
        counts = collections.Counter(_ngrams(hyp, n))
        best = collections.Counter()
        for r in refs:
            best |= collections.Counter(_ngrams(r, n))  # | keeps the max count
        clipped = sum(min(c, best[g]) for g, c in counts.items())
        if n == 1 and clipped == 0:
            return 0.0
        total = max(1, len(hyp) - n + 1)
        log_p += np.log((clipped if clipped else 0.1) / total) / order
    return float(np.exp(log_p))  # equal lengths: brevity penalty 1


def test_rep_n_and_diversity_by_hand():
    np.testing.assert_allclose(diversity.rep_n(HAND_NxL, 2), [3 / 5, 0, 4 / 5])
    np.testing.assert_allclose(diversity.rep_n(HAND_NxL, 3), [2 / 4, 0, 3 / 4])
    np.testing.assert_allclose(diversity.rep_n(HAND_NxL, 4), [1 / 3, 0, 2 / 3])
    want = [(2 / 5) * (2 / 4) * (2 / 3), 1.0, (1 / 5) * (1 / 4) * (1 / 3)]
    np.testing.assert_allclose(diversity.diversity(HAND_NxL), want)
    np.testing.assert_array_equal(diversity.rep_n(HAND_NxL, 7), 0.0)  # no 7-gram in 6 tokens


@pytest.mark.parametrize("vocab, n", [(4, 2), (4, 3), (30, 4), (2**20, 4)])
def test_rep_n_equals_direct_count(vocab, n):
    # vocab 2**20: 4-gram keys overflow int64, so the row-unique path runs.
    x_NxL = np.random.default_rng(n).integers(0, vocab, (25, 16))
    x_NxL[:, 8:] = x_NxL[:, :8] if vocab > 30 else x_NxL[:, 8:]
    want = [_direct_rep(row, n) for row in x_NxL]
    np.testing.assert_allclose(diversity.rep_n(x_NxL, n), want, rtol=0, atol=1e-15)


def test_self_bleu_by_hand():
    same = np.tile(np.arange(8), (3, 1))
    np.testing.assert_allclose(diversity.self_bleu(same, np.arange(3)), 1.0)
    disjoint = np.arange(24).reshape(3, 8)
    np.testing.assert_array_equal(diversity.self_bleu(disjoint, np.arange(3)), 0.0)
    # Block 0 of HAND against blocks 1 and 2: 1 and 2 occur three times each but once in block
    # 1 (clipped: 2/6), "1 2" likewise (1/5), no 3- or 4-gram match (method1: 0.1/4, 0.1/3).
    want = ((2 / 6) * (1 / 5) * (0.1 / 4) * (0.1 / 3)) ** 0.25
    np.testing.assert_allclose(diversity.self_bleu(HAND_NxL, [0]), [want])


@pytest.mark.parametrize("vocab", [3, 8, 1000])
def test_self_bleu_equals_direct_computation(vocab):
    x_NxL = np.random.default_rng(vocab).integers(0, vocab, (20, 10))
    x_NxL[5] = x_NxL[6]  # an exact duplicate: the top count is held by two blocks
    x_NxL[7, 2:6] = x_NxL[8, 2:6]  # a shared 4-gram
    hyp_K = diversity.fixed_sample(20, 9)
    want = [_direct_bleu(x_NxL, i) for i in hyp_K]
    np.testing.assert_allclose(diversity.self_bleu(x_NxL, hyp_K), want, rtol=1e-12)


def test_self_bleu_equals_nltk():
    bleu = pytest.importorskip("nltk.translate.bleu_score")
    x_NxL = np.random.default_rng(0).integers(0, 6, (15, 12))
    x_NxL[3] = x_NxL[4]
    got = diversity.self_bleu(x_NxL, np.arange(15))
    smooth = bleu.SmoothingFunction().method1
    want = [
        bleu.sentence_bleu(
            [list(r) for j, r in enumerate(x_NxL) if j != i],
            list(x_NxL[i]),
            weights=(0.25,) * 4,
            smoothing_function=smooth,
        )
        for i in range(15)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_fixed_sample_and_metrics():
    np.testing.assert_array_equal(diversity.fixed_sample(10, 4), [0, 2, 5, 7])
    np.testing.assert_array_equal(diversity.fixed_sample(3, 0), [0, 1, 2])
    np.testing.assert_array_equal(diversity.fixed_sample(3, 5), [0, 1, 2])
    cfg = opt_wikitext.get_config("smoke").diversity
    got = diversity.metrics(HAND_NxL, cfg)
    assert set(got) == {"self_bleu_4", "rep_2", "rep_3", "rep_4", "diversity"}
    np.testing.assert_allclose(got["rep_2"], np.mean([3 / 5, 0, 4 / 5]))
    np.testing.assert_allclose(got["diversity"], np.mean(diversity.diversity(HAND_NxL)))
    want_bleu = np.mean([_direct_bleu(HAND_NxL, i) for i in range(3)])
    np.testing.assert_allclose(got["self_bleu_4"], want_bleu)


@pytest.mark.parametrize(
    "field, value",
    [("rep_orders", ()), ("rep_orders", (2, 65)), ("self_bleu_order", 0), ("self_bleu_blocks", -1)],
)
def test_validate_names_the_field(field, value):
    cfg = opt_wikitext.get_config("smoke")
    diversity.validate(cfg)
    cfg.diversity[field] = value
    with pytest.raises(errors.ConfigError, match=rf"^diversity\.{field}: expected"):
        diversity.validate(cfg)
    assert isinstance(cfg, ml_collections.ConfigDict)
