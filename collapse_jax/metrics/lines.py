"""``metrics.jsonl``: one JSON line per generation, what a person reads of a run.

Every seed's value while ``num_seeds <= metrics.per_seed_max_seeds`` (the format the project has
always written, byte for byte), else the seed statistics of each metric.
"""

import os
from pathlib import Path

import numpy as np

from collapse_jax.errors import CheckpointError


def _template(shape, leaf: str) -> str:
    if not shape:
        return leaf
    return "[" + ",".join([_template(shape[1:], leaf)] * shape[0]) + "]"


def _leaf(dtype) -> str:
    # 9 significant digits round-trip every float32 exactly.
    return "%.9g" if np.dtype(dtype).kind == "f" else "%d"


def _rows(a: np.ndarray) -> tuple[str, list]:
    """``(printf template of one row, rows as Python scalars)`` for ``a`` indexed [row, ...]."""
    # One printf template per row formats the whole row in C instead of one Python format call
    # per value; "%.9g" gives the same text as "{:.9g}".format.
    a = np.asarray(a)
    vals = a if a.dtype.kind == "f" else a.astype(np.int64)
    row = int(np.prod(a.shape[1:], dtype=np.int64))  # not -1: a may hold no rows
    return _template(a.shape[1:], _leaf(a.dtype)), vals.reshape(a.shape[0], row).tolist()


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
