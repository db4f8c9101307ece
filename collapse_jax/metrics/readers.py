"""Reading a run's metrics: lazy arrays over ``DIR/metrics/``, whole reads, and ``load_run``."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorstore as ts

from collapse_jax.errors import CheckpointError
from collapse_jax.metrics.store import STORE, MetricsStore


class MetricArray(np.lib.mixins.NDArrayOperatorsMixin):
    """One metric of a run, ``[G, S, ...]`` on disk, read only where indexed.

    Indexing (``a[g]``, ``a[:, s]``, ``a[..., k]``) reads only the rows and seeds asked for;
    ``a.read()`` or ``np.asarray(a)`` reads the whole array, as do NumPy functions and arithmetic
    (``np.median(a, axis=1)``, ``a / 2``). Seed statistics per generation (``seed_stat``, and
    ``a.mean(axis=1)``, the float64 seed mean) come from ``summary/`` without reading the seeds.
    Other ndarray methods are not forwarded, so that no attribute reads every seed unasked.
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

    def read(self) -> np.ndarray:
        """The whole array, ``[G, S, ...]``."""
        return self._a.read().result()

    def __array__(self, dtype=None, copy=None):
        a = self.read()
        return a if dtype is None else a.astype(dtype)

    def __getattr__(self, name):
        if name.startswith("_") or not hasattr(np.ndarray, name):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raise AttributeError(
            f"MetricArray has no {name!r}: it reads from disk only where indexed; use "
            f"np.asarray(a).{name} or a.read().{name} to read all {self.shape} values first"
        )

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
            return self.read()[idx]
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
            return self.read()[idx]  # NumPy's rules for mixed int and array indices
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
        """``a.mean(axis=1)``: the stored float64 seed mean per generation; anything else
        (another axis, ``dtype=``, ``np.mean(a, ...)``) is NumPy's mean of the whole array."""
        if axis == 1 and not kw and self.has_stat("mean"):
            return self.seed_stat("mean")
        return self.read().mean(axis=axis, **kw)


def _open_run(workdir) -> tuple[MetricsStore, dict[str, int]]:
    store = MetricsStore(Path(workdir) / STORE)
    if not store.exists():
        raise CheckpointError(f"{store.dir}: no metrics store (a run of an older version?)")
    return store, store.progress()


def _stats(store: MetricsStore, name: str) -> tuple[str, ...]:
    attrs = json.loads((store.dir / "summary" / name / "zarr.json").read_text())["attributes"]
    return tuple(attrs["stats"])


def open_metrics(workdir) -> dict[str, MetricArray]:
    """Every metric of a run, lazily: ``{name: MetricArray [G, S, ...]}``, G = generations done.

    Nothing is read until indexed; ``load_run`` and ``open_run`` hand these out.
    """
    store, done = _open_run(workdir)
    n, ns = done["per_seed"], done["summary"]
    out = {}
    for k in store.names("per_seed"):
        s, stats = None, ()
        if ns >= n and k in store.names("summary"):
            s, stats = store.array("summary", k)[:n], _stats(store, k)
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
        v = store.array("summary", k)[:n].read().result()
        out[k] = {st: v[:, i] for i, st in enumerate(_stats(store, k))}
    return out


@dataclass
class Run:
    """A workdir's config and metrics (``metric -> array [G, S, ...]``), as plots and
    ``open_run`` read them.

    From the array store the metrics are ``MetricArray``s: array-like, read only where indexed,
    with per-generation seed statistics that ``plots.seed_band`` draws without the seeds.
    """

    workdir: Path
    config: dict
    generations: np.ndarray
    metrics: dict[str, np.ndarray]


def load_run(workdir) -> Run:
    """``Run`` of a workdir: lazy arrays over ``DIR/metrics/`` (``open_metrics``).

    A run without the store (runs of older versions) is read from the per-seed
    lines of ``metrics.jsonl``.
    """
    workdir = Path(workdir)
    config = json.loads((workdir / "config.json").read_text())
    if MetricsStore(workdir / STORE).exists():
        metrics = open_metrics(workdir)
        n = min((len(v) for v in metrics.values()), default=0)
        return Run(workdir, config, np.arange(n), metrics)
    rows = [
        json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line
    ]
    gens = np.array([r["generation"] for r in rows])
    keys = [k for k in rows[0] if k != "generation"] if rows else []
    metrics = {k: np.array([r[k] for r in rows], dtype=float) for k in keys}
    return Run(workdir, config, gens, metrics)
