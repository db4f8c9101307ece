r"""Figures and a markdown summary of a run.

  python -m launch.report --workdir=runs/gaussian_cpu

Writes DIR/figures/*.png and DIR/summary.md (the family's figures, chosen by the run's config).
"""

import sys

from absl import app, flags

from collapse_jax import plots

_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory written by launch.run.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    try:
        paths, summary = plots.report(_WORKDIR.value)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(summary)
    for p in paths:
        print(p)


if __name__ == "__main__":
    app.run(main)
