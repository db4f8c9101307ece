"""Seed statistics per generation: the mean, median and quantiles kept in ``summary/``."""

import numpy as np

# Seed statistics are kept for metrics with at most this many values per seed: quantiles of a
# VAE's sample images over seeds would be larger than the images and mean nothing.
SUMMARY_MAX_VALUES = 1024


def stat_names(quantiles) -> tuple[str, ...]:
    """Names of the seed statistics kept per generation: mean, median, then ``q<q>``."""
    return ("mean", "median", *tuple(f"q{float(q):g}" for q in quantiles))


def summarizable(a) -> bool:
    return int(np.prod(a.shape[2:], dtype=np.int64)) <= SUMMARY_MAX_VALUES


def sorted_quantile(sorted_xS: np.ndarray, q: float) -> np.ndarray:
    """``np.quantile(x, q, axis=-1)`` (method ``linear``) of float64 ``x`` sorted on its last axis.

    NumPy's own arithmetic on the same two order statistics (``(n - 1) q``, its floor, and its
    two-sided lerp), so the result is the same float64 bits as ``np.quantile`` of the values.
    """
    n = sorted_xS.shape[-1]
    v = (n - 1) * np.float64(q)
    if v >= n - 1:  # NumPy takes the last element with the index -1, so t = v + 1
        lo, hi, t = n - 1, n - 1, v + 1
    elif v < 0:
        lo, hi, t = 0, 0, v
    else:
        lo = int(np.floor(v))
        hi, t = lo + 1, v - lo
    a, b = sorted_xS[..., lo], sorted_xS[..., hi]
    d = b - a
    return b - d * (1 - t) if t >= 0.5 else a + d * t


def summarize(metrics_GxS: dict[str, np.ndarray], quantiles) -> dict[str, np.ndarray]:
    """Seed statistics per generation, ``{name: float64 [G, stat, ...]}`` (see ``stat_names``).

    Bit for bit what ``plots.seed_stats`` computes from every seed (``np.mean`` of the float64
    values, ``np.quantile``), so a figure drawn from the summary is the figure drawn from the full
    array.
    """
    out = {}
    for k, v in metrics_GxS.items():
        if not summarizable(v):
            continue
        # Seeds last and contiguous: the pairwise float64 sum of np.mean per (generation, ...) row
        # is then the one ``np.asarray(a[..., i], float).mean(axis=1)`` makes.
        x_GxS = np.moveaxis(np.asarray(v), 1, -1)
        mean = np.ascontiguousarray(x_GxS, np.float64).mean(axis=-1)
        # Why not np.quantile: it partitions the float64 values again for every call, while one
        # sort per row in the metric's own dtype (exact: the cast after it keeps the order) serves
        # the median and every quantile, and sorted_quantile repeats NumPy's arithmetic on it, so
        # the bits are np.quantile's (tests/test_metrics_store.py compares them).
        sorted_GxS = np.sort(x_GxS, axis=-1).astype(np.float64)
        stats = [mean] + [sorted_quantile(sorted_GxS, q) for q in (0.5, *quantiles)]
        if sorted_GxS.dtype.kind == "f" and sorted_GxS.shape[-1]:
            nan = np.isnan(sorted_GxS[..., -1])  # NaN sorts last; np.quantile gives NaN there
            stats = [mean] + [np.where(nan, np.nan, st) for st in stats[1:]]
        out[k] = np.stack(stats, axis=1)
    return out
