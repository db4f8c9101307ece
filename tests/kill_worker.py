"""``launch.run`` that stops dead at a chosen moment, for ``tests/test_kill.py``.

    python tests/kill_worker.py MOMENT CALL MARKER -- --config=... --workdir=...

At the CALL-th time the run reaches MOMENT, this process writes MARKER and sleeps; the test then
sends it SIGKILL, so no ``finally`` block, ``__exit__`` or atexit handler runs, as for a real
``kill -9``. The moments patch the run's own functions from outside (nothing in the library
knows about this), each at the point where a kill does the most harm:

  span     the main thread, after a span was dispatched and before its metrics reach the host
  save     a checkpoint save, after Orbax started writing it and before it is committed
  commit   the metrics writer, after a chunk's arrays and lines are written and before
           progress.json records them
  lines    the metrics writer, in the middle of appending a chunk's lines to metrics.jsonl
"""

import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _stop_here(calls: list[int], call: int, marker: str) -> None:
    with _LOCK:
        calls[0] += 1
        hit = calls[0] == call
    if hit:
        Path(marker).write_text(str(os.getpid()))
        while True:  # until SIGKILL
            time.sleep(60)


_LOCK = threading.Lock()


def _wait_for(path: Path, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def patch(moment: str, call: int, marker: str) -> None:
    from collapse_jax import checkpoint, sharding
    from collapse_jax import metrics as metrics_lib

    calls = [0]
    if moment == "span":
        original = sharding.to_host

        def to_host(tree):
            _stop_here(calls, call, marker)
            return original(tree)

        sharding.to_host = to_host
    elif moment == "save":
        original = checkpoint.Checkpointer._save

        def _save(self, step, state, meta):
            original(self, step, state, meta)  # Orbax's async commit is now in flight
            _stop_here(calls, call, marker)

        checkpoint.Checkpointer._save = _save
    elif moment == "commit":
        original = metrics_lib.MetricsStore.set_progress

        def set_progress(self, **n):
            if "per_seed" in n and n["per_seed"] > 0:
                with _LOCK:
                    hit = calls[0] + 1 == call
                if hit:
                    # The worst case: the chunk's checkpoint lands while its metrics wait. It
                    # does unless saves wait for the metrics (checkpoint.max_to_keep = 1).
                    _wait_for(self.dir.parent / "checkpoints" / str(n["per_seed"] - 1))
                _stop_here(calls, call, marker)
            return original(self, **n)

        metrics_lib.MetricsStore.set_progress = set_progress
    elif moment == "lines":
        original = metrics_lib.MetricsWriter.append

        def append(self, lines):
            text = "".join(lines)
            with _LOCK:
                torn = calls[0] + 1 == call
            if torn and self.enabled:
                with open(self.path, "a") as f:  # half a chunk, the last line cut
                    f.write(text[: len(text) // 2])
                    f.flush()
                    os.fsync(f.fileno())
            _stop_here(calls, call, marker)
            return original(self, lines)

        metrics_lib.MetricsWriter.append = append
    else:
        raise SystemExit(f"unknown moment {moment!r}")


def main() -> None:
    moment, call, marker, sep, *argv = sys.argv[1:]
    assert sep == "--", sys.argv
    patch(moment, int(call), marker)
    from absl import app

    from launch import cli
    from launch import run as run_lib

    sys.argv = ["launch.run", *argv]
    app.run(run_lib.main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    main()
