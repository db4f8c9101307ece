"""The discrete chain with sampling bias (temperature, top-k, top-p) against its exact law.

``theory.truncated_chain_law`` runs the chain on whole count vectors (compositions of M into K),
so it is exact for any bias at K = 5, M = 12 (1820 compositions). Tolerance: 5 standard errors of
the seed mean at every generation (binomial proportions floored at p(1 - p) = 1/S, as in
``test_regime_theory.py``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax import chain, theory
from collapse_jax.errors import ConfigError
from collapse_jax.families import discrete
from configs import discrete as discrete_config

SEEDS = 4000
G = 12


def assert_mean_or_exact(values_GxS, expected_G, scale, what):
    """``assert_mean_matches`` with the standard error floored at ``scale / S``: the mean moves by
    that much when one seed takes a value ``scale`` away (as the binomial floor of
    ``test_regime_theory.py``), so an event of probability << 1/S that no seed showed (every seed
    0, sample std 0) still passes, and one seed more or less never fails it."""
    values_GxS = np.asarray(values_GxS, float)
    s = values_GxS.shape[1]
    se_G = np.maximum(values_GxS.std(axis=1, ddof=1) / np.sqrt(s), scale / s)
    z_G = (values_GxS.mean(axis=1) - np.asarray(expected_G)) / se_G
    assert np.all(np.abs(z_G) <= 5), f"{what}: z-scores {np.round(z_G, 2)}"


def small_cfg(seeds=SEEDS, generations=G, **sampling):
    cfg = discrete_config.get_config("tails_exact")
    cfg.num_seeds, cfg.num_generations = seeds, generations
    cfg.checkpoint.every_generations = generations
    for k, v in sampling.items():
        cfg.sampling[k] = v
    return cfg


def test_truncate_matches_the_numpy_oracle():
    rng = np.random.default_rng(0)
    # Small counts over few states: many ties, and top-p boundaries hit exactly.
    counts = rng.integers(0, 5, size=(300, 6)).astype(np.int32)
    counts[counts.sum(1) == 0, 0] = 1
    cut = jax.jit(jax.vmap(discrete.truncate, in_axes=(0, None, None)), static_argnums=(1, 2))
    for k, p in [(0, 1.0), (1, 1.0), (3, 1.0), (0, 0.5), (0, 0.8), (2, 0.6), (4, 0.9)]:
        got = np.asarray(cut(jnp.asarray(counts), k, p))
        np.testing.assert_array_equal(got, theory.truncate(counts, k, p), err_msg=f"k={k} p={p}")
    # Ties go to the lower index; top-p keeps the state that crosses p.
    np.testing.assert_array_equal(theory.truncate(np.array([2, 3, 3, 1]), 2), [0, 3, 3, 0])
    np.testing.assert_array_equal(theory.truncate(np.array([5, 3, 2]), 0, 0.6), [5, 3, 0])
    np.testing.assert_array_equal(theory.truncate(np.array([6, 3, 1]), 0, 0.6), [6, 0, 0])


def test_unbiased_law_is_wright_fisher():
    q = discrete.original_probs(small_cfg())
    support, tail, absorbed = theory.truncated_support_and_tail(q, 12, 20)
    ws, wt = theory.wright_fisher_support_and_tail(q, 12, 20)
    np.testing.assert_allclose(support, ws, rtol=1e-12)
    np.testing.assert_allclose(tail, wt, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(absorbed, theory.absorption_cdf(q, 12, 20), atol=1e-12)
    # A cut that never binds (top-k >= K) is the same law.
    s5, _, _ = theory.truncated_support_and_tail(q, 12, 20, top_k=5)
    np.testing.assert_allclose(s5, ws, rtol=1e-12)


BIASES = [
    dict(top_k=2),
    dict(top_p=0.8),
    dict(top_k=3, top_p=0.9),
    dict(temperature=0.7),
    dict(temperature=1.5),
]


@pytest.mark.parametrize("bias", BIASES, ids=lambda b: ",".join(f"{k}={v}" for k, v in b.items()))
def test_biased_chain_matches_its_exact_law(bias):
    cfg = small_cfg(**bias)
    out = chain.simulate(cfg)
    q, m = discrete.original_probs(cfg), cfg.samples_per_generation
    support, tail, absorbed = theory.truncated_support_and_tail(q, m, G, **bias)
    tail_q = q[theory.tail_mask(q, m)].sum()
    assert_mean_or_exact(out["support_size"], support, q.size, f"E[support] {bias}")
    assert_mean_or_exact(out["tail_mass"], tail, tail_q, f"E[tail mass] {bias}")
    freq = out["absorbed"].mean(1)
    se = np.sqrt(np.maximum(absorbed * (1 - absorbed), 1 / SEEDS) / SEEDS)
    z = (freq - absorbed) / se
    assert np.all(np.abs(z) <= 5), np.round(z, 2)
    ranked = -np.sort(-out["frequencies"], axis=-1)  # [G, S, K]
    expected = theory.expected_rank_frequencies(q, m, G, **bias)
    for r in range(ranked.shape[-1]):
        assert_mean_or_exact(ranked[..., r], expected[:, r], 1.0, f"E[p_(r={r})] {bias}")


def test_tails_vanish_faster_under_tail_cutting():
    """ "A tale of tails": cutting the fitted tail before sampling loses the original tail (and the
    support) faster than plain resampling, and the more so the smaller top_p (exact law)."""
    q = discrete.original_probs(small_cfg())
    plain_s, plain_t, _ = theory.truncated_support_and_tail(q, 12, 30)
    prev_s, prev_t = plain_s, plain_t
    for p in (0.9, 0.8, 0.6):
        s, t, _ = theory.truncated_support_and_tail(q, 12, 30, top_p=p)
        np.testing.assert_allclose([s[0], t[0]], [plain_s[0], plain_t[0]])  # D_0 is uncut
        assert np.all(s[1:] < prev_s[1:]) and np.all(t[1:] < prev_t[1:]), p
        prev_s, prev_t = s, t
    s, t, _ = theory.truncated_support_and_tail(q, 12, 30, top_k=2)
    assert np.all(t[1:] < plain_t[1:]) and np.all(s[1:] < plain_s[1:])


def test_cut_states_never_return():
    # top_k = 1: generation 1 samples one state only, so every seed is a delta from then on.
    cfg = small_cfg(seeds=64, generations=5, top_k=1)
    out = chain.simulate(cfg)
    assert np.all(out["support_size"][1:] == 1) and np.all(out["absorbed"][1:] == 1)


@pytest.mark.parametrize(
    "field,value",
    [("top_k", -1), ("top_p", 0.0), ("top_p", 1.5), ("temperature", 0.0), ("temperature", np.inf)],
)
def test_bad_sampling_fields_are_one_line_errors(field, value):
    cfg = small_cfg()
    with cfg.unlocked():
        cfg.sampling[field] = value
    with pytest.raises(ConfigError, match=rf"sampling\.{field}: expected"):
        discrete.validate(cfg)


def test_other_families_refuse_tail_cutting():
    from collapse_jax.families import gaussian
    from configs import gaussian as gaussian_config

    cfg = gaussian_config.get_config("smoke")
    cfg.sampling.top_p = 0.9
    with pytest.raises(ConfigError, match=r"sampling\.top_p: expected 1\.0: family gaussian"):
        gaussian.validate(cfg)
