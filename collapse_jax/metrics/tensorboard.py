"""An optional TensorBoard view of a running chain: each generation's seed statistics as scalars.

Off by default (``metrics.tensorboard``) and never required: it needs the ``tensorboard`` extra
(tensorboardX, which writes event files without TensorFlow). The events go to
``DIR/metrics/tensorboard/`` (``tensorboard --logdir=DIR``): one tag ``<metric>/<stat>`` per
scalar metric and seed statistic (``variance/mean``, ``variance/q0.9``), step = generation. They
are a view for watching a run; the record stays ``per_seed/``, ``summary/`` and metrics.jsonl.

Resume: the recorder writes and flushes a chunk's events before it commits the chunk in
``progress.json``, so the event files hold every committed generation, and maybe some that a
kill left uncommitted. A resumed run writes a new event file that opens with TensorBoard's
restart marker (a ``SessionLog.START`` event, tensorboardX's ``purge_step``) at the first
generation it writes again: TensorBoard drops every older event at or after that step, so each
generation shows once. Since the chain resumes bit for bit, a reader that ignores the marker sees
the same values twice, never different ones.
"""

import importlib.util
import time
from pathlib import Path

import numpy as np

SUBDIR = "tensorboard"  # under DIR/metrics/
INSTALL = "pip install 'collapse_jax[tensorboard]'"
_PATTERN = "events.out.tfevents.*"


def available() -> bool:
    return importlib.util.find_spec("tensorboardX") is not None


class TensorBoardSink:
    """Scalar events of the seed statistics in ``logdir``, written synchronously by the caller.

    tensorboardX's ``SummaryWriter`` queues events to a thread whose ``flush`` does not wait for
    the queue, so it could not say which generations are on disk at a commit; its synchronous
    ``EventsWriter`` can.
    """

    def __init__(self, logdir):
        self.dir = Path(logdir)
        self._writer = None
        self._purge_step: int | None = None

    def has_events(self) -> bool:
        return self.dir.is_dir() and any(self.dir.glob(_PATTERN))

    def restart(self, first: int) -> int:
        """On resume: the first generation to write again, ``first`` when earlier event files
        exist (they hold every generation before it), else 0. Older events from it on are
        superseded by the new file's restart marker."""
        first = first if self.has_events() else 0
        self.close()
        self._purge_step = first
        return first

    def write(self, generations, summary_GxQ: dict[str, np.ndarray], stats) -> None:
        """One event per generation with every ``<metric>/<stat>`` of the scalar metrics."""
        from tensorboardX.proto.event_pb2 import Event, SessionLog
        from tensorboardX.proto.summary_pb2 import Summary

        scalars = sorted((k, v) for k, v in summary_GxQ.items() if v.ndim == 2)
        if not scalars or len(generations) == 0:
            return
        w = self._open()
        if self._purge_step is not None:
            start = SessionLog(status=SessionLog.START)
            w.write_event(Event(wall_time=time.time(), step=self._purge_step, session_log=start))
            self._purge_step = None
        tags = [(k, j, f"{k}/{s}") for k, _ in scalars for j, s in enumerate(stats)]
        rows = {k: np.asarray(v, np.float64).tolist() for k, v in scalars}
        for i, g in enumerate(generations):
            values = [Summary.Value(tag=t, simple_value=rows[k][i][j]) for k, j, t in tags]
            w.write_event(Event(wall_time=time.time(), step=int(g), summary=Summary(value=values)))
        w.flush()

    def _open(self):
        if self._writer is None:
            from tensorboardX.event_file_writer import EventsWriter

            self.dir.mkdir(parents=True, exist_ok=True)
            # A new file per writer, named after the ones before it: event files are read in
            # name order, and two writers within one second would otherwise share a name.
            n = len(list(self.dir.glob(_PATTERN)))
            self._writer = EventsWriter(str(self.dir / "events"), f".{n:04d}")
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
