r"""Figures, a markdown summary and the collapse profile of a run or of a sweep folder.

  python -m launch.report --workdir=runs/gaussian_cpu
  python -m launch.report --workdir=runs/regimes      # a launch.sweep folder: every run

A run: writes DIR/figures/*.png and DIR/summary.md (the family's figures, chosen by the run's
config) and DIR/profile.md / DIR/profile.json: the run against each definition of model collapse
(``collapse_jax/profile/``, docs/ecosystems.md). A sweep folder: every run's report, the
comparison figures in DIR/figures/ and DIR/summary.md linking them with a table of the runs' final
metrics, and DIR/profile.md with every run's profile (and, for a sweep over
samples_per_generation, the scaling-law rows).
"""

from pathlib import Path

from absl import app, flags

from collapse_jax import plots, profile
from launch import cli

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "A run directory written by launch.run, or a launch.sweep folder."
)
flags.mark_flags_as_required(["workdir"])


def _one(workdir: Path) -> None:
    paths, summary = cli.run_or_fail(plots.report, workdir)
    print(summary)
    for p in paths:
        print(p)  # the profile's markdown among them


def main(argv):
    del argv
    from collapse_jax.plots import sweep

    plots.use_agg()
    workdir = Path(_WORKDIR.value)
    try:
        if not sweep.is_sweep(workdir):
            _one(workdir)
            return
        paths, summary = cli.run_or_fail(sweep.report, workdir)
        print(summary)
        for p in paths:
            print(p)
        print(cli.run_or_fail(profile.write_sweep, workdir))
    except (FileNotFoundError, NotADirectoryError) as e:
        cli.fail(str(e))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
