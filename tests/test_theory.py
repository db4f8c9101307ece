"""Monte Carlo means of the chains against every closed form in ``theory.py``.

Tolerance: each Monte Carlo mean over S independent seeds has standard error ``std / sqrt(S)``
(sample std, ddof=1, of the per-seed values); we require |mean - theory| <= 5 standard errors at
every checked generation (a two-sided 5-sigma band: ~6e-7 false-alarm rate per comparison under
the CLT). The chains use M = 50 and at most 20 generations so the per-seed values stay light-tailed
(e.g. Var[sigma_n^2] / sigma^4 = ((M+1)/(M-1))^(n+1) - 1 <= 1.3) and the sample std is reliable.
"""

import numpy as np
import pytest
import scipy.stats

from collapse_jax import chain, theory
from collapse_jax.families import discrete
from configs import discrete as discrete_config
from configs import gaussian as gaussian_config

Z = 5.0  # standard errors allowed
SEEDS = 4000
GENERATIONS = 20
M = 50


def assert_mean_matches(values_GxS, expected_G, what):
    values_GxS = np.asarray(values_GxS, float)
    mean_G = values_GxS.mean(axis=1)
    se_G = values_GxS.std(axis=1, ddof=1) / np.sqrt(values_GxS.shape[1])
    z_G = (mean_G - expected_G) / se_G
    assert np.all(np.abs(z_G) <= Z), f"{what}: z-scores {np.round(z_G, 2)}"


def gaussian_cfg(estimator="unbiased", source="normal", dim=1):
    cfg = gaussian_config.get_config("smoke")
    cfg.num_seeds, cfg.num_generations, cfg.samples_per_generation = SEEDS, GENERATIONS, M
    cfg.gaussian.estimator, cfg.gaussian.source, cfg.gaussian.dim = estimator, source, dim
    return cfg


@pytest.fixture(scope="module", params=["unbiased", "mle"])
def normal_chain(request):
    return request.param, chain.simulate(gaussian_cfg(request.param))


def test_gaussian_closed_forms(normal_chain):
    est, m = normal_chain
    n = np.arange(GENERATIONS)
    assert_mean_matches(m["variance"], theory.expected_variance(n, M, est), "E[sigma_n^2]")
    assert_mean_matches(m["std"], theory.expected_std(n, M, est), "E[sigma_n]")
    assert_mean_matches(
        m["variance"] ** 2, theory.expected_variance_squared(n, M, est), "E[sigma_n^4]"
    )
    assert_mean_matches(m["mean_error"], theory.expected_mean_error(n, M, est), "E[(mu_n-mu)^2]")
    assert_mean_matches(
        m["std_error"] ** 2, theory.expected_std_error_squared(n, M, est), "E[(sigma_n-sigma)^2]"
    )
    assert_mean_matches(m["w2_squared"], theory.expected_w2_squared(n, M, est), "E[W2^2]")
    assert_mean_matches(
        np.log(m["variance"]), theory.expected_log_variance(n, M, est), "E[log sigma_n^2]"
    )


def test_mle_and_unbiased_differ_detectably(normal_chain):
    # Guards against a test that cannot fail: at n = 19 the MLE's E[sigma^2] is (49/50)^20 = 0.67,
    # ~18 standard errors away from the unbiased value 1.
    est, m = normal_chain
    other = "mle" if est == "unbiased" else "unbiased"
    v = m["variance"][-1]
    z = (v.mean() - theory.expected_variance(GENERATIONS - 1, M, other)) / (
        v.std() / np.sqrt(SEEDS)
    )
    assert abs(z) > 2 * Z


def test_second_moment_forms_hold_for_non_gaussian_d0():
    # Theorem 3.1 needs only D_0's variance: E[sigma_n^2] and the mean error are exact here too.
    # The skewed, bimodal mixture (test_gaussian checks that every source has the right moments;
    # student_t is left out here only because its gamma sampler is slow to compile).
    source = "mixture"
    m = chain.simulate(gaussian_cfg("unbiased", source))
    n = np.arange(GENERATIONS)
    assert_mean_matches(m["variance"], theory.expected_variance(n, M), f"{source} E[sigma_n^2]")
    assert_mean_matches(m["mean_error"], theory.expected_mean_error(n, M), f"{source} mean err")


def test_multivariate_trace_and_mean_error():
    m = chain.simulate(gaussian_cfg("mle", "normal", dim=3))
    n = np.arange(GENERATIONS)
    assert_mean_matches(m["cov_trace"], theory.expected_variance(n, M, "mle", dim=3), "E[tr]")
    assert_mean_matches(
        m["mean_error"], theory.expected_mean_error(n, M, "mle", dim=3), "E[|mu_n - mu|^2]"
    )


def test_monte_carlo_horizon():
    # At the horizon the relative variance of sigma_n^2, E[sigma^4]/E[sigma^2]^2 - 1, equals S.
    s, m = 1000, 100
    n = theory.monte_carlo_horizon(s, m)
    rel = theory.expected_variance_squared(n, m) / theory.expected_variance(n, m) ** 2 - 1
    np.testing.assert_allclose(rel, s, rtol=1e-9)


def test_mean_chi_matches_scipy():
    k = np.array([1, 2, 9, 99, 9999])
    np.testing.assert_allclose(theory.mean_chi(k), scipy.stats.chi.mean(k), rtol=1e-10)


def test_closed_forms_against_direct_sums():
    # Independent route to the same numbers: sum the per-generation terms explicitly.
    m, n = 7, np.arange(12)
    for est, c in (("unbiased", m - 1), ("mle", m)):
        r = (m - 1) / c
        ev = np.array([r ** (g + 1) for g in n])
        me = np.array([(1 + sum(ev[:g])) / m for g in n])
        a = scipy.stats.chi.mean(m - 1) / np.sqrt(c)
        es = a ** (n + 1)
        np.testing.assert_allclose(theory.expected_variance(n, m, est), ev, rtol=1e-12)
        np.testing.assert_allclose(theory.expected_mean_error(n, m, est), me, rtol=1e-12)
        np.testing.assert_allclose(theory.expected_w2_squared(n, m, est), me + ev - 2 * es + 1)


def test_first_order_w2_is_the_small_n_limit():
    n, m = np.array([0, 9, 99]), 10_000
    exact = theory.expected_w2_squared(n, m)
    # Second-order terms are O((n/M)^2) and O(n/M^2) relative: 1% is generous at n/M <= 0.01.
    np.testing.assert_allclose(theory.first_order_w2_squared(n, m), exact, rtol=1e-2)
    # ... and it is only first order: the std term saturates at 2 sigma^2, so by n = 10 M the
    # linear form overshoots the exact value (11.84 vs 15.0) by more than 20%.
    n = 10 * m
    assert theory.first_order_w2_squared(n, m) / theory.expected_w2_squared(n, m) > 1.2


# ------------------------------------------------------------------------------------------------
# Discrete chain.


@pytest.fixture(scope="module")
def discrete_chain():
    cfg = discrete_config.get_config("smoke")
    # K = 5 Zipf: q_min = 0.08 <= 1/M = 0.1, so there is a tail; 150 generations absorb every seed
    # (the non-absorbed fraction decays like (1 - 1/M)^n ~ 1e-7 at n = 150).
    cfg.num_seeds, cfg.num_generations, cfg.samples_per_generation = 2000, 150, 10
    return cfg, chain.simulate(cfg)


def test_absorption_frequencies_match_q(discrete_chain):
    cfg, m = discrete_chain
    q = discrete.original_probs(cfg)
    s = cfg.num_seeds
    assert np.all(m["absorbed"][-1] == 1)
    freq = np.bincount(m["absorbing_state"][-1], minlength=q.size) / s
    # Per state, the count is Binomial(S, q_i): 5 binomial standard errors.
    se = np.sqrt(q * (1 - q) / s)
    assert np.all(np.abs(freq - theory.absorption_probability(q)) <= Z * se), (freq, q)
    # And jointly: Pearson chi-square with K - 1 dof at the 1e-6 level.
    counts = np.bincount(m["absorbing_state"][-1], minlength=q.size)
    _, p = scipy.stats.chisquare(counts, s * q)
    assert p > 1e-6


def test_gini_simpson_decay(discrete_chain):
    cfg, m = discrete_chain
    q = discrete.original_probs(cfg)
    n = np.arange(40)  # past ~40 generations most seeds are absorbed and the sample std is ~0
    expected = theory.expected_gini_simpson(n, q, cfg.samples_per_generation)
    assert_mean_matches(m["gini_simpson"][:40], expected, "E[1 - sum p^2]")


def test_generation0_support_and_tail(discrete_chain):
    cfg, m = discrete_chain
    q, mm = discrete.original_probs(cfg), cfg.samples_per_generation
    assert_mean_matches(
        m["support_size"][:1], [theory.expected_support_size_generation0(q, mm)], "support"
    )
    assert_mean_matches(
        m["tail_mass"][:1], [theory.expected_tail_mass_generation0(q, mm)], "tail mass"
    )


def test_absorption_time_diffusion_approximation(discrete_chain):
    cfg, m = discrete_chain
    q = discrete.original_probs(cfg)
    t = m["absorbed_generation"][-1] + 1  # resamplings until the delta
    approx = theory.first_order_absorption_time(q, cfg.samples_per_generation)
    # A first-order (diffusion) form, not exact: at M = 10 we only ask for 20% agreement, which
    # is far wider than the Monte Carlo error (~2%) and would still catch an off-by-M error.
    assert abs(t.mean() / approx - 1) < 0.2, (t.mean(), approx)
