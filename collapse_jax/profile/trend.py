"""The statistics of one measure over generations: change, significance, trend and verdict.

For a measure's values ``[G, S]`` (S seeds, each one independent chain):
  change at g     the seed mean of y_g - y_0 (paired per seed; log y where the measure is on the
                  log scale), with a Student-t 95% interval over seeds;
  first g         the first generation whose change is significant in the collapse direction, at a
                  Bonferroni level 0.05 / (G - 1) over the generations tested (so a run of 1000
                  generations does not flag noise);
  trend at end    each seed's least-squares slope over the last third of the generations (at
                  least 3), its seed mean and 95% interval;
  verdict         ``diverges`` (changed significantly and still moving away at the end),
                  ``plateaus`` (changed significantly, no significant trend at the end),
                  ``recovers`` (changed significantly at some generation, and moving back at the
                  end or back within noise of generation 0), ``none`` (never significant), or
                  ``n/a`` with one seed (no seed interval exists; the values are still shown).
"""

import math

import numpy as np
from scipy import stats


def _t_interval(x_S, alpha=0.05):
    """``(mean, half-width)`` of a Student-t interval over seeds (half-width nan for one seed)."""
    s = x_S.shape[0]
    mean = float(np.mean(x_S))
    if s < 2:
        return mean, math.nan
    se = float(np.std(x_S, ddof=1)) / math.sqrt(s)
    return mean, float(stats.t.ppf(1 - alpha / 2, s - 1)) * se


def measure(y_GxS, direction: int, generations=None) -> dict:
    """The profile statistics of one measure (module docstring), from values ``[G, S]``."""
    y = np.asarray(y_GxS, float)
    G, S = y.shape
    gens = np.arange(G) if generations is None else np.asarray(generations)
    d_GxS = y - y[:1]
    mean_G = d_GxS.mean(axis=1)
    out = {
        "generation0": float(y[0].mean()),
        "final": float(y[-1].mean()),
        "final_generation": int(gens[-1]),
        "seeds": S,
        "change": float(mean_G[-1]),
    }
    if S < 2 or G < 2:
        out |= {"change_ci": math.nan, "first_significant": None, "trend": math.nan}
        out |= {"trend_ci": math.nan, "verdict": "n/a (1 seed)" if S < 2 else "n/a (1 generation)"}
        return out
    se_G = d_GxS.std(axis=1, ddof=1) / math.sqrt(S)
    out["change_ci"] = float(stats.t.ppf(0.975, S - 1) * se_G[-1])
    # Bonferroni over the G - 1 generations tested.
    crit = float(stats.t.ppf(1 - 0.05 / (2 * max(G - 1, 1)), S - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z_G = np.where(se_G > 0, mean_G / se_G, np.sign(mean_G) * np.inf)
    z_G[0] = 0.0
    signed = z_G if direction else np.abs(z_G)
    sig = np.flatnonzero((direction or 1) * signed > crit)
    out["first_significant"] = int(gens[sig[0]]) if sig.size else None
    # Trend over the last third (at least 3 generations).
    n_tail = max(3, G // 3)
    if G >= 3:
        x = gens[-n_tail:].astype(float)
        x = x - x.mean()
        slopes_S = (x[:, None] * (y[-n_tail:] - y[-n_tail:].mean(0))).sum(0) / (x**2).sum()
        trend, trend_ci = _t_interval(slopes_S)
    else:
        trend, trend_ci = math.nan, math.nan
    out["trend"], out["trend_ci"] = trend, trend_ci
    sign = direction or (1 if out["change"] >= 0 else -1)
    end_sig = sign * out["change"] > out["change_ci"]
    worsening = math.isfinite(trend_ci) and sign * trend > trend_ci
    improving = math.isfinite(trend_ci) and -sign * trend > trend_ci
    if out["first_significant"] is None and not end_sig:
        verdict = "none"
    elif improving or not end_sig:
        verdict = "recovers"
    elif worsening:
        verdict = "diverges"
    else:
        verdict = "plateaus"
    out["verdict"] = verdict
    return out
