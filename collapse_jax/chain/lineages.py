"""Many lineages, one pool: L models per seed that feed one shared pool and each fit a draw of it.

``mixing.num_lineages`` = L > 1 (regime composed; ``docs/ecosystems.md``). The carry's model gets
a leading lineage axis ``[L, ...]``; the pool, D_0 and the generation-0 fit stay one per seed.

  generation 0   every lineage is the fit of all of D_0 (one fit, copied L times).
  generation g   each lineage draws ``synthetic_samples`` S rows of its own model (curated when
                 the plan says so); the pool (``mixing.next_pool``) holds the L S model rows,
                 lineage after lineage, and the real source's R rows; under ``pool=accumulate``
                 they join every earlier pool. Each lineage then draws its own ``fit_samples`` K
                 rows of that pool without replacement (0: the whole pool) and fits them. The
                 learner cannot tell real from synthetic rows (unknown provenance): its draw is
                 uniform over the pool; or (``mixing.provenance=detector``) one detector scores
                 the pool and each lineage's draw is weighted by (1 - p_synthetic)^b.

Keys: the pool's mixing and fresh draws use the seed's generation keys, each lineage the split of
its own key (``rng.lineage_keys``). Every lineage step is ``jax.vmap`` over the lineage axis inside
the per-seed step, so shapes stay static and the whole chain is still one program per span.

Metrics: the lineage mean of each of the family's metrics (so a closed form for one lineage, such
as ``theory.pool_moments``, is the expectation of the recorded value), and ``lineage_spread``, the
mean over pairs of lineages l != k of ``|loc_l - loc_k|^2`` with ``loc`` the family's ``location``
(the Gaussian's mean: its expectation is ``2 (e - p)``, ``theory.lineage_spread``).

``build`` (``step.py``) switches to these functions when L > 1, at trace time: with L = 1 the
program is the one-lineage chain's, unchanged.
"""

import jax
import jax.numpy as jnp

from collapse_jax import mixing, rng
from collapse_jax.chain import step
from collapse_jax.family import Origin

SPREAD = "lineage_spread"


def _as_mean_dtype(v) -> jax.Array:
    """The dtype a lineage mean of ``v`` is recorded in (ints and bools average to a float)."""
    return v.astype(jnp.result_type(v.dtype, jnp.float32))


def spread(fam, cfg, model_L) -> jax.Array:
    """Mean over ordered pairs l != k of ``|loc_l - loc_k|^2``: ``2 / (L - 1)`` times the sum of
    squared deviations from the lineages' mean location."""
    loc_LxP = jax.vmap(lambda state: fam.location(state, cfg))(model_L)
    loc_LxP = _as_mean_dtype(loc_LxP.reshape(loc_LxP.shape[0], -1))
    dev_LxP = loc_LxP - loc_LxP.mean(axis=0, keepdims=True)
    return jnp.sum(dev_LxP * dev_LxP) * (2.0 / (loc_LxP.shape[0] - 1))


def first_generation(fam, plan: mixing.Plan, cfg, seed_key, truth):
    """Generation 0 of one seed: the one-lineage fit of D_0, every lineage a copy of it."""
    carry, metrics = step.first_generation(fam, plan, cfg, seed_key, truth)
    lineages = plan.num_lineages
    model_L = jax.tree.map(lambda x: jnp.broadcast_to(x, (lineages, *x.shape)), carry.model)
    metrics = {k: _as_mean_dtype(v) for k, v in metrics.items()}
    if fam.location is not None:
        metrics[SPREAD] = jnp.zeros_like(spread(fam, cfg, model_L))
    return carry._replace(model=model_L), metrics


def next_generation(fam, plan: mixing.Plan, cfg, seed_key, truth, carry: step.Carry, g):
    """Generation ``g >= 1`` of one seed's L lineages (``g`` traceable): ``(carry, metrics)``."""
    ops = step.family_ops(fam, cfg, truth)
    keys = rng.GenerationKeys.of(seed_key, g)
    keys_L = rng.lineage_keys(keys, plan.num_lineages)

    def samples(keys_l, model_l):
        prev = step.Previous(lambda: model_l, None, lambda: carry.model0, carry.data0)
        return step.model_samples(ops, plan, keys_l, prev)

    x_LxS = jax.vmap(samples)(keys_L, carry.model)
    model_x = x_LxS.reshape(-1, *x_LxS.shape[2:])  # lineage after lineage
    prev = step.Previous(None, lambda: carry.pool, lambda: carry.model0, carry.data0)
    pool = step.pool_of(ops, plan, keys, g, prev, model_x)
    if plan.fit_samples:
        # One detector scores the shared pool; each lineage draws its rows with its own key.
        detector = step.detector_key(plan, seed_key, g)
        data_L = jax.vmap(lambda k: mixing.training_data(k, plan, pool, detector))(keys_L.train)
        data_axis = 0
    else:  # every lineage fits the whole pool: one copy, not L
        data_L, data_axis = mixing.training_data(keys.train, plan, pool), None
    fitted_L = jax.vmap(ops.fit, in_axes=(0, 0, data_axis))(keys_L.fit, carry.model, data_L)
    origin = Origin(ops.truth, carry.data0, carry.model0)
    m_L = jax.vmap(lambda f, d: ops.metrics(keys, f, d, origin), in_axes=(0, data_axis))(
        fitted_L, data_L
    )
    metrics = {k: _as_mean_dtype(v).mean(axis=0) for k, v in m_L.items()}
    if fam.location is not None:
        metrics[SPREAD] = spread(fam, cfg, fitted_L)
    return carry._replace(model=fitted_L, pool=pool), metrics
