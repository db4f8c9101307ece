"""The curation and provenance rules of ``curation.py``: each against its stated law.

Frequencies are compared with their probabilities within 5 binomial standard errors; the
Bradley-Terry property (Ferbach et al. 2024) on the discrete chain within 5 standard errors of
the seed mean.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from collapse_jax import curation, family, theory
from collapse_jax.families import discrete
from configs import discrete as discrete_config


def assert_frequencies(counts, probs, what):
    n = counts.sum()
    p = np.asarray(probs, float)
    se = np.sqrt(np.maximum(p * (1 - p), 1 / n) / n)
    z = (counts / n - p) / se
    assert np.all(np.abs(z) <= 5), f"{what}: z-scores {np.round(z, 2)}"


def test_verifier_errs_at_its_rate():
    key = jax.random.key(0)
    quality = jax.random.normal(jax.random.key(1), (200_000,))
    good = np.asarray(quality >= 0.5)
    np.testing.assert_array_equal(np.asarray(curation.verify(key, quality, 0.5, 0.0)), good)
    for eps in (0.05, 0.3):
        accept = np.asarray(curation.verify(key, quality, 0.5, eps))
        wrong = np.array([np.sum(accept != good), np.sum(accept == good)])
        assert_frequencies(wrong, [eps, 1 - eps], f"error rate {eps}")
    # A lost sample (nan quality) is never good, so it is accepted only by an error.
    nan = curation.verify(key, jnp.full((5,), jnp.nan), 0.0, 0.0)
    assert not np.any(np.asarray(nan))


def test_select_accepted_prefers_accepted_uniformly():
    accept = jnp.array([False, True, False, True, True, False])
    idx = curation.select_accepted(jax.random.key(0), accept, 3)
    assert sorted(np.asarray(idx).tolist()) == [1, 3, 4]
    # With fewer accepted than asked, the rest are rejected ones chosen uniformly.
    keys = jax.random.split(jax.random.key(1), 20_000)
    picks = jax.vmap(lambda k: curation.select_accepted(k, accept, 4))(keys)
    counts = np.bincount(np.asarray(picks).ravel(), minlength=6)
    np.testing.assert_array_equal(counts[[1, 3, 4]], 20_000)
    assert_frequencies(counts[[0, 2, 5]], [1 / 3] * 3, "rejected filler")


def test_noisy_score_pairwise_error_rate():
    quality = np.linspace(-2, 2, 40)
    sd = 0.7
    keys = jax.random.split(jax.random.key(2), 4000)
    noisy = np.asarray(jax.vmap(lambda k: curation.noisy_score(k, jnp.asarray(quality), sd))(keys))
    i, j = np.triu_indices(quality.size, 1)
    wrong = (noisy[:, i] > noisy[:, j]) != (quality[i] > quality[j])
    per_draw = wrong.mean(1)  # one draw's misordered share of all pairs
    rate = curation.pairwise_error_rate(quality, sd)
    se = per_draw.std(ddof=1) / np.sqrt(per_draw.size)
    assert abs(per_draw.mean() - rate) <= 5 * se, (per_draw.mean(), rate, se)
    assert curation.pairwise_error_rate(quality, 0.0) == 0.0


def test_bradley_terry_choice_frequencies():
    reward = jnp.array([0.0, 1.0, -1.0, 2.0])
    beta = 0.7
    idx = curation.bradley_terry_choice(jax.random.key(3), jnp.tile(reward, (100_000, 1)), beta)
    counts = np.bincount(np.asarray(idx), minlength=4)
    p = np.exp(beta * np.asarray(reward))
    assert_frequencies(counts, p / p.sum(), "BT choice")
    # A non-finite reward is never chosen.
    r = jnp.array([[jnp.nan, 0.0, -jnp.inf]] * 1000)
    assert np.all(np.asarray(curation.bradley_terry_choice(jax.random.key(4), r)) == 1)


def test_bradley_terry_curated_law():
    """Sampled choices of a discrete p follow ``theory.bradley_terry_curated``."""
    p = np.array([0.5, 0.3, 0.15, 0.05])
    r = np.array([0.0, 1.0, 2.0, -1.0])
    k, n = 3, 60_000
    logits = jnp.log(jnp.asarray(p, jnp.float32))
    cand = jax.random.categorical(jax.random.key(5), logits, shape=(n * k,))
    chosen = curation.bradley_terry_select(
        jax.random.key(6), cand, jnp.asarray(r, jnp.float32)[cand], n
    )
    counts = np.bincount(np.asarray(chosen), minlength=4)
    law = theory.bradley_terry_curated(p, r, k)
    assert_frequencies(counts, law, "BT curated law")
    np.testing.assert_allclose(law.sum(), 1.0)
    np.testing.assert_allclose(theory.bradley_terry_curated(p, r, 1), p)


def test_bradley_terry_exact_iteration_raises_the_reward():
    # The infinite-sample retraining loop p <- curated(p): E_p[r] rises to max r.
    p = np.full(6, 1 / 6)
    r = np.array([0.3, -1.0, 2.0, 0.5, 1.9, 0.0])
    rewards = []
    for _ in range(60):
        rewards.append(p @ r)
        p = theory.bradley_terry_curated(p, r, 4)
    # Non-decreasing to the float floor, strictly rising while the mass is not yet all at max r.
    assert np.all(np.diff(rewards) >= -1e-15) and np.all(np.diff(rewards)[:10] > 0)
    assert rewards[-1] > 1.95


@pytest.fixture(scope="module")
def curated_discrete_chain():
    """Discrete chains (K = 6, M = 20) retrained on Bradley-Terry choices among K = 3 of their
    own samples, no real data: ``(p_GxSxK, reward_K)``."""
    cfg = discrete_config.get_config("smoke")
    cfg.discrete.num_states, cfg.samples_per_generation = 6, 20
    m, k, beta, g, seeds = 20, 3, 1.0, 10, 3000
    r_K = jnp.array([0.0, 0.5, 1.0, -0.5, 1.5, 0.2], jnp.float32)
    q_K = jnp.asarray(discrete.original_probs(cfg), jnp.float32)

    def one_seed(key):
        k0, k_gen = jax.random.split(key)
        x0 = jax.random.categorical(k0, jnp.log(q_K), shape=(m,)).astype(jnp.int32)
        state = discrete.fit(None, discrete.init(None, cfg, None), family.full(x0), cfg)

        def step(state, kg):
            k_s, k_c = jax.random.split(kg)
            cand = discrete.sample(k_s, state, m * k, cfg)
            chosen = curation.bradley_terry_select(k_c, cand, r_K[cand], m, beta)
            new = discrete.fit(None, state, family.full(chosen), cfg)
            return new, new.counts_K

        _, counts = jax.lax.scan(step, state, jax.random.split(k_gen, g - 1))
        return jnp.concatenate([state.counts_K[None], counts])

    keys = jax.random.split(jax.random.key(7), seeds)
    counts = np.asarray(jax.jit(jax.vmap(one_seed))(keys))  # [S, G, K]
    return np.swapaxes(counts, 0, 1) / m, np.asarray(r_K, float), k, beta


def test_bradley_terry_curation_never_lowers_the_expected_reward(curated_discrete_chain):
    """Ferbach et al.'s property: with no real data, E[reward] does not decrease."""
    p, r, k, beta = curated_discrete_chain
    reward_GxS = p @ r
    step = np.diff(reward_GxS, axis=0)
    se = step.std(axis=1, ddof=1) / np.sqrt(step.shape[1])
    z = step.mean(1) / se
    assert np.all(z >= -5), np.round(z, 2)
    assert reward_GxS[-1].mean() > reward_GxS[0].mean()
    # The mechanism, seed by seed: the refit is unbiased for the curated law of the last fit,
    # and that law's reward is at least the last fit's (the Lemma, exactly, for every seed).
    lawful = np.stack(
        [[theory.bradley_terry_curated(ps, r, k, beta) for ps in pg] for pg in p[:-1]]
    )
    assert np.all(lawful @ r >= reward_GxS[:-1] - 1e-9)
    resid = reward_GxS[1:] - lawful @ r
    se = resid.std(axis=1, ddof=1) / np.sqrt(resid.shape[1])
    z = resid.mean(1) / se
    assert np.all(np.abs(z) <= 5), np.round(z, 2)


def test_detector_auc_and_weights():
    n = 200_000
    synthetic = jnp.arange(n) % 2 == 0
    for d in (0.0, 1.0, 2.5):
        p = np.asarray(curation.detector_probability(jax.random.key(8), synthetic, d))
        syn, real = p[::2], p[1::2]
        # AUC as the Mann-Whitney statistic on a random pairing of synthetic and real rows.
        perm = np.random.default_rng(0).permutation(real.size)
        wins = (syn > real[perm]).astype(float) + 0.5 * (syn == real[perm])
        auc = curation.detector_auc(d)
        assert abs(wins.mean() - auc) <= 5 * wins.std(ddof=1) / np.sqrt(wins.size), (d, auc)
    np.testing.assert_allclose(curation.detector_auc(0.0), 0.5)
    w = curation.detector_weights(jnp.array([0.0, 0.5, 0.9, 1.0]), 2.0)
    np.testing.assert_allclose(np.asarray(w), [1.0, 0.25, 0.01, 0.0], rtol=1e-6)
    np.testing.assert_allclose(float(norm.cdf(1 / np.sqrt(2))), curation.detector_auc(1.0))


def test_importance_resample_frequencies():
    w = jnp.array([1.0, 0.0, 3.0, 0.5])
    idx = curation.importance_resample(jax.random.key(9), w, 100_000)
    counts = np.bincount(np.asarray(idx), minlength=4)
    assert counts[1] == 0
    assert_frequencies(counts, np.asarray(w) / float(w.sum()), "importance resampling")
