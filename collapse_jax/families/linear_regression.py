"""Linear-regression chains: refit least squares to labels drawn from the previous fit.

The setting of Gerstgrasser et al. 2024 ("Is model collapse inevitable?", Sec. 2) and Dohmatob et
al. 2024 ("Model collapse demystified"), as in Kazdan et al.'s ``fit_linear_regressions.py``. Per
seed, a fixed design ``X`` (T x d, i.i.d. N(0, 1) entries, T = ``samples_per_generation``) and
noise ``sigma^2 = cfg.linear_regression.noise_variance``:

  D_0      rows ``[x_t, y_t]`` with ``y = X w* + e``, ``e ~ N(0, sigma^2 I_T)``.
  sample   relabels the same design with the fitted model: ``y' = X w_hat + e'`` (fresh noise);
           the design rides in the state, so every generation's data share the seed's ``X``.
  fit      weighted least squares through the d x d normal equations,
           ``(X^T W X / n + lambda I) w = X^T W y / n`` with ``n = sum(weight)`` (``lambda =
           cfg.linear_regression.ridge``; 0 is ordinary least squares). Padded accumulate slots
           have weight 0, so a buffer fits exactly as its filled rows.

A sample is one row ``[x_1 .. x_d, y]`` of an array ``xy_Nx(D+1)``: the pool of every mixing
regime is then rows of the same design, and ``accumulate`` stacks copies of ``X`` with each
generation's labels, exactly Gerstgrasser et al.'s accumulating design.

The true weights ``w* ~ N(0, I_d)`` are drawn once per run from ``truth_seed`` and shared by all
seeds (a family sees only its own key; the chain gives no per-seed truth). For least squares
this loses nothing: ``w_hat - w*`` is a linear function of the noise alone
(``collapse_jax.theory``), so its law does not depend on ``w*``. With ``ridge > 0`` the bias ``-lambda (X^T X / n + lambda I)^-1 w*``
does depend on ``w*``: results are then conditional on the drawn ``w*``.

Metrics (one seed, one generation):
  test_error  ``|w_hat - w*|^2``: the noiseless test error ``E_x[(x . (w_hat - w*))^2]`` for
              ``x ~ N(0, I_d)``, exactly (Gerstgrasser et al.'s quantity; ``collapse_jax.theory``
              has its expectation).
  test_mse    the mean of ``(x . w_hat - y)^2`` on a held-out set of fresh ``(x, y)`` from the truth
              (``heldout_samples`` rows, key ``heldout_seed``, shared by every seed); its mean over
              fresh sets is ``test_error + sigma^2``.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg

from collapse_jax import family, sampling
from collapse_jax.errors import require
from collapse_jax.family import Data


class Truth(NamedTuple):
    """The true weights and the held-out test set, shared by every seed."""

    w_D: jax.Array  # w*
    x_test_KxD: jax.Array
    y_test_K: jax.Array


class State(NamedTuple):
    """A fitted model and the seed's fixed design."""

    w_D: jax.Array
    x_TxD: jax.Array  # the design X every generation relabels


def validate(cfg) -> None:
    c = cfg.linear_regression
    d, t = c.dim, cfg.samples_per_generation
    require(isinstance(d, int) and d > 0, "linear_regression.dim", "a positive integer", d)
    nv = c.noise_variance
    require(
        math.isfinite(nv) and nv > 0, "linear_regression.noise_variance", "a positive number", nv
    )
    r = c.ridge
    require(math.isfinite(r) and r >= 0, "linear_regression.ridge", "a number >= 0", r)
    if r == 0:
        # X^T X of T Gaussian rows is invertible (almost surely) only for T >= d.
        require(
            isinstance(t, int) and t > d,
            "samples_per_generation",
            f"T > linear_regression.dim = {d} for least squares (or set linear_regression.ridge "
            "> 0)",
            t,
        )
    k = c.heldout_samples
    require(isinstance(k, int) and k > 0, "linear_regression.heldout_samples", "a positive int", k)
    s = c.truth_seed
    require(isinstance(s, int) and s >= 0, "linear_regression.truth_seed", "an integer >= 0", s)
    s = c.heldout_seed
    require(isinstance(s, int) and s >= 0, "linear_regression.heldout_seed", "an integer >= 0", s)
    sampling.validate(cfg, "linear_regression")


def _noise_std(cfg) -> float:
    return math.sqrt(cfg.linear_regression.noise_variance)


def reference(cfg) -> Truth:
    c = cfg.linear_regression
    w_D = jax.random.normal(jax.random.key(c.truth_seed), (c.dim,))
    k_x, k_e = jax.random.split(jax.random.key(c.heldout_seed))
    x_KxD = jax.random.normal(k_x, (c.heldout_samples, c.dim))
    y_K = x_KxD @ w_D + _noise_std(cfg) * jax.random.normal(k_e, (c.heldout_samples,))
    return Truth(w_D, x_KxD, y_K)


def _rows(x_NxD, y_N):
    return jnp.concatenate([x_NxD, y_N[:, None]], axis=1)


def original_data(key, truth: Truth, cfg) -> jax.Array:
    """D_0 for one seed: the design and its noisy labels as rows ``xy_Tx(D+1)``."""
    k_x, k_e = jax.random.split(key)
    t, d = cfg.samples_per_generation, cfg.linear_regression.dim
    x_TxD = jax.random.normal(k_x, (t, d))
    return _rows(x_TxD, x_TxD @ truth.w_D + _noise_std(cfg) * jax.random.normal(k_e, (t,)))


def init(key, cfg, data0: Data) -> State:
    """Zero weights and the seed's design, read off D_0; generation 0 is ``fit`` on D_0."""
    del key
    d = cfg.linear_regression.dim
    return State(jnp.zeros((d,), data0.x.dtype), data0.x[:, :d])


def fit(key, state: State, data: Data, cfg) -> State:
    """Weighted (ridge) least squares by Cholesky on the d x d normal equations."""
    del key
    d = cfg.linear_regression.dim
    x_NxD, y_N = data.x[:, :d], data.x[:, d]
    w_N = data.weight.astype(data.x.dtype)
    n = w_N.sum()
    xw_NxD = x_NxD * w_N[:, None]
    a_DxD = xw_NxD.T @ x_NxD / n + cfg.linear_regression.ridge * jnp.eye(d, dtype=x_NxD.dtype)
    b_D = xw_NxD.T @ y_N / n
    w_D = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a_DxD), b_D)
    return State(w_D, state.x_TxD)


def sample(key, state: State, n: int, cfg) -> jax.Array:
    """The first ``n`` rows of the design, relabelled by the fitted model plus fresh noise."""
    t = state.x_TxD.shape[0]
    if n > t:
        raise ValueError(f"linear_regression.sample: n = {n} rows asked of a design of T = {t}")
    x_nxD = state.x_TxD[:n]
    e_n = _noise_std(cfg) * jax.random.normal(key, (n,), x_nxD.dtype)
    lam = cfg.sampling.temperature
    if lam != 1.0:  # the label noise scaled (the fitted line itself is kept)
        e_n = e_n * jnp.asarray(lam, e_n.dtype)
    return _rows(x_nxD, x_nxD @ state.w_D + e_n)


def metrics(state: State, data: Data, origin: family.Origin, cfg) -> dict:
    del data, cfg
    truth = origin.truth
    residual_K = truth.x_test_KxD @ state.w_D - truth.y_test_K
    return {
        "test_error": jnp.sum((state.w_D - truth.w_D) ** 2),
        "test_mse": jnp.mean(residual_K**2),
    }


FAMILY = family.Family(
    name="linear_regression",
    validate=validate,
    reference=reference,
    original_data=original_data,
    init=init,
    fit=fit,
    sample=sample,
    metrics=metrics,
)
