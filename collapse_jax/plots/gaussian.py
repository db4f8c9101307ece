"""Figures of a Gaussian chain run, with ``theory.py`` overlaid where it applies.

variance    the fitted variance (d = 1) or covariance trace (d > 1): seed mean (solid), median
            (dashed), 10-90% band, log y; theory E[sigma_n^2] and exp E[log sigma_n^2] (the
            typical seed) dotted. The unbiased estimator keeps the mean at sigma^2 while the
            median collapses: Theorem 3.1 in one picture.
mean        the mean error |mu_n - mu|^2 (log y) with its exact expectation, and the fitted mean.
w2          squared W2 to the original (log-log), exact expectation and the paper's first-order
            form (3/2) sigma^2 (n+1) / M.

The overlays need the pure ``replace`` regime; E[sigma_n] and W2 also need ``source = normal``,
while the variance and mean-error forms hold for any D_0 (see ``theory.py``).
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from collapse_jax import plots, theory

THEORY = dict(color="k", ls=":", lw=1.2)


def _setup(run):
    c = run.config
    g = c["gaussian"]
    replace = c["mixing"]["regime"] == "replace"
    return dict(
        m=c["samples_per_generation"],
        est=g["estimator"],
        sigma=g["std"],
        dim=g["dim"],
        replace=replace,
        exact_all=replace and g["source"] == "normal" and g["dim"] == 1,
    )


def _title(run, what):
    c = run.config
    g = c["gaussian"]
    return (
        f"{what}: d={g['dim']}, M={c['samples_per_generation']}, {g['estimator']}, "
        f"{g['source']} D_0, {c['mixing']['regime']}, {run.metrics['mean_error'].shape[1]} seeds"
    )


def figures(run, outdir) -> list[Path]:
    s = _setup(run)
    n = run.generations
    paths = []
    var_key = "variance" if s["dim"] == 1 else "cov_trace"

    fig, ax = plt.subplots(figsize=(6.5, 4))
    plots.seed_band(ax, n, run.metrics[var_key], label=f"{var_key} (seed mean; median dashed)")
    if s["replace"]:
        ax.plot(
            n,
            theory.expected_variance(n, s["m"], s["est"], s["sigma"], s["dim"]),
            label="theory: mean",
            **THEORY,
        )
        if s["exact_all"]:
            ax.plot(
                n,
                np.exp(theory.expected_log_variance(n, s["m"], s["est"], s["sigma"])),
                color="k",
                ls="-.",
                lw=1,
                label="theory: exp E[log sigma^2] (typical seed)",
            )
        horizon = theory.monte_carlo_horizon(run.metrics[var_key].shape[1], s["m"])
        if horizon < n[-1]:
            ax.axvline(horizon, color="gray", lw=0.8, label="seed mean unreliable beyond")
    ax.set_yscale("log")
    ax.set_xlabel("generation")
    ax.set_ylabel(var_key)
    ax.set_title(_title(run, "variance"), fontsize=9)
    ax.legend(fontsize=8)
    paths.append(plots.save(fig, outdir, "variance"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    plots.seed_band(ax, n, run.metrics["mean_error"], label="|mu_n - mu|^2")
    if s["replace"]:
        ax.plot(
            n,
            theory.expected_mean_error(n, s["m"], s["est"], s["sigma"], s["dim"]),
            label="theory: mean",
            **THEORY,
        )
    ax.set_yscale("log")
    ax.set_xlabel("generation")
    ax.set_ylabel("mean error")
    ax.legend(fontsize=8)
    ax = axes[1]
    mean_key = "mean" if s["dim"] == 1 else "mean_norm"
    plots.seed_band(ax, n, run.metrics[mean_key], label=mean_key)
    ax.set_xlabel("generation")
    ax.set_ylabel(mean_key)
    fig.suptitle(_title(run, "mean"), fontsize=9)
    paths.append(plots.save(fig, outdir, "mean"))

    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = n + 1  # generation 0 on a log axis
    plots.seed_band(ax, x, run.metrics["w2_squared"], label="W2^2 to N(mu, sigma^2 I)")
    if s["exact_all"]:
        ax.plot(x, theory.expected_w2_squared(n, s["m"], s["est"], s["sigma"]), **THEORY)
        ax.lines[-1].set_label("theory: mean (exact)")
        if s["est"] == "unbiased":
            ax.plot(
                x,
                theory.first_order_w2_squared(n, s["m"], s["sigma"]),
                color="gray",
                ls="--",
                lw=1,
                label="first order (3/2) sigma^2 (n+1)/M",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("generation + 1")
    ax.set_ylabel("squared Wasserstein-2")
    ax.set_title(_title(run, "W2^2"), fontsize=9)
    ax.legend(fontsize=8)
    paths.append(plots.save(fig, outdir, "w2"))
    return paths


def _row(name, values_S, expected=None):
    v = np.asarray(values_S, float)
    e = "" if expected is None else f"{float(expected):.4g}"
    # The Monte Carlo standard error, so a reader can judge the theory column.
    se = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
    return f"| {name} | {v.mean():.4g} ± {se:.2g} | {np.median(v):.4g} | {e} |"


def summary(run) -> str:
    s = _setup(run)
    g_last = int(run.generations[-1])
    i_last = len(run.generations) - 1
    lines = [
        f"## Gaussian chain: {_title(run, 'summary')}",
        "",
        f"Generations 0..{g_last}. Theory: `collapse_jax/theory.py`"
        + ("" if s["replace"] else " (not shown: it covers the pure replace regime only)."),
        "",
        f"| metric at generation {g_last} | seed mean ± s.e. | seed median | theory (mean) |",
        "| --- | --- | --- | --- |",
    ]
    m, est, sig, dim = s["m"], s["est"], s["sigma"], s["dim"]
    theory_of = {}
    if s["replace"]:
        theory_of["mean_error"] = theory.expected_mean_error(g_last, m, est, sig, dim)
        theory_of["variance" if dim == 1 else "cov_trace"] = theory.expected_variance(
            g_last, m, est, sig, dim
        )
    if s["exact_all"]:
        theory_of["std"] = theory.expected_std(g_last, m, est, sig)
        theory_of["w2_squared"] = theory.expected_w2_squared(g_last, m, est, sig)
    for k in sorted(run.metrics):
        lines.append(_row(k, run.metrics[k][i_last], theory_of.get(k)))
    if dim == 1:
        v = run.metrics["variance"][i_last]
        lines += [
            "",
            f"Variance collapse: {np.mean(v < 0.01 * sig**2):.1%} of seeds have sigma_n^2 < "
            f"1% of sigma^2 at generation {g_last}, while the seed mean is {v.mean():.3g}.",
        ]
    horizon = theory.monte_carlo_horizon(run.metrics["mean_error"].shape[1], m)
    if s["replace"] and horizon < g_last:
        lines += [
            "",
            f"Past generation {horizon:.0f} the seed mean cannot track the theory: "
            "Var[sigma_n^2] / E[sigma_n^2]^2 = ((M+1)/(M-1))^(n+1) - 1 exceeds the seed count, "
            "so the mean is carried by seeds too rare to have been drawn "
            "(`theory.monte_carlo_horizon`).",
        ]
    return "\n".join(lines) + "\n"


def sweep_figure(workdirs, outdir) -> Path:
    """The paper's picture across sample sizes: variance and W2^2 per M, with exact theory.

    Left: median variance per M (dashed; the seed mean collapses with it past the Monte Carlo
    horizon) against theory exp E[log sigma_n^2]; right: seed-mean W2^2 per M against its exact
    expectation (log-log). Overlays need pure replace with a normal D_0 in 1-D.
    """
    runs = sorted(
        (plots.load_run(w) for w in workdirs), key=lambda r: r.config["samples_per_generation"]
    )
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, run in enumerate(runs):
        s = _setup(run)
        n, color = run.generations, f"C{i}"
        var_key = "variance" if s["dim"] == 1 else "cov_trace"
        label = f"M={s['m']}"
        v = run.metrics[var_key]
        axes[0].plot(n, np.median(v, axis=1), color=color, ls="--", label=f"{label} median")
        axes[0].plot(n, v.mean(axis=1), color=color, lw=1, alpha=0.6)
        axes[1].plot(n + 1, run.metrics["w2_squared"].mean(axis=1), color=color, label=label)
        if s["exact_all"]:
            axes[0].plot(
                n, np.exp(theory.expected_log_variance(n, s["m"], s["est"], s["sigma"])), **THEORY
            )
            axes[1].plot(
                n + 1, theory.expected_w2_squared(n, s["m"], s["est"], s["sigma"]), **THEORY
            )
    axes[0].set_yscale("log")
    axes[0].set_xlabel("generation")
    axes[0].set_ylabel("variance: median dashed, mean solid; theory dotted")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("generation + 1")
    axes[1].set_ylabel("E[W2^2] (seed mean); theory dotted")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Gaussian chains, {runs[0].metrics['w2_squared'].shape[1]} seeds per M "
        f"({runs[0].config['gaussian']['estimator']}, {runs[0].config['mixing']['regime']})",
        fontsize=9,
    )
    return plots.save(fig, outdir, "gaussian_sweep")
