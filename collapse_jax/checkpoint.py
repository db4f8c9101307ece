"""The only Orbax wrapper: one checkpoint per saved generation (step = generation).

Each step holds ``state`` (a pytree of arrays, ``StandardSave``) and ``meta`` (JSON). Orbax writes
into a temporary directory and renames it when complete, so a process killed mid-save leaves the
previous checkpoints intact and the partial one is ignored on restore.
"""

import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from collapse_jax.errors import CheckpointError


class Checkpointer:
    """``ocp.CheckpointManager`` over ``directory`` (made absolute), used as a context manager."""

    def __init__(self, directory, max_to_keep: int | None = 3, async_save: bool = True):
        self.directory = Path(os.path.abspath(directory))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
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
        # Close even when a pending save failed: a manager left open keeps Orbax's threads alive
        # into interpreter shutdown, which prints their tracebacks after our one error line.
        try:
            self._manager.wait_until_finished()
        finally:
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
