r"""One figure of a metric over generations for several runs, side by side.

  python -m launch.compare --workdirs=runs/gmm_sweep --metric=l2_to_gmm0
  python -m launch.compare --workdirs='runs/lr_sweep/*samples_per_generation=100' \
      --metric=test_error [--label=FIELD] [--out=PATH]
  python -m launch.compare --workdirs=runs/a,runs/b --metric=variance

``--workdirs``: comma-separated run directories, sweep folders (every run under them) or quoted
glob patterns. A sweep over two fields names its runs ``FIELD=V+FIELD=V``; folders of older
sweeps named ``FIELD=V,FIELD=V`` are still found (a comma that belongs to an existing folder's
name does not split it).

Each run is its seed mean (line), median (dashed) and 10-90 percent seed band, labelled by
``--label`` (a dotted config field) or, by default, by the config fields that differ between the
runs. The y-axis is logarithmic where the metric spans decades. Writes ``--out`` (default:
``figures/compare_METRIC.png`` in the runs' common directory) and prints its path.
"""

import glob
import os
import sys
from pathlib import Path

from absl import app, flags

from collapse_jax.errors import CheckpointError, ConfigError, DataError
from launch import cli

_WORKDIRS = flags.DEFINE_string(
    "workdirs",
    None,
    "Comma-separated run directories, sweep folders or quoted glob patterns.",
)
_METRIC = flags.DEFINE_string("metric", None, "A metric of metrics.jsonl (one value per seed).")
_LABEL = flags.DEFINE_string("label", None, "Config field naming each run (default: the diff).")
_OUT = flags.DEFINE_string("out", None, "Figure path (default: DIR/figures/compare_METRIC.png).")
flags.mark_flags_as_required(["workdirs", "metric"])


def split(value: str) -> list[str]:
    """The comma-separated items of ``--workdirs``, a comma kept inside an item where splitting
    there would break the name of an existing folder (old sweeps named runs ``A=1,B=2``)."""
    parts = value.split(",")
    items, i = [], 0
    while i < len(parts):
        # The longest run of parts from i that names an existing path wins; else one part.
        for j in range(len(parts), i, -1):
            candidate = ",".join(parts[i:j])
            if j == i + 1 or os.path.exists(candidate):
                break
        items.append(candidate)
        i = j
    return [item for item in items if item]


def expand(value: str) -> list[Path]:
    """Run directories named by ``--workdirs``: runs as given, sweep folders as their runs, glob
    patterns as their matches (sorted)."""
    from collapse_jax.plots import sweep

    out = []
    for item in split(value):
        matches = [item] if os.path.exists(item) else sorted(glob.glob(item))
        if not matches:
            matches = [item]  # reported below as a missing run
        for m in matches:
            out += sweep.run_dirs(m) if sweep.is_sweep(m) else [Path(m)]
    return out


def main(argv):
    del argv
    from collapse_jax import plots
    from collapse_jax.plots import compare

    plots.use_agg()
    try:
        path = compare.compare(expand(_WORKDIRS.value), _METRIC.value, _LABEL.value, _OUT.value)
    except (ConfigError, DataError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
