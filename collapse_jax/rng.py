"""All key derivation.

A seed's stream depends only on (cfg.seed, seed index, generation), so seed ``s`` sees the same
numbers whatever the number of seeds in the run, and a resumed run needs no stored keys.
"""

import jax
import jax.numpy as jnp


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """Typed keys ``keys_S``: ``fold_in(key(seed), s)`` for s in [0, num_seeds)."""
    base = jax.random.key(seed)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.arange(num_seeds, dtype=jnp.uint32))


def generation_key(seed_key: jax.Array, generation) -> jax.Array:
    """The key of one seed at one generation (traceable in ``generation``)."""
    return jax.random.fold_in(seed_key, generation)


def generation_keys(keys_S: jax.Array, generation) -> jax.Array:
    """``generation_key`` for every seed."""
    return jax.vmap(generation_key, in_axes=(0, None))(keys_S, generation)
