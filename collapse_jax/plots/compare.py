"""Several runs of one metric in one figure, labelled by the config field that differs between them.

Each run is drawn with ``plots.seed_band``: the seed mean as a line, the median dashed and the
10-90% seed quantiles shaded; runs of different regimes in their regime's colour
(``style.run_colors``). The label field is found by diffing the runs' ``config.json`` when not
given (the GMM sweep over ``samples_per_generation`` gives the paper's five-curve figure).
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from collapse_jax import plots
from collapse_jax.errors import ConfigError
from collapse_jax.plots import style

# The metric a sweep's comparison figure shows, per experiment (the collapse each paper figure shows).
HEADLINE = {
    "gaussian": "variance",
    "discrete": "support_size",
    "gmm": "l2_to_gmm0",
    "vae": "class_entropy",
    "opt_wikitext": "test_perplexity",
    "linear_regression": "test_error",
    "kde": "nll",
    "flow": "mmd",
    "mad": "fid",
}

# Fields that differ between runs of one experiment without changing it.
_NOT_A_LABEL = ("num_devices",)


def flatten(config: dict, prefix: str = "") -> dict:
    """``{"gmm.tol": 1e-5, ...}``: every leaf of a nested config dict by its dotted path."""
    out = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def differing_fields(configs: list[dict]) -> list[str]:
    """Dotted config paths whose values are not the same in every config (sorted)."""
    flat = [flatten(c) for c in configs]
    keys = set().union(*flat)
    missing = object()
    return sorted(
        k
        for k in keys
        if k not in _NOT_A_LABEL and len({repr(f.get(k, missing)) for f in flat}) > 1
    )


def _value(config: dict, path: str):
    node = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return "<absent>"
        node = node[part]
    return node


def spans_decades(arrays, decades: float = 2.0) -> bool:
    """True when the positive finite seed means span more than ``decades`` orders of magnitude
    (no negative mean; zeros, such as a distance to the start at generation 0, are left out)."""
    v = np.concatenate([np.nanmean(a, axis=1) for a in arrays])
    v = v[np.isfinite(v)]
    if (v < 0).any():
        return False
    v = v[v > 0]
    if v.size == 0:
        return False
    return np.log10(v.max() / v.min()) > decades


def _zero_at_start(y_GxS) -> bool:
    """Generation 0's seed mean is 0 or below 1e-3 of generation 1's (nothing to show on log y)."""
    if len(y_GxS) < 2:
        return False
    m0, m1 = float(np.nanmean(y_GxS[0])), float(np.nanmean(y_GxS[1]))
    return m1 > 0 and m0 < 1e-3 * m1


def compare(workdirs, metric: str, label: str | None = None, out=None) -> Path:
    """Write the figure of ``metric`` over generations for ``workdirs``; return its path.

    ``label``: the config field (dotted path) naming each run; by default the fields that differ
    between the runs' configs (the run directory's name where none differs).
    """
    fig = figure(workdirs, metric, label)
    if out is None:
        # One run: its own figures/; several: the figures/ of their common directory (a sweep's).
        parent = Path(os.path.commonpath([os.path.abspath(w) for w in workdirs]))
        out = parent / "figures" / f"compare_{metric}.png"
    out = Path(out)
    if out.suffix == ".png":
        return plots.save(fig, out.parent, out.stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight", pad_inches=0.05)  # any format matplotlib knows
    plt.close(fig)
    return out


def figure(workdirs, metric: str, label: str | None = None):
    """The ``matplotlib`` figure of ``compare`` (not saved)."""
    workdirs = [Path(w) for w in workdirs]
    if not workdirs or len({w.resolve() for w in workdirs}) != len(workdirs):
        raise ConfigError(
            f"workdirs: expected one or more distinct run directories, got {workdirs}"
        )
    runs = []
    for w in workdirs:
        if not (w / "config.json").is_file():
            raise FileNotFoundError(f"{w / 'config.json'}: missing; is this a launch.run workdir?")
        runs.append(plots.load_run(w))
    for run in runs:
        if metric not in run.metrics:
            raise ConfigError(
                f"metric: {run.workdir} has no {metric!r}; it has {sorted(run.metrics)}"
            )
        if run.metrics[metric].ndim != 2:
            raise ConfigError(
                f"metric: {metric!r} is not one number per generation and seed (shape "
                f"{run.metrics[metric].shape} in {run.workdir})"
            )
    if label is not None:
        fields = [label]
        flat = [flatten(r.config) for r in runs]
        if not all(label in f for f in flat):
            raise ConfigError(f"label: no config field {label!r} in {workdirs}")
    else:
        fields = differing_fields([r.config for r in runs])

    def name(run) -> str:
        # The legend's title names the fields; each entry gives the run's values.
        if not fields:
            return run.workdir.name
        return ", ".join(str(_value(run.config, f)) for f in fields)

    ys = [r.metrics[metric] for r in runs]
    fig, ax = style.new(width=9, height=4.5)
    colors = style.run_colors([r.config for r in runs])
    log = spans_decades(ys)
    for run, y, color in zip(runs, ys, colors, strict=True):
        x = run.generations
        if log and _zero_at_start(y):
            # A distance to the start (l2_to_gmm0) is 0 or rounding noise at generation 0: on a
            # log axis that lone point would stretch the axis decades below the data.
            x, y = x[1:], np.asarray(y)[1:]
        plots.seed_band(ax, x, y, label=name(run), color=color)
    if log:
        style.log_y(ax)
    ax.set_xlabel("generation")
    ax.set_ylabel(style.metric_label(metric))
    seeds = sorted({y.shape[1] for y in ys})
    ax.set_title(f"{metric}, {'/'.join(map(str, seeds))} seeds per run", fontsize=9)
    style.figure_legend(
        fig, [ax], title=", ".join(fields) if fields else "run", title_fontsize=style.FONT + 1
    )
    return fig
