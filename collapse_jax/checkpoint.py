"""The only Orbax wrapper: one checkpoint per saved generation (step = generation).

Each step holds ``state`` (a pytree of arrays, ``StandardSave``) and ``meta`` (JSON). Orbax writes
into a temporary directory and renames it when complete, so a process killed mid-save leaves the
previous checkpoints intact and the partial one is ignored on restore.

Retention is Orbax's own preservation policy: the latest ``max_to_keep`` steps, plus every step in
``keep_steps`` for good (``checkpoint.keep_generations``, what ``runs.open_run`` restores later).
"""

import collections
import concurrent.futures
import logging
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging
from jax.sharding import SingleDeviceSharding

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
        self.max_to_keep = max_to_keep
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
        self._saver = None  # one background thread for save(..., background=True)
        self._pending: collections.deque[concurrent.futures.Future] = collections.deque()
        self._failed = False  # a background save failed: the ones queued after it do not run

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        # Close even when a pending save failed: a manager left open keeps Orbax's threads alive
        # into interpreter shutdown, which prints their tracebacks after our one error line.
        try:
            self.wait()
        finally:
            if self._saver is not None:
                self._saver.shutdown()
            # Orbax's close() does not await the cleanup of unfinished saves that its constructor
            # starts on a thread; a run that fails right after opening would exit under it and
            # print that thread's traceback ("cannot schedule new futures after shutdown").
            cleanup = getattr(self._manager, "_cleanup_tmp_directory_future", None)
            if cleanup is not None:
                cleanup.result()
            self._manager.close()

    def latest_step(self) -> int | None:
        self._join()
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        self._join()
        return list(self._manager.all_steps())

    def save(
        self, step: int, state: Any, meta: dict, background: bool = False, max_pending: int = 1
    ) -> None:
        """Save ``step``. Orbax writes the files asynchronously but its ``save`` still blocks for
        tens of milliseconds (directories, metadata, the host copy); ``background=True`` runs that
        part on this checkpointer's own thread too, so the caller can dispatch its next
        computation at once. Background saves run in order, at most ``max_pending`` of them
        queued or running (this call first waits for the oldest beyond that). Each ``state``
        must stay valid (not donated) until its save is done, which ``wait`` ensures; an error of
        a background save is raised by a later ``save`` or ``wait``, and no background save
        queued after it runs (so no checkpoint lands past a failed one).
        """
        # Orbax's save runs cross-process collectives (its barriers are process_allgathers): in a
        # multi-process run a save on this thread could interleave with the caller's own
        # collectives in another order on another process, which deadlocks. Save in line there.
        if not background or jax.process_count() > 1:
            self._join()
            self._save(step, state, meta)
            return
        self._join(keep=max_pending - 1)
        if self._saver is None:
            self._saver = concurrent.futures.ThreadPoolExecutor(1, "checkpoint")
        self._pending.append(self._saver.submit(self._save_after, step, state, meta))

    def _save_after(self, step: int, state: Any, meta: dict) -> None:
        """A queued save: none runs once an earlier one failed (as if the process had stopped
        there), so no checkpoint lands past a failed one."""
        if self._failed:
            raise CheckpointError(f"checkpoint {step} not saved: an earlier save failed")
        try:
            self._save(step, state, meta)
        except BaseException:
            self._failed = True
            raise

    def _save(self, step: int, state: Any, meta: dict) -> None:
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )

    def _join(self, keep: int = 0) -> None:
        """Wait until at most ``keep`` background saves are pending, oldest first; a failed one
        raises here (the saves queued after it do not run)."""
        try:
            while len(self._pending) > keep or (self._pending and self._pending[0].done()):
                self._pending[0].result()
                self._pending.popleft()
        except BaseException:
            for f in self._pending:
                f.cancel()
            self._pending.clear()
            raise

    def wait(self) -> None:
        """Every save so far is on disk (or its error raised)."""
        try:
            self._join()
        finally:
            self._manager.wait_until_finished()

    def delete(self, step: int) -> None:
        """Delete ``step`` (a checkpoint ahead of its recorded metrics, recomputed on resume)."""
        self._join()
        self._manager.delete(step)

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """Restore ``step`` into the structure, shapes, dtypes (and shardings) of ``abstract_state``.

        A checkpoint whose saved tree or shapes differ from ``abstract_state`` (another config,
        another code version) raises ``CheckpointError`` saying so; one that cannot be read
        (truncated or corrupt files, a missing item) raises ``UnreadableCheckpoint``.
        """
        self._join()
        path = self.directory / str(step)
        want = jax.tree.map(_abstract, abstract_state)
        try:
            saved = ocp.StandardCheckpointHandler().metadata(path / "state")
            saved = {k: (tuple(v.shape), v.dtype) for k, v in ocp.tree.to_flat_dict(saved).items()}
        except Exception as e:  # Orbax raises many types; the user needs one line.
            raise UnreadableCheckpoint(
                f"checkpoint {path}: metadata unreadable ({_first(e)})"
            ) from e
        expected = {k: (tuple(v.shape), v.dtype) for k, v in ocp.tree.to_flat_dict(want).items()}
        if saved != expected:
            diff = sorted(set(saved.items()) ^ set(expected.items()), key=str)[:2]
            raise CheckpointError(
                f"checkpoint {path} holds the state of another config or code version (its "
                f"arrays differ from this config's: {diff}); use a new --workdir, or --overwrite"
            )
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(want), meta=ocp.args.JsonRestore()
                ),
            )
        except (TypeError, AttributeError) as e:
            # The restore target, not the files, is at fault (a code bug): the checkpoint stays.
            raise CheckpointError(
                f"checkpoint {path}: this code cannot restore into its state ({_first(e)}); "
                "the checkpoint was left in place"
            ) from e
        except Exception as e:
            raise UnreadableCheckpoint(f"checkpoint {path}: unreadable ({_first(e)})") from e
        if not isinstance(restored["meta"], dict):
            raise UnreadableCheckpoint(f"checkpoint {path}: meta item unreadable")
        return restored["state"], restored["meta"]

    def set_aside(self, step: int) -> Path:
        """Move ``step`` out of Orbax's sight (``corrupt-STEP``), so the step can be saved again."""
        self._join()
        src = self.directory / str(step)
        dst = self.directory / f"corrupt-{step}"
        n = 1
        while dst.exists():
            dst, n = self.directory / f"corrupt-{step}.{n}", n + 1
        os.replace(src, dst)
        self._manager.reload()
        return dst


def _abstract(x) -> jax.ShapeDtypeStruct:
    """A restore target leaf; NumPy and Python scalars (which Orbax refuses) become arrays."""
    if isinstance(x, (jax.Array, jax.ShapeDtypeStruct)):
        return ocp.utils.to_shape_dtype_struct(x)
    a = np.asarray(x)
    return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=SingleDeviceSharding(jax.devices()[0]))


class UnreadableCheckpoint(CheckpointError):
    """A checkpoint's files are truncated, corrupt or missing (an earlier one may still be good)."""


def _first(e: Exception) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:200]}" if text else type(e).__name__


def restore_newest(ckpt: Checkpointer, abstract_state: Any) -> tuple[int | None, Any, dict]:
    """``(step, state, meta)`` of the newest readable checkpoint, ``(None, None, {})`` if none.

    Each unreadable newer one is reported in one warning line and set aside (not deleted).
    """
    for step in sorted(ckpt.all_steps(), reverse=True):
        try:
            state, meta = ckpt.restore(step, abstract_state)
        except UnreadableCheckpoint as e:
            aside = ckpt.set_aside(step)
            absl_logging.warning("%s; moved to %s, resuming from an earlier checkpoint", e, aside)
            continue
        return step, state, meta
    return None, None, {}
