r"""Figures and a markdown summary of a run.

  python -m launch.report --workdir=runs/gaussian_cpu

Writes DIR/figures/*.png and DIR/summary.md (the family's figures, chosen by the run's config).
"""

from absl import app, flags

from collapse_jax import plots
from launch import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory written by launch.run.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    plots.use_agg()
    try:
        paths, summary = cli.run_or_fail(plots.report, _WORKDIR.value)
    except (FileNotFoundError, NotADirectoryError) as e:
        cli.fail(str(e))
    print(summary)
    for p in paths:
        print(p)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
