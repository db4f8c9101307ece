"""Figures of a GMM-EM chain run (Shumailov et al., Fig. 2 and the supplement's GMM figures).

l2_distance  squared L2 distance between the densities of GMM_n and GMM_0 (the paper's plot) and
             to the true distribution, log y, seed mean (solid), median (dashed), 10-90% band.
components   per-component weights (heaviest first, so the last curve is the minority mode), the
             component std sqrt(trace(C_k)/D), and the held-out log-likelihood of original data.
snapshots    seed 0 at ``gmm.snapshot_generations``: original data (grey) and samples of GMM_n
             drawn from its recorded means and covariances, with 2-sigma ellipses.

``sweep_figure(workdirs, outdir)`` overlays the distance of several runs (one per sample size).
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from collapse_jax import plots


def _positive(y):
    # Distances at generation 0 are 0 (GMM_0 itself) or float rounding: nothing to show on log y.
    y = np.asarray(y, float).copy()
    y[y <= 0] = np.nan
    return y


def _label(run):
    c = run.config
    return (
        f"M={c['samples_per_generation']}, K={c['gmm']['num_components']}, "
        f"{c['mixing']['regime']}, {run.metrics['l2_to_gmm0'].shape[1]} seeds"
    )


def _distance_axes(ax, run, key, label=None, color=None):
    keep = run.generations >= 1
    plots.seed_band(
        ax, run.generations[keep], _positive(run.metrics[key][keep]), label=label, color=color
    )
    ax.set_yscale("log")
    ax.set_xlabel("generation")


def figures(run, outdir) -> list[Path]:
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, what in (
        (axes[0], "l2_to_gmm0", "GMM_0 (fit on the original data)"),
        (axes[1], "l2_to_truth", "the true distribution"),
    ):
        _distance_axes(ax, run, key, label="seed mean (median dashed, 10-90% band)")
        ax.set_ylabel(f"squared L2 distance to {what.split(' ')[0]}")
        ax.set_title(f"distance to {what}\n{_label(run)}", fontsize=9)
        ax.legend(fontsize=8)
    paths.append(plots.save(fig, outdir, "l2_distance"))

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    w = run.metrics["weights"]  # [G, S, K]
    sd = run.metrics["component_std"]
    for k in range(w.shape[-1]):
        plots.seed_band(axes[0], run.generations, w[..., k], label=f"component {k}")
        plots.seed_band(axes[1], run.generations, sd[..., k], label=f"component {k}")
    axes[0].set_ylabel("weight (components sorted heaviest first)")
    axes[1].set_ylabel("std sqrt(trace(C_k)/D)")
    axes[1].set_yscale("log")
    plots.seed_band(axes[2], run.generations, run.metrics["heldout_loglik"])
    axes[2].set_yscale("symlog")
    axes[2].set_ylabel("held-out original log-likelihood (mean per sample)")
    for ax in axes:
        ax.set_xlabel("generation")
        ax.set_title(_label(run), fontsize=9)
    axes[0].legend(fontsize=8)
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
    """Scatter of seed ``seed`` at the configured generations (None without recorded params)."""
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
    fig, axes = plt.subplots(1, len(wanted), figsize=(3 * len(wanted), 3.2), squeeze=False)
    for ax, g in zip(axes[0], wanted, strict=True):
        i = index[g]
        w = run.metrics["weights"][i, seed]
        mu = run.metrics["means"][i, seed]
        cov = run.metrics["covariances"][i, seed]
        comp = rng.choice(len(w), num_points, p=w / w.sum())
        x = mu[comp] + np.einsum(
            "nde,ne->nd", _sqrt_psd(cov)[comp], rng.normal(size=mu[comp].shape)
        )
        ax.scatter(orig[:, 0], orig[:, 1], s=2, c="0.75", label="original")
        ax.scatter(x[:, 0], x[:, 1], s=2, c=comp, cmap="coolwarm", vmin=0, vmax=len(w) - 1)
        for k in range(len(w)):
            e = _ellipse(mu[k], cov[k])
            ax.plot(e[0], e[1], color="k", lw=0.8)
        ax.set_title(f"generation {g}", fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
    fig.suptitle(f"seed {seed}: samples of GMM_n ({_label(run)})", fontsize=9, y=1.04)
    return plots.save(fig, outdir, "snapshots")


def sweep_figure(workdirs, outdir) -> Path:
    """The paper's plot: distance to GMM_0 against generation, one seed band per sample size."""
    runs = sorted(
        (plots.load_run(w) for w in workdirs), key=lambda r: r.config["samples_per_generation"]
    )
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        _distance_axes(ax, run, "l2_to_gmm0", label=f"M={run.config['samples_per_generation']}")
    ax.set_ylabel("squared L2 distance to GMM_0")
    ax.set_title(
        f"GMM-EM chains, {runs[0].metrics['l2_to_gmm0'].shape[1]} seeds per sample size "
        "(mean, median dashed, 10-90% band)",
        fontsize=9,
    )
    ax.legend(fontsize=8)
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
