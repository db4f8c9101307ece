"""Seed means of the regimes of ``mixing`` against their closed forms in ``theory.py``.

Tolerance as ``test_theory.py``: |seed mean - theory| <= 5 standard errors (sample std / sqrt(S))
at every checked generation. Tiny M (5 to 20) and a few thousand seeds keep each chain to seconds;
a few thousand seeds at M = 10 put an off-by-one in the generation index (a factor
1 - 1/((g+2)^2 M) at g = 0, ~2.5%) at several standard errors.
"""

import numpy as np
import pytest

from collapse_jax import chain, theory
from collapse_jax.families import discrete
from configs import discrete as discrete_config
from configs import gaussian as gaussian_config
from tests.test_theory import assert_mean_matches

SEEDS = 4000


def gaussian_cfg(regime, m, generations, estimator, seeds=SEEDS, **mixing):
    cfg = gaussian_config.get_config("smoke")
    cfg.num_seeds, cfg.num_generations, cfg.samples_per_generation = seeds, generations, m
    cfg.checkpoint.every_generations = generations
    cfg.gaussian.estimator = estimator
    cfg.mixing.regime = regime
    for k, v in mixing.items():
        cfg.mixing[k] = v
    return cfg


@pytest.mark.parametrize("m,estimator", [(5, "mle"), (20, "mle"), (10, "unbiased")])
def test_accumulate_gaussian(m, estimator):
    g = 12
    out = chain.simulate(gaussian_cfg("accumulate", m, g, estimator))
    n = np.arange(g)
    v = theory.accumulate_expected_variance(n, m, estimator)
    assert_mean_matches(out["variance"], v, f"accumulate E[sigma_g^2] M={m} {estimator}")
    e = theory.accumulate_expected_mean_error(n, m, estimator)
    assert_mean_matches(out["mean_error"], e, f"accumulate mean error M={m}")
    assert np.all(e < np.pi**2 / (6 * m))


def test_accumulate_limits_against_direct_products():
    for m in (3, 10, 1000):
        for est in ("mle", "unbiased"):
            direct = theory.accumulate_expected_variance(200_000, m, est)
            np.testing.assert_allclose(theory.accumulate_variance_limit(m, est), direct, rtol=1e-5)
    # mle: the limit is sin(pi / sqrt M) / (pi / sqrt M); 1 - pi^2/(6M) to first order.
    assert abs(theory.accumulate_variance_limit(1e6) - (1 - np.pi**2 / 6e6)) < 1e-11


@pytest.mark.parametrize("m,lam,estimator", [(10, 0.5, "mle"), (8, 2.0, "unbiased")])
def test_augment_gaussian(m, lam, estimator):
    g = 10
    out = chain.simulate(gaussian_cfg("augment", m, g, estimator, augment_ratio=lam))
    v, e = theory.augment_moments(g, m, lam, estimator)
    assert_mean_matches(out["variance"], v, f"augment E[sigma_g^2] M={m} lambda={lam}")
    assert_mean_matches(out["mean_error"], e, f"augment mean error M={m} lambda={lam}")
    v_inf, e_inf = theory.augment_fixed_point(m, lam, estimator)
    v_far, e_far = theory.augment_moments(2000, m, lam, estimator)
    np.testing.assert_allclose([v_far[-1], e_far[-1]], [v_inf, e_inf], rtol=1e-9)


@pytest.mark.parametrize("m,gamma,estimator", [(10, 0.2, "unbiased"), (20, 0.5, "mle")])
def test_fresh_gaussian(m, gamma, estimator):
    g = 10
    out = chain.simulate(gaussian_cfg("fresh", m, g, estimator, fresh_fraction=gamma))
    v, e = theory.fresh_moments(g, m, gamma, estimator)
    assert_mean_matches(out["variance"], v, f"fresh E[sigma_g^2] M={m} gamma={gamma}")
    assert_mean_matches(out["mean_error"], e, f"fresh mean error M={m} gamma={gamma}")
    v_inf, e_inf = theory.fresh_fixed_point(m, gamma, estimator)
    v_far, e_far = theory.fresh_moments(2000, m, gamma, estimator)
    np.testing.assert_allclose([v_far[-1], e_far[-1]], [v_inf, e_inf], rtol=1e-9)


def test_fresh_with_gamma_one_is_a_new_sample_every_generation():
    # gamma = 1: every generation fits M new draws of the truth, so every moment is generation 0's.
    v, e = theory.fresh_moments(6, 10, 1.0, "mle")
    np.testing.assert_allclose(v, 0.9)
    np.testing.assert_allclose(e, 0.1)


def test_curated_gaussian_variance_factor():
    # Large M, few seeds: the finite-M bias of the empirical cut is O(1/M) = O(1e-4), well under
    # the Monte Carlo standard error of the per-generation ratio (~ sqrt(2 / (M S)) ~ 1e-3).
    m, k = 2000, 2
    cfg = gaussian_cfg("replace", m, 3, "mle", seeds=400)
    cfg.mixing.curation.score, cfg.mixing.curation.rule = "current", "top"
    cfg.mixing.curation.oversample = k
    var = chain.simulate(cfg)["variance"]
    ratio = var[1:] / var[:-1]
    tau = theory.curated_variance_factor(k)
    assert_mean_matches(ratio, np.full(2, tau), "curated variance factor")


# ------------------------------------------------------------------------------------------------
# Discrete.


def discrete_cfg(regime, m, generations, seeds):
    cfg = discrete_config.get_config("smoke")
    cfg.num_seeds, cfg.num_generations, cfg.samples_per_generation = seeds, generations, m
    cfg.checkpoint.every_generations = generations
    cfg.mixing.regime = regime
    return cfg


def test_accumulate_discrete_gini_simpson():
    cfg = discrete_cfg("accumulate", 10, 15, SEEDS)
    out = chain.simulate(cfg)
    q = discrete.original_probs(cfg)
    expected = theory.accumulate_expected_gini_simpson(np.arange(15), q, 10)
    assert_mean_matches(out["gini_simpson"], expected, "accumulate E[1 - sum p^2]")


@pytest.fixture(scope="module")
def replace_chain():
    cfg = discrete_cfg("replace", 10, 60, 3000)
    return cfg, chain.simulate(cfg)


def test_wright_fisher_support_and_tail(replace_chain):
    cfg, out = replace_chain
    q, m, g = discrete.original_probs(cfg), cfg.samples_per_generation, cfg.num_generations
    support, tail = theory.wright_fisher_support_and_tail(q, m, g)
    # Up to generation 30: later most seeds are absorbed and the per-seed values nearly constant.
    assert_mean_matches(out["support_size"][:30], support[:30], "E[support size]")
    assert_mean_matches(out["tail_mass"][:30], tail[:30], "E[tail mass]")
    np.testing.assert_allclose(support[0], theory.expected_support_size_generation0(q, m))


def test_wright_fisher_absorption_cdf(replace_chain):
    cfg, out = replace_chain
    q, m, g = discrete.original_probs(cfg), cfg.samples_per_generation, cfg.num_generations
    cdf = theory.absorption_cdf(q, m, g)
    ag = out["absorbed_generation"][-1]
    freq = np.array([np.mean((ag >= 0) & (ag <= n)) for n in range(g)])
    s = cfg.num_seeds
    # A binomial proportion: 5 standard errors sqrt(p (1 - p) / S), floored at p(1-p) = 1/S so a
    # theory value of exactly 0 or 1 still allows a single stray seed.
    se = np.sqrt(np.maximum(cdf * (1 - cdf), 1 / s) / s)
    z = (freq - cdf) / se
    assert np.all(np.abs(z) <= 5), np.round(z, 2)
    # The same law gives E[min(T, G)] = sum_{n<G} P(T > n) for the absorption generation T
    # (a seed not absorbed by the last generation counts as G), against the seeds' mean.
    t = np.where(ag >= 0, ag, g).astype(float)
    assert_mean_matches(t[None], [np.sum(1 - cdf)], "E[min(absorbed_generation, G)]")
