r"""The exact oracle: the best velocity field affine in x, fitted in closed form (``flow.model=affine``).

Flow matching on the linear path ``x_t = (1 - t) x_0 + t x_1``, ``x_0 ~ N(0, I)`` independent of
the data ``x_1``, regresses the conditional velocity ``u = x_1 - x_0`` on ``x_t`` at each t. Over
fields affine in x, ``v_t(x) = A_t x + b_t``, the minimiser of ``E |A_t x_t + b_t - u|^2`` is the
least-squares solution

    A_t = Cov(u, x_t) Cov(x_t)^-1,      b_t = E[u] - A_t E[x_t].

With ``m`` and ``C`` the mean and covariance of the training data (the expectation over x_1 is the
average over the pool with its weights, so ``C`` divides by ``n = sum(w)``: ddof = 0) and the
expectation over x_0 taken analytically (mean 0, covariance I, independent of x_1):

    E[x_t] = t m,   E[u] = m,   S_t := Cov(x_t) = (1 - t)^2 I + t^2 C,
    Cov(u, x_t) = Cov(x_1 - x_0, (1 - t) x_0 + t x_1) = t C - (1 - t) I,

so ``A_t = (t C - (1 - t) I) S_t^-1`` and ``v_t(x) = A_t (x - t m) + m``. Everything commutes
with C: in its eigenbasis ``C = V diag(lambda) V^T`` each direction has
``a_t(lambda) = (t lambda - (1 - t)) / ((1 - t)^2 + t^2 lambda)``. The data enter only through
``m`` and ``C``.

For Gaussian data this is the exact marginal velocity (E[u | x_t] is affine when (u, x_t) are
jointly Gaussian), and its ODE carries N(0, I) onto N(m, C): in each eigendirection
``s(t) = sqrt((1 - t)^2 + t^2 lambda)`` solves ``ds/dt = a_t s``, so
``x(t) = t m + V diag(s(t)) V^T x(0)`` and ``x(1) = m + C^(1/2) x(0)``. Sampling the fitted field
with an accurate ODE solver therefore draws from ``N(m, C)`` with C the ddof = 0 covariance: the
Gaussian MLE refit, whose chain ``theory.py`` gives in closed form (estimator ``mle``). The chain
tests (tests/test_flow.py) check it at thousands of seeds, and that a wrong time grid, too few
solver steps or ddof = 1 break it.

``log_prob`` is exact: the push-forward of N(0, I) is N(m, C) (eigenvalues floored at the smallest
normal float, as the Gaussian family).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from collapse_jax.family import Data

DDOF = 0  # the least-squares fit's divisor is n (tests break it to 1 to show the chain notices)


class Affine(NamedTuple):
    """The fitted field: the data's mean and covariance, and the covariance's eigenbasis."""

    mean_D: jax.Array
    cov_DxD: jax.Array
    eigval_D: jax.Array
    eigvec_DxD: jax.Array


def empty(d: int, dtype=jnp.float32) -> Affine:
    return Affine(
        jnp.zeros((d,), dtype),
        jnp.eye(d, dtype=dtype),
        jnp.ones((d,), dtype),
        jnp.eye(d, dtype=dtype),
    )


def fit(data: Data) -> Affine:
    """The closed-form least-squares field of ``data`` (weighted mean, covariance / (n - DDOF))."""
    x_NxD, w_N = data.x, data.weight.astype(data.x.dtype)
    n = w_N.sum()
    mean_D = (w_N @ x_NxD) / n
    xc_NxD = (x_NxD - mean_D[None, :]) * jnp.sqrt(w_N)[:, None]
    cov_DxD = (xc_NxD.T @ xc_NxD) / (n - DDOF)
    lam_D, v_DxD = jnp.linalg.eigh(cov_DxD)
    return Affine(mean_D, cov_DxD, jnp.maximum(lam_D, 0.0), v_DxD)


def gain(lam_D, t):
    """``a_t(lambda)`` of each eigendirection (module docstring)."""
    den = (1 - t) ** 2 + t**2 * lam_D
    return (t * lam_D - (1 - t)) / jnp.maximum(den, jnp.finfo(lam_D.dtype).tiny)


def coefficients(model: Affine, t):
    """``(A_t, b_t)`` of ``v_t(x) = A_t x + b_t``."""
    v = model.eigvec_DxD
    a_DxD = (v * gain(model.eigval_D, t)[None, :]) @ v.T
    return a_DxD, model.mean_D - t * (a_DxD @ model.mean_D)


def velocity(model: Affine, x_NxD, t):
    """``v_t(x) = A_t (x - t m) + m`` per row, in the eigenbasis."""
    v = model.eigvec_DxD
    y_NxD = (x_NxD - t * model.mean_D[None, :]) @ v
    return (y_NxD * gain(model.eigval_D, t)[None, :]) @ v.T + model.mean_D[None, :]


def log_prob(model: Affine, x_NxD):
    """``log N(x; m, C)``: the exact density of the field's push-forward of N(0, I)."""
    lam_D = jnp.maximum(model.eigval_D, jnp.finfo(model.eigval_D.dtype).tiny)
    y_NxD = (x_NxD - model.mean_D[None, :]) @ model.eigvec_DxD
    d = x_NxD.shape[-1]
    return -0.5 * (
        jnp.sum(y_NxD**2 / lam_D[None, :], -1) + jnp.sum(jnp.log(lam_D)) + d * math.log(2 * math.pi)
    )
