"""Gaussian family: estimators, weights, sources, W2, shapes and config validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from collapse_jax import chain, family, mixing, plots
from collapse_jax.errors import ConfigError
from collapse_jax.families import gaussian
from collapse_jax.plots import gaussian as plots_gaussian
from configs import gaussian as gaussian_config


def cfg_for(dim=1, estimator="unbiased", source="normal", m=20):
    cfg = gaussian_config.get_config("smoke")
    cfg.gaussian.dim, cfg.gaussian.estimator, cfg.gaussian.source = dim, estimator, source
    cfg.samples_per_generation = m
    return cfg


@pytest.mark.parametrize(
    "field, value",
    [
        ("gaussian.dim", 0),
        ("gaussian.dim", -2),
        ("gaussian.estimator", "median"),
        ("gaussian.source", "cauchy"),
        ("gaussian.df", 2.0),
        ("gaussian.std", 0.0),
        ("gaussian.mixture_weight", 1.0),
        ("gaussian.mixture_separation", 3.0),  # w(1-w) sep^2 = 1.89 >= 1: no unit-variance mixture
        ("samples_per_generation", 1),  # the unbiased estimator divides by M - 1
    ],
)
def test_bad_config_is_one_line_error(field, value):
    cfg = cfg_for()
    section, _, name = field.rpartition(".")
    (cfg[section] if section else cfg)[name] = value
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as e:
        gaussian.validate(cfg)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("estimator, ddof", [("unbiased", 1), ("mle", 0)])
@pytest.mark.parametrize("dim", [1, 3])
def test_fit_matches_numpy_and_ignores_padding(estimator, ddof, dim):
    cfg = cfg_for(dim, estimator)
    x = np.random.default_rng(0).normal(size=(20, dim)).astype(np.float32) * 3 + 1
    state = gaussian.fit(None, None, mixing.full(jnp.asarray(x)), cfg)
    np.testing.assert_allclose(state.mean_D, x.mean(0), rtol=1e-5)
    cov = np.atleast_2d(np.cov(x.T, ddof=ddof))
    np.testing.assert_allclose(state.cov_DxD, cov, rtol=1e-4, atol=1e-6)
    # An accumulate buffer: the same samples scattered among zero-weight slots of garbage.
    pad = np.full((30, dim), 1e3, np.float32)
    xp = np.concatenate([pad[:13], x, pad[13:]])
    wp = np.concatenate([np.zeros(13), np.ones(20), np.zeros(17)]).astype(np.float32)
    padded = gaussian.fit(None, None, mixing.Data(jnp.asarray(xp), jnp.asarray(wp)), cfg)
    np.testing.assert_allclose(padded.mean_D, state.mean_D, rtol=1e-6)
    np.testing.assert_allclose(padded.cov_DxD, state.cov_DxD, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("source", ["normal", "student_t", "mixture"])
def test_sources_have_the_configured_moments(source):
    # Every source has mean mu0 and covariance sigma0^2 I; each sample moment is a mean of N i.i.d.
    # terms, so it must be within 5 standard errors (from the terms' own sample std).
    cfg = cfg_for(dim=2, source=source, m=200_000)
    cfg.gaussian.mean, cfg.gaussian.std = 0.5, 2.0
    truth = gaussian.reference(cfg)
    draw = jax.jit(lambda key: gaussian.original_data(key, truth, cfg))
    x = np.asarray(draw(jax.random.key(1)))
    n = x.shape[0]
    terms = {"mean": x - 0.5}
    xc = x - 0.5
    terms["cov"] = (xc[:, :, None] * xc[:, None, :]).reshape(n, -1) - np.eye(2).ravel() * 4.0
    for name, t in terms.items():
        z = t.mean(0) / (t.std(0, ddof=1) / np.sqrt(n))
        assert np.all(np.abs(z) < 5), (name, z)


def test_mixture_is_not_gaussian():
    # The non-Gaussian source must actually be non-Gaussian: the mixture (w = 0.3) is skewed.
    cfg = cfg_for(source="mixture", m=100_000)
    x = np.asarray(gaussian.original_data(jax.random.key(2), gaussian.reference(cfg), cfg))[:, 0]
    skew = np.mean(x**3) / np.mean(x**2) ** 1.5
    assert abs(skew) > 0.2  # the standard error of the sample skewness is sqrt(6 / N) ~ 0.008


def test_w2_matches_generic_formula():
    cfg = cfg_for(dim=3)
    cfg.gaussian.mean, cfg.gaussian.std = 0.3, 1.7
    truth = gaussian.reference(cfg)
    a = np.random.default_rng(3).normal(size=(3, 3))
    s1, m1 = a @ a.T, np.array([1.0, -2.0, 0.5])
    s2, m2 = 1.7**2 * np.eye(3), np.full(3, 0.3)
    r2 = scipy.linalg.sqrtm(s2)
    expected = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(r2 @ s1 @ r2))
    got = gaussian.w2_squared(jnp.asarray(m1, jnp.float32), jnp.asarray(s1, jnp.float32), truth)
    np.testing.assert_allclose(got, expected.real, rtol=1e-4)


@pytest.mark.parametrize("dim", [1, 3])
def test_sampler_has_the_fitted_moments(dim):
    cfg = cfg_for(dim)
    a = np.random.default_rng(4).normal(size=(dim, dim))
    cov = a @ a.T + 0.1 * np.eye(dim)
    state = gaussian.State(jnp.arange(dim, dtype=jnp.float32), jnp.asarray(cov, jnp.float32))
    n = 200_000
    x = np.asarray(gaussian.sample(jax.random.key(5), state, n, cfg), float)
    xc = x - np.arange(dim)
    t = (xc[:, :, None] * xc[:, None, :]).reshape(n, -1) - cov.ravel()
    for terms in (xc, t):  # 5 standard errors, as above
        z = terms.mean(0) / (terms.std(0, ddof=1) / np.sqrt(n))
        assert np.all(np.abs(z) < 5), z


# Op-by-op (no jit) is slow on CPU, so the unjitted run covers d = 1 only.
@pytest.mark.parametrize("dim, jit", [(1, True), (1, False), (2, True)])
def test_shapes_and_finiteness(dim, jit):
    cfg = cfg_for(dim)
    fam = gaussian.FAMILY
    truth = fam.reference(cfg)

    def generation(key):
        k0, k1, k2 = jax.random.split(key, 3)
        x0 = fam.original_data(k0, truth, cfg)
        data0 = mixing.full(x0)
        s0 = fam.fit(k1, fam.init(k1, cfg, data0), data0, cfg)
        x1 = fam.sample(k2, s0, cfg.samples_per_generation, cfg)
        s1 = fam.fit(k2, s0, mixing.full(x1), cfg)
        # A fully collapsed model (every sample equal) must still give finite metrics.
        s_dead = fam.fit(k2, s0, mixing.full(jnp.zeros_like(x1) + 0.25), cfg)
        origin = family.Origin(truth, x0, s0)
        return x0, x1, fam.metrics(s1, data0, origin, cfg), fam.metrics(s_dead, data0, origin, cfg)

    with jax.disable_jit(not jit):
        run = jax.jit(generation) if jit else generation
        x0, x1, m, dead = run(jax.random.key(0))
    assert x0.shape == x1.shape == (cfg.samples_per_generation, dim)
    expected = (
        {"mean", "variance", "std", "mean_error", "std_error", "w2_squared"}
        if dim == 1
        else {"mean_norm", "cov_trace", "cov_logdet", "mean_error", "w2_squared"}
    )
    for metrics in (m, dead):
        assert set(metrics) == expected
        for k, v in metrics.items():
            assert jnp.shape(v) == () and np.isfinite(v), k
    # W2^2 of the collapsed point mass at 0.25 to N(0, I): |0.25|^2 d + d.
    np.testing.assert_allclose(dead["w2_squared"], dim * (0.0625 + 1.0), rtol=1e-5)


def test_run_and_report(tmp_path):
    # The smoke config end to end: chain.run's metrics.jsonl, then the figures and summary.
    cfg = gaussian_config.get_config("smoke")
    chain.run(cfg, tmp_path)
    run = plots.load_run(tmp_path)
    assert run.metrics["w2_squared"].shape == (cfg.num_generations, cfg.num_seeds)
    paths, summary = plots.report(tmp_path)
    assert [p.name for p in paths] == ["variance.png", "mean.png", "w2.png", "profile.md"]
    assert all(p.stat().st_size > 0 for p in paths)
    # The across-M figure (one workdir per M in a sweep; the same run twice is enough here).
    sweep = plots_gaussian.sweep_figure([tmp_path, tmp_path], tmp_path / "figures")
    assert sweep.name == "gaussian_sweep.png" and sweep.stat().st_size > 0
    assert "| w2_squared |" in summary
    assert "Collapse profile" in (tmp_path / "profile.md").read_text()
