"""The two training objectives and the ODE velocity each defines, in one time convention.

Flow time ``t`` runs from noise (t = 0, ``x_0 ~ N(0, I)``) to data (t = 1).

flow  conditional flow matching with the linear path (rectified flow; the OT path of Lipman et
      al. 2023 with sigma_min = 0): ``x_t = (1 - t) x_0 + t x_1``, ``t ~ U[0, 1]``, the network
      regresses the conditional velocity ``x_1 - x_0``; its ODE is ``dx/dt = v(x, t)``.
ddpm  Ho et al. (2020): betas linear from ``beta_start`` to ``beta_end`` over T steps,
      ``abar_k = prod_{j<=k} (1 - beta_j)``, ``x_k = sqrt(abar_k) x_1 + sqrt(1 - abar_k) eps`` for
      k ~ U{1..T}; the network regresses ``eps`` at network time ``s = k / T``. Its ODE is the
      probability-flow ODE of the variance-preserving SDE (Song et al. 2021) whose marginals are
      exactly the discrete ones at the grid: with diffusion time ``s = 1 - t``, ``log abar(s)`` is
      interpolated linearly between the grid points ``k / T`` (``abar(0) = 1``), so
      ``beta(s) = -d log abar / ds = -T log(1 - beta_k)`` on ``((k-1)/T, k/T]`` and
      ``dx/dt = beta(s) / 2 (x - eps(x, s) / sigma(s))``, ``sigma(s) = sqrt(1 - abar(s))``.
      ``sigma`` vanishes at s = 0, so the ODE stops at ``s = 1 / T`` (t = 1 - 1/T), where
      ``sigma = sqrt(beta_1)``, and samples take one last denoising step
      ``(x - sigma eps) / sqrt(abar)`` (``samplers.py``).

Losses are the per-element mean squared error over a batch drawn by the pool's weights
(``train.py``), so frequency weights enter as sampling probabilities.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

OBJECTIVES = ("flow", "ddpm")


class Schedule(NamedTuple):
    """DDPM's discrete schedule, index k - 1 for step k = 1..T."""

    betas_T: jax.Array
    abar_T: jax.Array
    log_abar_T1: jax.Array  # log abar_k for k = 0..T (abar_0 = 1)


def schedule(flow_cfg) -> Schedule:
    T = flow_cfg.ddpm_steps
    betas = jnp.linspace(flow_cfg.beta_start, flow_cfg.beta_end, T, dtype=jnp.float32)
    log_alpha = jnp.log1p(-betas)
    log_abar = jnp.concatenate([jnp.zeros((1,), jnp.float32), jnp.cumsum(log_alpha)])
    return Schedule(betas, jnp.exp(log_abar[1:]), log_abar)


def _bcast(a_B, x):
    """``a_B`` with singleton axes to broadcast against ``x`` (B, ...)."""
    return a_B.reshape(a_B.shape + (1,) * (x.ndim - 1))


def flow_loss(apply, params, x1, key):
    """CFM on the linear path: ``mean |v(x_t, t) - (x_1 - x_0)|^2`` per element."""
    k_t, k_0 = jax.random.split(key)
    B = x1.shape[0]
    t_B = jax.random.uniform(k_t, (B,), jnp.float32)
    x0 = jax.random.normal(k_0, x1.shape, x1.dtype)
    xt = (1 - _bcast(t_B, x1)) * x0 + _bcast(t_B, x1) * x1
    return jnp.mean((apply(params, xt, t_B) - (x1 - x0)) ** 2)


def ddpm_loss(apply, params, x1, key, sched: Schedule):
    """Ho et al.'s simple loss: ``mean |eps(x_k, k / T) - eps|^2`` per element, k ~ U{1..T}."""
    k_k, k_eps = jax.random.split(key)
    B, T = x1.shape[0], sched.betas_T.shape[0]
    k_B = jax.random.randint(k_k, (B,), 1, T + 1)
    abar = _bcast(sched.abar_T[k_B - 1], x1)
    eps = jax.random.normal(k_eps, x1.shape, x1.dtype)
    xk = jnp.sqrt(abar) * x1 + jnp.sqrt(1 - abar) * eps
    return jnp.mean((apply(params, xk, k_B.astype(jnp.float32) / T) - eps) ** 2)


def vp_coefficients(s, sched: Schedule):
    """``(beta(s), log abar(s))`` of the continuous schedule (module docstring) at scalar ``s``."""
    T = sched.betas_T.shape[0]
    u = jnp.clip(s, 0.0, 1.0) * T
    k = jnp.clip(jnp.ceil(u), 1, T).astype(jnp.int32)
    log_alpha = jnp.log1p(-sched.betas_T[k - 1])
    log_abar = sched.log_abar_T1[k - 1] + (u - (k - 1)) * log_alpha
    return -T * log_alpha, log_abar


def ddpm_velocity(eps_fn, sched: Schedule):
    """The probability-flow velocity ``v(x, t)`` in flow time from a noise predictor
    ``eps_fn(x, s_B)``."""

    def v(x, t):
        s = 1.0 - t
        beta, log_abar = vp_coefficients(s, sched)
        sigma = jnp.sqrt(-jnp.expm1(log_abar))
        eps = eps_fn(x, jnp.full((x.shape[0],), s, jnp.float32))
        return 0.5 * beta * (x - eps / sigma)

    return v


def ddpm_t_end(flow_cfg) -> float:
    """Where the probability-flow ODE stops: t = 1 - 1/T (``sigma = sqrt(beta_1)`` > 0)."""
    return 1.0 - 1.0 / flow_cfg.ddpm_steps
