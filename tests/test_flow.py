"""The flow / diffusion family: the exact oracle against theory.py, the samplers against analytic
fields, the metrics against independent implementations, the chain (vmap, resume, kill), configs.

Statistical tolerances: a mean of N i.i.d. terms within Z = 5 standard errors (the terms' own
sample std / sqrt(N)), as tests/test_theory.py. The oracle chains run thousands of seeds at
M = 10, where the ddof and solver errors they are shown to catch are dozens of standard errors.
"""

import functools
import json
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from collapse_jax import chain, family, theory
from collapse_jax.errors import ConfigError
from collapse_jax.families import kde
from collapse_jax.families.flow import affine, evaluate, objectives, samplers
from collapse_jax.families.flow import family as flow
from configs import flow as flow_config

Z = 5.0


def smoke(**fields):
    cfg = flow_config.get_config("smoke")
    cfg.log_every_seconds = 0.0
    cfg.update_from_flattened_dict(fields)
    return cfg


def zscores(y_GxS, expected_G):
    y = np.asarray(y_GxS, float)
    return (y.mean(1) - np.asarray(expected_G)) / (y.std(1, ddof=1) / np.sqrt(y.shape[1]))


# ---------------------------------------------------------------------------------------------
# Config errors.


@pytest.mark.parametrize(
    "field, value",
    [
        ("flow.source", "cifar"),
        ("flow.model", "transformer"),
        ("flow.objective", "edm"),
        ("flow.sampler", "rk4"),
        ("flow.sampler_steps", 0),
        ("flow.train_steps", -1),
        ("flow.loss_points", 3),  # not a divisor of train_steps = 8
        ("flow.learning_rate", 0.0),
        ("flow.ema_decay", 1.0),
        ("flow.mlp_hidden", ()),
        ("flow.eval_samples", 3),  # not above prdc_k = 5
        ("flow.toy.dataset", "spirals"),
        ("flow.gaussian.std", 0.0),
        ("flow.beta_end", 2.0),
        ("flow.beta_end", 0.021),  # abar_T = 0.77 with the smoke T = 20: x_T is not noise
    ],
)
def test_bad_config_is_one_line_error(field, value):
    cfg = smoke(**{field: value})
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as e:
        flow.validate(cfg)
    assert "\n" not in str(e.value)


def test_inconsistent_choices_are_refused():
    for fields, match in [
        ({"flow.model": "affine", "flow.objective": "ddpm"}, r"flow\.objective"),
        ({"flow.sampler": "ancestral"}, r"flow\.sampler"),  # a DDPM sampler for a flow
        ({"flow.model": "unet"}, r"flow\.model"),  # 2-D data
        ({"mixing.curation.score": "oracle"}, r"curation\.score=oracle"),  # toys: no density
    ]:
        with pytest.raises(ConfigError, match=match):
            flow.validate(smoke(**fields))
    flow.validate(smoke(**{"flow.source": "gaussian", "mixing.curation.score": "oracle"}))


# ---------------------------------------------------------------------------------------------
# The oracle.


def test_affine_field_is_the_least_squares_fit_of_the_cfm_regression():
    """Closed-form (A_t, b_t) against numpy's least squares on Monte Carlo (x_t, x_1 - x_0) pairs:
    each coefficient within Z of its standard error (sigma^2 (X^T X)^-1, sigma^2 per output)."""
    g = np.random.default_rng(0)
    data = g.normal(size=(40, 2)) @ np.array([[1.5, 0.0], [0.7, 0.4]]) + [1.0, -2.0]
    model = affine.fit(family.full(jnp.asarray(data, jnp.float32)))
    n = 400_000
    for t in (0.1, 0.5, 0.9):
        x1 = data[g.integers(0, len(data), n)]
        x0 = g.normal(size=(n, 2))
        xt = (1 - t) * x0 + t * x1
        u = x1 - x0
        design = np.c_[xt, np.ones(n)]
        coef, *_ = np.linalg.lstsq(design, u, rcond=None)
        resid = u - design @ coef
        cov = np.linalg.inv(design.T @ design)
        se = np.sqrt(np.diag(cov)[:, None] * resid.var(0, ddof=3)[None, :])
        a, b = affine.coefficients(model, jnp.float32(t))
        want = np.r_[np.asarray(a).T, np.asarray(b)[None, :]]  # rows: x1, x2, 1; columns: outputs
        assert np.all(np.abs(coef - want) < Z * se), (t, (coef - want) / se)


def test_affine_ode_carries_noise_to_the_fitted_gaussian():
    """x(1) = m + C^(1/2) x(0) (the module's derivation), per sample, to float32 accuracy."""
    g = np.random.default_rng(1)
    data = g.normal(size=(30, 2)) @ np.array([[2.0, 0.3], [0.0, 0.2]])
    model = affine.fit(family.full(jnp.asarray(data, jnp.float32)))
    cfg = smoke(**{"flow.sampler": "tsit5", "flow.sampler_steps": 32})
    z = jax.random.normal(jax.random.key(0), (64, 2))
    x1 = samplers.ode_sample(lambda x, t: affine.velocity(model, x, t), z, 1.0, cfg.flow)
    c = np.cov(data.T, ddof=0)
    want = data.mean(0) + np.asarray(z, float) @ scipy.linalg.sqrtm(c).real.T
    np.testing.assert_allclose(np.asarray(x1), want, atol=2e-4)


@pytest.mark.parametrize("solver", ["euler", "tsit5"])
def test_fixed_grid_steps_are_diffrax_diffeqsolve_on_the_same_grid(solver):
    """The scan of the solver's own steps against ``diffeqsolve(StepTo(ts))``: two programs, so
    within a few float32 ulps of the values (not bitwise)."""
    import diffrax

    def f(t, y):
        return jnp.sin(3 * t) - y * (1 + t) + 0.1 * y**2

    y0 = jax.random.normal(jax.random.key(0), (64, 2))
    cfg = smoke()
    got = samplers.integrate(f, y0, 0.0, 1.0, cfg.flow, solver, 12)
    ts = samplers.time_grid(0.0, 1.0, 12)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: f(t, y)),
        samplers.SOLVERS[solver](),
        ts[0],
        ts[-1],
        None,
        y0,
        stepsize_controller=diffrax.StepTo(ts=ts),
        saveat=diffrax.SaveAt(t1=True),
    )
    np.testing.assert_allclose(got, sol.ys[-1], rtol=1e-6, atol=1e-6)


def test_affine_log_prob_and_the_ode_likelihood_are_the_gaussian_density():
    g = np.random.default_rng(2)
    data = g.normal(size=(50, 2)) @ np.array([[1.0, 0.5], [0.0, 0.7]]) + 0.3
    model = affine.fit(family.full(jnp.asarray(data, jnp.float32)))
    x = g.normal(size=(20, 2)).astype(np.float32) * 1.5
    want = scipy.stats.multivariate_normal(data.mean(0), np.cov(data.T, ddof=0)).logpdf(x)
    np.testing.assert_allclose(affine.log_prob(model, jnp.asarray(x)), want, rtol=1e-5, atol=1e-5)
    # The instantaneous change of variables through the same field (exact divergence), and
    # Hutchinson's estimate (exact in expectation; for a linear field its per-sample error is
    # the probe's off-diagonal terms, so only the mean over many probes is compared).
    cfg = smoke(**{"flow.ode_rtol": 1e-6, "flow.ode_atol": 1e-7})
    v = lambda y, t: affine.velocity(model, y, t)  # noqa: E731
    ll = samplers.log_likelihood(v, jnp.asarray(x), 1.0, cfg.flow, "dopri5", 16)
    np.testing.assert_allclose(ll, want, rtol=1e-4, atol=2e-4)


def _oracle_cfg(regime, dim, seeds=4000, generations=12, m=10):
    cfg = flow_config.get_config("setup=oracle")
    cfg.num_seeds, cfg.num_generations, cfg.samples_per_generation = seeds, generations, m
    cfg.checkpoint.every_generations = generations
    cfg.mixing.regime = regime
    cfg.flow.gaussian.dim = dim
    return cfg


def _oracle_z(cfg):
    """z-scores of the seed means of tr Sigma_n and |mu_n - mu0|^2 against theory.py (mle)."""
    out = chain.simulate(cfg)
    n, m, d = np.arange(cfg.num_generations), cfg.samples_per_generation, cfg.flow.gaussian.dim
    if cfg.mixing.regime == "replace":
        var = theory.expected_variance(n, m, "mle", dim=d)
        err = theory.expected_mean_error(n, m, "mle", dim=d)
    else:
        # Each coordinate's marginal is the 1-D chain (a Gaussian fit's diagonal is the 1-D fit of
        # that coordinate), so the traces are d times the 1-D expectations.
        var = d * theory.accumulate_expected_variance(n, m, "mle")
        err = d * theory.accumulate_expected_mean_error(n, m, "mle")
    return zscores(out["cov_trace"], var), zscores(out["mean_error"], err)


ORACLE_CASES = [
    ("replace", 1),
    pytest.param("replace", 2, marks=pytest.mark.slow),
    pytest.param("accumulate", 1, marks=pytest.mark.slow),
    pytest.param("accumulate", 2, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("regime,dim", ORACLE_CASES)
def test_oracle_chain_follows_the_gaussian_mle_closed_forms(regime, dim):
    """The affine field, fitted in closed form and sampled by Tsit5 on 16 steps, is the Gaussian
    MLE refit: E[tr Sigma_n] and E|mu_n - mu0|^2 within Z standard errors at every generation
    (4000 seeds, M = 10)."""
    z_var, z_mean = _oracle_z(_oracle_cfg(regime, dim))
    assert np.all(np.abs(z_var) < Z), np.round(z_var, 2)
    assert np.all(np.abs(z_mean) < Z), np.round(z_mean, 2)


def _off_by_one_grid(t0, t1, steps):
    # A grid that stops one step short of t1: the classic off-by-one of a hand-made time grid.
    return jnp.linspace(t0, t1, steps + 2, dtype=jnp.float32)[:-1]


@pytest.mark.parametrize(
    "broken",
    [
        "ddof",
        pytest.param("solver_steps", marks=pytest.mark.slow),
        pytest.param("time_grid", marks=pytest.mark.slow),
    ],
)
def test_breaking_the_oracle_fails_the_closed_forms(broken, monkeypatch):
    """Each part matters: ddof = 1 (the unbiased covariance), Euler on 8 steps instead of Tsit5
    on 16, or a time grid ending one step short of t = 1 each put the variance's seed mean far
    outside Z standard errors of the closed form (by generation 11 at the latest)."""
    cfg = _oracle_cfg("replace", 2)
    if broken == "ddof":
        monkeypatch.setattr(affine, "DDOF", 1)
    elif broken == "solver_steps":
        cfg.flow.sampler, cfg.flow.sampler_steps = "euler", 8
    else:
        monkeypatch.setattr(samplers, "time_grid", _off_by_one_grid)
    z_var, _ = _oracle_z(cfg)
    assert np.max(np.abs(z_var)) > 4 * Z, np.round(z_var, 2)


# ---------------------------------------------------------------------------------------------
# DDPM pieces against an analytic noise predictor.


def test_continuous_schedule_meets_the_discrete_one_at_the_grid():
    f = smoke().flow
    sched = objectives.schedule(f)
    T = f.ddpm_steps
    for k in (1, 2, 17, T // 2, T):
        beta, log_abar = objectives.vp_coefficients(jnp.float32(k / T), sched)
        np.testing.assert_allclose(np.exp(log_abar), sched.abar_T[k - 1], rtol=1e-5)
        np.testing.assert_allclose(beta, -T * np.log1p(-float(sched.betas_T[k - 1])), rtol=1e-5)
    want = np.cumprod(1 - np.linspace(f.beta_start, f.beta_end, T))
    np.testing.assert_allclose(sched.abar_T, want, rtol=1e-4)


def test_ddpm_forward_steps_have_the_closed_form_marginals():
    """Noising N(mu, c) data one step at a time, ``x_k = sqrt(1 - beta_k) x_(k-1) + sqrt(beta_k)
    eps``, gives the marginal ``N(sqrt(abar_k) mu, abar_k c + 1 - abar_k)`` the loss draws from in
    one shot: sample mean and variance within Z standard errors at several k."""
    mu, c, n = 1.5, 0.25, 20_000
    f = smoke().flow
    sched = objectives.schedule(f)
    x0 = mu + math.sqrt(c) * jax.random.normal(jax.random.key(0), (n,))

    def step(x, kb):
        k, beta = kb
        eps = jax.random.normal(jax.random.fold_in(jax.random.key(1), k), x.shape)
        x = jnp.sqrt(1 - beta) * x + jnp.sqrt(beta) * eps
        return x, x

    T = f.ddpm_steps
    _, xs_TxN = jax.lax.scan(step, x0, (jnp.arange(T), sched.betas_T))
    for k in (1, T // 4, T // 2, T):
        x = np.asarray(xs_TxN[k - 1], float)
        ab = float(sched.abar_T[k - 1])
        mean, var = math.sqrt(ab) * mu, ab * c + 1 - ab
        assert abs(x.mean() - mean) < Z * math.sqrt(var / n), (k, x.mean(), mean)
        # The variance of a Gaussian's sample variance is 2 var^2 / (n - 1).
        assert abs(x.var(ddof=1) - var) < Z * var * math.sqrt(2 / (n - 1)), (k, x.var(), var)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim", "heun"])
def test_ddpm_samplers_draw_the_data_law_with_the_exact_noise_predictor(sampler):
    """For data N(mu, c), E[eps | x_k] = sqrt(1 - abar)(x_k - sqrt(abar) mu) / (abar c + 1 - abar)
    in closed form; every sampler driven by it must return N(mu, c): the sample mean and variance
    within Z standard errors. (Ancestral with the posterior variance under-disperses by
    O(sum beta_k^2 / (1 - abar_k)) ~ 1e-3 of c, far below the 1% standard error here.)"""
    mu, c, n = 0.7, 2.0, 20_000
    fields = {"flow.objective": "ddpm", "flow.sampler": sampler, "flow.sampler_steps": 200}
    f = smoke(
        **fields, **{"flow.ddpm_steps": 1000, "flow.beta_start": 1e-4, "flow.beta_end": 0.02}
    ).flow
    sched = objectives.schedule(f)
    T = f.ddpm_steps

    def eps_fn(x, s_B):
        _, log_abar = objectives.vp_coefficients(s_B[0], sched)
        abar = jnp.exp(log_abar)
        return jnp.sqrt(1 - abar) * (x - jnp.sqrt(abar) * mu) / (abar * c + 1 - abar)

    z = jax.random.normal(jax.random.key(0), (n, 1))
    if sampler == "ancestral":
        x = samplers.ancestral(eps_fn, jax.random.key(1), z, sched, clip=False)
    elif sampler == "ddim":
        x = samplers.ddim(eps_fn, z, sched, f.sampler_steps, clip=False)
    else:
        v = objectives.ddpm_velocity(eps_fn, sched)
        x = samplers.ode_sample(v, z, 1 - 1 / T, f)
        x = samplers.ddpm_denoise(eps_fn, x, sched, 1 / T, clip=False)
    x = np.asarray(x, float)[:, 0]
    assert abs(x.mean() - mu) < Z * x.std() / math.sqrt(n), x.mean()
    sq = (x - mu) ** 2
    assert abs(sq.mean() - c) < Z * sq.std() / math.sqrt(n), sq.mean()


@pytest.mark.slow
@pytest.mark.parametrize(
    "objective,sampler,steps", [("flow", "heun", 1000), ("ddpm", "ddim", 2500)]
)
def test_trained_mlp_recovers_a_gaussian(objective, sampler, steps):
    """An MLP trained by the objective on M draws of N(mu, s^2 I) in 2-D (Adam, EMA 0.99 of the
    iterates), then sampled on 32 steps: the samples' mean and covariance within Z combined
    standard errors of the truth's (the training set's, s^2 / M for a mean and 2 s^4 / M for a
    variance, plus the samples' own); the approximation error has to be smaller than that."""
    mu, sd, m, n = 1.0, 0.5, 2000, 2000
    fields = {
        "flow.source": "gaussian",
        "flow.gaussian.mean": mu,
        "flow.gaussian.std": sd,
        "flow.objective": objective,
        "flow.sampler": sampler,
        "flow.sampler_steps": 32,
        "flow.ddpm_steps": 1000,
        "flow.beta_start": 1e-4,
        "flow.beta_end": 0.02,
        "flow.mlp_hidden": (64, 64),
        "flow.time_dim": 32,
        "flow.train_steps": steps,
        "flow.batch_size": 256,
        "flow.learning_rate": 3e-3,
        "flow.ema_decay": 0.99,
        "flow.loss_points": 2,
        "flow.sample_chunk": n,
    }
    cfg = smoke(**fields)
    flow.validate(cfg)
    k_data, k_init, k_fit, k_sample = jax.random.split(jax.random.key(0), 4)
    x0 = mu + sd * jax.random.normal(k_data, (m, 2))

    @jax.jit
    def fit_and_sample(x0):
        state = flow.fit(k_fit, flow.init(k_init, cfg, None), family.full(x0), cfg)
        return flow.sample(k_sample, state, n, cfg), state.loss_K

    x, loss_K = fit_and_sample(x0)
    x = np.asarray(x, float)
    assert loss_K[-1] < loss_K[0]
    var = sd**2
    se_mean = math.sqrt(var / m + var / n)
    np.testing.assert_array_less(np.abs(x.mean(0) - mu), Z * se_mean)
    cov = np.cov(x.T)
    se_var = var * math.sqrt(2 / m + 2 / n)
    np.testing.assert_array_less(np.abs(np.diag(cov) - var), Z * se_var)
    se_cov = var * math.sqrt(1 / m + 1 / n)  # an off-diagonal of independent coordinates
    assert abs(cov[0, 1]) < Z * se_cov, cov


# ---------------------------------------------------------------------------------------------
# Metrics against independent implementations.


def _prdc_numpy(real, fake, k):
    """The prdc package's compute_prdc, in float64 numpy."""
    from scipy.spatial.distance import cdist

    def radii(x):
        return np.sort(cdist(x, x), axis=1)[:, k]

    rr, fr = radii(real), radii(fake)
    d = cdist(real, fake)
    return {
        "precision": (d < rr[:, None]).any(axis=0).mean(),
        "recall": (d < fr[None, :]).any(axis=1).mean(),
        "density": (1 / k) * (d < rr[:, None]).sum(axis=0).mean(),
        "coverage": (d.min(axis=1) < rr).mean(),
    }


def test_prdc_matches_a_brute_force_numpy_version():
    g = np.random.default_rng(3)
    real = g.normal(size=(70, 3))
    fake = g.normal(size=(53, 3)) * 0.7 + 0.4
    k = 4
    r2 = evaluate.knn_sq_radii(jnp.asarray(real, jnp.float32), k, chunk=16)
    got = evaluate.prdc(jnp.asarray(real, jnp.float32), r2, jnp.asarray(fake, jnp.float32), k, 16)
    want = _prdc_numpy(real, fake, k)
    for name, w in want.items():
        np.testing.assert_allclose(float(getattr(got, name)), w, atol=1e-6, err_msg=name)


def test_prdc_by_hand():
    # Real points on a line at 0, 1, 3 (k = 1 radii 1, 1, 2); fake at 0.5 and 10.
    real = jnp.asarray([[0.0], [1.0], [3.0]])
    fake = jnp.asarray([[0.5], [10.0]])
    got = evaluate.prdc(real, evaluate.knn_sq_radii(real, 1), fake, 1)
    # 0.5 lies in the balls of 0 and 1 (radius 1) and of 3 (radius 2)? |0.5 - 3| = 2.5: no.
    assert float(got.precision) == 0.5  # 0.5 inside, 10 outside
    assert float(got.density) == 1.0  # (2 balls + 0) / (k * 2)
    assert float(got.coverage) == pytest.approx(2 / 3)  # balls of 0 and 1 hold 0.5
    # Fake radii (k = 1): 9.5 each; every real point is within 9.5 of 0.5.
    assert float(got.recall) == 1.0


def test_frechet_distance_matches_scipy_sqrtm():
    g = np.random.default_rng(4)
    a = g.normal(size=(400, 6)) @ g.normal(size=(6, 6))
    b = g.normal(size=(300, 6)) @ g.normal(size=(6, 6)) + 0.5
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(ca @ cb).real  # pytorch-fid's formula
    want = np.sum((ma - mb) ** 2) + np.trace(ca) + np.trace(cb) - 2 * np.trace(covmean)
    got = evaluate.frechet_distance(jnp.asarray(b, jnp.float32), evaluate.real_stats(a))
    np.testing.assert_allclose(float(got), want, rtol=1e-4)
    same = evaluate.frechet_distance(jnp.asarray(a, jnp.float32), evaluate.real_stats(a))
    assert abs(float(same)) < 1e-3 * np.trace(ca)


def test_sample_mmd_matches_the_gaussian_closed_form():
    """The metric's Monte Carlo embedding of an affine model's samples against the closed form
    E cos(w.x + b) = exp(-w^T C w / 2) cos(w.m + b) for x ~ N(m, C): within Z standard errors."""
    cfg = smoke(**{"flow.source": "gaussian", "flow.model": "affine", "flow.eval_samples": 20_000})
    cfg.flow.sampler, cfg.flow.sampler_steps = "tsit5", 16
    truth = flow.reference(cfg)
    data = jax.random.normal(jax.random.key(0), (50, 2)) * jnp.asarray([[1.5, 0.5]]) + 0.2
    state = flow.fit(
        jax.random.key(1), flow.init(jax.random.key(2), cfg, None), family.full(data), cfg
    )
    x = flow.sample(jax.random.key(3), state, cfg.flow.eval_samples, cfg)
    phi = np.asarray(kde.features(x, truth.omega_RxD, truth.phase_R), float)
    w, b = np.asarray(truth.omega_RxD, float), np.asarray(truth.phase_R, float)
    m, c = np.asarray(state.params.mean_D, float), np.asarray(state.params.cov_DxD, float)
    r = w.shape[0]
    closed = math.sqrt(2 / r) * np.exp(-0.5 * np.einsum("ri,ij,rj->r", w, c, w)) * np.cos(w @ m + b)
    z = (phi.mean(0) - closed) / (phi.std(0, ddof=1) / math.sqrt(len(phi)))
    assert np.all(np.abs(z) < Z), np.abs(z).max()


# ---------------------------------------------------------------------------------------------
# The family in the chain.


@pytest.mark.parametrize(
    "objective,jit",
    [("flow", True), ("ddpm", True), pytest.param("flow", False, marks=pytest.mark.slow)],
)
def test_shapes_and_finiteness(jit, objective):
    sampler = "ddim" if objective == "ddpm" else "heun"
    cfg = smoke(**{"flow.objective": objective, "flow.sampler": sampler})
    if not jit:  # op by op every step is a Python call: the fewest steps that still loop
        cfg.flow.train_steps = cfg.flow.loss_points = 2
        cfg.flow.sampler_steps = cfg.flow.nll_steps = 2
        cfg.flow.eval_samples = cfg.flow.prdc_real_samples = cfg.flow.snapshot_points = 8
    fam = flow.FAMILY
    truth = fam.reference(cfg)
    m = cfg.samples_per_generation

    def generation(key):
        k0, k1, k2, k3 = jax.random.split(key, 4)
        x0 = fam.original_data(k0, truth, cfg)
        d0 = family.full(x0)
        s0 = fam.fit(k1, fam.init(k1, cfg, d0), d0, cfg)
        x1 = fam.sample(k2, s0, m, cfg)
        s1 = fam.fit(k3, s0, family.full(x1), cfg)
        return x0, x1, fam.metrics(s1, d0, family.Origin(truth, x0, s0), cfg)

    with jax.disable_jit(not jit):
        x0, x1, met = (jax.jit(generation) if jit else generation)(jax.random.key(0))
    assert x0.shape == x1.shape == (m, 2)
    scalars = {
        "nll",
        "mmd",
        "precision",
        "recall",
        "density",
        "coverage",
        "cov_trace",
        "train_loss",
    }
    assert set(met) == scalars | {"snapshot", "train_loss_curve"}
    for k in scalars:
        assert jnp.shape(met[k]) == () and bool(jnp.isfinite(met[k])), k
    assert met["snapshot"].shape == (cfg.flow.snapshot_points, 2)
    assert met["train_loss_curve"].shape == (cfg.flow.loss_points,)
    for k in ("precision", "recall", "coverage"):
        assert 0 <= float(met[k]) <= 1, k


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_vmapped_chain_equals_loop_over_seeds():
    cfg = smoke(**{"mixing.regime": "accumulate", "flow.init": "warm"})
    got, want = chain.simulate(cfg), chain.simulate_per_seed(cfg)
    assert sorted(got) == sorted(want)
    for k in got:
        # Training steps of float32 sums in another order (a seed axis added): agreement to a
        # few float32 ulps of the values, a tiny MLP trained 8 steps per generation.
        np.testing.assert_allclose(got[k], want[k], rtol=2e-4, atol=2e-4, err_msg=k)


def _read(workdir):
    return (workdir / "metrics.jsonl").read_bytes()


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_resume_after_a_kill_is_byte_identical(tmp_path):
    """A run that lost its last checkpoint and last metrics line (as a kill leaves it) resumes
    to the bytes of an uninterrupted run; a shorter run extended does too."""
    cfg = smoke(num_generations=5)
    full = chain.run(cfg, tmp_path / "full")
    assert [json.loads(x)["generation"] for x in _read(full).splitlines()] == [0, 1, 2, 3, 4]
    killed = tmp_path / "killed"
    shutil.copytree(full, killed)
    last = max(int(p.name) for p in (killed / "checkpoints").iterdir() if p.name.isdigit())
    shutil.rmtree(killed / "checkpoints" / str(last))
    lines = _read(killed).splitlines(keepends=True)
    (killed / "metrics.jsonl").write_bytes(b"".join(lines[:-1]))
    chain.run(cfg, killed)
    assert _read(killed) == _read(full)
    part = chain.run(smoke(num_generations=3), tmp_path / "part")
    chain.run(cfg, part)
    assert _read(part) == _read(full)


def test_report_draws_every_figure(tmp_path):
    from collapse_jax import plots
    from collapse_jax.plots import checklist
    from collapse_jax.plots import flow as flow_plots
    from tests.test_figures import assert_clean

    a = chain.run(smoke(), tmp_path / "replace")
    b = chain.run(smoke(**{"mixing.regime": "fresh"}), tmp_path / "fresh")
    with checklist.collecting() as found:  # the figure checklist (docs/figures.md)
        paths, summary = plots.report(a)
        out = flow_plots.sweep_figure([a, b], tmp_path / "figures")
    assert set(found) == {"flow_metrics", "flow_samples", "flow_loops"}
    assert_clean(found)
    assert {p.name for p in paths} == {"flow_metrics.png", "flow_samples.png", "profile.md"}
    assert all(p.stat().st_size > 0 for p in paths)
    assert "| mmd |" in summary
    # The collapse profile reads the metrics the family writes (profile.MEASURES["flow"]).
    text = next(p for p in paths if p.name == "profile.md").read_text()
    for label in ("MMD to the truth", "recall (real modes covered)", "precision (samples on the"):
        assert label in text, label
    assert out.stat().st_size > 0


def test_fresh_mnist_takes_unused_real_images():
    cfg = smoke()
    cfg.flow.source = "mnist"
    images = jnp.arange(100 * 28 * 28, dtype=jnp.int32).reshape(100, 28, 28).astype(jnp.uint8)
    truth = flow.Truth(None, None, images_NxHxW=images)
    m = cfg.samples_per_generation
    a = flow.fresh_data(None, truth, 8, jnp.int32(1), cfg)
    b = flow.fresh_data(None, truth, 8, jnp.int32(2), cfg)
    np.testing.assert_array_equal(a, images[m : m + 8])
    np.testing.assert_array_equal(b, images[m + 8 : m + 16])


@functools.cache
def _mnist_smoke():
    from configs import mad as mad_config

    cfg = mad_config.get_config("smoke")
    cfg.log_every_seconds = 0.0
    return cfg


@pytest.mark.slow  # the MNIST classifier, the UNet and its chain compile for minutes on 2 cores
def test_mnist_unet_chain_is_finite(shared_data):
    del shared_data
    cfg = _mnist_smoke()
    out = chain.simulate(cfg)
    shapes = {k: v.shape[2:] for k, v in out.items()}
    assert shapes["sample_images"] == (cfg.flow.grid_images, 28, 28)
    assert shapes["class_share"] == (10,)
    for k in ("fid", "precision", "recall", "density", "coverage", "class_entropy", "train_loss"):
        assert shapes[k] == () and np.all(np.isfinite(out[k])), k
    assert out["sample_images"].dtype == np.uint8
    np.testing.assert_allclose(out["class_share"].sum(-1), 1.0, rtol=1e-6)
