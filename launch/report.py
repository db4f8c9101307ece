r"""Figures and a markdown summary of a run, or of a sweep folder.

  python -m launch.report --workdir=runs/gaussian_cpu
  python -m launch.report --workdir=runs/gmm_sweep     # a launch.sweep folder

A run: writes DIR/figures/*.png and DIR/summary.md (the family's figures, chosen by the run's
config). A sweep folder: every run's report, the comparison figures in DIR/figures/ and
DIR/summary.md linking them, with a table of the runs' final metrics.
"""

from absl import app, flags

from collapse_jax import plots
from launch import cli

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "A run directory written by launch.run, or a launch.sweep folder."
)
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    from collapse_jax.plots import sweep

    plots.use_agg()
    report = sweep.report if sweep.is_sweep(_WORKDIR.value) else plots.report
    try:
        paths, summary = cli.run_or_fail(report, _WORKDIR.value)
    except (FileNotFoundError, NotADirectoryError) as e:
        cli.fail(str(e))
    print(summary)
    for p in paths:
        print(p)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
