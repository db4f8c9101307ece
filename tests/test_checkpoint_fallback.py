"""A corrupt newest checkpoint: one warning line, resume from the newest readable one, finish
byte-identical; a checkpoint of another config's shapes stays an error."""

import fnmatch
import gc
import logging
import shutil

import jax
import numpy as np
import pytest

from collapse_jax import chain
from collapse_jax.checkpoint import Checkpointer, UnreadableCheckpoint
from collapse_jax.errors import CheckpointError
from configs import gaussian

# Every file Orbax writes for one step (checked below, so no file escapes the parametrization).
FILES = (
    "_CHECKPOINT_METADATA",
    "commit_success.txt",
    "meta/commit_success.txt",
    "meta/metadata",
    "state/_METADATA",
    "state/_sharding",
    "state/array_metadatas/*",
    "state/commit_success.txt",
    "state/d/*",
    "state/manifest.ocdbt",
    "state/ocdbt.process_0/d/*",
    "state/ocdbt.process_0/manifest.ocdbt",
)


def _config():
    return gaussian.get_config("smoke")  # 20 generations, a checkpoint every 5: 10, 15, 19 kept


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    return chain.run(_config(), tmp_path_factory.mktemp("whole"))


def _abstract(cfg):
    fam, mesh = chain.checks.resolve(cfg)
    program = chain.build(cfg, fam, mesh)
    truth, keys_S = chain.checks.inputs(cfg, fam, mesh)
    return jax.eval_shape(program.first, keys_S, truth)[0]


def _step_files(step_dir):
    return sorted(str(p.relative_to(step_dir)) for p in step_dir.rglob("*") if p.is_file())


def test_every_checkpoint_file_is_covered(whole):
    last = max(int(p.name) for p in (whole / "checkpoints").iterdir() if p.name.isdigit())
    for f in _step_files(whole / "checkpoints" / str(last)):
        assert any(fnmatch.fnmatch(f, pattern) for pattern in FILES), f


# Orbax leaves the read coroutines of a failed restore unawaited; collected later, they print a
# page of TensorStore spec under whichever test runs then. Collect them here, where they are meant.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
# Two files in the default suite (the array data and the step's commit marker), every file in
# CI's slow leg.
@pytest.mark.parametrize(
    "pattern",
    [
        p if p in ("state/d/*", "commit_success.txt") else pytest.param(p, marks=pytest.mark.slow)
        for p in FILES
    ],
)
def test_corrupt_newest_checkpoint_falls_back(pattern, whole, tmp_path, caplog):
    cfg = _config()
    workdir = tmp_path / "run"
    shutil.copytree(whole, workdir)
    last = cfg.num_generations - 1
    step_dir = workdir / "checkpoints" / str(last)
    name = next(f for f in _step_files(step_dir) if fnmatch.fnmatch(f, pattern))
    path = step_dir / name
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + max(1, min(16, len(data) // 4))):
        data[i] ^= 0xFF  # flipped bytes, as a failing disk would leave them
    path.write_bytes(bytes(data))

    abstract = _abstract(cfg)
    with Checkpointer(whole / "checkpoints") as ckpt:
        good, _ = ckpt.restore(last, abstract)
    with Checkpointer(workdir / "checkpoints") as ckpt:
        try:
            state, _ = ckpt.restore(last, abstract)
            readable = True
            # A file the restore does not need: then what it reads must be the saved arrays.
            for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(good), strict=True):
                np.testing.assert_array_equal(a, b)
        except UnreadableCheckpoint:
            readable = False

    with caplog.at_level(logging.WARNING):
        chain.run(cfg, workdir)
    warnings = [r.getMessage() for r in caplog.records if "moved to" in r.getMessage()]
    assert (workdir / "checkpoints" / f"corrupt-{last}").is_dir() == (not readable)
    assert len(warnings) == (0 if readable else 1)
    if warnings:
        assert f"checkpoints/{last}" in warnings[0] and "\n" not in warnings[0]
    assert (workdir / "metrics.jsonl").read_bytes() == (whole / "metrics.jsonl").read_bytes()
    with Checkpointer(workdir / "checkpoints") as ckpt:  # saved again, readable
        assert last in ckpt.all_steps()
        state, _ = ckpt.restore(last, abstract)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(good), strict=True):
        np.testing.assert_array_equal(a, b)
    gc.collect()


def test_checkpoint_of_other_shapes_is_an_error_saying_so(whole):
    cfg = _config()
    cfg.num_seeds += 1  # every array of the state gets another leading size
    with Checkpointer(whole / "checkpoints") as ckpt:
        with pytest.raises(CheckpointError, match="another config") as e:
            ckpt.restore(cfg.num_generations - 1, _abstract(cfg))
    assert not isinstance(e.value, UnreadableCheckpoint)


def test_scalar_leaves_of_the_target_restore_and_nothing_is_set_aside(tmp_path):
    """Orbax refuses NumPy and Python scalars as restore targets; such a target is our code's
    fault, never the checkpoint's, so it must restore (or fail as a code error) in place."""
    state = {"a": np.arange(3, dtype=np.float32), "b": np.float32(1.5)}
    with Checkpointer(tmp_path / "ck", 3) as ckpt:
        ckpt.save(0, jax.tree.map(jax.numpy.asarray, state), {"g": 0})
    with Checkpointer(tmp_path / "ck", 3) as ckpt:
        restored, meta = ckpt.restore(0, state)
        with pytest.raises(CheckpointError) as e:  # float64 target for a float32 array
            ckpt.restore(0, {"a": state["a"], "b": 1.5})
        assert not isinstance(e.value, UnreadableCheckpoint)
    assert meta == {"g": 0}
    np.testing.assert_array_equal(restored["a"], state["a"])
    assert float(restored["b"]) == 1.5
    assert (tmp_path / "ck" / "0").is_dir()


def test_background_saves_queue_in_order_and_raise_their_error(tmp_path, monkeypatch):
    """Up to ``max_pending`` saves wait behind a slow one without blocking the caller; they land
    in order, a failed one is raised by the next ``save`` or ``wait``, and none after it runs."""
    import threading

    gate, order = threading.Event(), []
    real = Checkpointer._save

    def slow(self, step, state, meta):
        gate.wait(timeout=60)
        if step == 3:
            raise OSError("disk full")
        order.append(step)
        real(self, step, state, meta)

    monkeypatch.setattr(Checkpointer, "_save", slow)
    state = {"x": np.arange(4.0)}
    with Checkpointer(tmp_path / "a", max_to_keep=None) as ck:
        for step in range(5):  # the first blocks on the gate; the caller is not held up
            ck.save(step, state, {"generation": step}, background=True, max_pending=5)
        assert len(ck._pending) == 5 and order == []
        gate.set()
        with pytest.raises(OSError, match="disk full"):
            ck.wait()
        # No checkpoint lands past the failed one (as if the process had stopped there).
        assert order == [0, 1, 2] and ck.all_steps() == [0, 1, 2]
