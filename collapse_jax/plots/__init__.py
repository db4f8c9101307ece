"""Figures and a markdown summary from a workdir; one module per family.

Each family module exposes ``figures(run, outdir) -> list[Path]`` and ``summary(run) -> str``.
"""

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from collapse_jax import experiments, profile
from collapse_jax import metrics as metrics_lib
from collapse_jax.metrics import Run, load_run

__all__ = ["Run", "load_run", "report", "save", "seed_band", "seed_stats", "use_agg"]


def use_agg() -> None:
    """Draw with Agg (files only, no display): the launchers call it before writing figures.

    Not done at import, so that importing the plots in a notebook keeps the user's backend.
    """
    matplotlib.use("Agg")


def seed_stats(y_GxS, quantiles=(0.1, 0.9)) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """``(mean, [one row per quantile], median)`` over seeds per generation.

    Read from the run's stored statistics when ``y_GxS`` is a ``MetricArray`` that keeps them
    (the seeds themselves are not read), else computed from every seed.
    """
    names = [f"q{float(q):g}" for q in quantiles]
    if isinstance(y_GxS, metrics_lib.MetricArray) and all(
        y_GxS.has_stat(s) for s in ["mean", "median", *names]
    ):
        stat = y_GxS.seed_stat
        return stat("mean"), [stat(s) for s in names], stat("median")
    y = np.asarray(y_GxS, float)
    return y.mean(axis=1), list(np.nanquantile(y, quantiles, axis=1)), np.median(y, axis=1)


def seed_band(ax, x, y_GxS, label=None, color=None, quantiles=(0.1, 0.9), median=True):
    """Seed mean as a line, the seed quantile band shaded, the median dashed.

    The median and band carry ``style.MEDIAN`` / ``style.BAND`` tags, which ``style.legend``
    explains in its grey key (so one label per series suffices).
    """
    from collapse_jax.plots import style

    mean, (lo, hi), med = seed_stats(y_GxS, quantiles)
    (line,) = ax.plot(x, mean, label=label, color=color, lw=1.5, gid=style.MEAN)
    if y_GxS.shape[1] > 1:  # one seed has no band
        band = ax.fill_between(x, lo, hi, color=line.get_color(), alpha=style.BAND_ALPHA, lw=0)
        band.set_gid(style.BAND)
    if median and y_GxS.shape[1] > 1:
        ax.plot(x, med, color=line.get_color(), gid=style.MEDIAN, **style.MEDIAN_STYLE)
    return line


def save(fig, outdir, name) -> Path:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    return path


def report(workdir) -> tuple[list[Path], str]:
    """Write ``workdir/figures/*.png``, ``workdir/summary.md`` and the collapse profile
    (``profile.md``, ``profile.json``: ``collapse_jax/profile/``), so every report of every
    family has one; return the paths (the profile's markdown last) and the summary."""
    workdir = Path(workdir)
    for name in ("config.json", "metrics.jsonl"):
        if not (workdir / name).exists():
            raise FileNotFoundError(f"{workdir / name}: missing; is this a launch.run workdir?")
    run = load_run(workdir)
    mod = experiments.get(run.config["experiment"]).plots()
    paths = mod.figures(run, workdir / "figures")
    summary = mod.summary(run)
    (workdir / "summary.md").write_text(summary)
    return [*paths, profile.write(workdir)], summary
