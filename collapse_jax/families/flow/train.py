"""Training one network (pure, single seed; the chain vmaps it): ``train_steps`` Adam steps in one
``lax.scan``.

Each step draws ``batch_size`` slots of the pool with replacement, with probability proportional
to their weights (frequency weights; empty slots have weight 0 and are never drawn), so the same
code serves D_0, a growing accumulate buffer and a weighted augment pool. Diffusion and flow models
are trained by steps rather than epochs (Ho et al.; Lipman et al.), which also keeps the step count
static whatever the pool's filled size.

Optimiser: Adam (``learning_rate``; ``weight_decay`` > 0 makes it AdamW), optional global-norm
gradient clipping (``grad_clip`` > 0). With ``ema_decay`` > 0 the returned parameters are the
exponential moving average of the iterates (what diffusion models sample with), else the last
iterate. The losses of the steps are averaged into ``loss_points`` consecutive bins.
"""

import jax
import jax.numpy as jnp
import optax

from collapse_jax.family import Data


def optimizer(flow_cfg) -> optax.GradientTransformation:
    parts = []
    if flow_cfg.grad_clip > 0:
        parts.append(optax.clip_by_global_norm(flow_cfg.grad_clip))
    if flow_cfg.weight_decay > 0:
        parts.append(optax.adamw(flow_cfg.learning_rate, weight_decay=flow_cfg.weight_decay))
    else:
        parts.append(optax.adam(flow_cfg.learning_rate))
    return optax.chain(*parts)


def train(key, params, data: Data, loss_fn, to_model, flow_cfg):
    """``(params, loss_K)`` after ``train_steps`` steps from ``params``.

    ``loss_fn(params, x_batch, key)`` is the objective on model-space inputs; ``to_model`` maps the
    pool's stored samples (uint8 images) to them.
    """
    steps, B, K = flow_cfg.train_steps, flow_cfg.batch_size, flow_cfg.loss_points
    decay = flow_cfg.ema_decay
    opt = optimizer(flow_cfg)
    cum_N = jnp.cumsum(data.weight.astype(jnp.float32))
    last = data.weight.shape[0] - 1 - jnp.argmax(data.weight[::-1] > 0)

    def step(carry, i):
        params, ema, opt_state = carry
        k_idx, k_loss = jax.random.split(jax.random.fold_in(key, i))
        # Inverse CDF of the cumulative weights: B uniforms per step (a Gumbel draw per slot, as
        # jax.random.categorical makes, cost more than the MLP's whole step on a CPU).
        u_B = jax.random.uniform(k_idx, (B,)) * cum_N[-1]
        idx = jnp.minimum(jnp.searchsorted(cum_N, u_B, side="right"), last)
        loss, grads = jax.value_and_grad(loss_fn)(params, to_model(data.x[idx]), k_loss)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if decay > 0:
            ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema, params)
        return (params, ema, opt_state), loss

    ema0 = params if decay > 0 else ()
    (params, ema, _), loss_S = jax.lax.scan(
        step, (params, ema0, opt.init(params)), jnp.arange(steps)
    )
    loss_K = loss_S.reshape(K, steps // K).mean(axis=1)
    return (ema if decay > 0 else params), loss_K
