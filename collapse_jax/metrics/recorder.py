"""The recorder: a run's metrics into the store, metrics.jsonl (and TensorBoard), in the background."""

import concurrent.futures
from pathlib import Path

import numpy as np

from collapse_jax.errors import CheckpointError, require
from collapse_jax.metrics import tensorboard
from collapse_jax.metrics.lines import MetricsWriter, format_lines, format_summary_lines
from collapse_jax.metrics.stats import stat_names, summarize
from collapse_jax.metrics.store import STORE, MetricsStore


def validate(cfg) -> None:
    """The ``metrics`` block of the config."""
    m = cfg.metrics
    n = m.per_seed_max_seeds
    require(isinstance(n, int) and n >= 0, "metrics.per_seed_max_seeds", "an integer >= 0", n)
    c = m.seeds_per_chunk
    require(isinstance(c, int) and c > 0, "metrics.seeds_per_chunk", "a positive integer", c)
    qs = tuple(m.quantiles)
    ok = all(isinstance(q, (int, float)) and 0 <= q <= 1 for q in qs) and len(set(qs)) == len(qs)
    require(ok, "metrics.quantiles", "distinct numbers in [0, 1]", qs)
    tb = m.tensorboard
    require(isinstance(tb, bool), "metrics.tensorboard", "True or False", tb)
    require(
        not tb or tensorboard.available(),
        "metrics.tensorboard",
        f"tensorboardX installed to write TensorBoard events ({tensorboard.INSTALL})",
        tb,
    )


class Recorder:
    """Records a run's metrics on one background thread, one chunk in flight.

    ``write`` hands a chunk of every seed's values to the thread and returns once the previous
    chunk is recorded: its rows in ``per_seed/``, its seed statistics in ``summary/`` (and as
    TensorBoard scalars when ``metrics.tensorboard``), its lines in metrics.jsonl, then
    ``progress.json`` (the commit). The device computes the next chunk meanwhile.
    ``chain.run`` saves a chunk's checkpoint after ``write`` returns, so when checkpoint ``c`` is
    saved the store holds everything before the previous checkpoint, and resume restores the
    newest checkpoint whose generations the store holds (``complete``), discarding newer ones;
    ``resume`` then truncates the store and lines to it and rebuilds what a kill lost from
    ``per_seed/``, so the resumed files are byte-identical.
    """

    def __init__(self, workdir, cfg, enabled: bool = True):
        self.enabled = enabled
        self.store = MetricsStore(Path(workdir) / STORE)
        self.jsonl = MetricsWriter(Path(workdir) / "metrics.jsonl", enabled)
        self.num_generations, self.num_seeds = cfg.num_generations, cfg.num_seeds
        self.every = cfg.checkpoint.every_generations
        self.seeds_per_chunk = cfg.metrics.seeds_per_chunk
        self.quantiles = tuple(float(q) for q in cfg.metrics.quantiles)
        self.stats = stat_names(self.quantiles)
        self.per_seed_lines = cfg.num_seeds <= cfg.metrics.per_seed_max_seeds
        self.tensorboard = None
        if enabled and cfg.metrics.tensorboard:
            self.tensorboard = tensorboard.TensorBoardSink(self.store.dir / tensorboard.SUBDIR)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, "metrics") if enabled else None
        self._pending: concurrent.futures.Future | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Wait for the background writer; its error, if any, is raised here."""
        if self._pool is None:
            return
        try:
            self.wait()
        finally:
            self._pool.shutdown()
            self._pool = None
            if self.tensorboard is not None:
                self.tensorboard.close()

    def wait(self) -> None:
        """Block until every chunk handed to ``write`` is recorded (raising the writer's error)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def complete(self, checkpoints) -> int | None:
        """The newest of ``checkpoints`` (generations) whose metrics the store holds, or None.

        Read on every process (the store is on the shared workdir), so all restore the same one.
        """
        steps = sorted(checkpoints)
        if not steps:
            return None
        if not self.store.exists():
            raise CheckpointError(
                f"{self.store.dir}: missing, but {self.store.dir.parent}/checkpoints reach "
                f"generation {steps[-1]} (a run of an older version?): move the workdir away or "
                "pass --overwrite"
            )
        done = self.store.progress()["per_seed"]
        ok = [s for s in steps if s < done]
        return ok[-1] if ok else None

    def resume(self, last_generation: int | None) -> None:
        """Truncate to the checkpoint ``last_generation`` and rebuild what a kill left undone."""
        if not self.enabled:
            return
        self.store.truncate(last_generation)
        kept = self.jsonl.truncate(last_generation)
        if last_generation is None:
            # Before the first checkpoint: from here on a checkpoint without progress.json is
            # another version's run, not a kill before the first commit.
            self.store.set_progress(per_seed=0, summary=0)
            if self.tensorboard is not None:
                self.tensorboard.restart(0)
            return
        n = last_generation + 1
        done = self.store.progress()
        if done["per_seed"] < n:
            raise CheckpointError(
                f"{self.store.dir} holds every seed's metrics for {done['per_seed']} generations "
                f"but the checkpoints reach generation {last_generation}; it was changed outside "
                "the run: move the workdir away or pass --overwrite"
            )
        lines_from = -1 if kept is None else kept
        # The events of every generation the summary holds were flushed before its commit.
        tb_from = n if self.tensorboard is None else self.tensorboard.restart(done["summary"])
        start = min(lines_from + 1, done["summary"], tb_from)
        for g0 in range(start, n, self.every):
            gens = np.arange(g0, min(g0 + self.every, n))
            names = self.store.names("per_seed")
            m = {
                k: self.store.array("per_seed", k)[g0 : gens[-1] + 1].read().result() for k in names
            }
            self._derive(gens, m, done["summary"], lines_from + 1, tb_from)
            self.store.set_progress(summary=max(done["summary"], int(gens[-1]) + 1))

    def write(self, generations, metrics_GxS: dict[str, np.ndarray]) -> None:
        """Queue consecutive ``generations`` of ``{name: [G, S, ...]}`` (host arrays, not changed
        afterwards); returns once the chunk queued before is recorded."""
        if not self.enabled or len(generations) == 0:
            return
        gens = np.asarray(generations)
        self.wait()
        self._pending = self._pool.submit(self._record, gens, metrics_GxS)

    def _record(self, gens, m_GxS) -> None:
        G, S = max(self.num_generations, int(gens[-1]) + 1), self.num_seeds
        # As many chunks as seeds_per_chunk asks for, evened out so the last is not padding.
        c = -(-S // -(-S // self.seeds_per_chunk))
        for k, v in m_GxS.items():
            inner = (self.every, c, *v.shape[2:])
            shard = (self.every, -(-S // c) * c, *v.shape[2:])
            self.store.ensure("per_seed", k, (G, S, *v.shape[2:]), v.dtype, shard, inner)
        self.store.write("per_seed", gens, m_GxS)
        self._derive(gens, m_GxS)
        end = int(gens[-1]) + 1
        self.store.set_progress(per_seed=end, summary=end)  # the chunk's commit

    def _derive(
        self, gens, m_GxS, summary_from: int = 0, lines_from: int = 0, tensorboard_from: int = 0
    ) -> None:
        """Seed statistics into ``summary/`` (and TensorBoard) and lines into metrics.jsonl, for
        the rows past each ``*_from``."""
        summ = summarize(m_GxS, self.quantiles)
        attrs = {"stats": list(self.stats)}
        G = max(self.num_generations, int(gens[-1]) + 1)
        for k, v in summ.items():
            shape = (G, len(self.stats), *v.shape[2:])
            self.store.ensure(
                "summary", k, shape, np.float64, (self.every, *shape[1:]), None, attrs
            )
        s = gens >= summary_from
        if s.any():
            self.store.write("summary", gens[s], {k: v[s] for k, v in summ.items()})
        lines = gens >= lines_from
        if lines.any():
            if self.per_seed_lines:
                text = format_lines(gens[lines], {k: v[lines] for k, v in m_GxS.items()})
            else:
                summ_l = {k: v[lines] for k, v in summ.items()}
                text = format_summary_lines(gens[lines], summ_l, self.stats)
            self.jsonl.append(text)
        tb = gens >= tensorboard_from
        if self.tensorboard is not None and tb.any():
            self.tensorboard.write(gens[tb], {k: v[tb] for k, v in summ.items()}, self.stats)
