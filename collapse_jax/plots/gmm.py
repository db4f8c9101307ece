"""Figures of a GMM-EM chain run (Shumailov et al., Fig. 2 and the supplement's GMM figures).

l2_distance  squared L2 distance between the densities of GMM_n and GMM_0 (the paper's plot) and
             to the true distribution, log y, seed mean (solid), median (dashed), 10-90% band.
components   per-component weights (heaviest first, so the last curve is the minority mode), the
             component std sqrt(trace(C_k)/D), and the held-out log-likelihood of original data.
snapshots    seed 0 at ``gmm.snapshot_generations``: a sample of the true distribution (grey) and
             samples of GMM_n drawn from its recorded parameters, one colour per component, with
             2-sigma ellipses; every panel on the same axes.

``sweep_figure(workdirs, outdir)`` overlays the distance of several runs (one per sample size).
"""

from pathlib import Path

import numpy as np

from collapse_jax import plots
from collapse_jax.plots import style


def _label(run):
    c = run.config
    return (
        f"M={c['samples_per_generation']}, K={c['gmm']['num_components']}, "
        f"{c['mixing']['regime']}, {run.metrics['l2_to_gmm0'].shape[1]} seeds"
    )


def _distance_axes(ax, run, key, label=None, color=None):
    # Distances at generation 0 are 0 (GMM_0 itself) or float rounding: nothing to show on log y.
    keep = run.generations >= 1
    y = style.positive(np.asarray(run.metrics[key])[keep])
    plots.seed_band(ax, run.generations[keep], y, label=label, color=color)
    style.log_y(ax)
    ax.set_xlabel("generation")


DENSITY_UNITS = "(1 / data units²)"


def figures(run, outdir) -> list[Path]:
    paths = []
    color = style.run_color(run.config)
    fig, axes = style.new(2, width=11, height=4.2)
    for ax, key, short, what in (
        (axes[0], "l2_to_gmm0", "GMM_0", "GMM_0 (fit on the original data)"),
        (axes[1], "l2_to_truth", "the truth", "the true distribution"),
    ):
        _distance_axes(ax, run, key, label=f"distance to {short}", color=color)
        ax.set_ylabel(f"squared L2 distance to {short}\n{DENSITY_UNITS}")
        ax.set_title(f"distance of GMM_n to {what}", fontsize=9)
        style.legend(ax, loc="lower right")
    fig.suptitle(_label(run), fontsize=9)
    paths.append(plots.save(fig, outdir, "l2_distance"))

    fig, axes = style.new(3, width=16, height=4.2)
    w = run.metrics["weights"]  # [G, S, K]
    sd = run.metrics["component_std"]
    k_count = w.shape[-1]
    for k, c in zip(range(k_count), style.ordered_colors(k_count), strict=True):
        name = f"component {k}" + (" (heaviest)" if k == 0 else "")
        plots.seed_band(axes[0], run.generations, w[..., k], label=name, color=c)
        plots.seed_band(axes[1], run.generations, sd[..., k], label=name, color=c)
    axes[0].set_ylabel("mixture weight\n(components sorted heaviest first)")
    axes[1].set_ylabel("component std sqrt(trace(C_k)/D)\n(data units)")
    style.log_y(axes[1])
    plots.seed_band(
        axes[2], run.generations, run.metrics["heldout_loglik"], label="GMM_n", color=color
    )
    axes[2].set_yscale("symlog")
    axes[2].set_ylabel("held-out log-likelihood of original data\n(nats per sample, symlog)")
    for ax, title in zip(axes, ("weights", "component spread", "fit to the original"), strict=True):
        ax.set_xlabel("generation")
        ax.set_title(title, fontsize=9)
    style.figure_legend(fig, axes)
    fig.suptitle(_label(run), fontsize=9)
    paths.append(plots.save(fig, outdir, "components"))

    snap = snapshots(run, outdir)
    if snap is not None:
        paths.append(snap)
    return paths


def _sqrt_psd(cov_KxDxD):
    # Recorded float32 covariances near the reg_covar floor can be indefinite by rounding.
    lam, v = np.linalg.eigh(cov_KxDxD)
    return v * np.sqrt(np.maximum(lam, 0))[:, None, :]


def _ellipse(mean, cov, n_sd=2.0, points=100):
    t = np.linspace(0, 2 * np.pi, points)
    lam, v = np.linalg.eigh(cov[:2, :2])
    circle = np.stack([np.cos(t), np.sin(t)])
    return mean[:2, None] + v @ (n_sd * np.sqrt(np.maximum(lam, 0))[:, None] * circle)


def snapshots(run, outdir, seed: int = 0, num_points: int = 500) -> Path | None:
    """Scatter of seed ``seed`` at the configured generations (None without recorded params).

    Grey: a sample of the true distribution; coloured: a sample of GMM_n drawn from its recorded
    parameters, one colour per component (heaviest first), each with its 2-sigma ellipse. Every
    panel has the same limits, so the shrinking spread reads across panels.
    """
    if "means" not in run.metrics or "covariances" not in run.metrics:
        return None
    wanted = [g for g in run.config["gmm"]["snapshot_generations"] if g in set(run.generations)]
    if not wanted:
        return None
    index = {int(g): i for i, g in enumerate(run.generations)}
    rng = np.random.default_rng(0)
    truth_w = np.asarray(run.config["gmm"]["truth_weights"])
    truth_mu = np.asarray(run.config["gmm"]["truth_means"])
    truth_c = np.asarray(run.config["gmm"]["truth_covariances"])
    z = rng.choice(len(truth_w), num_points, p=truth_w)
    orig = np.stack([rng.multivariate_normal(truth_mu[k], truth_c[k]) for k in z])
    k_count = np.asarray(run.metrics["weights"]).shape[-1]
    colors = style.ordered_colors(k_count)
    fig, axes = style.new(
        len(wanted),
        width=2.6 * len(wanted) + 1.8,
        height=3.3,
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    lo, hi = orig.min(0), orig.max(0)
    pad = 0.1 * (hi - lo)
    for j, (ax, g) in enumerate(zip(axes[0], wanted, strict=True)):
        i = index[g]
        w = np.asarray(run.metrics["weights"][i, seed])
        mu = np.asarray(run.metrics["means"][i, seed])
        cov = np.asarray(run.metrics["covariances"][i, seed])
        comp = rng.choice(len(w), num_points, p=w / w.sum())
        x = mu[comp] + np.einsum(
            "nde,ne->nd", _sqrt_psd(cov)[comp], rng.normal(size=mu[comp].shape)
        )
        first = j == 0
        ax.scatter(
            orig[:, 0],
            orig[:, 1],
            s=2,
            color="0.75",
            label="true distribution" if first else None,
            gid="truth",
        )
        for k in range(len(w)):
            at = comp == k
            ax.scatter(
                x[at, 0],
                x[at, 1],
                s=2,
                color=colors[k],
                gid=f"component{k}",
                label=(f"GMM_n, component {k}" + (" (heaviest)" if k == 0 else ""))
                if first
                else None,
            )
            e = _ellipse(mu[k], cov[k])
            ax.plot(
                e[0],
                e[1],
                color="k",
                lw=0.8,
                gid="ellipse",
                label="2-sigma ellipse" if first and k == len(w) - 1 else None,
            )
        ax.set_title(f"generation {g}", fontsize=9)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("x_1 (data units)")
        if first:
            ax.set_ylabel("x_2 (data units)")
    style.figure_legend(fig, axes, loc="outside lower center", ncols=4, markerscale=4)
    fig.suptitle(f"seed {seed}: samples of GMM_n ({_label(run)})", fontsize=9)
    return plots.save(fig, outdir, "snapshots")


def sweep_figure(workdirs, outdir) -> Path:
    """The paper's plot: distance to GMM_0 against generation, one seed band per sample size."""
    runs = sorted(
        (plots.load_run(w) for w in workdirs), key=lambda r: r.config["samples_per_generation"]
    )
    fig, ax = style.new(width=7, height=4.5)
    for run, color in zip(runs, style.ordered_colors(len(runs)), strict=True):
        _distance_axes(
            ax, run, "l2_to_gmm0", label=f"M={run.config['samples_per_generation']}", color=color
        )
    style.log_y(ax)
    ax.set_ylabel(f"squared L2 distance to GMM_0 {DENSITY_UNITS}")
    ax.set_title(
        f"GMM-EM chains, {runs[0].metrics['l2_to_gmm0'].shape[1]} seeds per sample size",
        fontsize=9,
    )
    style.legend(ax, loc="lower right")
    return plots.save(fig, outdir, "l2_distance_sweep")


def summary(run) -> str:
    m = run.metrics
    g_all = run.generations
    rows = [g for g in (1, 10, 100, 1000, int(g_all[-1])) if g in set(g_all)]
    rows = sorted(set(rows))
    index = {int(g): i for i, g in enumerate(g_all)}
    out = [
        f"## GMM-EM chain ({_label(run)})",
        "",
        "| generation | median L2^2 to GMM_0 | median L2^2 to truth | median minority weight "
        "| median smallest std | median held-out loglik | mean EM iterations | converged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in rows:
        i = index[g]
        out.append(
            f"| {g} | {np.median(m['l2_to_gmm0'][i]):.3g} | {np.median(m['l2_to_truth'][i]):.3g} "
            f"| {np.median(m['weights'][i, :, -1]):.3g} "
            f"| {np.median(m['component_std'][i].min(-1)):.3g} "
            f"| {np.median(m['heldout_loglik'][i]):.3g} | {np.mean(m['em_iterations'][i]):.1f} "
            f"| {np.mean(m['converged'][i]):.0%} |"
        )
    return "\n".join(out) + "\n"
