"""What a run records: every seed's metrics as arrays, ``metrics.jsonl``, and their readers.

- ``store``: ``DIR/metrics/``, zarr v3 arrays of every seed (``per_seed/``) and of the seed
  statistics per generation (``summary/``), with ``progress.json`` as the commit.
- ``lines``: ``DIR/metrics.jsonl``, one line per generation for a person to read.
- ``stats``: the seed statistics (mean, median, quantiles).
- ``recorder``: writes all of them on a background thread and rebuilds them on resume; the
  optional ``tensorboard`` sink shows the seed statistics while the run goes.
- ``readers``: lazy arrays over the store, whole reads, ``load_run``.
- ``guard``: the first non-finite generation.

The names below are the package's interface; the progress line and the log filter live in
``collapse_jax.logs`` and the atomic JSON writer in ``collapse_jax.files`` (re-exported here).
"""

from collapse_jax.files import write_json
from collapse_jax.logs import Progress, quiet_orbax
from collapse_jax.metrics.guard import first_nonfinite
from collapse_jax.metrics.lines import MetricsWriter, format_lines, format_summary_lines
from collapse_jax.metrics.readers import (
    MetricArray,
    Run,
    load_run,
    open_metrics,
    read_metrics,
    read_summary,
)
from collapse_jax.metrics.recorder import Recorder, validate
from collapse_jax.metrics.stats import (
    SUMMARY_MAX_VALUES,
    sorted_quantile,
    stat_names,
    summarizable,
    summarize,
)
from collapse_jax.metrics.store import STORE, MetricsStore

__all__ = [
    "STORE",
    "SUMMARY_MAX_VALUES",
    "MetricArray",
    "MetricsStore",
    "MetricsWriter",
    "Progress",
    "Recorder",
    "Run",
    "first_nonfinite",
    "format_lines",
    "format_summary_lines",
    "load_run",
    "open_metrics",
    "quiet_orbax",
    "read_metrics",
    "read_summary",
    "sorted_quantile",
    "stat_names",
    "summarizable",
    "summarize",
    "validate",
    "write_json",
]
