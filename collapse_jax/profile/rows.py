"""A run's profile rows: each measure of its experiment read from its metrics.

Metric arrays are ``[G, S, ...]``: trailing axes are averaged unless a measure picks an index.
For the population-risk definitions the ratio of the final to the generation-0 seed mean is also
given (``tables`` marks it catastrophic at ``CATASTROPHIC_FACTOR``).
"""

import math
from pathlib import Path

import numpy as np

from collapse_jax.profile.definitions import MEASURES, Measure, with_derived
from collapse_jax.profile.trend import measure


def _expand(measure: Measure, names) -> list[Measure]:
    if measure.metric.endswith("*"):
        prefix = measure.metric[:-1]
        return [
            Measure(measure.definition, n, measure.direction, measure.log, measure.index)
            for n in sorted(names)
            if n.startswith(prefix)
        ]
    return [measure] if measure.metric in names else []


def values(metrics, m: Measure) -> np.ndarray:
    """The measure's values ``[G, S]`` (on the log scale where ``m.log``)."""
    y = np.asarray(metrics[m.metric], dtype=float)
    if m.index is not None:
        y = y[..., m.index]
    while y.ndim > 2:
        y = y.mean(axis=-1)
    if m.log:
        y = np.log(np.maximum(y, np.finfo(np.float64).tiny))
    return y


def config_and_metrics(run):
    """``(config dict, metrics, generations)`` of a workdir or of anything with ``config`` and
    ``metrics`` (and optionally ``generations``)."""
    if isinstance(run, str | Path):
        from collapse_jax.metrics import load_run

        loaded = load_run(run)
        return loaded.config, loaded.metrics, np.asarray(loaded.generations)
    cfg = run.config.to_dict() if hasattr(run.config, "to_dict") else dict(run.config)
    return cfg, run.metrics, np.asarray(getattr(run, "generations", None))


def of_run(run) -> list[dict]:
    """One row per measure of the run's experiment: ``measure``'s statistics plus its names."""
    cfg, metrics, gens = config_and_metrics(run)
    metrics = with_derived(cfg, metrics)
    rows = []
    for base in MEASURES.get(cfg["experiment"], ()):
        for m in _expand(base, metrics):
            y = values(metrics, m)
            if y.ndim != 2 or y.shape[0] == 0:
                continue
            g = gens if gens is not None and gens.shape == (y.shape[0],) else None
            stat = measure(y, m.direction, g)
            label = base.label if base.label and not base.metric.endswith("*") else m.metric
            row = {"definition": m.definition, "metric": m.metric, "label": label}
            row |= {"direction": m.direction, "log": m.log} | stat
            if m.definition == "risk":
                ratio = math.exp(stat["final"] - stat["generation0"]) if m.log else None
                if not m.log and stat["generation0"] != 0:
                    ratio = stat["final"] / stat["generation0"]
                row["ratio"] = ratio
            rows.append(row)
    return rows
