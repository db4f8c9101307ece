r"""The regime-comparison figure and table of a sweep over ``mixing.regime``.

  python -m launch.sweep --config=configs/gaussian.py:cpu,sweep=regimes --workdir=/tmp/regimes
  python -m launch.regimes --workdir=/tmp/regimes [--metrics=variance,mean_error]

Writes ``DIR/figures/regimes_<metric>.png`` and prints a markdown table per metric (seed mean ±
standard error, theory where ``theory.py`` has it). ``--metrics`` defaults to the experiment's
(Gaussian: variance, mean_error; discrete: gini_simpson, support_size, tail_mass). A sweep over
other fields is refused with a pointer to ``launch.report``, which reports any sweep.
"""

from absl import app, flags

from collapse_jax import plots
from collapse_jax.plots import regimes
from launch import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "The sweep directory (one sub-directory per run).")
_METRICS = flags.DEFINE_list(
    "metrics", None, "Metrics to compare (default: the experiment's, e.g. variance,mean_error)."
)
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    plots.use_agg()

    def one(metric):
        return regimes.figure(_WORKDIR.value, metric), regimes.table(_WORKDIR.value, metric)

    try:
        metrics = _METRICS.value or cli.run_or_fail(regimes.default_metrics, _WORKDIR.value)
        if not metrics:
            cli.fail(f"--metrics: {_WORKDIR.value} has no default metrics; name them")
        for metric in metrics:
            path, table = cli.run_or_fail(one, metric)
            print(f"{path}\n\n{metric}\n\n{table}\n")
    except FileNotFoundError as e:
        cli.fail(str(e))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
