r"""The comparison figures, tables and collapse profiles of a data-ecosystem sweep.

  python -m launch.sweep --config=configs/discrete.py:tails --workdir=/tmp/tails
  python -m launch.ecosystem --workdir=/tmp/tails --metrics=tail_mass,support_size

Writes ``DIR/figures/ecosystem_<metric>.png`` (every arm, exact theory dashed where
``theory.py`` has it), ``DIR/figures/ecosystem_rank_frequency.png`` for discrete runs that record
their frequencies, ``DIR/profile.md`` (every arm's collapse profile), and prints a markdown table
per metric (seed mean ± standard error, the exact value where known).
"""

from absl import app, flags

from collapse_jax import plots, profile
from collapse_jax.plots import ecosystem
from launch import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "The sweep directory (one sub-directory per run).")
_METRICS = flags.DEFINE_list("metrics", ["variance", "mean_error"], "Metrics to compare.")
_GENERATIONS = flags.DEFINE_list("generations", [], "Generations in the tables (default: a few).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    plots.use_agg()
    gens = [int(g) for g in _GENERATIONS.value] or None
    try:
        for metric in _METRICS.value:
            path = ecosystem.comparison(_WORKDIR.value, metric)
            print(f"{path}\n\n{metric}\n\n{ecosystem.table(_WORKDIR.value, metric, gens)}\n")
        if any("frequencies" in r.metrics for r in ecosystem.runs(_WORKDIR.value)):
            print(ecosystem.rank_frequencies(_WORKDIR.value))
        print(profile.write_sweep(_WORKDIR.value))
    except (FileNotFoundError, KeyError) as e:
        cli.fail(str(e).strip("'\""))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
