"""Samplers and the ODE log-likelihood, for any velocity ``v(x_B..., t)`` in flow time.

ODE solvers (both objectives; for DDPM on its probability-flow ODE, ``objectives.py``) are
diffrax's: ``euler``, ``heun``, ``midpoint`` (second order), ``tsit5``, ``dopri5`` (fifth order).
With ``ode_rtol`` = 0 they step on the uniform grid of ``sampler_steps`` intervals
(``time_grid``; the solver's own ``step`` in a ``lax.scan``, as ``diffeqsolve`` with
``StepTo``); with ``ode_rtol`` > 0 they adapt their steps (``PIDController``,
``ode_rtol``/``ode_atol``, at most ``ode_max_steps``), ``sampler_steps`` setting the first step.
One ODE carries a whole chunk of samples, so an adaptive step is shared by the chunk (the RMS
error over the chunk is controlled).

DDPM's own samplers (Ho et al. 2020; Song et al. 2021, DDIM):
  ancestral  all T steps, ``x_(k-1) ~ N(mu~(x_k, x0^), beta~_k I)`` with the posterior mean and
             variance of q(x_(k-1) | x_k, x_0) at the predicted ``x0^`` (Ho et al.'s "fixedsmall"
             variance); for images ``x0^`` is clipped to [-1, 1] as in their code.
  ddim       eta = 0 on ``sampler_steps`` steps ``round(linspace(T, 1, S))``: deterministic.

``log_likelihood`` integrates the augmented ODE ``(dx/dt, dl/dt) = (v, div v)`` from the data
(t = t_end) back to t = 0 (Chen et al. 2018's instantaneous change of variables):
``log p(x) = log N(x(0); 0, I) - (l(t_end) - l(0))``. The divergence is exact (one JVP per
dimension) up to ``exact_divergence_max_dim`` dimensions, else Hutchinson's estimate with one
Rademacher probe per sample from a fixed key (unbiased; deterministic, as a score takes no key).
"""

import math

import diffrax
import jax
import jax.numpy as jnp

from collapse_jax import rng
from collapse_jax.families.flow import objectives

SOLVERS = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
}
DDPM_SAMPLERS = ("ancestral", "ddim")
SAMPLERS = (*SOLVERS, *DDPM_SAMPLERS)
EXACT_DIVERGENCE_MAX_DIM = 16


def time_grid(t0: float, t1: float, steps: int) -> jax.Array:
    """The ``steps + 1`` points a fixed-step solver visits from ``t0`` to ``t1``."""
    return jnp.linspace(t0, t1, steps + 1, dtype=jnp.float32)


def integrate(term_fn, y0, t0: float, t1: float, flow_cfg, solver: str, steps: int):
    """``y`` at the end of ``time_grid(t0, t1, steps)`` of ``dy/dt = term_fn(t, y)`` from
    ``y(t0) = y0`` (any pytree ``y``); the grid's ends bound the adaptive solve too."""
    term = diffrax.ODETerm(lambda t, y, args: term_fn(t, y))
    ts = time_grid(t0, t1, steps)
    method = SOLVERS[solver]()
    if flow_cfg.ode_rtol == 0:
        return _fixed_steps(term, method, ts, y0)
    sol = diffrax.diffeqsolve(
        term,
        method,
        ts[0],
        ts[-1],
        ts[1] - ts[0],
        y0,
        stepsize_controller=diffrax.PIDController(rtol=flow_cfg.ode_rtol, atol=flow_cfg.ode_atol),
        saveat=diffrax.SaveAt(t1=True),
        max_steps=flow_cfg.ode_max_steps,
        # A failed adaptive solve returns non-finite values, which the chain's guard names
        # with the generation; raising from inside a vmapped scan would say much less.
        throw=False,
    )
    return jax.tree.map(lambda a: a[-1], sol.ys)


def _fixed_steps(term, method, ts, y0):
    """diffrax's ``method`` stepped along the grid ``ts`` in one ``lax.scan``: the numbers of
    ``diffeqsolve`` with ``StepTo(ts)`` (tests/test_flow.py), in a much smaller program to
    compile (its general loop, events and step bookkeeping are not needed on a fixed grid)."""
    state = method.init(term, ts[0], ts[1], y0, None)

    def step(carry, i):
        y, state = carry
        y, _, _, state, _ = method.step(term, ts[i], ts[i + 1], y, None, state, made_jump=False)
        return (y, state), None

    return jax.lax.scan(step, (y0, state), jnp.arange(ts.shape[0] - 1))[0][0]


def ode_sample(v, x0, t_end: float, flow_cfg):
    """Noise ``x0`` carried to t = ``t_end`` by the configured solver."""
    return integrate(
        lambda t, x: v(x, t), x0, 0.0, t_end, flow_cfg, flow_cfg.sampler, flow_cfg.sampler_steps
    )


def ddpm_denoise(eps_fn, x, sched: objectives.Schedule, s: float, clip: bool):
    """The last step of a probability-flow sample: ``x0^ = (x - sigma(s) eps) / sqrt(abar(s))``."""
    _, log_abar = objectives.vp_coefficients(jnp.float32(s), sched)
    eps = eps_fn(x, jnp.full((x.shape[0],), s, jnp.float32))
    x0 = (x - jnp.sqrt(-jnp.expm1(log_abar)) * eps) * jnp.exp(-0.5 * log_abar)
    return jnp.clip(x0, -1.0, 1.0) if clip else x0


def _predict_x0(eps_fn, x, k, sched, clip):
    T = sched.betas_T.shape[0]
    ab = sched.abar_T[k - 1]
    eps = eps_fn(x, jnp.full((x.shape[0],), k / T, jnp.float32))
    x0 = (x - jnp.sqrt(1 - ab) * eps) / jnp.sqrt(ab)
    if clip:
        x0 = jnp.clip(x0, -1.0, 1.0)
        eps = (x - jnp.sqrt(ab) * x0) / jnp.sqrt(1 - ab)
    return x0, eps


def ancestral(eps_fn, key, x_T, sched: objectives.Schedule, clip: bool):
    """Ho et al.'s sampler over all T steps from ``x_T``."""
    T = sched.betas_T.shape[0]

    def step(x, k):
        x0, _ = _predict_x0(eps_fn, x, k, sched, clip)
        ab, beta = sched.abar_T[k - 1], sched.betas_T[k - 1]
        ab_prev = jnp.where(k > 1, sched.abar_T[jnp.maximum(k - 2, 0)], 1.0)
        mean = (jnp.sqrt(ab_prev) * beta / (1 - ab)) * x0 + (
            jnp.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)
        ) * x
        var = beta * (1 - ab_prev) / (1 - ab)
        z = jax.random.normal(jax.random.fold_in(key, k), x.shape, x.dtype)
        return mean + jnp.sqrt(var) * z, None

    return jax.lax.scan(step, x_T, jnp.arange(T, 0, -1, dtype=jnp.int32))[0]


def ddim(eps_fn, x_T, sched: objectives.Schedule, steps: int, clip: bool):
    """DDIM with eta = 0 on ``steps`` of the T steps."""
    T = sched.betas_T.shape[0]
    ks = jnp.round(jnp.linspace(T, 1, steps)).astype(jnp.int32)
    prev = jnp.concatenate([ks[1:], jnp.zeros((1,), jnp.int32)])

    def step(x, kk):
        k, kp = kk
        x0, eps = _predict_x0(eps_fn, x, k, sched, clip)
        ab_prev = jnp.where(kp > 0, sched.abar_T[jnp.maximum(kp - 1, 0)], 1.0)
        return jnp.sqrt(ab_prev) * x0 + jnp.sqrt(1 - ab_prev) * eps, None

    return jax.lax.scan(step, x_T, (ks, prev))[0]


def divergence(v, x, t, probe=None):
    """``div_x v(x, t)`` per sample: exact (one JVP per dimension) or ``probe . J probe``."""
    f = lambda y: v(y, t)  # noqa: E731
    if probe is not None:
        _, jp = jax.jvp(f, (x,), (probe,))
        return jnp.sum((probe * jp).reshape(x.shape[0], -1), axis=1)
    B, D = x.shape[0], math.prod(x.shape[1:])

    def column(j):
        e = jnp.zeros((B, D), x.dtype).at[:, j].set(1.0).reshape(x.shape)
        return jax.jvp(f, (x,), (e,))[1].reshape(B, D)[:, j]

    return sum(column(j) for j in range(D))


def log_likelihood(v, x, t_end: float, flow_cfg, solver: str, steps: int):
    """``log p(x)`` of the model whose ODE carries N(0, I) at t = 0 to it at ``t_end``."""
    B, D = x.shape[0], math.prod(x.shape[1:])
    probe = None
    if D > EXACT_DIVERGENCE_MAX_DIM:
        key = jax.random.fold_in(jax.random.key(0), rng.PROBE)
        probe = jax.random.rademacher(key, x.shape, x.dtype)

    def term(t, y):
        xt, _ = y
        return v(xt, t), divergence(v, xt, t, probe)

    z, dl = integrate(term, (x, jnp.zeros((B,), x.dtype)), t_end, 0.0, flow_cfg, solver, steps)
    zf = z.reshape(B, D)
    log_prior = -0.5 * jnp.sum(zf**2, axis=1) - 0.5 * D * math.log(2 * math.pi)
    # dl = l(0) - l(t_end) = -integral of div v over [0, t_end].
    return log_prior + dl
