"""The collapse profile of a run: the run measured against each definition of model collapse.

Schaeffer, Kazdan, Arulandu and Koyejo ("Position: Model collapse does not mean what you think",
2025) count eight definitions in the literature, and propose reporting a run against all of them.
One module a job:

  definitions   the definitions, and per experiment the metrics that measure each (``MEASURES``)
  trend         one measure's statistics over generations: change, first significant generation
                (Bonferroni), trend at the end, and the diverges / plateaus / recovers verdict
  rows          a run's rows: each measure of its experiment read from its metrics
  scaling       sweeps: the "change in scaling law" definition across sample sizes
  tables        the markdown tables, and ``profile.md`` / ``profile.json`` of a run or a sweep

For the population-risk definitions the ratio of the final to the generation-0 seed mean is also
given; ``catastrophic`` marks a ratio of at least ``CATASTROPHIC_FACTOR`` (the paper names no
number: this cut is ours).

Pure NumPy/SciPy over metric arrays ``[G, S, ...]``; ``of_run`` takes a workdir or anything with
``config`` and ``metrics``.
"""

from collapse_jax.profile.definitions import (
    CATASTROPHIC_FACTOR,
    DEFINITIONS,
    DERIVED,
    MEASURES,
    RISK,
    UNMEASURED,
    Measure,
    with_derived,
)
from collapse_jax.profile.rows import of_run
from collapse_jax.profile.scaling import scaling_rows, sweep_runs
from collapse_jax.profile.tables import (
    markdown,
    scaling_markdown,
    unmeasured_line,
    write,
    write_sweep,
)
from collapse_jax.profile.trend import measure

__all__ = [
    "CATASTROPHIC_FACTOR",
    "DEFINITIONS",
    "DERIVED",
    "MEASURES",
    "RISK",
    "UNMEASURED",
    "Measure",
    "markdown",
    "measure",
    "of_run",
    "scaling_markdown",
    "scaling_rows",
    "sweep_runs",
    "unmeasured_line",
    "with_derived",
    "write",
    "write_sweep",
]
