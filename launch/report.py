r"""Figures, a markdown summary and the collapse profile of a run or a sweep.

  python -m launch.report --workdir=runs/gaussian_cpu
  python -m launch.report --workdir=runs/regimes      # a launch.sweep directory: every run

Writes DIR/figures/*.png and DIR/summary.md (the family's figures, chosen by the run's config) and
DIR/profile.md / DIR/profile.json: the run against each definition of model collapse
(``collapse_jax/profile.py``, docs/ecosystems.md). For a sweep directory it does so for every run
and writes DIR/profile.md with all of them (and, for a sweep over samples_per_generation, the
scaling-law rows).
"""

from pathlib import Path

from absl import app, flags

from collapse_jax import plots, profile
from launch import cli

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "A run directory written by launch.run, or a launch.sweep directory."
)
flags.mark_flags_as_required(["workdir"])


def _one(workdir: Path) -> None:
    paths, summary = cli.run_or_fail(plots.report, workdir)
    print(summary)
    for p in paths:
        print(p)  # the profile's markdown among them


def main(argv):
    del argv
    plots.use_agg()
    workdir = Path(_WORKDIR.value)
    runs = [] if (workdir / "config.json").exists() else profile.sweep_runs(workdir)
    try:
        if not runs:
            _one(workdir)
            return
        for run in runs:
            if (run / "metrics.jsonl").exists():
                _one(run)
        print(cli.run_or_fail(profile.write_sweep, workdir))
    except (FileNotFoundError, NotADirectoryError) as e:
        cli.fail(str(e))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
