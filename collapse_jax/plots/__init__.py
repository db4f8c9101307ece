"""Figures and a markdown summary from a workdir; one module per family.

Each family module exposes ``figures(run, outdir) -> list[Path]`` and ``summary(run) -> str``.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


@dataclass
class Run:
    """A workdir loaded for plotting: its config and metrics (``metric -> array [G, S, ...]``)."""

    workdir: Path
    config: dict
    generations: np.ndarray
    metrics: dict[str, np.ndarray]


def load_run(workdir) -> Run:
    workdir = Path(workdir)
    config = json.loads((workdir / "config.json").read_text())
    rows = [
        json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line
    ]
    gens = np.array([r["generation"] for r in rows])
    keys = [k for k in rows[0] if k != "generation"] if rows else []
    metrics = {k: np.array([r[k] for r in rows], dtype=float) for k in keys}
    return Run(workdir, config, gens, metrics)


def seed_band(ax, x, y_GxS, label=None, color=None, quantiles=(0.1, 0.9), median=True):
    """Seed mean as a line, the seed quantile band shaded, the median dashed."""
    y = np.asarray(y_GxS, float)
    (line,) = ax.plot(x, y.mean(axis=1), label=label, color=color, lw=1.5)
    lo, hi = np.nanquantile(y, quantiles, axis=1)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    if median and y.shape[1] > 1:
        ax.plot(x, np.median(y, axis=1), color=line.get_color(), lw=1, ls="--")
    return line


def save(fig, outdir, name) -> Path:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _family_module(experiment: str):
    # Deferred imports keep a Gaussian report from importing the LM stack.
    if experiment == "gaussian":
        from collapse_jax.plots import gaussian as mod
    elif experiment == "discrete":
        from collapse_jax.plots import discrete as mod
    elif experiment == "gmm":
        from collapse_jax.plots import gmm as mod
    elif experiment == "linear_regression":
        from collapse_jax.plots import linear_regression as mod
    elif experiment == "kde":
        from collapse_jax.plots import kde as mod
    elif experiment == "vae":
        from collapse_jax.plots import vae as mod
    elif experiment == "opt_wikitext":
        from collapse_jax.plots import opt as mod
    else:
        raise ValueError(f"experiment: no figures for {experiment!r}")
    return mod


def report(workdir) -> tuple[list[Path], str]:
    """Write ``workdir/figures/*.png`` and ``workdir/summary.md``; return the paths and summary."""
    workdir = Path(workdir)
    for name in ("config.json", "metrics.jsonl"):
        if not (workdir / name).exists():
            raise FileNotFoundError(f"{workdir / name}: missing; is this a launch.run workdir?")
    run = load_run(workdir)
    mod = _family_module(run.config["experiment"])
    paths = mod.figures(run, workdir / "figures")
    summary = mod.summary(run)
    (workdir / "summary.md").write_text(summary)
    return paths, summary
