"""Gaussian mixtures refitted by EM to their own samples (Shumailov et al., Sec. 3 and Fig. 2).

Each generation fits a K-component, full-covariance GMM to the pool by EM and draws the next M
samples from it. EM follows ``sklearn.mixture.GaussianMixture`` step for step, so that a user can
check one against the other (``tests/test_gmm.py`` does, in float64):

  E-step   log-responsibilities in log space from Cholesky factors of the precisions.
  M-step   ``n_k = sum_n w_n r_nk + 10 eps``, responsibility-weighted means and covariances, and
           ``reg_covar`` added to every covariance's diagonal.
  stop     when the change of the lower bound (the weighted mean log-likelihood of the data under
           the parameters before the last M-step, sklearn's ``lower_bound_``) is below ``tol``, or
           after ``max_iter`` iterations. Under ``vmap`` a converged seed keeps its parameters
           while the others iterate (a select on its done flag), and the loop gathers the seeds
           still running into smaller batches as the others finish (``collapse_jax.compacting``),
           so a generation costs the seeds' summed iterations, not S times the slowest seed's.

Every sum over samples carries the pool's 0/1 weights ``w_n``, so a padded accumulate buffer fits
exactly as the unpadded data, k-means initialisation included.

Empty components. sklearn does not special-case a component that loses all its points, and
neither does this code: its ``n_k`` is the floor ``10 eps``, so its weight falls to about
``10 eps / N``, its mean is the responsibility-weighted mean of whatever underflowing
responsibilities remain (the origin when all of them are 0), and its covariance is
``reg_covar * I``. It stays in the model, essentially never sampled, and EM carries on. sklearn
raises only when a Cholesky factorisation fails; here (no exceptions under ``jit``) a covariance
whose Cholesky factor is not finite is replaced by its diagonal, floored at ``reg_covar``, in the
E-step and in sampling alike (``cholesky_factor``).

Initialisation (``init_params``, as sklearn): ``kmeans`` (greedy k-means++ seeding then Lloyd
iterations, then one M-step on the hard labels), ``k-means++`` (the seeds alone), ``random``
(uniform random responsibilities), ``random_from_data`` (K distinct random points). One
difference from sklearn's k-means: a cluster that empties keeps its previous centre instead of
being moved to a far point.

The paper's GMM figure measures the squared L2 distance between the densities of GMM_0 (the fit on
the original data) and GMM_n; for Gaussian mixtures it is a closed form (``l2_distance_sq``).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import logsumexp

from collapse_jax import family, sampling
from collapse_jax.compacting import compacting_while_loop
from collapse_jax.errors import require
from collapse_jax.family import Data

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
# EM unrolls its D x D algebra over coordinates (fast for the low-dimensional GMMs of the paper);
# the traced program grows as D^2.
MAX_DIM = 16


class GMM(NamedTuple):
    """Mixture weights, means and covariances."""

    weights_K: jax.Array
    means_KxD: jax.Array
    covariances_KxDxD: jax.Array


class State(NamedTuple):
    """A fitted GMM and how EM got there."""

    gmm: GMM
    lower_bound: jax.Array  # sklearn's lower_bound_ (weighted mean log-likelihood)
    n_iter: jax.Array  # EM iterations run (int32)
    converged: jax.Array  # |change of the lower bound| < tol before max_iter (bool)


class Truth(NamedTuple):
    """The true distribution (a GMM) and a held-out original sample shared by all seeds."""

    gmm: GMM
    heldout_x_NxD: jax.Array


# ---------------------------------------------------------------------------------------------
# Densities.


def _weights_like(data: Data) -> jax.Array:
    # mixing.Data weights are float32; accumulate in the data's dtype (float64 under x64).
    return data.weight.astype(data.x.dtype)


def cholesky_factor(covariances_KxDxD: jax.Array, reg_covar: float = 0.0) -> jax.Array:
    """Lower factors ``L_k`` with ``L_k L_k^T = C_k``, finite for every covariance.

    A covariance whose Cholesky factor is not finite (numerically indefinite: sklearn would raise)
    falls back to its diagonal floored at ``reg_covar``: the M-step adds ``reg_covar`` to every
    diagonal, so ``C_k >= reg_covar I`` holds for every fitted covariance in exact arithmetic, and
    the fallback keeps that bound where rounding broke it. With ``reg_covar = 0`` the floor is the
    smallest normal float, so that the precision ``L_k^-T L_k^-1`` stays finite.
    """
    chol_KxDxD = jnp.linalg.cholesky(covariances_KxDxD)
    ok_K = jnp.all(jnp.isfinite(chol_KxDxD), axis=(-2, -1))
    floor = max(reg_covar, float(jnp.finfo(covariances_KxDxD.dtype).tiny))
    diag_KxD = jnp.maximum(jnp.diagonal(covariances_KxDxD, axis1=-2, axis2=-1), floor)
    eye = jnp.eye(covariances_KxDxD.shape[-1], dtype=covariances_KxDxD.dtype)
    fallback_KxDxD = jnp.sqrt(diag_KxD)[..., None] * eye[None]
    return jnp.where(ok_K[:, None, None], chol_KxDxD, fallback_KxDxD)


def precision_cholesky(covariances_KxDxD: jax.Array, reg_covar: float = 0.0) -> jax.Array:
    """Upper factors ``U_k`` with ``U_k U_k^T = C_k^-1`` (sklearn's ``precisions_cholesky_``)."""
    chol_KxDxD = cholesky_factor(covariances_KxDxD, reg_covar)
    eye = jnp.eye(covariances_KxDxD.shape[-1], dtype=covariances_KxDxD.dtype)
    inv_KxDxD = solve_triangular(chol_KxDxD, jnp.broadcast_to(eye, chol_KxDxD.shape), lower=True)
    return jnp.swapaxes(inv_KxDxD, -1, -2)


def _centred(x_NxD, means_KxD) -> list[jax.Array]:
    """``x_n - mu_k`` coordinate by coordinate: D arrays ``[K, N]``.

    The D x D algebra of EM is unrolled in Python over coordinates (D is small and static, see
    ``MAX_DIM``) and samples are the minor axis: every op is then an elementwise ``[K, N]`` loop or
    a row sum that XLA fuses and vectorises. An ``[N, D]`` layout with einsums over D runs tiny
    batched contractions on CPU and was 5-20x slower at D = 2.
    """
    xt_DxN = x_NxD.T
    return [xt_DxN[i][None] - means_KxD[:, i][:, None] for i in range(x_NxD.shape[-1])]


def _weighted_log_prob(xc_D, weights_K, prec_chol_KxDxD) -> jax.Array:
    """``log w_k + log N(x_n | mu_k, C_k)`` as ``[K, N]``, from the centred samples."""
    d = len(xc_D)
    maha_KxN = 0.0
    for e in range(d):
        # y = (x - mu) U with U upper triangular: y_e sums over i <= e.
        y_KxN = sum(prec_chol_KxDxD[:, i, e][:, None] * xc_D[i] for i in range(e + 1))
        maha_KxN = maha_KxN + y_KxN * y_KxN
    # log det of the precision factor is the sum of log diag(U_k): -1/2 log det C_k.
    log_det_K = jnp.sum(jnp.log(jnp.diagonal(prec_chol_KxDxD, axis1=-2, axis2=-1)), axis=-1)
    return -0.5 * (d * math.log(2 * math.pi) + maha_KxN) + (log_det_K + jnp.log(weights_K))[:, None]


def _normalise(wlp_KxN) -> tuple[jax.Array, jax.Array]:
    """``(log p(x_n), resp_KxN)``: one exp per component and one log per sample."""
    m_N = jax.lax.stop_gradient(jnp.max(wlp_KxN, axis=0))
    e_KxN = jnp.exp(wlp_KxN - m_N[None])
    s_N = e_KxN.sum(0)
    return m_N + jnp.log(s_N), e_KxN / s_N[None]


def _per_sample_log_likelihood(x_NxD, gmm: GMM) -> jax.Array:
    prec_chol_KxDxD = precision_cholesky(gmm.covariances_KxDxD)
    wlp_KxN = _weighted_log_prob(_centred(x_NxD, gmm.means_KxD), gmm.weights_K, prec_chol_KxDxD)
    return logsumexp(wlp_KxN, axis=0)


def log_likelihood(x_NxD, gmm: GMM, weight_N=None) -> jax.Array:
    """Mean (weighted, if ``weight_N``) log-likelihood of ``x_NxD`` under ``gmm``."""
    lp_N = _per_sample_log_likelihood(x_NxD, gmm)
    if weight_N is None:
        return lp_N.mean()
    weight_N = weight_N.astype(lp_N.dtype)
    return jnp.sum(weight_N * lp_N) / jnp.sum(weight_N)


def _log_gaussian_overlaps(a: GMM, b: GMM) -> jax.Array:
    """``log N(mu_ai; mu_bj, C_ai + C_bj)`` = log of the integral of ``N_ai N_bj``, ``[Ka, Kb]``."""
    d = a.means_KxD.shape[-1]
    s_IxJxDxD = a.covariances_KxDxD[:, None] + b.covariances_KxDxD[None, :]
    diff_IxJxD = a.means_KxD[:, None] - b.means_KxD[None, :]
    chol = jnp.linalg.cholesky(s_IxJxDxD)
    z_IxJxD = solve_triangular(chol, diff_IxJxD[..., None], lower=True)[..., 0]
    log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    return -0.5 * (d * math.log(2 * math.pi) + log_det + jnp.sum(z_IxJxD**2, axis=-1))


def _inner(a: GMM, b: GMM) -> jax.Array:
    """``<p_a, p_b>`` = the integral of the product of the two densities."""
    w_IxJ = a.weights_K[:, None] * b.weights_K[None, :]
    return jnp.sum(w_IxJ * jnp.exp(_log_gaussian_overlaps(a, b)))


def l2_distance_sq(a: GMM, b: GMM) -> jax.Array:
    """Exact squared L2 distance ``int (p_a - p_b)^2 = <a,a> - 2<a,b> + <b,b>`` (clipped at 0).

    In float32 the three terms cancel to about 1e-7 of ``<a,a> + <b,b>``: distances below that are
    rounding noise (use x64 to resolve them).
    """
    return jnp.maximum(_inner(a, a) - 2 * _inner(a, b) + _inner(b, b), 0.0)


# ---------------------------------------------------------------------------------------------
# EM.


def _e_step(data: Data, gmm: GMM, prec_chol_KxDxD):
    xc_D = _centred(data.x, gmm.means_KxD)
    lp_N, resp_KxN = _normalise(_weighted_log_prob(xc_D, gmm.weights_K, prec_chol_KxDxD))
    w_N = _weights_like(data)
    return jnp.sum(w_N * lp_N) / jnp.sum(w_N), resp_KxN, xc_D


def _m_step_shifted(data: Data, resp_KxN, xc_D, shift_KxD, reg_covar: float) -> GMM:
    """The M-step from samples centred on any per-component ``shift_KxD`` (``xc = x - shift``).

    One pass over the data. Algebraically sklearn's two-pass formulas; numerically as good while
    the shift is near the new means, which holds in EM, where it is the previous iteration's.
    With ``s0 = sum r``, ``s1 = sum r xc``, ``s2 = sum r xc xc^T`` and ``n_k = s0 + 10 eps``:
    ``mu - shift = d = (s1 - 10 eps shift) / n_k`` and
    ``n_k C = s2 - d s1^T - s1 d^T + s0 d d^T``.
    """
    d = len(xc_D)
    dtype = xc_D[0].dtype
    r_KxN = resp_KxN * _weights_like(data)[None]
    s0_K = r_KxN.sum(-1)
    rxc_D = [r_KxN * xc for xc in xc_D]
    s1_KxD = jnp.stack([rxc.sum(-1) for rxc in rxc_D], axis=-1)
    s2 = {(i, j): (rxc_D[i] * xc_D[j]).sum(-1) for i in range(d) for j in range(i, d)}
    s2_KxDxD = jnp.stack(
        [jnp.stack([s2[min(i, j), max(i, j)] for j in range(d)], -1) for i in range(d)], -2
    )
    floor = 10 * jnp.finfo(dtype).eps  # sklearn's guard against an empty component
    nk_K = s0_K + floor
    d_KxD = (s1_KxD - floor * shift_KxD) / nk_K[:, None]
    cross_KxDxD = d_KxD[:, :, None] * s1_KxD[:, None]
    outer_KxDxD = d_KxD[:, :, None] * d_KxD[:, None]
    cov_KxDxD = s2_KxDxD - cross_KxDxD - jnp.swapaxes(cross_KxDxD, -1, -2)
    cov_KxDxD = (cov_KxDxD + s0_K[:, None, None] * outer_KxDxD) / nk_K[:, None, None]
    cov_KxDxD = cov_KxDxD + reg_covar * jnp.eye(d, dtype=dtype)[None]
    return GMM(nk_K / nk_K.sum(), shift_KxD + d_KxD, cov_KxDxD)


def m_step(data: Data, resp_KxN: jax.Array, reg_covar: float) -> GMM:
    """sklearn's ``_estimate_gaussian_parameters`` (full covariances) with sample weights.

    Two passes: the means first, then the covariances centred on them.
    """
    xt_DxN = data.x.T
    r_KxN = resp_KxN * _weights_like(data)[None]
    nk_K = r_KxN.sum(-1) + 10 * jnp.finfo(xt_DxN.dtype).eps
    sums_KxD = jnp.stack([(r_KxN * xt_DxN[i][None]).sum(-1) for i in range(xt_DxN.shape[0])], -1)
    means_KxD = sums_KxD / nk_K[:, None]
    return _m_step_shifted(data, resp_KxN, _centred(data.x, means_KxD), means_KxD, reg_covar)


def em_step(data: Data, gmm: GMM, reg_covar: float) -> tuple[GMM, jax.Array]:
    """One E- and M-step: ``(new_gmm, lower_bound of gmm)``, one pass over the data."""
    prec_chol_KxDxD = precision_cholesky(gmm.covariances_KxDxD, reg_covar)
    lower_bound, resp_KxN, xc_D = _e_step(data, gmm, prec_chol_KxDxD)
    new = _m_step_shifted(data, resp_KxN, xc_D, gmm.means_KxD, reg_covar)
    return new, lower_bound


def em(data: Data, gmm: GMM, *, tol: float, max_iter: int, reg_covar: float) -> State:
    """EM from the given parameters until ``|change of lower bound| < tol`` or ``max_iter``.

    The same iterations as ``GaussianMixture(weights_init=w, means_init=mu,
    precisions_init=inv(C), tol=tol, max_iter=max_iter, reg_covar=reg_covar).fit(x)``.
    """
    dtype = data.x.dtype
    gmm = jax.tree.map(lambda a: jnp.asarray(a, dtype), gmm)

    def cond(data, carry):
        _, _, n_iter, done = carry
        return jnp.logical_and(jnp.logical_not(done), n_iter < max_iter)

    def body(data, carry):
        gmm, prev, n_iter, _ = carry
        new, lower_bound = em_step(data, gmm, reg_covar)
        return new, lower_bound, n_iter + 1, jnp.abs(lower_bound - prev) < tol

    init = (gmm, jnp.asarray(-jnp.inf, dtype), jnp.int32(0), jnp.bool_(False))
    gmm, lower_bound, n_iter, converged = compacting_while_loop(cond, body, data, init)
    return State(gmm, lower_bound, n_iter, converged)


# ---------------------------------------------------------------------------------------------
# Initialisation.


def _sq_dist_KxN(xt_DxN, c_KxD) -> jax.Array:
    # Unrolled over coordinates, as _centred.
    return sum((xt_DxN[i][None] - c_KxD[:, i][:, None]) ** 2 for i in range(xt_DxN.shape[0]))


def _categorical(key, p_N, shape=()) -> jax.Array:
    """Indices drawn with probabilities proportional to ``p_N >= 0`` (zeros never drawn)."""
    logits = jnp.where(p_N > 0, jnp.log(jnp.where(p_N > 0, p_N, 1.0)), -jnp.inf)
    return jax.random.categorical(key, logits, shape=shape)


def kmeans_plusplus(key, data: Data, num_components: int) -> jax.Array:
    """Greedy k-means++ seeding (sklearn's ``_kmeans_plusplus``, sample weights honoured).

    Returns the indices ``[K]`` of the chosen samples. Each new centre is the best of
    ``2 + floor(log K)`` candidates drawn proportional to ``w_n D(x_n)^2``.
    """
    x_NxD, w_N = data.x, _weights_like(data)
    xt_DxN = x_NxD.T
    trials = 2 + int(np.log(num_components))
    keys = jax.random.split(key, num_components)
    first = _categorical(keys[0], w_N)
    d2_N = jnp.sum((x_NxD - x_NxD[first][None]) ** 2, axis=-1)
    idx_K = jnp.zeros((num_components,), jnp.int32).at[0].set(first.astype(jnp.int32))

    def body(c, carry):
        idx_K, d2_N = carry
        p_N = w_N * d2_N
        # All remaining mass at distance 0 (identical points): fall back to the weights alone.
        p_N = jnp.where(p_N.sum() > 0, p_N, w_N)
        cand_T = _categorical(keys[c], p_N, (trials,))
        d2_TxN = jnp.minimum(d2_N[None], _sq_dist_KxN(xt_DxN, x_NxD[cand_T]))
        best = jnp.argmin(jnp.sum(d2_TxN * w_N[None], axis=-1))
        return idx_K.at[c].set(cand_T[best].astype(jnp.int32)), d2_TxN[best]

    idx_K, _ = jax.lax.fori_loop(1, num_components, body, (idx_K, d2_N))
    return idx_K


def kmeans(key, data: Data, num_components: int, *, max_iter: int, tol: float) -> jax.Array:
    """Weighted Lloyd k-means from k-means++ seeds; returns hard labels ``[N]``.

    Stops when the summed squared centre shift is at most ``tol`` times the mean per-feature
    variance of the data (sklearn's tolerance), or after ``max_iter`` iterations.
    """
    x_NxD, w_N = data.x, _weights_like(data)
    xt_DxN = x_NxD.T
    n = w_N.sum()
    mean_D = jnp.sum(w_N[None] * xt_DxN, axis=-1) / n
    var_D = jnp.sum(w_N[None] * (xt_DxN - mean_D[:, None]) ** 2, axis=-1) / n
    tol_abs = tol * jnp.mean(var_D)
    centers_KxD = x_NxD[kmeans_plusplus(key, data, num_components)]

    def update(op, centers_KxD):
        xt_DxN, w_N, _ = op
        labels_N = jnp.argmin(_sq_dist_KxN(xt_DxN, centers_KxD), axis=0)
        onehot_KxN = jax.nn.one_hot(labels_N, num_components, dtype=xt_DxN.dtype, axis=0)
        onehot_KxN = onehot_KxN * w_N[None]
        count_K = onehot_KxN.sum(-1)
        sums_KxD = jnp.stack(
            [(onehot_KxN * xt_DxN[i][None]).sum(-1) for i in range(xt_DxN.shape[0])], -1
        )
        # An emptied cluster keeps its centre (sklearn would move it to a far point).
        return jnp.where(
            count_K[:, None] > 0, sums_KxD / jnp.maximum(count_K, 1e-30)[:, None], centers_KxD
        )

    def cond(op, carry):
        _, shift, it = carry
        return jnp.logical_and(shift > op[2], it < max_iter)

    def body(op, carry):
        centers_KxD, _, it = carry
        new_KxD = update(op, centers_KxD)
        return new_KxD, jnp.sum((new_KxD - centers_KxD) ** 2), it + 1

    # Per-seed values reach the loop through the operand, never a closure (custom_vmap).
    init = (centers_KxD, jnp.asarray(jnp.inf, x_NxD.dtype), jnp.int32(0))
    centers_KxD, _, _ = compacting_while_loop(cond, body, (xt_DxN, w_N, tol_abs), init)
    return jnp.argmin(_sq_dist_KxN(xt_DxN, centers_KxD), axis=0)


def initialize(key, data: Data, gmm_cfg) -> GMM:
    """Initial parameters by ``gmm_cfg.init_params``: an M-step on initial responsibilities."""
    k, x_NxD = gmm_cfg.num_components, data.x
    method = gmm_cfg.init_params
    if method == "kmeans":
        labels_N = kmeans(key, data, k, max_iter=gmm_cfg.kmeans_max_iter, tol=gmm_cfg.kmeans_tol)
        resp_KxN = jax.nn.one_hot(labels_N, k, dtype=x_NxD.dtype, axis=0)
    elif method == "random":
        resp_KxN = jax.random.uniform(key, (k, x_NxD.shape[0]), x_NxD.dtype)
        resp_KxN = resp_KxN / resp_KxN.sum(0, keepdims=True)
    else:
        if method == "k-means++":
            idx_K = kmeans_plusplus(key, data, k)
        elif method == "random_from_data":
            # K distinct filled slots: Gumbel top-k on the log-weights.
            logits_N = jnp.where(data.weight > 0, 0.0, -jnp.inf)
            _, idx_K = jax.lax.top_k(logits_N + jax.random.gumbel(key, logits_N.shape), k)
        else:
            raise ValueError(f"gmm.init_params: expected one of {INIT_PARAMS}, got {method!r}")
        resp_KxN = jnp.zeros((k, x_NxD.shape[0]), x_NxD.dtype).at[jnp.arange(k), idx_K].set(1)
    return m_step(data, resp_KxN, gmm_cfg.reg_covar)


def fit_gmm(key, data: Data, gmm_cfg, start: GMM | None = None) -> State:
    """Initialise (or start from ``start``) and run EM, as ``GaussianMixture(...).fit``."""
    if start is None:
        start = initialize(key, data, gmm_cfg)
    return em(
        data,
        start,
        tol=gmm_cfg.tol,
        max_iter=gmm_cfg.max_iter,
        reg_covar=gmm_cfg.reg_covar,
    )


def sample_gmm(key, gmm: GMM, n: int, reg_covar: float = 0.0) -> jax.Array:
    """``n`` i.i.d. draws ``x_nxD`` (component by categorical, then ``mu + L z``).

    ``reg_covar``: the EM's, the floor of a numerically indefinite covariance (``cholesky_factor``).
    """
    k_comp, k_z = jax.random.split(key)
    dtype = gmm.means_KxD.dtype
    z_n = _categorical(k_comp, gmm.weights_K, (n,))
    chol_KxDxD = cholesky_factor(gmm.covariances_KxDxD, reg_covar)
    eps_nxD = jax.random.normal(k_z, (n, gmm.means_KxD.shape[-1]), dtype)
    return gmm.means_KxD[z_n] + jnp.einsum("nde,ne->nd", chol_KxDxD[z_n], eps_nxD)


# ---------------------------------------------------------------------------------------------
# The family.


def _default_float():
    return jnp.result_type(float)  # float64 under jax_enable_x64, else float32


def validate(cfg) -> None:
    g = cfg.gmm
    k, d = g.num_components, g.dim
    require(isinstance(k, int) and k > 0, "gmm.num_components", "a positive integer", k)
    require(isinstance(d, int) and 0 < d <= MAX_DIM, "gmm.dim", f"an integer in [1, {MAX_DIM}]", d)
    require(g.tol > 0, "gmm.tol", "a positive number", g.tol)
    # At least one iteration: the lower bound (a metric) is -inf before the first E-step.
    mi = g.max_iter
    require(isinstance(mi, int) and mi > 0, "gmm.max_iter", "a positive integer", mi)
    require(g.reg_covar >= 0, "gmm.reg_covar", "a number >= 0", g.reg_covar)
    require(g.init_params in INIT_PARAMS, "gmm.init_params", f"one of {INIT_PARAMS}", g.init_params)
    km = g.kmeans_max_iter
    require(isinstance(km, int) and km > 0, "gmm.kmeans_max_iter", "a positive integer", km)
    require(g.kmeans_tol >= 0, "gmm.kmeans_tol", "a number >= 0", g.kmeans_tol)
    require(isinstance(g.warm_start, bool), "gmm.warm_start", "a bool", g.warm_start)
    h = g.heldout_samples
    require(isinstance(h, int) and h > 0, "gmm.heldout_samples", "a positive integer", h)
    m = cfg.samples_per_generation
    require(m >= k, "samples_per_generation", f">= gmm.num_components ({k})", m)
    w = np.asarray(g.truth_weights, float)
    require(
        w.ndim == 1 and w.size > 0 and (w > 0).all() and abs(w.sum() - 1) < 1e-9,
        "gmm.truth_weights",
        "a non-empty list of positive weights summing to 1",
        g.truth_weights,
    )
    mu = np.asarray(g.truth_means, float)
    require(mu.shape == (w.size, d), "gmm.truth_means", f"shape ({w.size}, {d})", mu.shape)
    cov = np.asarray(g.truth_covariances, float)
    shape = (w.size, d, d)
    require(cov.shape == shape, "gmm.truth_covariances", f"shape {shape}", cov.shape)
    pd = np.allclose(cov, np.swapaxes(cov, -1, -2)) and (np.linalg.eigvalsh(cov) > 0).all()
    require(
        pd, "gmm.truth_covariances", "symmetric positive definite matrices", g.truth_covariances
    )
    sampling.validate(cfg, "gmm")


def truth_gmm(cfg) -> GMM:
    dtype = _default_float()
    g = cfg.gmm
    return GMM(
        jnp.asarray(g.truth_weights, dtype),
        jnp.asarray(g.truth_means, dtype),
        jnp.asarray(g.truth_covariances, dtype),
    )


def reference(cfg) -> Truth:
    """The true GMM, and a held-out sample from a fixed key (``gmm.heldout_seed``)."""
    gmm = truth_gmm(cfg)
    heldout = sample_gmm(jax.random.key(cfg.gmm.heldout_seed), gmm, cfg.gmm.heldout_samples)
    return Truth(gmm, heldout)


def original_data(key, truth: Truth, cfg) -> jax.Array:
    """D_0 for one seed: ``samples_per_generation`` draws from the true GMM."""
    return sample_gmm(key, truth.gmm, cfg.samples_per_generation)


def init(key, cfg, data0: Data) -> State:
    """EM's start under ``warm_start`` (the configured initialisation on D_0), else a placeholder.

    Without warm start every ``fit`` initialises afresh, so the state here only fixes shapes: the
    data's mean and covariance for every component, equal weights (no k-means to compile twice).
    """
    dtype = data0.x.dtype
    if cfg.gmm.warm_start:
        gmm = initialize(key, data0, cfg.gmm)
    else:
        k = cfg.gmm.num_components
        gmm = m_step(data0, jnp.full((k, data0.x.shape[0]), 1 / k, dtype), cfg.gmm.reg_covar)
    return State(gmm, jnp.asarray(-jnp.inf, dtype), jnp.int32(0), jnp.bool_(False))


def fit(key, state: State, data: Data, cfg) -> State:
    """A fresh fit as the authors' sklearn refit (new k-means init), or EM from ``state``."""
    return fit_gmm(key, data, cfg.gmm, start=state.gmm if cfg.gmm.warm_start else None)


def sample(key, state: State, n: int, cfg) -> jax.Array:
    """``n`` draws of the fitted mixture; ``sampling.temperature`` lambda scales every component's
    noise (covariances lambda^2 C_k), the weights and means as fitted."""
    gmm = state.gmm
    t = cfg.sampling.temperature
    if t != 1.0:
        gmm = gmm._replace(covariances_KxDxD=gmm.covariances_KxDxD * (t * t))
    return sample_gmm(key, gmm, n, cfg.gmm.reg_covar)


def log_prob(state: State, x_NxD, cfg) -> jax.Array:
    """``log p(x_n)`` per sample under the fitted mixture (curation scores)."""
    del cfg
    return _per_sample_log_likelihood(x_NxD, state.gmm)


def truth_log_prob(truth: Truth, x_NxD, cfg) -> jax.Array:
    """``log p(x_n)`` under the true mixture (curation score ``oracle``)."""
    del cfg
    return _per_sample_log_likelihood(x_NxD, truth.gmm)


def _sorted_by_weight(gmm: GMM) -> GMM:
    # Component order out of k-means is arbitrary; heaviest first makes weights[..., -1] the
    # minority mode, whose loss is what the separated variant shows.
    order_K = jnp.argsort(-gmm.weights_K)
    return jax.tree.map(lambda a: a[order_K], gmm)


def metrics(state: State, data: Data, origin: family.Origin, cfg) -> dict:
    """Distances, per-component weights and stds, held-out log-likelihood and EM statistics."""
    del data
    gmm = _sorted_by_weight(state.gmm)
    d = gmm.means_KxD.shape[-1]
    trace_K = jnp.trace(gmm.covariances_KxDxD, axis1=-2, axis2=-1)
    out = {
        "l2_to_gmm0": l2_distance_sq(gmm, origin.state0.gmm),
        "l2_to_truth": l2_distance_sq(gmm, origin.truth.gmm),
        "weights": gmm.weights_K,
        "component_std": jnp.sqrt(trace_K / d),
        "heldout_loglik": log_likelihood(origin.truth.heldout_x_NxD, gmm),
        "lower_bound": state.lower_bound,
        "em_iterations": state.n_iter,
        "converged": state.converged,
    }
    if cfg.gmm.record_params:
        out["means"] = gmm.means_KxD
        out["covariances"] = gmm.covariances_KxDxD
    return out


FAMILY = family.Family(
    name="gmm",
    validate=validate,
    reference=reference,
    original_data=original_data,
    init=init,
    fit=fit,
    sample=sample,
    metrics=metrics,
    log_prob=log_prob,
    truth_log_prob=truth_log_prob,
    location=lambda state, cfg: state.gmm.weights_K @ state.gmm.means_KxD,  # the mixture's mean
)
