"""``DIR/metrics/``: every seed's metrics and their seed statistics as zarr v3 arrays.

The hierarchy is written through tensorstore and is readable by any zarr v3 reader:

- ``per_seed/<name>``: every seed's value, ``[G, S, ...]`` in the metric's dtype, uncompressed,
  stored in one shard file per checkpoint interval whose inner chunks are
  ``[every_generations, metrics.seeds_per_chunk, ...]``, so one seed's series reads one inner
  chunk per interval and never the other seeds'.
- ``summary/<name>``: ``[G, stat, ...]`` float64 seed statistics per generation, the stats named
  in the array's ``stats`` attribute (``mean``, ``median``, ``q<q>`` for ``metrics.quantiles``).
  Plots draw these without reading ``per_seed``.
- ``progress.json``: how many generations of each are complete (rows past it are not data).
"""

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import tensorstore as ts

from collapse_jax.errors import CheckpointError
from collapse_jax.files import write_json

STORE = "metrics"  # DIR/metrics/


def _spec(path: Path) -> dict:
    return {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}


def _fill(dtype: np.dtype):
    return "NaN" if dtype.kind == "f" else (False if dtype.kind == "b" else 0)


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
