"""What a run records: every seed's metrics as arrays, ``metrics.jsonl``, the finite guard, progress.

``DIR/metrics/`` is a zarr v3 hierarchy written through tensorstore (readable by any zarr v3
reader):

- ``per_seed/<name>``: every seed's value, ``[G, S, ...]`` in the metric's dtype, uncompressed
  (4 bytes per float32 seed-generation), stored in one shard file per checkpoint interval whose
  inner chunks are ``[every_generations, metrics.seeds_per_chunk, ...]``, so one seed's series
  reads one inner chunk per interval and never the other seeds'.
- ``summary/<name>``: ``[G, stat, ...]`` float64 seed statistics per generation, the stats named
  in the array's ``stats`` attribute (``mean``, ``median``, ``q<q>`` for ``metrics.quantiles``).
  Plots draw these without reading ``per_seed``.
- ``progress.json``: how many generations of each are complete (rows past it are not data).

``metrics.jsonl`` stays the human record, one line per generation: every seed's value while
``num_seeds <= metrics.per_seed_max_seeds`` (byte for byte the format earlier versions wrote),
else the seed statistics of each metric.
"""

import concurrent.futures
import json
import logging as logging_std
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import tensorstore as ts
from absl import logging

from collapse_jax.errors import CheckpointError, require

STORE = "metrics"  # DIR/metrics/
# Seed statistics are kept for metrics with at most this many values per seed: quantiles of a
# VAE's sample images over seeds would be larger than the images and mean nothing.
SUMMARY_MAX_VALUES = 1024


def _template(shape, leaf: str) -> str:
    if not shape:
        return leaf
    return "[" + ",".join([_template(shape[1:], leaf)] * shape[0]) + "]"


def _rows(a: np.ndarray) -> tuple[str, list]:
    """``(printf template of one row, rows as Python scalars)`` for ``a`` indexed [row, ...]."""
    # 9 significant digits round-trip every float32 exactly. One printf template per row formats
    # the whole row in C; it is 1.4x faster than "{:.9g}".format per value and byte-identical.
    a = np.asarray(a)
    vals = a if a.dtype.kind == "f" else a.astype(np.int64)
    row = int(np.prod(a.shape[1:], dtype=np.int64))  # not -1: a may hold no rows
    return _template(a.shape[1:], _leaf(a.dtype)), vals.reshape(a.shape[0], row).tolist()


def _leaf(dtype) -> str:
    return "%.9g" if np.dtype(dtype).kind == "f" else "%d"


def _lines(generations, fields: list[tuple[str, str, list]]) -> list[str]:
    """``{"generation": g, "<key>": <template % row>, ...}`` lines, one printf per line.

    ``fields`` holds ``(key, template of one row, rows)``; the whole line is one template, so a
    line costs one C-level format call and one list concatenation, not one per field.
    """
    esc = lambda x: x.replace("%", "%%")  # noqa: E731
    line = '{"generation": %d' + "".join(f', "{esc(k)}": {t}' for k, t, _ in fields) + "}\n"
    rows = [r for _, _, r in fields]
    out = []
    for i, g in enumerate(generations):
        vals = [int(g)]
        for r in rows:
            vals += r[i]
        out.append(line % tuple(vals))
    return out


def format_lines(generations, metrics_GxS: dict[str, np.ndarray]) -> list[str]:
    """One ``{"generation": g, "<metric>": [one value per seed], ...}`` line per generation."""
    return _lines(generations, [(k, *_rows(metrics_GxS[k])) for k in sorted(metrics_GxS)])


def stat_names(quantiles) -> tuple[str, ...]:
    """Names of the seed statistics kept per generation: mean, median, then ``q<q>``."""
    return ("mean", "median", *tuple(f"q{float(q):g}" for q in quantiles))


def summarizable(a) -> bool:
    return int(np.prod(a.shape[2:], dtype=np.int64)) <= SUMMARY_MAX_VALUES


def sorted_quantile(sorted_xS: np.ndarray, q: float) -> np.ndarray:
    """``np.quantile(x, q, axis=-1)`` (method ``linear``) of float64 ``x`` sorted on its last axis.

    NumPy's own arithmetic on the same two order statistics (``(n - 1) q``, its floor, and its
    two-sided lerp), so the result is the same float64 bits as ``np.quantile`` of the values.
    """
    n = sorted_xS.shape[-1]
    v = (n - 1) * np.float64(q)
    if v >= n - 1:  # NumPy takes the last element with the index -1, so t = v + 1
        lo, hi, t = n - 1, n - 1, v + 1
    elif v < 0:
        lo, hi, t = 0, 0, v
    else:
        lo = int(np.floor(v))
        hi, t = lo + 1, v - lo
    a, b = sorted_xS[..., lo], sorted_xS[..., hi]
    d = b - a
    return b - d * (1 - t) if t >= 0.5 else a + d * t


def summarize(metrics_GxS: dict[str, np.ndarray], quantiles) -> dict[str, np.ndarray]:
    """Seed statistics per generation, ``{name: float64 [G, stat, ...]}`` (see ``stat_names``).

    Bit for bit what ``plots.seed_stats`` computes from every seed (``np.mean`` of the float64
    values, ``np.quantile``), so a figure drawn from the summary is the figure drawn from the full
    array. The quantiles come from one sort of each generation's seeds in the metric's own dtype
    (an exact, order-preserving step before the float64 cast): NumPy's vectorised float32 sort
    is ~10x faster than ``np.quantile``'s float64 partitions (benchmarks/metrics_store.py), and
    XLA:CPU's sort was slower still, so on the CPU this beats doing it inside the jitted chunk.
    """
    out = {}
    for k, v in metrics_GxS.items():
        if not summarizable(v):
            continue
        # Seeds last and contiguous: the pairwise float64 sum of np.mean per (generation, ...) row
        # is then the one ``np.asarray(a[..., i], float).mean(axis=1)`` makes.
        x_GxS = np.moveaxis(np.asarray(v), 1, -1)
        mean = np.ascontiguousarray(x_GxS, np.float64).mean(axis=-1)
        sorted_GxS = np.sort(x_GxS, axis=-1).astype(np.float64)
        stats = [mean] + [sorted_quantile(sorted_GxS, q) for q in (0.5, *quantiles)]
        if sorted_GxS.dtype.kind == "f" and sorted_GxS.shape[-1]:
            nan = np.isnan(sorted_GxS[..., -1])  # NaN sorts last; np.quantile gives NaN there
            stats = [mean] + [np.where(nan, np.nan, st) for st in stats[1:]]
        out[k] = np.stack(stats, axis=1)
    return out


def format_summary_lines(generations, summary_GxQ: dict[str, np.ndarray], stats) -> list[str]:
    """One ``{"generation": g, "<metric>": {"mean": .., "median": .., "q0.1": ..}, ..}`` line."""
    fields = []
    for k in sorted(summary_GxQ):
        v = summary_GxQ[k]
        t = _template(v.shape[2:], _leaf(v.dtype))  # one statistic's value
        row = "{" + ", ".join(f'"{s}": {t}' for s in stats) + "}"
        fields.append((k, row, _rows(v)[1]))  # rows [G, stat x value], the template's order
    return _lines(generations, fields)


class MetricsWriter:
    """Appends generations to ``metrics.jsonl``; only process 0 writes in a multi-host run."""

    def __init__(self, path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def truncate(self, last_generation: int | None) -> int | None:
        """Keep only the complete lines of generations <= ``last_generation`` (None: keep none).

        Run on resume: lines written after the last checkpoint (or cut by a kill) are dropped and
        recomputed, so a resumed file is byte-identical to an uninterrupted one. Returns the
        generation of the last line kept (None: none).
        """
        if not self.enabled or not self.path.exists():
            return None
        keep, kept = [], None
        if last_generation is not None:
            data = self.path.read_bytes()
            for i, line in enumerate(data.split(b"\n")[:-1]):  # the last piece is partial
                try:
                    g = int(line[len(b'{"generation": ') :].split(b",", 1)[0].rstrip(b"}"))
                except ValueError:
                    raise CheckpointError(
                        f"{self.path}: line {i + 1} is not a metrics line; move the file away "
                        "or pass --overwrite"
                    ) from None
                if g <= last_generation:
                    keep.append(line + b"\n")
                    kept = g
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_bytes(b"".join(keep))
        os.replace(tmp, self.path)
        return kept

    def write(self, generations, metrics_GxS: dict[str, np.ndarray]) -> None:
        """Append one line per generation; metrics arrays are indexed [generation, seed, ...]."""
        if not self.enabled:
            return
        self.append(format_lines(generations, metrics_GxS))

    def append(self, lines: list[str]) -> None:
        """Append formatted lines and make them durable."""
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())


# ---------------------------------------------------------------------------------------------
# The array store: DIR/metrics/.


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


def _spec(path: Path) -> dict:
    return {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}


def _fill(dtype: np.dtype):
    return "NaN" if dtype.kind == "f" else (False if dtype.kind == "b" else 0)


def write_json(path: Path, obj, indent: int | None = 1) -> None:
    """``obj`` as sorted-key JSON at ``path``, whole or not at all: written to ``path.tmp``,
    synced (durable like the lines of metrics.jsonl), then renamed over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(obj, indent=indent, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _group(path: Path, attributes: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    write_json(
        path / "zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": attributes}
    )


class MetricsStore:
    """``DIR/metrics/`` (module docstring): create, append generations, truncate, open arrays."""

    KINDS = ("per_seed", "summary")

    def __init__(self, directory):
        self.dir = Path(os.path.abspath(directory))
        self._arrays: dict[tuple[str, str], ts.TensorStore] = {}
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return (self.dir / "progress.json").exists()

    def progress(self) -> dict[str, int]:
        """Generations complete: ``{"per_seed": n, "summary": n}`` (rows ``< n`` are data)."""
        path = self.dir / "progress.json"
        if not path.exists():
            return {"per_seed": 0, "summary": 0}
        try:
            p = json.loads(path.read_text())
            return {k: int(p[k]) for k in self.KINDS}
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"{path}: not a metrics progress file ({type(e).__name__}: {e}); "
                "move the workdir away or pass --overwrite"
            ) from None

    def set_progress(self, **n: int) -> None:
        with self._lock:  # the main thread and the background writer each own one field
            p = self.progress()
            p.update(n)
            self.dir.mkdir(parents=True, exist_ok=True)
            write_json(self.dir / "progress.json", p)

    def names(self, kind: str = "per_seed") -> list[str]:
        d = self.dir / kind
        return (
            sorted(p.name for p in d.iterdir() if (p / "zarr.json").exists()) if d.exists() else []
        )

    def array(self, kind: str, name: str) -> ts.TensorStore:
        """The whole array ``kind/name`` as stored (rows past ``progress()[kind]`` are not data)."""
        key = (kind, name)
        if key not in self._arrays:
            path = self.dir / kind / name
            try:
                self._arrays[key] = ts.open(_spec(path), open=True).result()
            except ValueError as e:
                raise CheckpointError(f"{path}: not a readable zarr array ({e})") from None
        return self._arrays[key]

    def ensure(self, kind, name, shape, dtype, chunk, inner=None, attributes=None) -> None:
        """Create ``kind/name`` ``[G, ...]``, or open it and grow its generation axis to ``G``."""
        key, path, dtype = (kind, name), self.dir / kind / name, np.dtype(dtype)
        if key in self._arrays and self._arrays[key].shape[0] >= shape[0]:
            return
        if (path / "zarr.json").exists():
            arr = self.array(kind, name)
            if arr.dtype.numpy_dtype != dtype or tuple(arr.shape[1:]) != tuple(shape[1:]):
                raise CheckpointError(
                    f"{path} holds {arr.dtype.numpy_dtype}{list(arr.shape[1:])} per generation, "
                    f"this run writes {dtype}{list(shape[1:])}; use a new --workdir or --overwrite"
                )
            if arr.shape[0] < shape[0]:
                arr = arr.resize(
                    exclusive_max=[shape[0]] + [None] * (arr.rank - 1), expand_only=True
                ).result()
            self._arrays[key] = arr
            return
        if not (self.dir / kind / "zarr.json").exists():  # a zarr v3 hierarchy for any reader
            _group(self.dir, {"generation": "row g of every array is generation g"})
            _group(self.dir / kind, {})
        codecs = [{"name": "bytes", "configuration": {"endian": "little"}}]
        if inner is not None:
            # One shard file per checkpoint interval; an index per inner chunk lets a reader
            # fetch one seed block by byte range.
            codecs = [
                {
                    "name": "sharding_indexed",
                    "configuration": {
                        "chunk_shape": list(inner),
                        "codecs": codecs,
                        "index_codecs": [*codecs, {"name": "crc32c"}],
                    },
                }
            ]
        axes = ["generation", "seed" if kind == "per_seed" else "stat"]
        metadata = {
            "shape": list(shape),
            "data_type": dtype.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunk)}},
            "codecs": codecs,
            "fill_value": _fill(dtype),
            "dimension_names": axes + [None] * (len(shape) - 2),
            "attributes": attributes or {},
        }
        spec = {**_spec(path), "metadata": metadata, "create": True, "delete_existing": True}
        self._arrays[key] = ts.open(spec).result()

    def write(self, kind: str, generations, arrays_Gx: dict[str, np.ndarray]) -> None:
        """Write rows ``generations`` (consecutive) of the already ensured arrays."""
        g0, g1 = int(generations[0]), int(generations[-1]) + 1
        pending = [self.array(kind, k)[g0:g1].write(v) for k, v in arrays_Gx.items()]
        for f in pending:
            f.result()

    def truncate(self, last_generation: int | None) -> None:
        """Forget every generation after ``last_generation``; files holding only those go."""
        n = 0 if last_generation is None else last_generation + 1
        for kind in self.KINDS:
            for name in self.names(kind):
                path = self.dir / kind / name
                rows = json.loads((path / "zarr.json").read_text())["chunk_grid"]
                rows = rows["configuration"]["chunk_shape"][0]
                for d in (path / "c").glob("*") if (path / "c").exists() else []:
                    if d.name.isdigit() and int(d.name) * rows >= n:
                        shutil.rmtree(d) if d.is_dir() else d.unlink()
        self._arrays.clear()
        if self.exists():
            p = self.progress()
            self.set_progress(**{k: min(p[k], n) for k in self.KINDS})


class Recorder:
    """Records a run's metrics on one background thread, one chunk in flight.

    ``write`` hands a chunk of every seed's values to the thread and returns once the previous
    chunk is recorded: its rows in ``per_seed/``, its seed statistics in ``summary/``, its lines
    in metrics.jsonl, then ``progress.json`` (the commit). The device computes the next chunk
    meanwhile. ``chain.run`` saves a chunk's checkpoint after ``write`` returns, so when
    checkpoint ``c`` is saved the store holds everything before the previous checkpoint, and
    resume restores the newest checkpoint whose generations the store holds (``complete``),
    discarding newer ones; ``resume`` then truncates the store and lines to it and rebuilds what
    a kill lost from ``per_seed/``, so the resumed files are byte-identical.
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
        start = min(lines_from + 1, done["summary"])
        for g0 in range(start, n, self.every):
            gens = np.arange(g0, min(g0 + self.every, n))
            names = self.store.names("per_seed")
            m = {
                k: self.store.array("per_seed", k)[g0 : gens[-1] + 1].read().result() for k in names
            }
            self._derive(gens, m, summary_from=done["summary"], lines_from=lines_from + 1)
            self.store.set_progress(summary=int(gens[-1]) + 1)

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

    def _derive(self, gens, m_GxS, summary_from: int = 0, lines_from: int = 0) -> None:
        """Seed statistics into ``summary/`` and lines into metrics.jsonl, for rows past ``*_from``."""
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


# ---------------------------------------------------------------------------------------------
# Reading.


class MetricArray(np.lib.mixins.NDArrayOperatorsMixin):
    """One metric of a run, ``[G, S, ...]`` on disk, read only where indexed.

    Behaves like a read-only NumPy array for indexing (``a[g]``, ``a[:, s]``, ``a[..., k]``),
    ``np.asarray(a)`` and arithmetic. Seed statistics per generation (``seed_stat``, and
    ``a.mean(axis=1)``, the float64 seed mean) come from ``summary/`` without reading the seeds.
    """

    def __init__(self, per_seed: ts.TensorStore, summary: ts.TensorStore | None, stats=()):
        self._a, self._s, self.stats = per_seed, summary, tuple(stats)

    shape = property(lambda self: tuple(self._a.shape))
    dtype = property(lambda self: self._a.dtype.numpy_dtype)
    ndim = property(lambda self: self._a.rank)
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return f"MetricArray(shape={self.shape}, dtype={self.dtype})"

    def __array__(self, dtype=None, copy=None):
        a = self._a.read().result()
        return a if dtype is None else a.astype(dtype)

    def __getattr__(self, name):
        # Every other ndarray attribute (sum, min, astype, T, ...) on the array read whole.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(np.asarray(self), name)

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        inputs = [np.asarray(x) if isinstance(x, MetricArray) else x for x in inputs]
        return getattr(ufunc, method)(*inputs, **kw)

    def __getitem__(self, idx):
        idx = idx if isinstance(idx, tuple) else (idx,)
        trailing = idx[1:] if idx and idx[0] is Ellipsis else None
        simple = trailing is not None and all(
            isinstance(c, (int, np.integer, slice)) for c in trailing
        )
        if simple and self.ndim - 2 >= len(trailing) > 0:
            # Only per-seed value axes are indexed: stay lazy and keep the statistics.
            view = (slice(None), slice(None), *trailing)
            s = None if self._s is None else self._s[view].translate_to[0]
            return MetricArray(self._a[view].translate_to[0], s, self.stats)
        return self._read(idx)

    def _read(self, idx: tuple):
        """NumPy indexing; ints and unit-step slices narrow the read, the rest is applied after."""
        if any(c is None for c in idx) or sum(c is Ellipsis for c in idx) > 1:
            return np.asarray(self)[idx]
        ell = [i for i, c in enumerate(idx) if c is Ellipsis]  # `in` would compare arrays
        if ell:
            i = ell[0]
            idx = idx[:i] + (slice(None),) * (self.ndim - len(idx) + 1) + idx[i + 1 :]
        if len(idx) > self.ndim:
            raise IndexError(f"too many indices for a {self.ndim}-d metric array")
        narrow, after = [], []
        for c, n in zip(idx, self.shape, strict=False):
            if isinstance(c, (int, np.integer)):
                if not -n <= c < n:
                    raise IndexError(f"index {c} is out of bounds for an axis of size {n}")
                narrow.append(int(c) % n)
            elif isinstance(c, slice) and c.indices(n)[2] == 1:
                start, stop, _ = c.indices(n)
                narrow.append(slice(start, max(start, stop)))
                after.append(slice(None))
            else:
                narrow.append(slice(None))
                after.append(c)
        if any(not isinstance(c, slice) for c in after) and any(isinstance(c, int) for c in narrow):
            return np.asarray(self)[idx]  # NumPy's rules for mixed int and array indices
        a = self._a[tuple(narrow)].read().result()
        return a[tuple(after)] if after else a

    def has_stat(self, stat: str) -> bool:
        return self._s is not None and stat in self.stats

    def seed_stat(self, stat: str) -> np.ndarray:
        """``[G, ...]``: ``mean``, ``median`` or ``q<q>`` over seeds per generation."""
        if not self.has_stat(stat):
            raise KeyError(f"no stored seed statistic {stat!r} (stored: {self.stats})")
        return self._s[:, self.stats.index(stat)].read().result()

    def mean(self, axis=None, **kw):
        if axis == 1 and not kw and self.has_stat("mean"):
            return self.seed_stat("mean")
        return np.asarray(self).mean(axis=axis, **kw)


def _open_run(workdir) -> tuple[MetricsStore, dict[str, int]]:
    store = MetricsStore(Path(workdir) / STORE)
    if not store.exists():
        raise CheckpointError(f"{store.dir}: no metrics store (a run of an older version?)")
    return store, store.progress()


def open_metrics(workdir) -> dict[str, MetricArray]:
    """Every metric of a run, lazily: ``{name: MetricArray [G, S, ...]}``, G = generations done.

    Nothing is read until indexed; ``plots.load_run`` and ``open_run`` hand these out.
    """
    store, done = _open_run(workdir)
    n, ns = done["per_seed"], done["summary"]
    out = {}
    for k in store.names("per_seed"):
        s, stats = None, ()
        if ns >= n and k in store.names("summary"):
            s = store.array("summary", k)
            stats = tuple(
                json.loads((store.dir / "summary" / k / "zarr.json").read_text())["attributes"][
                    "stats"
                ]
            )
            s = s[:n]
        out[k] = MetricArray(store.array("per_seed", k)[:n], s, stats)
    return out


def read_metrics(workdir, names=None, generations=None, seeds=None) -> dict[str, np.ndarray]:
    """Every seed's values, ``{name: [G, S, ...]}``, reading only the rows and seeds asked for.

    ``generations`` and ``seeds`` are an int, a slice or a sequence of indices (generation g is
    row g); ``None`` means all. One seed's series reads one inner chunk per checkpoint interval.
    """
    store, done = _open_run(workdir)
    n = done["per_seed"]
    g = slice(0, n) if generations is None else generations
    s = slice(None) if seeds is None else seeds
    out = {}
    for k in names or store.names("per_seed"):
        if k not in store.names("per_seed"):
            raise KeyError(f"{store.dir}: no metric {k!r} (stored: {store.names('per_seed')})")
        a = store.array("per_seed", k)[:n]
        out[k] = a.oindex[g, s].read().result()
    return out


def read_summary(workdir, names=None) -> dict[str, dict[str, np.ndarray]]:
    """Seed statistics per generation, ``{name: {stat: [G, ...]}}``; reads only ``summary/``."""
    store, done = _open_run(workdir)
    n = done["summary"]
    out = {}
    for k in names or store.names("summary"):
        stats = json.loads((store.dir / "summary" / k / "zarr.json").read_text())["attributes"]
        v = store.array("summary", k)[:n].read().result()
        out[k] = {st: v[:, i] for i, st in enumerate(stats["stats"])}
    return out


def first_nonfinite(generations, metrics_GxS: dict[str, np.ndarray]):
    """``(index, message)`` of the first generation with a non-finite metric, else ``None``."""
    bad_G = np.zeros(len(generations), bool)
    for v in metrics_GxS.values():
        v = np.asarray(v)
        if v.dtype.kind == "f":
            bad_G |= ~np.isfinite(v.reshape(v.shape[0], -1)).all(axis=1)
    if not bad_G.any():
        return None
    i = int(np.argmax(bad_G))
    names, seeds = [], set()
    for k, v in metrics_GxS.items():
        v = np.asarray(v)
        if v.dtype.kind != "f":
            continue
        bad_S = ~np.isfinite(v[i].reshape(v.shape[1], -1)).all(axis=1)
        if bad_S.any():
            names.append(k)
            seeds.update(np.flatnonzero(bad_S).tolist())
    seeds = sorted(seeds)
    shown = ", ".join(map(str, seeds[:10])) + (", ..." if len(seeds) > 10 else "")
    msg = (
        f"non-finite metric(s) {', '.join(names)} at generation {int(generations[i])} "
        f"for seed index(es) {shown}"
    )
    return i, msg


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
    if not np.isfinite(seconds):
        return "?"
    s = round(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
