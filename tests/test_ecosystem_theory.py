"""Sampling temperature and many lineages sharing one pool against their closed forms.

Tolerance as ``test_theory.py``: |seed mean - theory| <= 5 standard errors (sample std / sqrt(S))
at every generation. The temperature runs go through ``chain.simulate`` (the family's own
tempered sampler); the lineage ecosystems through an independent NumPy simulation of the design
``theory.pool_moments`` describes (the chain gains lineages in a later change), and the
single-lineage cases of ``pool_moments`` (keep_real, accumulate_subsample, which had no closed
form before) through the chain itself.
"""

import numpy as np
import pytest

from collapse_jax import chain, theory
from tests.test_regime_theory import gaussian_cfg
from tests.test_theory import assert_mean_matches

SEEDS = 4000


def tempered(regime, m, g, estimator, temperature, **mixing):
    cfg = gaussian_cfg(regime, m, g, estimator, **mixing)
    cfg.sampling.temperature = temperature
    return chain.simulate(cfg)


@pytest.mark.parametrize("m,lam,estimator", [(10, 0.9, "unbiased"), (20, 1.15, "mle")])
def test_replace_with_temperature(m, lam, estimator):
    g = 12
    out = tempered("replace", m, g, estimator, lam)
    n = np.arange(g)
    what = f"M={m} lambda={lam} {estimator}"
    ev = theory.expected_variance(n, m, estimator, temperature=lam)
    assert_mean_matches(out["variance"], ev, f"E[sigma_n^2] {what}")
    # The closed form the issue states: unbiased lambda^(2n) sigma_0^2, mle (lambda^2 (M-1)/M)^n.
    r = 1.0 if estimator == "unbiased" else (m - 1) / m
    np.testing.assert_allclose(ev, ev[0] * (lam**2 * r) ** n, rtol=1e-12)
    es = theory.expected_std(n, m, estimator, temperature=lam)
    assert_mean_matches(out["std"], es, f"E[sigma_n] {what}")
    em = theory.expected_mean_error(n, m, estimator, temperature=lam)
    assert_mean_matches(out["mean_error"], em, f"E[(mu_n - mu)^2] {what}")
    ew = theory.expected_w2_squared(n, m, estimator, temperature=lam)
    assert_mean_matches(out["w2_squared"], ew, f"E[W2^2] {what}")
    el = theory.expected_log_variance(n, m, estimator, temperature=lam)
    assert_mean_matches(np.log(out["variance"]), el, f"E[log sigma_n^2] {what}")


def test_temperature_one_is_the_old_closed_form():
    n = np.arange(30)
    for f in (theory.expected_variance, theory.expected_mean_error, theory.expected_w2_squared):
        for est in ("unbiased", "mle"):
            np.testing.assert_array_equal(f(n, 10, est, temperature=1.0), f(n, 10, est))
    for est in ("unbiased", "mle"):
        a = theory.accumulate_expected_variance(n, 10, est, temperature=1.0)
        np.testing.assert_array_equal(a, theory.accumulate_expected_variance(n, 10, est))


@pytest.mark.parametrize("m,lam,estimator", [(10, 0.8, "mle"), (8, 1.2, "unbiased")])
def test_accumulate_with_temperature(m, lam, estimator):
    g = 12
    out = tempered("accumulate", m, g, estimator, lam)
    n = np.arange(g)
    v = theory.accumulate_expected_variance(n, m, estimator, temperature=lam)
    assert_mean_matches(out["variance"], v, f"accumulate E[sigma^2] lambda={lam}")
    e = theory.accumulate_expected_mean_error(n, m, estimator, temperature=lam)
    assert_mean_matches(out["mean_error"], e, f"accumulate mean error lambda={lam}")


def test_accumulate_with_temperature_decays_like_a_power():
    # E[sigma_g^2] ~ C g^(lambda^2 - 1): the log-log slope over late generations tends to it.
    g = np.array([10_000, 100_000])
    for lam in (0.7, 0.9, 1.1):
        v = theory.accumulate_expected_variance(g, 20, "mle", temperature=lam)
        slope = np.diff(np.log(v)) / np.diff(np.log(g))
        np.testing.assert_allclose(slope, lam**2 - 1, atol=1e-3)


@pytest.mark.parametrize("regime,knob", [("fresh", {"fresh_fraction": 0.2}), ("augment", {})])
def test_fresh_and_augment_with_temperature(regime, knob):
    m, g, lam, est = 10, 10, 0.85, "unbiased"
    out = tempered(regime, m, g, est, lam, **knob)
    if regime == "fresh":
        v, e = theory.fresh_moments(g, m, 0.2, est, temperature=lam)
        v_inf, e_inf = theory.fresh_fixed_point(m, 0.2, est, temperature=lam)
        v_far, e_far = theory.fresh_moments(3000, m, 0.2, est, temperature=lam)
    else:
        v, e = theory.augment_moments(g, m, 1.0, est, temperature=lam)
        v_inf, e_inf = theory.augment_fixed_point(m, 1.0, est, temperature=lam)
        v_far, e_far = theory.augment_moments(3000, m, 1.0, est, temperature=lam)
    assert_mean_matches(out["variance"], v, f"{regime} E[sigma^2] lambda={lam}")
    assert_mean_matches(out["mean_error"], e, f"{regime} mean error lambda={lam}")
    np.testing.assert_allclose([v_far[-1], e_far[-1]], [v_inf, e_inf], rtol=1e-9)


# ------------------------------------------------------------------------------------------------
# pool_moments: the named regimes as single-lineage ecosystems.


@pytest.mark.parametrize("est", ["mle", "unbiased"])
@pytest.mark.parametrize("lam", [1.0, 0.8, 1.3])
def test_pool_moments_reproduce_every_named_closed_form(est, lam):
    g, m, n = 25, 10, np.arange(25)
    kw = dict(estimator=est, temperature=lam)
    pairs = [
        (
            theory.pool_moments(g, m, **kw),
            (
                theory.expected_variance(n, m, est, temperature=lam),
                theory.expected_mean_error(n, m, est, temperature=lam),
            ),
        ),
        (
            theory.pool_moments(g, m, pool="accumulate", fit_samples=0, **kw),
            (
                theory.accumulate_expected_variance(n, m, est, temperature=lam),
                theory.accumulate_expected_mean_error(n, m, est, temperature=lam),
            ),
        ),
        (
            theory.pool_moments(
                g, m, synthetic_per_lineage=8, real_source="fresh", real_samples=2, **kw
            ),
            theory.fresh_moments(g, m, 0.2, est, temperature=lam),
        ),
        (
            theory.pool_moments(
                g,
                m,
                synthetic_per_lineage=5,
                fit_samples=m + 5,
                real_source="original",
                real_samples=m,
                **kw,
            ),
            theory.augment_moments(g, m, 0.5, est, temperature=lam),
        ),
    ]
    for got, want in pairs:
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("estimator", ["mle", "unbiased"])
def test_keep_real_closed_form(estimator):
    m, g, gamma = 10, 12, 0.3
    out = chain.simulate(gaussian_cfg("keep_real", m, g, estimator, gamma=gamma))
    r = round(gamma * m)
    v, e = theory.pool_moments(
        g, m, synthetic_per_lineage=m - r, real_source="original", real_samples=r,
        estimator=estimator,
    )  # fmt: skip
    assert_mean_matches(out["variance"], v, f"keep_real E[sigma^2] {estimator}")
    assert_mean_matches(out["mean_error"], e, f"keep_real mean error {estimator}")


def test_accumulate_subsample_closed_form():
    m, g = 10, 12
    out = chain.simulate(gaussian_cfg("accumulate_subsample", m, g, "mle"))
    v, e = theory.pool_moments(g, m, pool="accumulate", fit_samples=m)
    assert_mean_matches(out["variance"], v, "accumulate_subsample E[sigma^2]")
    assert_mean_matches(out["mean_error"], e, "accumulate_subsample mean error")


# ------------------------------------------------------------------------------------------------
# Many lineages, one pool: an independent NumPy simulation of the design.


def simulate_ecosystem(
    rng, seeds, g, m, lineages, synthetic, fit, source, real, pool, estimator, lam
):
    """Per-seed lineage-averaged ``(sigma^2, mean error)`` ``[G, seeds]`` of the design."""
    ddof = 1 if estimator == "unbiased" else 0
    x0 = rng.standard_normal((seeds, m))
    mean = np.repeat(x0.mean(1, keepdims=True), lineages, 1)  # [seeds, L]
    var = np.repeat(x0.var(1, ddof=ddof, keepdims=True), lineages, 1)
    pool_x = x0
    out_v, out_e = [var.mean(1)], [(mean**2).mean(1)]
    for _ in range(1, g):
        z = rng.standard_normal((seeds, lineages, synthetic))
        block = (mean[..., None] + lam * np.sqrt(var)[..., None] * z).reshape(seeds, -1)
        if source == "fresh":
            block = np.concatenate([block, rng.standard_normal((seeds, real))], 1)
        elif source == "original":
            pick = np.argsort(rng.random((seeds, m)), 1)[:, :real]
            block = np.concatenate([block, np.take_along_axis(x0, pick, 1)], 1)
        pool_x = block if pool == "replace" else np.concatenate([pool_x, block], 1)
        n = pool_x.shape[1]
        k = fit or n
        pick = np.argsort(rng.random((seeds, lineages, n)), -1)[..., :k]
        data = np.take_along_axis(np.broadcast_to(pool_x[:, None], (seeds, lineages, n)), pick, -1)
        mean, var = data.mean(-1), data.var(-1, ddof=ddof)
        out_v.append(var.mean(1))
        out_e.append((mean**2).mean(1))
    return np.array(out_v), np.array(out_e)


ECOSYSTEMS = [
    # lineages, synthetic per lineage, fit size, real source, real rows, pool, estimator, lambda
    (3, 8, 8, "none", 0, "replace", "mle", 1.0),
    (4, 5, 10, "original", 5, "replace", "mle", 1.0),
    (3, 6, 8, "fresh", 4, "replace", "unbiased", 0.9),
    (2, 8, 8, "none", 0, "accumulate", "mle", 1.1),
    (3, 4, 6, "fresh", 2, "accumulate", "unbiased", 1.0),
]


@pytest.mark.parametrize("eco", ECOSYSTEMS)
def test_many_lineages_one_pool(eco):
    lineages, syn, fit, source, real, pool, est, lam = eco
    g, m = 10, 10
    rng = np.random.default_rng(ECOSYSTEMS.index(eco))
    got_v, got_e = simulate_ecosystem(
        rng, SEEDS, g, m, lineages, syn, fit, source, real, pool, est, lam
    )
    v, e = theory.pool_moments(
        g,
        m,
        num_lineages=lineages,
        synthetic_per_lineage=syn,
        fit_samples=fit,
        real_source=source,
        real_samples=real,
        pool=pool,
        estimator=est,
        temperature=lam,
    )
    assert_mean_matches(got_v, v, f"E[sigma^2] {eco}")
    assert_mean_matches(got_e, e, f"mean error {eco}")


def test_shared_pool_slows_the_collapse():
    # Replace, no real data, each lineage fits M of the L M pooled samples: the pool's variance is
    # an estimate from L M samples, so E[sigma^2] falls more slowly the more lineages share it.
    v1, _ = theory.pool_moments(50, 20)
    v4, _ = theory.pool_moments(50, 20, num_lineages=4)
    v16, _ = theory.pool_moments(50, 20, num_lineages=16)
    # Generation 1 is the same for every L: the lineages are one model (all fitted D_0) until then.
    np.testing.assert_allclose([v4[1], v16[1]], v1[1], rtol=1e-12)
    assert np.all(v4[2:] > v1[2:]) and np.all(v16[2:] > v4[2:])
    assert v16[-1] < v16[0]  # but it still collapses: no real data enters
