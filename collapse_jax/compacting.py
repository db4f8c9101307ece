"""A ``lax.while_loop`` whose ``vmap`` costs the members' summed iterations, not S times the max.

``vmap`` of a plain ``while_loop`` runs the body for the whole batch until its slowest member is
done. Iterative fits (EM, k-means) have heavy-tailed iteration counts across seeds (GMM-EM at
M = 1000: mean ~50, max over 256 seeds ~250), so a vmapped chain generation would cost S times the
slowest seed. ``compacting_while_loop``'s batching rule instead runs the batch until at most S/4
members are active, gathers those into a batch of S/4, and so on down to 1, then scatters the
results back. Each member does exactly the iterations of its own unbatched loop (a finished member
is frozen by a select), so results equal ``vmap`` of the plain loop up to floating-point kernel
differences between batch sizes, and the levels run, one after another, as many iterations as the
slowest member alone.
"""

from functools import partial

import jax
import jax.numpy as jnp

# Each level keeps at most 1/SHRINK of the previous level's batch.
SHRINK = 4


def compacting_while_loop(cond_fun, body_fun, operand, init):
    """``lax.while_loop`` over a carry from ``init`` with a loop-invariant ``operand``.

    ``cond_fun(operand, carry) -> bool`` and ``body_fun(operand, carry) -> carry``. Per-member
    values (data, tolerances) must reach the loop through ``operand`` or ``init``, never through a
    closure: ``custom_vmap`` cannot batch closed-over tracers.
    """

    @jax.custom_batching.custom_vmap
    def loop(operand, carry):
        return jax.lax.while_loop(
            lambda c: cond_fun(operand, c), lambda c: body_fun(operand, c), carry
        )

    @loop.def_vmap
    def _rule(axis_size, in_batched, operand, carry):
        def bcast(x, batched):
            return x if batched else jnp.broadcast_to(x, (axis_size, *jnp.shape(x)))

        operand = jax.tree.map(bcast, operand, in_batched[0])
        carry = jax.tree.map(bcast, carry, in_batched[1])
        out = _compacted_loops(cond_fun, body_fun, operand, carry, level_sizes(axis_size))
        return out, jax.tree.map(lambda _: True, out)

    return loop(operand, init)


def level_sizes(size: int) -> list[int]:
    """Batch sizes of the compacted levels for a batch of ``size``: size, size/4, ..., 1."""
    sizes = [size]
    while sizes[-1] > 1:
        sizes.append(max(1, sizes[-1] // SHRINK))
    return sizes


def _compacted_loops(cond_fun, body_fun, operand_B, carry_B, sizes: list[int]):
    active = jax.vmap(cond_fun)

    def guarded(op, c):
        keep = cond_fun(op, c)
        new = body_fun(op, c)
        return jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, c)

    # Each level is one more compiled loop; the last (size 1) runs until its member is done.
    nxt = sizes[1] if len(sizes) > 1 else 0
    carry_B = jax.lax.while_loop(
        lambda c: jnp.sum(active(operand_B, c)) > nxt,
        lambda c: jax.vmap(guarded)(operand_B, c),
        carry_B,
    )
    if nxt == 0:
        return carry_B
    # The (at most nxt) active members first; the rest of the slots are finished no-ops.
    _, idx = jax.lax.top_k(active(operand_B, carry_B).astype(jnp.int32), nxt)
    take = partial(jax.tree.map, lambda x: x[idx])
    sub = _compacted_loops(cond_fun, body_fun, take(operand_B), take(carry_B), sizes[1:])
    return jax.tree.map(lambda x, s: x.at[idx].set(s), carry_B, sub)
