"""Figures of linear-regression chains, with ``theory.py``'s exact expectations overlaid.

test_error   |w_n - w*|^2 against generation: seed mean (solid), median (dashed), 10-90% band,
             theory dotted (replace: linear growth; accumulate: bounded by pi^2/6 times the
             first fit's error). Overlays need least squares (ridge 0) and T > d + 1.
sweep        ``sweep_figure``: one panel per (d, T, sigma^2), replace and accumulate together with
             their theory curves: Gerstgrasser et al.'s replace-vs-accumulate figure.
"""

from collections import defaultdict
from pathlib import Path

import numpy as np

from collapse_jax import plots, theory
from collapse_jax.plots import style

_FORMS = {
    "replace": theory.linear_regression_replace_error,
    "accumulate": theory.linear_regression_accumulate_error,
}


def _setup(config):
    c = config["linear_regression"]
    d, t = c["dim"], config["samples_per_generation"]
    regime = config["mixing"]["regime"]
    exact = c["ridge"] == 0 and t > d + 1 and regime in _FORMS
    return d, t, c["noise_variance"], regime, exact


def expected_test_error(config, generations):
    """The exact expectation for this run's config, or ``None`` where no closed form applies."""
    d, t, nv, regime, exact = _setup(config)
    return _FORMS[regime](generations, d, t, nv) if exact else None


def _title(run):
    d, t, nv, regime, _ = _setup(run.config)
    s = run.metrics["test_error"].shape[1]
    return f"linear regression: d={d}, T={t}, sigma^2={nv:g}, {regime}, {s} seeds"


def figures(run, outdir) -> list[Path]:
    n = run.generations
    color = style.run_color(run.config)
    fig, axes = style.new(2, width=11, height=4.2)
    plots.seed_band(axes[0], n, run.metrics["test_error"], label="|w_n - w*|^2", color=color)
    expected = expected_test_error(run.config, n)
    if expected is not None:
        style.theory(axes[0], n, expected, color, label="theory: exact expectation")
    axes[0].set_ylabel("parameter error |w_n - w*|^2")
    plots.seed_band(axes[1], n, run.metrics["test_mse"], label="held-out MSE", color=color)
    axes[1].set_ylabel("test MSE on noisy held-out labels\n(label units²)")
    for ax in axes:
        ax.set_xlabel("generation (fit n = generation + 1)")
        style.log_y(ax)
        style.legend(ax, loc="lower right")
    fig.suptitle(_title(run), fontsize=9)
    return [plots.save(fig, outdir, "test_error")]


def summary(run) -> str:
    g = int(run.generations[-1])
    v = run.metrics["test_error"][-1]
    se = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
    expected = expected_test_error(run.config, g)
    lines = [
        f"## {_title(run)}",
        "",
        "| metric at generation | seed mean ± s.e. | seed median | theory (mean) |",
        "| --- | --- | --- | --- |",
        f"| test_error at {g} | {v.mean():.4g} ± {se:.2g} | {np.median(v):.4g} | "
        + ("" if expected is None else f"{float(expected):.4g}")
        + " |",
    ]
    mse = run.metrics["test_mse"][-1]
    lines.append(f"| test_mse at {g} | {mse.mean():.4g} | {np.median(mse):.4g} | |")
    return "\n".join(lines) + "\n"


def sweep_figure(workdirs, outdir) -> Path:
    """Replace against accumulate with theory, one panel per (d, T, sigma^2) of the sweep."""
    groups = defaultdict(list)
    for w in workdirs:
        run = plots.load_run(w)
        d, t, nv, _, _ = _setup(run.config)
        groups[(d, t, nv)].append(run)
    keys = sorted(groups)
    cols = min(len(keys), 4)
    rows = -(-len(keys) // cols)
    fig, axes = style.new(
        cols, width=4 * cols + 2, height=3.3 * rows, nrows=rows, squeeze=False, sharey=True
    )
    for i, (ax, key) in enumerate(zip(axes.flat, keys, strict=False)):
        for run in sorted(groups[key], key=lambda r: r.config["mixing"]["regime"]):
            regime = run.config["mixing"]["regime"]
            color = style.regime_color(regime)
            n = run.generations
            plots.seed_band(ax, n + 1, run.metrics["test_error"], label=regime, color=color)
            expected = expected_test_error(run.config, n)
            if expected is not None:
                style.theory(ax, n + 1, expected, color)
        ax.set_title(f"d={key[0]}, T={key[1]}, sigma^2={key[2]:g}", fontsize=9)
        ax.set_xlabel("model-fitting iteration n (log scale)")
        ax.set_ylabel("parameter error |w_n - w*|^2" if i % cols == 0 else "")
    for ax in list(axes.flat)[: len(keys)]:
        style.log_x(ax)  # once every panel is drawn: the panels share y
        style.log_y(ax)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    style.figure_legend(fig, axes[:, : min(cols, len(keys))])
    fig.suptitle("Linear regression: replace vs accumulate (Gerstgrasser et al. 2024)", fontsize=10)
    return plots.save(fig, outdir, "linear_regression_sweep")
