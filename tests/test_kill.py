"""``kill -9`` at the worst moments of a run, then the same command again: the resumed run's
metrics.jsonl and array store are byte for byte an uninterrupted run's.

Each case runs ``launch.run`` in a subprocess (``tests/kill_worker.py``) that stops dead at one
moment (a span in flight, a checkpoint being written, metrics written but not committed,
metrics.jsonl half appended) and is sent SIGKILL there: unlike an exception, SIGKILL runs no
``finally`` block, context-manager exit or atexit handler, so whatever the run leaves on disk at
that instant is what the rerun finds.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "kill_worker.py"
# Gaussian smoke (20 generations, a checkpoint every 5, kept generations 0, 1, 2, 5, 10): seven
# spans, so the third of anything falls in the middle of the run. max_to_keep=1 is the strictest
# retention (each new checkpoint replaces the last one); 2 keeps the save queue overlapping.
ARGS = ["--config=configs/gaussian.py:smoke", "--config.log_every_seconds=0"]
MOMENTS = ("span", "save", "commit", "lines")


def _env() -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(workdir, *extra) -> None:
    cmd = [sys.executable, "-m", "launch.run", *ARGS, f"--workdir={workdir}", *extra]
    out = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def _committed(workdir: Path) -> set[int]:
    """The steps whose checkpoint Orbax has committed (its ``commit_success.txt`` written)."""
    folder = workdir / "checkpoints"
    if not folder.is_dir():
        return set()
    return {
        int(p.name)
        for p in folder.iterdir()
        if p.name.isdigit() and (p / "commit_success.txt").is_file()
    }


def _files(workdir: Path) -> dict[str, str]:
    """sha256 of metrics.jsonl and of every file of the array store (progress.json included)."""
    paths = [workdir / "metrics.jsonl", *sorted((workdir / "metrics").rglob("*"))]
    return {
        str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in paths
        if p.is_file()
    }


@pytest.fixture(
    scope="module",
    params=(1, pytest.param(2, marks=pytest.mark.slow)),
    ids=("max_to_keep=1", "max_to_keep=2"),
)
def reference(request, tmp_path_factory):
    keep = f"--config.checkpoint.max_to_keep={request.param}"
    workdir = tmp_path_factory.mktemp("uninterrupted")
    _run(workdir, keep)
    return keep, _files(workdir), _committed(workdir)


# The default suite kills during a background save; every moment,
# with max_to_keep 1 and 2, runs in CI's slow leg.
@pytest.mark.parametrize(
    "moment",
    [m if m == "save" else pytest.param(m, marks=pytest.mark.slow) for m in MOMENTS],
)
def test_sigkill_then_rerun_equals_an_uninterrupted_run(reference, moment, tmp_path):
    keep, want, final = reference
    workdir, marker = tmp_path / "run", tmp_path / "stopped"
    cmd = [sys.executable, str(WORKER), moment, "3", str(marker), "--", *ARGS, keep]
    proc = subprocess.Popen(
        [*cmd, f"--workdir={workdir}"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"the run ended before reaching {moment}: {proc.stderr.read()[-3000:]}")
            assert time.monotonic() < deadline, f"{moment} not reached in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    if moment == "save":
        # The main thread may write every span's metrics while the save sleeps; the save itself
        # (and the ones queued behind it) must not have committed.
        assert max(_committed(workdir), default=-1) < max(final), "the save had committed"
    else:
        assert _files(workdir) != want, "the kill came after the run was complete"
    _run(workdir, keep)
    assert _files(workdir) == want
