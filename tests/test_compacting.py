"""The compacting while loop: its batching rule against exact per-element references.

Collatz step counts are the toy: exact integers, heavy-tailed iteration counts, and a body that does
not stop by itself (1 -> 4 -> 2 -> 1), so a member that ran past its own end shows in its result.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax import compacting


def cond(cap, c):
    v, n = c
    return jnp.logical_and(v != 1, n < cap)


def body(cap, c):
    del cap
    v, n = c
    return jnp.where(v % 2 == 0, v // 2, 3 * v + 1), n + 1


def loop(cap, start):
    return compacting.compacting_while_loop(cond, body, cap, (start, jnp.zeros_like(start)))


def collatz(start: int, cap: int) -> tuple[int, int]:
    """The per-element reference in plain Python: ``(value, steps)`` after at most ``cap`` steps."""
    v, n = start, 0
    while v != 1 and n < cap:
        v, n = (v // 2 if v % 2 == 0 else 3 * v + 1), n + 1
    return v, n


def reference(starts, caps):
    out = np.array([collatz(int(s), int(c)) for s, c in zip(starts, caps, strict=True)])
    return out[:, 0], out[:, 1]


NO_CAP = 10_000
STARTS = np.arange(1, 200, dtype=np.int32)  # 199: no power of the shrink factor


@pytest.fixture(scope="module")
def vmapped():
    return jax.jit(jax.vmap(loop))


def test_unbatched_is_the_plain_loop():
    v, n = jax.jit(loop)(jnp.int32(NO_CAP), jnp.int32(27))
    assert (int(v), int(n)) == collatz(27, NO_CAP) == (1, 111)


@pytest.mark.parametrize("use_jit", [True, False])
def test_vmap_equals_each_elements_own_loop(vmapped, use_jit):
    # Caps below some members' step counts: members stop on the cap or on reaching 1, whichever
    # comes first; any extra step of a finished member would change its (value, steps).
    caps = np.where(STARTS % 3 == 0, 40, NO_CAP).astype(np.int32)
    f = vmapped if use_jit else jax.vmap(loop)
    v, n = f(jnp.asarray(caps), jnp.asarray(STARTS))
    want_v, want_n = reference(STARTS, caps)
    np.testing.assert_array_equal(v, want_v)
    np.testing.assert_array_equal(n, want_n)
    assert int(want_n.max()) > 2.5 * float(want_n.mean())  # the tail compaction is for


def test_unbatched_operand_or_carry():
    # in_batched False for one argument: the rule broadcasts it.
    v, n = jax.jit(jax.vmap(loop, in_axes=(None, 0)))(jnp.int32(NO_CAP), jnp.asarray(STARTS))
    np.testing.assert_array_equal(n, reference(STARTS, [NO_CAP] * len(STARTS))[1])
    caps = np.arange(0, 130, 7, dtype=np.int32)  # one start, per-member caps around its 111 steps
    v, n = jax.jit(jax.vmap(loop, in_axes=(0, None)))(jnp.asarray(caps), jnp.int32(27))
    want_v, want_n = reference([27] * len(caps), caps)
    np.testing.assert_array_equal(v, want_v)
    np.testing.assert_array_equal(n, want_n)


def test_nested_vmap_equals_each_elements_own_loop():
    starts_AxB = STARTS[:192].reshape(12, 16)
    caps_AxB = np.where(starts_AxB % 5 == 0, 30, NO_CAP).astype(np.int32)
    v, n = jax.jit(jax.vmap(jax.vmap(loop)))(jnp.asarray(caps_AxB), jnp.asarray(starts_AxB))
    want_v, want_n = reference(starts_AxB.ravel(), caps_AxB.ravel())
    np.testing.assert_array_equal(np.asarray(v).ravel(), want_v)
    np.testing.assert_array_equal(np.asarray(n).ravel(), want_n)


def test_the_levels_run_as_long_as_the_longest_member():
    """Level ``l`` runs the body on ``size_l`` slots per iteration and ends when at most
    ``size_(l+1)`` members are active; the levels' iterations add up to the longest member's count.
    Two callbacks count it: one without arguments runs once per iteration of a level, one on a
    batched value once per slot (JAX unrolls it over the batch)."""
    starts = np.append(np.arange(1, 16, dtype=np.int32), 27)  # 27: 111 steps, the rest <= 19
    iterations, slots = [], []

    def counted_body(cap, c):
        jax.debug.callback(lambda: iterations.append(1))
        jax.debug.callback(lambda v: slots.append(1), c[0])
        return body(cap, c)

    def counted(cap, start):
        init = (start, jnp.zeros_like(start))
        return compacting.compacting_while_loop(cond, counted_body, cap, init)

    _, n = jax.jit(jax.vmap(counted, in_axes=(None, 0)))(jnp.int32(NO_CAP), jnp.asarray(starts))
    jax.effects_barrier()
    counts = np.sort(np.asarray(n))[::-1]
    assert len(iterations) == counts[0]
    sizes = compacting.level_sizes(len(starts))
    assert sizes == [16, 4, 1]
    # Level l ends when the (size_(l+1) + 1)-th longest member is done.
    ends = [int(counts[s]) for s in sizes[1:]] + [int(counts[0])]
    per_level = np.diff([0, *ends])
    assert len(slots) == int(np.dot(sizes, per_level))
    assert len(slots) < 0.5 * len(starts) * counts[0]  # plain vmap: every slot, every iteration


def test_levels():
    assert compacting.level_sizes(1) == [1]
    assert compacting.level_sizes(5) == [5, 1]
    assert compacting.level_sizes(199) == [199, 49, 12, 3, 1]
