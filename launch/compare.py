r"""One figure of a metric over generations for several runs, side by side.

  python -m launch.compare --workdirs=runs/gmm_sweep/samples_per_generation=500,\
runs/gmm_sweep/samples_per_generation=1000 --metric=l2_to_gmm0 [--label=FIELD] [--out=PATH]

Each run is its seed mean (line), median (dashed) and 10-90% seed band, labelled by ``--label``
(a dotted config field) or, by default, by the config fields that differ between the runs. The
y-axis is logarithmic where the metric spans decades. Writes ``--out`` (default: ``figures/
compare_METRIC.png`` in the runs' common directory) and prints its path.
"""

import sys

from absl import app, flags

from collapse_jax.errors import CheckpointError, ConfigError, DataError
from launch import cli

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Run directories written by launch.run.")
_METRIC = flags.DEFINE_string("metric", None, "A metric of metrics.jsonl (one value per seed).")
_LABEL = flags.DEFINE_string("label", None, "Config field naming each run (default: the diff).")
_OUT = flags.DEFINE_string("out", None, "Figure path (default: DIR/figures/compare_METRIC.png).")
flags.mark_flags_as_required(["workdirs", "metric"])


def main(argv):
    del argv
    from collapse_jax import plots
    from collapse_jax.plots import compare

    plots.use_agg()
    try:
        path = compare.compare(_WORKDIRS.value, _METRIC.value, _LABEL.value, _OUT.value)
    except (ConfigError, DataError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(path)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
