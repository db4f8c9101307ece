"""The look every figure shares: one colour per regime, the seed-band key, theory lines, log axes.

Figures are checked against the written checklist of ``docs/figures.md``; what can be checked
mechanically is in ``collapse_jax/plots/checklist.py`` (run on every family's figures by
``tests/test_figures.py``).

Marks are tagged with a ``gid`` so that a legend can explain them without a label per line: the
seed median (``MEDIAN``, dashed), the 10-90% seed band (``BAND``, shaded) and theory curves
(``THEORY``, dotted, in a darker shade of their series' colour). ``legend(ax)`` adds one grey key
entry per tag present beside the labelled series.
"""

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

# One colour per data regime (``collapse_jax.mixing.REGIMES``) in every figure: the Okabe-Ito
# palette, which stays distinguishable under the common colour-vision deficiencies.
REGIME_COLORS = {
    "replace": "#D55E00",  # vermillion
    "accumulate": "#0072B2",  # blue
    "accumulate_subsample": "#009E73",  # bluish green
    "augment": "#CC79A7",  # reddish purple
    "fresh": "#E69F00",  # orange
    "keep_real": "#56B4E9",  # sky blue
    "custom": "#8C6D31",  # brown
}
NEUTRAL = "0.35"  # the key's entries (median, band, theory) and marks of no series
REFERENCE = "0.55"  # fixed reference values (H(q), log 10, a data-set share)

MEDIAN, BAND, MEAN, THEORY = "seed_median", "seed_band", "seed_mean", "theory"
MEDIAN_STYLE = dict(ls="--", lw=1.0)
BAND_ALPHA = 0.2
THEORY_STYLE = dict(ls=":", lw=1.8)
KEY_LABELS = {
    MEAN: "seed mean (solid)",
    MEDIAN: "seed median (dashed)",
    BAND: "10-90% of seeds (band)",
    THEORY: "theory: exact expectation (dotted)",
}
FONT = 8  # legend font size


# Axis labels of metrics drawn by name (comparison and regime figures), with their units.
METRIC_LABELS = {
    "variance": "fitted variance (data units²)",
    "mean_error": "squared mean error (data units²)",
    "w2_squared": "squared W2 distance (data units²)",
    "gini_simpson": "Gini-Simpson index 1 - sum p_i^2",
    "support_size": "states present",
    "tail_mass": "original mass of the tail states present",
    "entropy": "entropy (nats)",
    "l2_to_gmm0": "squared L2 distance to GMM_0 (1 / data units²)",
    "l2_to_truth": "squared L2 distance to the truth (1 / data units²)",
    "heldout_loglik": "held-out log-likelihood (nats per sample)",
    "test_error": "parameter error |w_n - w*|^2",
    "test_mse": "test MSE (label units²)",
    "nll": "held-out NLL (nats per sample)",
    "test_perplexity": "test perplexity (per token)",
    "train_loss": "train loss (nats per image)",
    "class_entropy": "class entropy (nats)",
}


def metric_label(metric: str) -> str:
    """The axis label of a metric: with its units where known, else its name."""
    return METRIC_LABELS.get(metric, metric)


def regime_color(regime: str) -> str:
    """The colour of ``regime`` (one of ``mixing.REGIMES``) in every figure."""
    return REGIME_COLORS[regime]


def run_color(config: dict) -> str:
    """The colour of a single run's series: its regime's."""
    return regime_color(config["mixing"]["regime"])


def theory_color(color) -> tuple:
    """Theory curves: the series' hue, darker, so the dotted line shows on top of its series."""
    r, g, b = mcolors.to_rgb(color)
    return (0.55 * r, 0.55 * g, 0.55 * b)


def ordered_colors(n: int) -> list:
    """Colours for ``n`` ordered series that are not regimes (sample sizes, generations,
    components): a sequential map, so order reads as lightness and no regime colour is reused."""
    cmap = plt.get_cmap("viridis")
    return [cmap(x) for x in np.linspace(0.0, 0.85, max(n, 1))][:n]


def shades(color, n: int) -> list:
    """``n`` shades of one colour, dark to light, for runs of one regime that differ otherwise."""
    base = np.array(mcolors.to_rgb(color))
    out = []
    for t in np.linspace(-0.45, 0.45, n) if n > 1 else [0.0]:
        # t < 0 mixes toward black, t > 0 toward white.
        out.append(tuple(base * (1 + t) if t < 0 else base + (1 - base) * t))
    return out


def run_colors(configs) -> list:
    """One colour per run for figures that overlay runs: the regime's colour where each run has a
    regime of its own; shades of it for runs of one regime among others; ordered colours where
    every run has the same regime (they differ in something else)."""
    regimes = [c["mixing"]["regime"] for c in configs]
    if len(set(regimes)) == 1:
        return ordered_colors(len(configs))
    out, seen = [], {}
    counts = {r: regimes.count(r) for r in regimes}
    for r in regimes:
        i = seen[r] = seen.get(r, -1) + 1
        out.append(shades(regime_color(r), counts[r])[i] if counts[r] > 1 else regime_color(r))
    return out


def theory(ax, x, y, color, label=None, **kwargs):
    """A theory curve in its series' (regime's) colour, darker and dotted; tagged ``THEORY``."""
    style = dict(THEORY_STYLE) | kwargs
    (line,) = ax.plot(x, y, color=theory_color(color), label=label or "_theory", **style)
    line.set_gid(THEORY)
    line.set_zorder(3)
    return line


def new(ncols: int = 1, width: float = 6.5, height: float = 4.0, nrows: int = 1, **kwargs):
    """``plt.subplots`` with constrained layout, so every label fits inside the figure."""
    return plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", **kwargs)


def _tagged(ax) -> set[str]:
    artists = [*ax.lines, *ax.collections, *ax.patches]
    return {a.get_gid() for a in artists if a.get_gid() and a.get_label().startswith("_")}


def key_handles(tags) -> list:
    """Grey legend entries explaining the tagged marks (mean, median, band, theory)."""
    entries = []
    if MEDIAN in tags or BAND in tags:
        entries.append((MEAN, Line2D([], [], color=NEUTRAL, lw=1.5)))
    if MEDIAN in tags:
        entries.append((MEDIAN, Line2D([], [], color=NEUTRAL, **MEDIAN_STYLE)))
    if BAND in tags:
        entries.append((BAND, Patch(color=NEUTRAL, alpha=BAND_ALPHA + 0.1, lw=0)))
    if THEORY in tags:
        entries.append((THEORY, Line2D([], [], color=NEUTRAL, **THEORY_STYLE)))
    for tag, handle in entries:
        handle.set_label(KEY_LABELS[tag])
        handle.set_gid("key:" + tag)
    return [h for _, h in entries]


def legend(ax, *, key: bool = True, fontsize: int = FONT, **kwargs):
    """The axes' legend: its labelled marks, then the key of its tagged marks (grey)."""
    handles, _ = ax.get_legend_handles_labels()
    if key:
        handles += key_handles(_tagged(ax))
    if not handles:
        return None
    return ax.legend(handles=handles, fontsize=fontsize, **kwargs)


def figure_legend(
    fig, axes, *, fontsize: int = FONT, loc="outside right center", labelled=True, **kwargs
):
    """One legend for several panels: every distinct labelled mark (unless ``labelled`` is
    False: panels with legends of their own), then the key (grey)."""
    seen, handles = set(), []
    tags = set()
    for ax in np.ravel(axes):
        tags |= _tagged(ax)
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            # A mark repeated in several panels is one entry; two marks of one label are two.
            key = (lab, _colour_key(h))
            if labelled and key not in seen:
                seen.add(key)
                handles.append(h)
    handles += key_handles(tags)
    return fig.legend(handles=handles, fontsize=fontsize, loc=loc, **kwargs)


def _colour_key(handle):
    for get in ("get_color", "get_facecolor"):
        if hasattr(handle, get):
            c = getattr(handle, get)()
            try:
                return mcolors.to_hex(c if np.ndim(c) == 1 or isinstance(c, str) else c[0])
            except (ValueError, IndexError, TypeError):
                return repr(c)
    return None


def positive(y):
    """``y`` as floats with values <= 0 as NaN (nothing to draw on a log axis)."""
    y = np.array(y, dtype=float, copy=True)
    y[~(y > 0)] = np.nan
    return y


LOG_DECADES = 3.0  # a log axis reaches at most this far below the bulk of its lines


def log_y(ax) -> None:
    """Log y, starting where the data is rather than at a lone near-zero point.

    Generation 0 of a distance to the start is 0 or rounding noise (1e-9 where the rest is 1e-4
    and up): autoscaling would stretch the axis down to it and squash the data. The lower limit is
    at most ``LOG_DECADES`` under the 1st percentile of the drawn lines (the bands may reach lower
    at a few generations and are cut there).
    """
    ax.set_yscale("log")
    values = data_y(ax, lines_only=True)
    values = values[values > 0]
    if values.size == 0:
        return
    floor = np.quantile(values, 0.01) / 10**LOG_DECADES
    lo, hi = ax.get_ylim()
    if lo < floor < hi:
        ax.set_ylim(bottom=floor)
    shared = [a for a in ax.figure.axes if a is ax or ax.get_shared_y_axes().joined(ax, a)]
    every = np.concatenate([data_y(a, lines_only=True) for a in shared])
    _few_decades(ax.yaxis, every[(every > 0) & (every >= floor)])


def log_x(ax) -> None:
    """Log x, with readable tick labels when the data spans only a decade or two."""
    ax.set_xscale("log")
    shared = [a for a in ax.figure.axes if a is ax or ax.get_shared_x_axes().joined(ax, a)]
    every = [np.asarray(ln.get_xdata(), float).ravel() for a in shared for ln in a.lines]
    every = np.concatenate(every) if every else np.zeros(0)
    _few_decades(ax.xaxis, every[np.isfinite(every) & (every > 0)])


def _few_decades(axis, values) -> None:
    # Over a decade or two matplotlib labels the minor ticks (3x10^0, 4x10^0, ...), which collide:
    # label 1, 2 and 5 of each decade instead. ``values``: the data of every axes sharing it.
    if values.size and np.log10(values.max() / values.min()) < 2:
        axis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(mticker.LogFormatterSciNotation(labelOnlyBase=False))
        axis.set_minor_formatter(mticker.NullFormatter())


def data_y(ax, lines_only: bool = False) -> np.ndarray:
    """Every finite y value drawn in data coordinates: lines, bands, scatter, bars."""
    out = []
    for line in ax.lines:
        if line.get_transform() == ax.transData:
            out.append(np.asarray(line.get_ydata(), float).ravel())
    if lines_only:
        v = np.concatenate(out) if out else np.zeros(0)
        return v[np.isfinite(v)]
    for c in ax.collections:
        if c.get_transform() == ax.transData:
            for p in c.get_paths():
                out.append(np.asarray(p.vertices[:, 1], float))
        else:
            off = c.get_offsets()
            if len(off) and c.get_offset_transform() == ax.transData:
                out.append(np.asarray(off[:, 1], float))
    for p in ax.patches:
        if p.get_transform().contains_branch(ax.transData):
            out.append(np.asarray([p.get_bbox().y1], float))
    if not out:
        return np.zeros(0)
    v = np.concatenate(out)
    return v[np.isfinite(v)]
