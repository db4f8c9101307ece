"""Multi-host start-up: absl flags for ``jax.distributed.initialize``.

Every process runs the same command; JAX joins them into one set of global devices, the chain
shards its seeds over all of them (``cfg.num_devices=0``), Orbax writes each process's shards of
a checkpoint, and only process 0 writes ``config.json`` and ``metrics.jsonl``.

  python -m launch.run ... --coordinator_address=HOST0:1234 --num_processes=2 --process_id=I
  python -m launch.run ... --distributed_auto     # SLURM, Open MPI, TPU pods, GKE: JAX detects

CPU-only hosts exchange data with JAX's CPU collectives (gloo), set here before start-up.
"""

import jax
from absl import flags

_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (multi-host runs); None: single process."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-host run.")
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "This process's index in [0, num_processes)."
)
_AUTO = flags.DEFINE_bool(
    "distributed_auto", False, "jax.distributed.initialize() with auto-detection (SLURM, TPU pods)."
)
_TIMEOUT = flags.DEFINE_integer(
    "distributed_timeout_seconds", 300, "How long a process waits for the others to join."
)


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    timeout_seconds: int = 300,
) -> None:
    """``jax.distributed.initialize`` with CPU collectives on; arguments None: auto-detection.

    Must run before anything touches a device.
    """
    # Cross-process collectives on CPU devices (process_allgather, Orbax's barriers) need an
    # implementation; gloo ships with jaxlib. GPUs and TPUs ignore this setting.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=timeout_seconds,
    )


def initialize_from_flags() -> None:
    if _AUTO.value:
        initialize(timeout_seconds=_TIMEOUT.value)
    elif _COORDINATOR.value:
        initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _TIMEOUT.value)
