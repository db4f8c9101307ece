"""The exact-statistics samplers: same law of the fitted parameters as drawing the samples.

Two-sample tests compare the two samplers' fitted parameters over thousands of seeds. Each
Kolmogorov-Smirnov test rejects at p < 1e-3: were both laws equal, a given comparison would fail
with probability 1e-3 (the seeds are fixed, so a passing test keeps passing). Moment checks allow 5
standard errors, estimated from the seeds themselves.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from collapse_jax import chain, mixing, sufficient, theory
from collapse_jax.errors import ConfigError
from collapse_jax.families import discrete, gaussian
from configs import discrete as discrete_config
from configs import gaussian as gaussian_config

P_MIN = 1e-3
SEEDS = 4000


def _gaussian(sampler, m=5, dim=1, regime="replace", seeds=SEEDS, generations=6):
    cfg = gaussian_config.get_config("smoke")
    cfg.gaussian.sampler, cfg.gaussian.dim = sampler, dim
    cfg.samples_per_generation, cfg.num_seeds, cfg.num_generations = m, seeds, generations
    cfg.mixing.regime = regime
    if regime == "keep_real":
        cfg.mixing.gamma = 0.4
    return cfg


def _discrete(sampler, regime="replace", m=10, seeds=SEEDS, generations=6):
    cfg = discrete_config.get_config("smoke")
    cfg.discrete.sampler = sampler
    cfg.samples_per_generation, cfg.num_seeds, cfg.num_generations = m, seeds, generations
    cfg.mixing.regime = regime
    if regime == "keep_real":
        cfg.mixing.gamma = 0.4
    return cfg


def _assert_same_law(a, b, name):
    p = scipy.stats.ks_2samp(a, b).pvalue
    assert p > P_MIN, f"{name}: KS p = {p:.2g}"


@pytest.mark.parametrize(
    "regime, dim",
    [("replace", 1), pytest.param("accumulate", 1, marks=pytest.mark.slow), ("keep_real", 2)],
)
def test_gaussian_samplers_agree_in_distribution(regime, dim):
    # M = 5: the spread of the fitted variance is wide, so a wrong law shows in a few generations.
    got = {s: chain.simulate(_gaussian(s, dim=dim, regime=regime)) for s in sufficient.SAMPLERS}
    spread = "variance" if dim == 1 else "cov_trace"
    for g in (1, 5):
        for k in (spread, "mean_error"):
            _assert_same_law(got["samples"][k][g], got["statistics"][k][g], f"{k}[{g}]")


@pytest.mark.parametrize("regime", ["replace", pytest.param("keep_real", marks=pytest.mark.slow)])
def test_discrete_samplers_agree_in_distribution(regime):
    got = {s: chain.simulate(_discrete(s, regime)) for s in sufficient.SAMPLERS}
    for g in (1, 5):
        for k in ("gini_simpson", "tv_distance"):
            _assert_same_law(got["samples"][k][g], got["statistics"][k][g], f"{k}[{g}]")


def _within(x_S, expected, name, k=5.0):
    se = x_S.std(ddof=1) / np.sqrt(x_S.size)
    assert abs(x_S.mean() - expected) < k * se, (name, x_S.mean(), expected, se)


def test_gaussian_statistics_match_theory_at_a_million_samples():
    # M = 10^6 costs what M = 5 does: the fit's statistics are drawn, not the samples. Here the
    # two estimators' expectations differ by n / M = 7e-6, far inside the band (5 s.e. = 1.3e-4
    # for the variance): which estimator is checked below, at an M that tells them apart.
    m, gens = 10**6, 8
    out = chain.simulate(_gaussian("statistics", m=m, seeds=20000, generations=gens))
    n = gens - 1
    _within(out["variance"][n], theory.expected_variance(n, m), "variance")
    _within(out["mean_error"][n], theory.expected_mean_error(n, m), "mean_error")


@pytest.mark.parametrize("estimator", ["unbiased", "mle"])
def test_gaussian_statistics_tell_the_estimators_apart(estimator):
    # E[sigma_n^2] = r^(n+1) with r = 1 (unbiased) or (M-1)/M (mle): at M = 1000 and n = 15 the
    # two differ by 0.016, while the seed mean's standard error is about sqrt(2 (n+1) / M / S)
    # = 1.3e-3. The band (5 s.e.) around this estimator's expectation must exclude the other's;
    # that is asserted from the seeds' own standard error, then the seed mean must lie in it.
    m, gens, seeds = 1000, 16, 20000
    cfg = _gaussian("statistics", m=m, seeds=seeds, generations=gens)
    cfg.gaussian.estimator = estimator
    var_S = chain.simulate(cfg)["variance"][gens - 1].astype(np.float64)
    n = gens - 1
    other = "mle" if estimator == "unbiased" else "unbiased"
    want, wrong = (theory.expected_variance(n, m, e) for e in (estimator, other))
    se = var_S.std(ddof=1) / np.sqrt(seeds)
    assert abs(want - wrong) > 2 * 5.0 * se, (want, wrong, se)  # the bands do not overlap
    _within(var_S, want, f"variance ({estimator})")


def test_discrete_statistics_match_theory():
    cfg = _discrete("statistics", m=20, generations=10)
    out = chain.simulate(cfg)
    q = discrete.original_probs(cfg)
    for g in (0, 9):
        _within(out["gini_simpson"][g], theory.expected_gini_simpson(g, q, 20), f"gini[{g}]")


@pytest.mark.parametrize("dim, count", [pytest.param(1, 7, marks=pytest.mark.slow), (3, 7), (3, 2)])
def test_drawn_record_has_the_sample_moments(dim, count):
    # count = 2 in d = 3: one degree of freedom, the singular-Wishart branch.
    a = np.random.default_rng(0).normal(size=(dim, dim))
    cov = a @ a.T + 0.1 * np.eye(dim)
    mean = np.arange(dim, dtype=float)
    n = 20000
    keys = jax.random.split(jax.random.key(1), n)
    mean_f32, cov_f32 = jnp.asarray(mean, jnp.float32), jnp.asarray(cov, jnp.float32)
    draw = jax.jit(jax.vmap(lambda k: gaussian._draw_record(k, mean_f32, cov_f32, count)))
    r = np.asarray(draw(keys), float)
    assert np.all(r[:, 0] == count)
    dm = r[:, 1 : 1 + dim] - mean
    # E[xbar] = mu, E[dm dm^T] = Sigma / count, E[scatter] = (count - 1) Sigma.
    moments = [
        (dm, np.zeros(dim)),
        ((dm[:, :, None] * dm[:, None, :]).reshape(n, -1), cov.ravel() / count),
        (r[:, 1 + dim :], (count - 1) * cov.ravel()),
    ]
    for terms, expected in moments:
        z = (terms.mean(0) - expected) / (terms.std(0, ddof=1) / np.sqrt(n))
        assert np.all(np.abs(z) < 5), z


def test_pooled_records_fit_the_union_exactly():
    # Records of three chunks, real samples, an empty row and padding pool to fit(all samples).
    cfg = _gaussian("samples", dim=3)
    x = np.random.default_rng(2).normal(size=(30, 3)).astype(np.float32) * 2 + 1
    rows = [gaussian._record_of(jnp.asarray(x[i:j])) for i, j in ((0, 4), (4, 20), (20, 27))]
    rows += [gaussian._record_of(jnp.asarray(x[i : i + 1])) for i in (27, 28, 29)]
    rows += [jnp.zeros_like(rows[0]), jnp.full_like(rows[0], 7.0)]
    weight = jnp.asarray([1, 1, 1, 1, 1, 1, 1, 0], jnp.float32)
    plain = jax.jit(lambda d: gaussian.fit(None, None, d, cfg))(mixing.full(jnp.asarray(x)))
    cfg.gaussian.sampler = "statistics"
    pooled = jax.jit(lambda d: gaussian.fit(None, None, d, cfg))(
        mixing.Data(jnp.stack(rows), weight)
    )
    np.testing.assert_allclose(pooled.mean_D, plain.mean_D, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled.cov_DxD, plain.cov_DxD, rtol=1e-5, atol=1e-6)


def test_multinomial_counts_keep_lost_states_lost():
    counts = jnp.asarray([3, 0, 5, 0, 2], jnp.int32)
    state = discrete.State(counts, jnp.asarray(0, jnp.int32), jnp.asarray(-1, jnp.int32))
    cfg = _discrete("statistics", m=10**6)
    keys = jax.random.split(jax.random.key(0), 2000)
    c = np.asarray(jax.vmap(lambda k: discrete.sample(k, state, 1, cfg)[0])(keys))
    assert np.all(c.sum(1) == 10**6) and np.all(c[:, [1, 3]] == 0)
    _within(c[:, 2].astype(float), 0.5 * 10**6, "count of state 2")


@pytest.mark.parametrize(
    "regime, beta, gamma", [("accumulate_subsample", 0.0, 0.0), ("custom", 0.3, 0.0)]
)
@pytest.mark.parametrize("fam", ["gaussian", "discrete"])
def test_inexact_regimes_are_refused(fam, regime, beta, gamma):
    cfg = _gaussian("statistics") if fam == "gaussian" else _discrete("statistics")
    cfg.mixing.regime, cfg.mixing.alpha = regime, 1.0 - beta - gamma
    cfg.mixing.beta, cfg.mixing.gamma = beta, gamma
    validate = gaussian.validate if fam == "gaussian" else discrete.validate
    with pytest.raises(ConfigError, match=rf"{fam}\.sampler") as e:
        validate(cfg)
    assert "\n" not in str(e.value)
    cfg[fam].sampler = "moments"
    with pytest.raises(ConfigError, match=rf"{fam}\.sampler"):
        validate(cfg)


@pytest.mark.parametrize(
    "field, value",
    [
        ("regime", "augment"),
        ("regime", "fresh"),
        ("curation.score", "oracle"),
        ("real_weight", 2.0),
    ],
)
@pytest.mark.parametrize("fam", ["gaussian", "discrete"])
def test_policies_needing_single_samples_are_refused(fam, field, value):
    cfg = _gaussian("statistics") if fam == "gaussian" else _discrete("statistics")
    if value == "fresh":
        cfg.mixing.fresh_fraction = 0.5
    if "." in field:
        cfg.mixing.curation[field.split(".")[1]] = value
    else:
        cfg.mixing[field] = value
    validate = gaussian.validate if fam == "gaussian" else discrete.validate
    with pytest.raises(ConfigError, match=rf"{fam}\.sampler: 'statistics' cannot") as e:
        validate(cfg)
    assert "\n" not in str(e.value)


def test_statistics_run_resumes_exactly(tmp_path):
    # Records checkpoint and restore: 3 generations then 3 more equal 6 in one go.
    cfg = _gaussian("statistics", m=10**5, seeds=4, generations=6)
    cfg.checkpoint.every_generations = 2
    chain.run(cfg, tmp_path / "whole")
    cfg.num_generations = 3
    chain.run(cfg, tmp_path / "resumed")
    cfg.num_generations = 6
    chain.run(cfg, tmp_path / "resumed")
    whole = (tmp_path / "whole" / "metrics.jsonl").read_text()
    assert len(whole.splitlines()) == 6
    assert (tmp_path / "resumed" / "metrics.jsonl").read_text() == whole


# ------------------------------------------------------------------------------------------------
# The batched chi-square sampler (sufficient.chi2) against scipy.stats.chi2.

CHI2_DRAWS = 100_000


def _chi2_draws(df, candidates=None, key=0, n=CHI2_DRAWS):
    keys = jax.random.split(jax.random.key(key), n)
    if candidates is None:
        draw = lambda k: sufficient.chi2(k, df)  # noqa: E731
    else:
        # Fewer candidates than the sampler uses, so that the fallback loop runs often.
        alpha = jnp.float32(df / 2)
        width = 2 * candidates + (df < 2)

        def draw(k):
            f_W = jax.random.uniform(k, (width,))
            return 2.0 * sufficient._gamma_from(k, f_W, alpha, candidates)

    return np.asarray(jax.jit(jax.vmap(draw))(keys), np.float64)


def _chi2_moments_within(x, df):
    # E[X] = k, Var X = 2k, E[(X - k)^3] = 8k: each within 5 standard errors of the seeds' own.
    n = x.size
    for terms, want in ((x, df), ((x - df) ** 2, 2 * df), ((x - df) ** 3, 8 * df)):
        se = terms.std(ddof=1) / np.sqrt(n)
        assert abs(terms.mean() - want) < 5.0 * se, (df, terms.mean(), want, se)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 10, 99, 999])
def test_chi2_is_exact_in_distribution(df):
    # df = 1: Gamma(1/2) through Marsaglia-Tsang's boost (Gamma(a + 1) U^(1/a)).
    x = _chi2_draws(df)
    assert np.all(x > 0)
    p = scipy.stats.kstest(x, scipy.stats.chi2(df).cdf).pvalue
    assert p > P_MIN, f"chi2_{df}: KS p = {p:.2g}"
    _chi2_moments_within(x, df)


@pytest.mark.parametrize("df", [1, 2, 5])
def test_chi2_fallback_loop_is_exact(df):
    # One candidate per try: 2-5% of draws reject it and take the while_loop's later batches.
    x = _chi2_draws(df, candidates=1, key=1)
    p = scipy.stats.kstest(x, scipy.stats.chi2(df).cdf).pvalue
    assert p > P_MIN, f"chi2_{df} (fallback): KS p = {p:.2g}"
    _chi2_moments_within(x, df)


def test_chi2_candidates_bound_the_fallback():
    # K candidates all reject with probability (1 - p(a))^K; 1 - p(a) < reject_bound(a) for
    # a >= 1 (Marsaglia-Tsang's acceptance, integrated numerically below at a few a).
    from scipy import integrate

    def reject(a):
        # P(v <= 0) + E[1 - min(1, ratio)]: the rejected mass itself, so that quad's absolute
        # tolerance is small against it even where it is ~1e-7.
        d = a - 1 / 3
        c = 1 / np.sqrt(9 * d)

        def f(x):
            v = (1 + c * x) ** 3
            log_ratio = 0.5 * x * x + d - d * v + d * np.log(v)
            return -np.expm1(min(0.0, log_ratio)) * scipy.stats.norm.pdf(x)

        inside = integrate.quad(f, -1 / c, 40, limit=400, points=[0], epsabs=1e-12)[0]
        return scipy.stats.norm.cdf(-1 / c) + inside

    for a in (1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 49.5, 500.0, 5e4):
        k = sufficient.gamma_candidates(a)
        r = reject(a)
        assert r < sufficient.reject_bound(a) and r**k < 1e-6, (a, r, k)
