"""Sweeps: every run's directory, and the "change in scaling law" definition across sample sizes.

That definition needs runs at several sample sizes: the log-log slope of each risk measure's
seed mean against M, at generation 0 and at the end, from runs that differ in
``samples_per_generation`` only.
"""

import json
import math
from pathlib import Path

import numpy as np

from collapse_jax.profile.definitions import MEASURES, with_derived
from collapse_jax.profile.rows import config_and_metrics, values


def sweep_runs(sweep_dir) -> list[Path]:
    """The run directories of a sweep (``launch.sweep``), in name order."""
    return sorted(p.parent for p in Path(sweep_dir).glob("*/config.json"))


def _loglog_slope(sizes, y_list, g: int, log: bool):
    """``(slope, se)`` of log(seed mean) against log M at generation g, weighted least squares
    with the delta-method variances ``se^2 / mean^2`` (a log-scale measure: its mean and se as
    they are); None if a mean is not positive."""
    x, t, w = [], [], []
    for size, y in zip(sizes, y_list, strict=True):
        v = y[g]
        mean = float(v.mean())
        se = float(v.std(ddof=1)) / math.sqrt(v.size) if v.size > 1 else 0.0
        if log:
            val, var = mean, se**2
        elif mean > 0:
            val, var = math.log(mean), (se / mean) ** 2
        else:
            return None
        x.append(math.log(size))
        t.append(val)
        w.append(1 / var if var > 0 else 1e12)
    x, t, w = np.array(x), np.array(t), np.array(w)
    xm, tm = (w * x).sum() / w.sum(), (w * t).sum() / w.sum()
    sxx = (w * (x - xm) ** 2).sum()
    return float((w * (x - xm) * (t - tm)).sum() / sxx), float(math.sqrt(1 / sxx))


def scaling_rows(run_dirs) -> list[dict]:
    """ "Change in scaling law": the log-log slope of each risk measure's seed mean against M at
    generation 0 and at the last generation every run reached, from runs that differ in
    ``samples_per_generation`` only (at least 3 sizes). The change is significant when the two
    slopes differ by more than 1.96 combined standard errors."""
    loaded = [config_and_metrics(d) for d in run_dirs]
    if len(loaded) < 3:
        return []
    sizes = [c["samples_per_generation"] for c, _, _ in loaded]

    def rest(c):
        c = {k: v for k, v in c.items() if k not in ("samples_per_generation", "checkpoint")}
        return json.dumps(c, sort_keys=True, default=str)

    if len(set(sizes)) < 3 or len({rest(c) for c, _, _ in loaded}) != 1:
        return []
    exp = loaded[0][0]["experiment"]
    every = [with_derived(cfg, metrics) for cfg, metrics, _ in loaded]
    out = []
    for m in MEASURES.get(exp, ()):
        if m.definition != "risk" or m.metric.endswith("*"):
            continue
        if not all(m.metric in metrics for metrics in every):
            continue
        ys = [values(metrics, m) for metrics in every]
        g_end = min(y.shape[0] for y in ys) - 1
        first, last = (_loglog_slope(sizes, ys, g, m.log) for g in (0, g_end))
        if first is None or last is None:
            continue
        (s0, e0), (s1, e1) = first, last
        out.append(
            {
                "definition": "scaling_law",
                "metric": m.metric,
                "label": m.label or m.metric,
                "sizes": sorted(set(sizes)),
                "slope_generation0": s0,
                "slope_generation0_se": e0,
                "slope_final": s1,
                "slope_final_se": e1,
                "final_generation": g_end,
                "verdict": "changes" if abs(s1 - s0) > 1.96 * math.hypot(e0, e1) else "none",
            }
        )
    return out
