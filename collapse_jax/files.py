"""Writing a run's small files so that a kill leaves the old version or the new, never half."""

import json
import os
from pathlib import Path


def write_json(path: Path, obj, indent: int | None = 1) -> None:
    """``obj`` as sorted-key JSON at ``path``, whole or not at all: written to ``path.tmp``,
    synced (durable like the lines of metrics.jsonl), then renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(obj, indent=indent, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
