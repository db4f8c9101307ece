"""Figures of kernel density chains (Kazdan et al. 2024).

metrics      held-out NLL of real data and the MMD to the truth against generation (seed mean,
             median dashed, 10-90% band).
snapshots    scatter panels of one seed's training data at a few generations (needs
             ``kde.snapshot_points > 0``): D_0, then what each generation's KDE was fitted to.
sweep        ``sweep_figure``: replace against accumulate, NLL and MMD, one column per dataset.
"""

from collections import defaultdict
from pathlib import Path

import numpy as np

from collapse_jax import plots
from collapse_jax.plots import style


def _title(run):
    c, k = run.config, run.config["kde"]
    h = k["bandwidth"] if k["bandwidth_rule"] == "fixed" else k["bandwidth_rule"]
    s = run.metrics["nll"].shape[1]
    return (
        f"KDE: {k['dataset']}, M={c['samples_per_generation']}, h={h}, "
        f"{c['mixing']['regime']}, {s} seeds"
    )


def snapshot_generations(generations, count=6) -> list[int]:
    """Up to ``count`` generations spread over the run on a log-like scale, first and last kept."""
    g = np.asarray(generations)
    picks = np.unique(np.round(np.geomspace(1, g[-1] + 1, count)).astype(int) - 1)
    return [int(x) for x in picks if x in set(g.tolist())]


def figures(run, outdir) -> list[Path]:
    n = run.generations
    color = style.run_color(run.config)
    fig, axes = style.new(2, width=11, height=4.2)
    plots.seed_band(axes[0], n, run.metrics["nll"], label="held-out NLL", color=color)
    axes[0].set_ylabel("NLL of fresh real data\n(nats per sample)")
    plots.seed_band(axes[1], n, run.metrics["mmd"], label="MMD to the truth", color=color)
    axes[1].set_ylabel("MMD to the truth\n(random-feature Gaussian kernel)")
    for ax in axes:
        ax.set_xlabel("generation")
        style.legend(ax, loc="best")
    fig.suptitle(_title(run), fontsize=9)
    paths = [plots.save(fig, outdir, "kde_metrics")]
    if "snapshot" in run.metrics:
        paths.append(_snapshots(run, outdir))
    return paths


def _snapshots(run, outdir, seed=0) -> Path:
    snap = run.metrics["snapshot"]  # [G, S, P, 2]
    gens = snapshot_generations(run.generations)
    index = {int(g): i for i, g in enumerate(run.generations)}
    color = style.run_color(run.config)
    fig, axes = style.new(
        len(gens), width=2.4 * len(gens) + 0.6, height=3.0, squeeze=False, sharex=True, sharey=True
    )
    first = np.asarray(snap[index[gens[0]], seed])
    lo, hi = first.min(0), first.max(0)
    pad = 0.25 * (hi - lo)
    for j, (ax, g) in enumerate(zip(axes[0], gens, strict=True)):
        x = np.asarray(snap[index[g], seed])
        ax.scatter(
            x[:, 0],
            x[:, 1],
            s=4,
            color=color,
            gid="training_data",
            label="training data of the generation" if j == 0 else None,
        )
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_title(f"generation {g}", fontsize=9)
        ax.set_xlabel("x_1 (data units)")
        if j == 0:
            ax.set_ylabel("x_2 (data units)")
    style.figure_legend(fig, axes, loc="outside lower center", ncols=4, markerscale=3)
    fig.suptitle(_title(run) + f"; seed {seed}", fontsize=9)
    return plots.save(fig, outdir, "kde_snapshots")


def summary(run) -> str:
    g = int(run.generations[-1])
    lines = [
        f"## {_title(run)}",
        "",
        "| metric | generation 0 (seed mean) | generation "
        f"{g} (seed mean ± s.e.) | seed median at {g} |",
        "| --- | --- | --- | --- |",
    ]
    for k in ("nll", "mmd", "bandwidth"):
        v0, v = run.metrics[k][0], run.metrics[k][-1]
        se = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
        lines.append(f"| {k} | {v0.mean():.4g} | {v.mean():.4g} ± {se:.2g} | {np.median(v):.4g} |")
    return "\n".join(lines) + "\n"


def sweep_figure(workdirs, outdir) -> Path:
    """Replace against accumulate: NLL (top) and MMD (bottom), one column per (dataset, M, h)."""
    groups = defaultdict(list)
    for w in workdirs:
        run = plots.load_run(w)
        k = run.config["kde"]
        h = k["bandwidth"] if k["bandwidth_rule"] == "fixed" else k["bandwidth_rule"]
        groups[(k["dataset"], run.config["samples_per_generation"], str(h))].append(run)
    keys = sorted(groups)
    fig, axes = style.new(
        len(keys), width=3.6 * len(keys) + 2, height=6, nrows=2, squeeze=False, sharex="col"
    )
    for j, key in enumerate(keys):
        for run in sorted(groups[key], key=lambda r: r.config["mixing"]["regime"]):
            regime = run.config["mixing"]["regime"]
            for i, metric in enumerate(("nll", "mmd")):
                plots.seed_band(
                    axes[i, j],
                    run.generations,
                    run.metrics[metric],
                    label=regime,
                    color=style.regime_color(regime),
                )
        axes[0, j].set_title(f"{key[0]}, M={key[1]}, h={key[2]}", fontsize=9)
        axes[0, j].set_yscale("symlog", linthresh=1.0)
        axes[1, j].set_xlabel("generation")
    axes[0, 0].set_ylabel("held-out NLL (nats per sample,\nsymlog)")
    axes[1, 0].set_ylabel("MMD to the truth")
    style.figure_legend(fig, axes)
    fig.suptitle("Kernel density chains: replace vs accumulate (Kazdan et al. 2024)", fontsize=10)
    return plots.save(fig, outdir, "kde_sweep")
