"""Meshes and shardings: the seed axis of the chain, and data/FSDP parallelism for the LM.

Everything here is JAX's own machinery (``Mesh``, ``NamedSharding``, ``jax.distributed``): XLA's
SPMD partitioner splits the jitted programs, no home-made scheduler.

Chain (small families). ``cfg.num_devices`` devices form a 1-D mesh with axis ``"seeds"``; the
seed keys, the carry and the metrics are split along their leading seed axis
(``NamedSharding(mesh, P("seeds"))``) and the truth is replicated. Seeds never communicate (the
step is ``vmap`` over seeds), so each device runs the single-device program on its slice of seeds.
A seed count that the device count does not divide is rejected rather than padded: padding would
change the checkpointed state's shape with the device count, and a checkpoint must restore on any
number of devices.

LM. A 1-D ``"data"`` mesh: the batch is split along its leading axis and the parameters and
optimiser state are replicated (data parallel; XLA inserts the gradient all-reduce), or, with
``fsdp=True``, every large leaf is split along one axis too (FSDP/ZeRO-3 style: XLA all-gathers
the weights where they are used and reduce-scatters the gradients). The 5 LLM seeds can run side
by side on disjoint sub-meshes (``sub_meshes``).

Multi-host. Arrays placed with ``put`` and ``replicate`` are global ``jax.Array``s built from the
same host value on every process (``jax.make_array_from_callback``); ``to_host`` gathers a global
array on every process (``process_allgather``), so every process sees the full metrics and only
process 0 writes them.
"""

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

from collapse_jax import rng
from collapse_jax.errors import ConfigError

SEEDS = "seeds"
DATA = "data"


# ---------------------------------------------------------------------------------------------
# Meshes.


def mesh_1d(axis: str, num_devices: int = 0, devices=None) -> Mesh:
    """A 1-D mesh named ``axis`` over the first ``num_devices`` devices (0: all of them)."""
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices) if num_devices == 0 else num_devices
    if not 0 < n <= len(devices):
        raise ConfigError(
            f"num_devices: expected 0 (all) or 1 .. {len(devices)} (the devices JAX sees), got "
            f"{num_devices}"
        )
    # Mesh(...) rather than jax.make_mesh: its default axis type changed across JAX versions, and
    # the chain wants the classic automatic (propagated) sharding.
    return Mesh(np.asarray(devices[:n]), (axis,))


def seed_mesh(cfg) -> Mesh | None:
    """The ``"seeds"`` mesh of ``cfg.num_devices`` devices, or None for a single-device run.

    Raises ``ConfigError`` when the device count does not divide ``cfg.num_seeds``, or when a
    multi-process run is not given every device.
    """
    nd = cfg.num_devices
    if jax.process_count() > 1 and nd not in (0, jax.device_count()):
        raise ConfigError(
            f"num_devices: a run over {jax.process_count()} processes shards seeds over all "
            f"{jax.device_count()} devices: expected 0 or {jax.device_count()}, got {nd}"
        )
    if nd == 1:
        return None
    mesh = mesh_1d(SEEDS, nd)
    n = mesh.devices.size
    if cfg.num_seeds % n:
        raise ConfigError(
            f"num_seeds: expected a multiple of the {n} devices the seeds are sharded over "
            f"(num_devices={nd}), got {cfg.num_seeds}; change num_seeds or num_devices"
        )
    return mesh


def sub_meshes(num_groups: int, axis: str = DATA, devices=None) -> list[Mesh]:
    """``num_groups`` disjoint 1-D meshes of consecutive devices (e.g. one per LLM seed)."""
    devices = list(jax.devices() if devices is None else devices)
    if num_groups <= 0 or len(devices) % num_groups:
        raise ConfigError(
            f"num_seeds: expected a divisor of the {len(devices)} devices to run seeds on "
            f"disjoint sub-meshes, got {num_groups}"
        )
    size = len(devices) // num_groups
    return [
        Mesh(np.asarray(devices[i * size : (i + 1) * size]), (axis,)) for i in range(num_groups)
    ]


# ---------------------------------------------------------------------------------------------
# Placing and gathering global arrays.


def leading(mesh: Mesh, axis: str) -> NamedSharding:
    """Split the leading axis over ``axis``; the other axes whole."""
    return NamedSharding(mesh, P(axis))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def _put_leaf(x, sharding):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(x)
        data = _put_leaf(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=impl)
    host = np.asarray(jax.device_get(x))
    # Every process holds the same host value; each materialises only its own devices' shards.
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def put(tree, sharding) -> Any:
    """Place a host (or single-device) pytree as global arrays with ``sharding`` (one, or a tree).

    Works across processes provided every process passes the same values.
    """
    if isinstance(sharding, jax.sharding.Sharding):
        return jax.tree.map(lambda x: _put_leaf(x, sharding), tree)
    return jax.tree.map(_put_leaf, tree, sharding)


def replicate(tree, mesh: Mesh) -> Any:
    return put(tree, replicated(mesh))


def to_host(tree) -> Any:
    """NumPy copies of a pytree of (possibly multi-process, sharded) arrays, on every process."""
    leaves = jax.tree.leaves(tree)
    if all(getattr(x, "is_fully_addressable", True) for x in leaves):
        return jax.tree.map(np.asarray, jax.device_get(tree))
    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


# ---------------------------------------------------------------------------------------------
# The chain's seed axis.


def seed_keys(cfg, mesh: Mesh | None) -> jax.Array:
    """``rng.seed_keys`` (the same keys whatever the mesh), split over ``mesh`` when given."""
    if mesh is None:
        return rng.seed_keys(cfg.seed, cfg.num_seeds)
    make = jax.jit(rng.seed_keys, static_argnums=(0, 1), out_shardings=leading(mesh, SEEDS))
    return make(cfg.seed, cfg.num_seeds)


def chain_shardings(mesh: Mesh) -> tuple[NamedSharding, NamedSharding]:
    """``(per_seed, replicated)``: for keys_S, the carry and metrics; for truth and generations."""
    return leading(mesh, SEEDS), replicated(mesh)


def with_sharding(abstract_tree, mesh: Mesh | None) -> Any:
    """``ShapeDtypeStruct``s of the per-seed carry, each with the sharding a restore should make.

    Without a mesh the arrays go to the first local device: a checkpoint saved by any number of
    devices or processes restores there (Orbax reads the shards it is asked for).
    """
    sharding = (
        leading(mesh, SEEDS) if mesh is not None else SingleDeviceSharding(jax.local_devices()[0])
    )
    return jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), abstract_tree
    )


# ---------------------------------------------------------------------------------------------
# LM: data parallel and FSDP over a "data" mesh axis.


def shard_batch(mesh: Mesh, batch, axis: str = DATA) -> Any:
    """Split the leading (batch) axis of every leaf over ``axis``; it must divide evenly."""
    n = mesh.shape[axis]
    for x in jax.tree.leaves(batch):
        if np.shape(x)[0] % n:
            raise ConfigError(
                f"batch_size: expected a multiple of the {n} devices of mesh axis {axis!r}, "
                f"got {np.shape(x)[0]}"
            )
    return put(batch, leading(mesh, axis))


def fsdp_spec(shape: tuple[int, ...], n: int, axis: str = DATA, min_size: int = 2**14) -> P:
    """Split the largest axis divisible by ``n`` of a leaf with >= ``min_size`` elements.

    Depends on the shape only, so AdamW's moments get the sharding of their parameter. Small
    leaves (biases, layer norms) stay replicated: splitting them saves nothing and adds
    collectives.
    """
    if int(np.prod(shape, dtype=np.int64)) < min_size:
        return P()
    for d in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[d] % n == 0:
            return P(*([None] * d + [axis]))
    return P()


def state_shardings(mesh: Mesh, tree, fsdp: bool = False, axis: str = DATA, min_size: int = 2**14):
    """A sharding per leaf of ``tree`` (params, or optimiser state): replicated, or FSDP."""
    n = mesh.shape[axis]

    def one(x):
        if not fsdp:
            return replicated(mesh)
        return NamedSharding(mesh, fsdp_spec(np.shape(x), n, axis, min_size))

    return jax.tree.map(one, tree)
