"""Gaussian chains: refit a d-dimensional Gaussian to its own samples (Shumailov et al., Sec. 3.2).

Each generation fits ``N(mean_D, cov_DxD)`` to the pool by the sample mean and covariance and
draws the next M samples from it. With ``estimator="unbiased"`` (Theorem 3.1) the covariance
divides by ``n - 1``; with ``"mle"`` it divides by ``n`` (``np.std`` with ddof=0, as in the
authors' notebook). Weights are the pool's 0/1 slot weights, and ``n = sum(weight)``, so a padded
accumulate buffer fits exactly as the unpadded data.

Original data D_0 (``cfg.gaussian.source``) all have mean ``mu0 = cfg.gaussian.mean`` (every
coordinate) and covariance ``sigma0^2 I`` with ``sigma0 = cfg.gaussian.std``:

  normal     N(mu0, sigma0^2 I).
  student_t  independent Student-t coordinates with ``df`` degrees of freedom, scaled to unit
             variance, then ``mu0 + sigma0 * t``.
  mixture    a two-component Gaussian mixture, weights ``(1 - w, w)``, component means
             ``mixture_separation * sigma0`` apart along ``u = (1, ..., 1) / sqrt(d)``; the
             components are narrowed along ``u`` so the mixture's covariance is exactly
             ``sigma0^2 I`` (skewed and, for large separations, bimodal along ``u``).

Theorem 3.1 holds for any D_0 with non-zero variance; since the true moments are the same for every
source, ``collapse_jax.theory``'s mean and variance expectations apply to all three.

Metrics (one seed, one generation):
  d = 1: mean, variance, std, mean_error = (mu_n - mu0)^2, std_error = |sigma_n - sigma0|,
         w2_squared.
  d > 1: mean_norm = |mu_n|, cov_trace, cov_logdet, mean_error = |mu_n - mu0|^2, w2_squared.
``w2_squared`` is the squared Wasserstein-2 distance between the fitted Gaussian and
``N(mu0, sigma0^2 I)``: that is D_0 itself for ``source="normal"``, and for the other sources the
Gaussian with D_0's mean and covariance (a lower bound on W2^2 to D_0 itself: Gelbrich's bound).

Samplers (``cfg.gaussian.sampler``):
  samples     draw the M samples and fit them (the paper's process).
  statistics  draw the fit's sufficient statistics of those M samples directly, exact in
              distribution: the mean of M draws from N(mu, Sigma) is N(mu, Sigma / M) and their
              scatter ``sum (x - xbar)(x - xbar)^T`` is Wishart(Sigma, M - 1), independent of the
              mean (Cochran; for d = 1 ``sigma^2 chi^2_{M-1}``). The scatter is drawn by the
              Bartlett decomposition, so a generation costs O(d^3) whatever M is. Pool rows are
              records ``[count, mean_D, scatter_DxD]`` (``sufficient.py``: which regimes, why
              exact), pooled by Chan et al.'s parallel formula. Unlike ``samples`` it has no
              rounding floor (``configs/gaussian.py``): sigma_n shrinks through every float.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax import family, sampling, sufficient
from collapse_jax.errors import require
from collapse_jax.family import Data

ESTIMATORS = ("unbiased", "mle")
SOURCES = ("normal", "student_t", "mixture")


class Truth(NamedTuple):
    """The moments every source shares: mean ``mu0`` per coordinate, covariance ``sigma0^2 I``."""

    mean_D: jax.Array
    std: float  # sigma0


class State(NamedTuple):
    """A fitted Gaussian."""

    mean_D: jax.Array
    cov_DxD: jax.Array


def _ddof(cfg) -> int:
    return 1 if cfg.gaussian.estimator == "unbiased" else 0


def validate(cfg) -> None:
    g = cfg.gaussian
    require(isinstance(g.dim, int) and g.dim > 0, "gaussian.dim", "a positive integer", g.dim)
    require(g.estimator in ESTIMATORS, "gaussian.estimator", f"one of {ESTIMATORS}", g.estimator)
    require(g.source in SOURCES, "gaussian.source", f"one of {SOURCES}", g.source)
    samplers = sufficient.SAMPLERS
    require(g.sampler in samplers, "gaussian.sampler", f"one of {samplers}", g.sampler)
    require(math.isfinite(g.mean), "gaussian.mean", "a finite number", g.mean)
    require(math.isfinite(g.std) and g.std > 0, "gaussian.std", "a positive number", g.std)
    # Unit variance needs df > 2 (the t variance is df / (df - 2)).
    require(g.df > 2, "gaussian.df", "degrees of freedom > 2 (finite variance)", g.df)
    w, sep = g.mixture_weight, g.mixture_separation
    require(0.0 < w < 1.0, "gaussian.mixture_weight", "a weight in (0, 1)", w)
    require(sep >= 0.0, "gaussian.mixture_separation", "a separation >= 0", sep)
    require(
        w * (1 - w) * sep**2 < 1.0,
        "gaussian.mixture_separation",
        f"w(1-w) sep^2 < 1 so the mixture can have unit variance (w={w})",
        sep,
    )
    m = cfg.samples_per_generation
    # The unbiased estimator divides by n - 1: one sample per generation is undefined.
    require(
        isinstance(m, int) and m > _ddof(cfg),
        "samples_per_generation",
        f"an integer > {_ddof(cfg)} for estimator {g.estimator}",
        m,
    )
    if g.sampler == "statistics":
        sufficient.check_regime(cfg, "gaussian.sampler")
    sampling.validate(cfg, "gaussian")


def reference(cfg) -> Truth:
    return Truth(jnp.full((cfg.gaussian.dim,), cfg.gaussian.mean), float(cfg.gaussian.std))


def _standard_source(key, n: int, cfg) -> jax.Array:
    """``n`` draws with mean 0 and identity covariance from the configured source."""
    g, d = cfg.gaussian, cfg.gaussian.dim
    if g.source == "normal":
        return jax.random.normal(key, (n, d))
    if g.source == "student_t":
        return jax.random.t(key, g.df, (n, d)) * math.sqrt((g.df - 2) / g.df)
    k_z, k_c = jax.random.split(key)
    z_NxD = jax.random.normal(k_z, (n, d))
    u_D = jnp.full((d,), 1 / math.sqrt(d))
    w, sep = g.mixture_weight, g.mixture_separation
    # Component offset along u with mean 0 and variance w(1-w)sep^2; the within-component std
    # along u is narrowed to s so that the total variance along u is s^2 + w(1-w)sep^2 = 1.
    offset_N = sep * (jax.random.bernoulli(k_c, w, (n,)).astype(z_NxD.dtype) - w)
    s = math.sqrt(1 - w * (1 - w) * sep**2)
    along_N = z_NxD @ u_D
    return z_NxD + ((s - 1) * along_N + offset_N)[:, None] * u_D[None, :]


def original_data(key, truth: Truth, cfg) -> jax.Array:
    """D_0 for one seed: ``x_MxD``, or its records under the statistics sampler."""
    m = cfg.samples_per_generation
    if cfg.gaussian.sampler == "statistics" and not sufficient.real_rows(cfg):
        if cfg.gaussian.source == "normal":
            d = truth.mean_D.shape[-1]
            cov_DxD = jnp.eye(d, dtype=truth.mean_D.dtype) * truth.std**2
            return _draw_record(key, truth.mean_D, cov_DxD, m)[None]
        # Other sources have no closed-form statistics: draw D_0 once and summarise it exactly.
        return _record_of(truth.mean_D[None, :] + truth.std * _standard_source(key, m, cfg))[None]
    x_MxD = truth.mean_D[None, :] + truth.std * _standard_source(key, m, cfg)
    if cfg.gaussian.sampler == "statistics":
        return jax.vmap(_record_of)(x_MxD[:, None, :])  # one record per real sample
    return x_MxD


# ---------------------------------------------------------------------------------------------
# Records of the statistics sampler: [count, mean_D, scatter_DxD flattened].


def _record(count, mean_D, scatter_DxD) -> jax.Array:
    count = jnp.asarray(count, mean_D.dtype)
    return jnp.concatenate([count[None], mean_D, scatter_DxD.reshape(-1)])


def _record_of(x_NxD) -> jax.Array:
    """The record of real samples (two-pass: centre, then square)."""
    mean_D = x_NxD.mean(axis=0)
    xc_NxD = x_NxD - mean_D[None, :]
    return _record(x_NxD.shape[0], mean_D, xc_NxD.T @ xc_NxD)


def _draw_record(key, mean_D, cov_DxD, count: int) -> jax.Array:
    """The record of ``count`` draws from ``N(mean_D, cov_DxD)``, drawn without the draws.

    d = 1 (the paper's chain) uses ``key`` once: one uniform draw gives the mean's normal and
    the scatter's chi-square candidates (``sufficient.chi2_from``), so a generation derives no
    further keys (``key`` is folded only in the rare fallback of the chi-square's rejection). d > 1
    splits ``key`` three ways: the mean, the Bartlett diagonal, the Bartlett lower triangle."""
    d = mean_D.shape[-1]
    dtype = mean_D.dtype
    root_DxD = _sqrt_psd(cov_DxD)  # symmetric: root @ root.T = cov, singular covariances too
    dof = count - 1
    if d == 1:
        width = sufficient.chi2_width(dof) if dof else 0
        f_W = jax.random.uniform(key, (1 + width,), dtype)
        z = sufficient.normals_from(f_W[0], dtype)
        mean_D = mean_D + root_DxD[0] * z / math.sqrt(count)
        chi2 = sufficient.chi2_from(key, f_W[1:], dof) if dof else 0.0
        return _record(count, mean_D, cov_DxD * chi2)
    k_mean, k_diag, k_low = jax.random.split(key, 3)
    z_D = jax.random.normal(k_mean, (d,), dtype)
    mean_D = mean_D + (root_DxD @ z_D) / math.sqrt(count)
    if dof == 0:
        scatter_DxD = jnp.zeros((d, d), dtype)
    elif dof >= d:
        # Bartlett: A lower triangular, A_ii^2 ~ chi^2_{dof - i}, A_ij ~ N(0, 1) below the
        # diagonal; root A A^T root^T ~ Wishart(cov, dof).
        diag_D = jnp.sqrt(sufficient.chi2(k_diag, dof - np.arange(d), dtype))
        low_DxD = jnp.tril(jax.random.normal(k_low, (d, d), dtype), -1)
        a_DxD = low_DxD + jnp.diag(diag_D)
        ra_DxD = root_DxD @ a_DxD
        scatter_DxD = ra_DxD @ ra_DxD.T
    else:
        # Fewer degrees of freedom than dimensions: a singular Wishart, dof normal vectors.
        z_FxD = jax.random.normal(k_low, (dof, d), dtype) @ root_DxD
        scatter_DxD = z_FxD.T @ z_FxD
    return _record(count, mean_D, scatter_DxD)


def _pool_records(data: Data, d: int):
    """``(n, mean_D, scatter_DxD)`` of the union of weighted records (Chan et al., 1979)."""
    r_NxR, w_N = data.x, data.weight.astype(data.x.dtype)
    c_N = w_N * r_NxR[:, 0]
    n = c_N.sum()
    mean_NxD = r_NxR[:, 1 : 1 + d]
    mean_D = jnp.sum(c_N[:, None] * mean_NxD, axis=0) / n
    dm_NxD = mean_NxD - mean_D[None, :]
    s_NxDxD = r_NxR[:, 1 + d :].reshape(-1, d, d)
    # Parallel-axis: each record's scatter about its own mean plus c (m - mean)(m - mean)^T.
    spread_DxD = (c_N[:, None] * dm_NxD).T @ dm_NxD if d > 1 else jnp.sum(c_N * dm_NxD[:, 0] ** 2)
    scatter_DxD = jnp.sum(w_N[:, None, None] * s_NxDxD, axis=0) + spread_DxD
    return n, mean_D, scatter_DxD.reshape(d, d)


def fit(key, state: State, data: Data, cfg) -> State:
    """Weighted sample mean and covariance, ddof from the estimator (``key``, ``state`` unused).

    Two-pass (centre, then square), so tiny late-generation variances survive cancellation.
    Under the statistics sampler ``data`` holds records and they are pooled instead.
    """
    del key, state
    if cfg.gaussian.sampler == "statistics":
        n, mean_D, scatter_DxD = _pool_records(data, cfg.gaussian.dim)
        return State(mean_D, scatter_DxD / (n - _ddof(cfg)))
    x_NxD, w_N = data.x, data.weight.astype(data.x.dtype)
    n = w_N.sum()
    if x_NxD.shape[-1] == 1:
        # d = 1 (the paper's case) as fused elementwise sums: vmapped [N,1] matmuls are ~4x slower
        # on CPU than the reductions, and the fit would dominate the generation.
        mean_D = jnp.sum(w_N[:, None] * x_NxD, axis=0) / n
        xc_NxD = x_NxD - mean_D[None, :]
        var_D = jnp.sum(w_N[:, None] * xc_NxD * xc_NxD, axis=0) / (n - _ddof(cfg))
        return State(mean_D, var_D[:, None])
    mean_D = (w_N @ x_NxD) / n
    xc_NxD = (x_NxD - mean_D[None, :]) * jnp.sqrt(w_N)[:, None]
    cov_DxD = (xc_NxD.T @ xc_NxD) / (n - _ddof(cfg))
    return State(mean_D, cov_DxD)


def init(key, cfg, data0: Data) -> State:
    """An empty model (zeros); generation 0 is ``fit`` on D_0."""
    del key
    d = data0.x.shape[-1]
    return State(jnp.zeros((d,), data0.x.dtype), jnp.zeros((d, d), data0.x.dtype))


def _sqrt_psd(cov_DxD):
    """Symmetric square root; eigh, not Cholesky, since a collapsed covariance is singular."""
    if cov_DxD.shape[-1] == 1:
        return jnp.sqrt(jnp.maximum(cov_DxD, 0.0))
    lam_D, v_DxD = jnp.linalg.eigh(cov_DxD)
    return (v_DxD * jnp.sqrt(jnp.maximum(lam_D, 0.0))[None, :]) @ v_DxD.T


def sample(key, state: State, n: int, cfg) -> jax.Array:
    """``n`` draws ``x_nxD`` from the fitted Gaussian (statistics sampler: ``n`` record rows).

    With ``sampling.temperature`` lambda != 1 they come from ``N(mean, lambda^2 cov)``.
    """
    t = cfg.sampling.temperature
    if t != 1.0:  # at 1 the program is the one before temperatures existed
        state = State(state.mean_D, state.cov_DxD * jnp.asarray(t * t, state.cov_DxD.dtype))
    if cfg.gaussian.sampler == "statistics":
        count = sufficient.model_count(cfg)
        if count == 0:
            return jnp.zeros((n, 1 + cfg.gaussian.dim * (cfg.gaussian.dim + 1)), state.mean_D.dtype)
        return sufficient.pad_rows(_draw_record(key, state.mean_D, state.cov_DxD, count), n)
    z_NxD = jax.random.normal(key, (n, state.mean_D.shape[-1]), state.mean_D.dtype)
    if state.mean_D.shape[-1] == 1:
        return state.mean_D[None, :] + z_NxD * _sqrt_psd(state.cov_DxD)
    return state.mean_D[None, :] + z_NxD @ _sqrt_psd(state.cov_DxD)


def log_prob(state: State, x_NxD, cfg) -> jax.Array:
    """``log N(x_n | mean, cov)`` per sample (curation scores); eigenvalues floored at ``tiny``."""
    del cfg
    xc_NxD = x_NxD - state.mean_D[None, :]
    d = state.mean_D.shape[-1]
    tiny = jnp.finfo(state.cov_DxD.dtype).tiny
    if d == 1:
        var = jnp.maximum(state.cov_DxD[0, 0], tiny)
        return -0.5 * (xc_NxD[:, 0] ** 2 / var + jnp.log(2 * jnp.pi * var))
    lam_D, v_DxD = jnp.linalg.eigh(state.cov_DxD)
    lam_D = jnp.maximum(lam_D, tiny)
    y_NxD = xc_NxD @ v_DxD
    return -0.5 * (jnp.sum(y_NxD**2 / lam_D[None, :], -1) + jnp.sum(jnp.log(2 * jnp.pi * lam_D)))


def truth_log_prob(truth: Truth, x_NxD, cfg) -> jax.Array:
    """The true log-density of D_0's source at each sample (curation score ``oracle``)."""
    g, d = cfg.gaussian, cfg.gaussian.dim
    z_NxD = (x_NxD - truth.mean_D[None, :]) / truth.std
    log_jac = -d * jnp.log(truth.std)
    if g.source == "normal":
        return log_jac - 0.5 * jnp.sum(z_NxD**2, -1) - 0.5 * d * math.log(2 * math.pi)
    if g.source == "student_t":
        scale = math.sqrt((g.df - 2) / g.df)
        t_lp = jax.scipy.stats.t.logpdf(z_NxD / scale, g.df) - math.log(scale)
        return log_jac + jnp.sum(t_lp, -1)
    # mixture: standard normal across u, a two-component 1-D mixture of std s along u.
    w, sep = g.mixture_weight, g.mixture_separation
    s = math.sqrt(1 - w * (1 - w) * sep**2)
    a_N = z_NxD @ jnp.full((d,), 1 / math.sqrt(d), z_NxD.dtype)
    across = -0.5 * (jnp.sum(z_NxD**2, -1) - a_N**2) - 0.5 * (d - 1) * math.log(2 * math.pi)
    norm = jax.scipy.stats.norm.logpdf
    along = jnp.logaddexp(
        math.log(1 - w) + norm(a_N, -w * sep, s), math.log(w) + norm(a_N, (1 - w) * sep, s)
    )
    return log_jac + across + along


def w2_squared(mean_D, cov_DxD, truth: Truth) -> jax.Array:
    """Squared W2 between ``N(mean_D, cov_DxD)`` and ``N(mu0, sigma0^2 I)``.

    In general ``|m1 - m2|^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2)``; with ``S2 = sigma0^2 I``
    the trace term is ``tr S1 + d sigma0^2 - 2 sigma0 tr(S1^1/2)``.
    """
    s0 = truth.std
    d = mean_D.shape[-1]
    if d == 1:
        sqrt_trace = jnp.sqrt(jnp.maximum(cov_DxD[0, 0], 0.0))
    else:
        sqrt_trace = jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(cov_DxD), 0.0)).sum()
    mean_term = jnp.sum((mean_D - truth.mean_D) ** 2)
    # Written as a sum of a square and a PSD-trace term so it never goes below 0 by rounding.
    return mean_term + jnp.maximum(jnp.trace(cov_DxD) + d * s0**2 - 2 * s0 * sqrt_trace, 0.0)


def metrics(state: State, data: Data, origin: family.Origin, cfg) -> dict:
    del data
    truth = origin.truth
    mean_D, cov_DxD = state.mean_D, state.cov_DxD
    out = {}
    mean_error = jnp.sum((mean_D - truth.mean_D) ** 2)
    if mean_D.shape[-1] == 1:
        var = cov_DxD[0, 0]
        std = jnp.sqrt(jnp.maximum(var, 0.0))
        out |= dict(mean=mean_D[0], variance=var, std=std, mean_error=mean_error)
        out["std_error"] = jnp.abs(std - truth.std)
    else:
        lam_D = jnp.linalg.eigvalsh(cov_DxD)
        # A collapsed covariance is numerically singular (float rounds the spread to 0 late in the
        # chain); floor each eigenvalue at the smallest normal float so the log-det stays finite.
        tiny = jnp.finfo(cov_DxD.dtype).tiny
        out["mean_norm"] = jnp.linalg.norm(mean_D)
        out["cov_trace"] = jnp.trace(cov_DxD)
        out["cov_logdet"] = jnp.sum(jnp.log(jnp.maximum(lam_D, tiny)))
        out["mean_error"] = mean_error
    out["w2_squared"] = w2_squared(mean_D, cov_DxD, truth)
    return out


FAMILY = family.Family(
    name="gaussian",
    validate=validate,
    reference=reference,
    original_data=original_data,
    init=init,
    fit=fit,
    sample=sample,
    metrics=metrics,
    log_prob=log_prob,
    truth_log_prob=truth_log_prob,
    location=lambda state, cfg: state.mean_D,
    rows_per_generation=lambda cfg: (
        sufficient.rows_per_generation(cfg)
        if cfg.gaussian.sampler == "statistics"
        else cfg.samples_per_generation
    ),
)
