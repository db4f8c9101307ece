"""The only Orbax wrapper: one checkpoint per saved generation (step = generation).

Each step holds ``state`` (a pytree of arrays, ``StandardSave``) and ``meta`` (JSON). Orbax writes
into a temporary directory and renames it when complete, so a process killed mid-save leaves the
previous checkpoints intact and the partial one is ignored on restore.

Retention is Orbax's own preservation policy: the latest ``max_to_keep`` steps, plus every step in
``keep_steps`` for good (``checkpoint.keep_generations``, what ``runs.open_run`` restores later).
"""

import logging
import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging

from collapse_jax.errors import CheckpointError


class _DropReadOnlyNotice(logging.Filter):
    def filter(self, record):
        return "directory is read only" not in record.getMessage()


def _quiet_read_only() -> None:
    """Orbax warns on every read-only manager; for analysis that is the intent, not a problem."""
    logger = absl_logging.get_absl_logger()
    if not any(isinstance(f, _DropReadOnlyNotice) for f in logger.filters):
        logger.addFilter(_DropReadOnlyNotice())


class Checkpointer:
    """``ocp.CheckpointManager`` over ``directory`` (made absolute), used as a context manager."""

    def __init__(
        self,
        directory,
        max_to_keep: int | None = 3,
        async_save: bool = True,
        keep_steps=(),
        read_only: bool = False,
    ):
        self.directory = Path(os.path.abspath(directory))
        if read_only:
            # Analysis opens a run's checkpoints without creating, cleaning or deleting anything.
            if not self.directory.is_dir():
                raise CheckpointError(f"{self.directory}: no checkpoints directory")
            _quiet_read_only()
            options = ocp.CheckpointManagerOptions(
                read_only=True, create=False, save_interval_steps=0
            )
        else:
            policies = ocp.checkpoint_managers
            options = ocp.CheckpointManagerOptions(
                preservation_policy=policies.AnyPreservationPolicy(
                    [
                        policies.LatestN(n=max_to_keep),
                        policies.CustomSteps(steps=[int(s) for s in keep_steps]),
                    ]
                ),
                create=True,
                cleanup_tmp_directories=True,
                enable_async_checkpointing=async_save,
            )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: dict) -> None:
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """Restore ``step`` into the structure, shapes, dtypes (and shardings) of ``abstract_state``.

        A checkpoint whose tree does not match (another config, another code version) raises a
        one-line ``CheckpointError`` naming the directory.
        """
        want = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(want), meta=ocp.args.JsonRestore()
                ),
            )
        except Exception as e:  # Orbax raises many types; the user needs one line.
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"checkpoint {self.directory}/{step} does not match this config's state "
                f"({type(e).__name__}: {first})"
            ) from e
        state = restored["state"]
        got = jax.tree.map(lambda x: (x.shape, x.dtype), state)
        exp = jax.tree.map(lambda x: (x.shape, x.dtype), want)
        if got != exp:
            raise CheckpointError(
                f"checkpoint {self.directory}/{step} has shapes/dtypes that differ from this "
                "config's state"
            )
        return state, restored["meta"]
