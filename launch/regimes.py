r"""The regime-comparison figure and table of a sweep over ``mixing.regime``.

  python -m launch.sweep --config=configs/gaussian.py:cpu,sweep=regimes --workdir=/tmp/regimes
  python -m launch.regimes --workdir=/tmp/regimes [--metrics=variance,mean_error]

Writes ``DIR/figures/regimes_<metric>.png`` and prints a markdown table per metric (seed mean ±
standard error, theory where ``theory.py`` has it).
"""

import sys

from absl import app, flags

from collapse_jax import plots
from collapse_jax.plots import regimes
from launch import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "The sweep directory (one sub-directory per run).")
_METRICS = flags.DEFINE_list("metrics", ["variance", "mean_error"], "Metrics to compare.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    plots.use_agg()
    for metric in _METRICS.value:
        try:
            path = regimes.figure(_WORKDIR.value, metric)
        except (FileNotFoundError, KeyError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        print(f"{path}\n\n{metric}\n\n{regimes.table(_WORKDIR.value, metric)}\n")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
