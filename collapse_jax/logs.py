"""What a run logs: a progress line with rate and ETA, and no Orbax chatter around it."""

import logging as logging_std
import math
import time

from absl import logging


class Progress:
    """Logs generations done, generations per second and ETA at most every ``every_seconds``."""

    def __init__(self, total: int, done: int, every_seconds: float, label: str = ""):
        self.total, self.start_done, self.every = total, done, every_seconds
        self.label = label
        self.t0 = self.last = time.perf_counter()

    def update(self, done: int, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.every:
            return
        self.last = now
        rate = (done - self.start_done) / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        logging.info(
            "%sgeneration %d/%d | %.2f gen/s | ETA %s",
            self.label,
            done,
            self.total,
            rate,
            _hms(eta),
        )


class _DropOrbaxInfo(logging_std.Filter):
    def filter(self, record):
        return record.levelno > logging_std.INFO or "orbax" not in record.pathname


def quiet_orbax() -> None:
    """Keep Orbax's per-save INFO lines out of the progress log (warnings still show)."""
    logger = logging.get_absl_logger()
    if not any(isinstance(f, _DropOrbaxInfo) for f in logger.filters):
        logger.addFilter(_DropOrbaxInfo())


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
