"""Multi-host start-up: absl flags for ``jax.distributed.initialize``."""

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


def initialize_from_flags() -> None:
    import jax

    if _AUTO.value:
        jax.distributed.initialize()
    elif _COORDINATOR.value:
        jax.distributed.initialize(
            coordinator_address=_COORDINATOR.value,
            num_processes=_NUM_PROCESSES.value,
            process_id=_PROCESS_ID.value,
        )
