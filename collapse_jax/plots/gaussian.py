"""Figures of a Gaussian chain run, with ``theory.py`` overlaid where it applies.

variance    the fitted variance (d = 1) or covariance trace (d > 1): seed mean (solid), median
            (dashed), 10-90% band, log y; theory E[sigma_n^2] and, for replace, exp E[log sigma_n^2]
            (the typical seed). The unbiased estimator keeps the mean at sigma^2 while the median
            collapses: Theorem 3.1 in one picture.
mean        the mean error |mu_n - mu|^2 (log y) with its exact expectation, and the fitted mean.
w2          squared W2 to the original (log-log), exact expectation and the paper's first-order
            form (3/2) sigma^2 (n+1) / M.

Theory follows the run's regime (``plots.regimes.theory_curve``: replace, accumulate, augment,
fresh in 1-D); E[sigma_n], E[log sigma_n^2] and W2 are the replace regime's with ``source =
normal``. Curves are drawn in the regime's colour (``style``), theory in its darker shade.
"""

from pathlib import Path

import numpy as np

from collapse_jax import plots, theory
from collapse_jax.plots import regimes, style

DAGGER = "†"


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
        regime=c["mixing"]["regime"],
    )


def _title(run, what):
    c = run.config
    g = c["gaussian"]
    return (
        f"{what}: d={g['dim']}, M={c['samples_per_generation']}, {g['estimator']}, "
        f"{g['source']} D_0, {c['mixing']['regime']}, {run.metrics['mean_error'].shape[1]} seeds"
    )


def _var_key(s) -> str:
    return "variance" if s["dim"] == 1 else "cov_trace"


def expected(run, metric: str, generations):
    """E[metric] at ``generations`` for this run's regime, or None where theory has none."""
    s = _setup(run)
    n = np.asarray(generations)
    if s["replace"]:
        if metric in ("variance", "cov_trace"):
            return theory.expected_variance(n, s["m"], s["est"], s["sigma"], s["dim"])
        if metric == "mean_error":
            return theory.expected_mean_error(n, s["m"], s["est"], s["sigma"], s["dim"])
        if s["exact_all"] and metric == "std":
            return theory.expected_std(n, s["m"], s["est"], s["sigma"])
        if s["exact_all"] and metric == "w2_squared":
            return theory.expected_w2_squared(n, s["m"], s["est"], s["sigma"])
        return None
    if metric not in ("variance", "mean_error") or s["dim"] != 1:
        return None
    curve = regimes.theory_curve(run, metric)  # the regime's closed form over the run's generations
    if curve is None:
        return None
    index = np.searchsorted(run.generations, n)
    return np.asarray(curve)[index]


def horizon(run) -> float | None:
    """The Monte Carlo horizon of the seed mean (replace only: elsewhere the variance is bounded)."""
    s = _setup(run)
    if not s["replace"]:
        return None
    return float(theory.monte_carlo_horizon(run.metrics["mean_error"].shape[1], s["m"]))


def figures(run, outdir) -> list[Path]:
    s = _setup(run)
    n = run.generations
    color = style.run_color(run.config)
    paths = []
    var_key = _var_key(s)

    fig, ax = style.new(width=6.5, height=4.2)
    what = r"$\sigma_n^2$" if s["dim"] == 1 else r"tr $\Sigma_n$"
    plots.seed_band(ax, n, run.metrics[var_key], label=f"fitted {what}", color=color)
    curve = expected(run, var_key, n)
    if curve is not None:
        style.theory(ax, n, curve, color, label=f"theory: E[{what}]")
    if s["exact_all"]:
        style.theory(
            ax,
            n,
            np.exp(theory.expected_log_variance(n, s["m"], s["est"], s["sigma"])),
            color,
            label=r"theory: exp E[log $\sigma_n^2$] (typical seed)",
            ls="-.",
            lw=1.2,
        )
    h = horizon(run)
    if h is not None and h < n[-1]:
        ax.axvline(h, color=style.NEUTRAL, lw=0.8, label=f"Monte Carlo horizon (g={h:.0f})")
    style.log_y(ax)
    ax.set_xlabel("generation")
    ax.set_ylabel(f"fitted {'variance' if s['dim'] == 1 else 'covariance trace'} (data units²)")
    ax.set_title(_title(run, "variance"), fontsize=9)
    style.legend(ax, loc="lower left")
    paths.append(plots.save(fig, outdir, "variance"))

    fig, axes = style.new(2, width=11, height=4.2)
    ax = axes[0]
    plots.seed_band(ax, n, run.metrics["mean_error"], label=r"$|\mu_n - \mu_0|^2$", color=color)
    curve = expected(run, "mean_error", n)
    if curve is not None:
        style.theory(ax, n, curve, color, label="theory: E[mean error]")
    style.log_y(ax)
    ax.set_xlabel("generation")
    ax.set_ylabel("squared mean error (data units²)")
    style.legend(ax, loc="lower right")
    ax = axes[1]
    mean_key = "mean" if s["dim"] == 1 else "mean_norm"
    plots.seed_band(
        ax,
        n,
        run.metrics[mean_key],
        label=r"fitted $\mu_n$" if s["dim"] == 1 else r"$|\mu_n|$",
        color=color,
    )
    ax.axhline(
        run.config["gaussian"]["mean"] if s["dim"] == 1 else 0.0,
        color=style.REFERENCE,
        lw=0.8,
        label=r"$\mu_0$" if s["dim"] == 1 else "0",
    )
    ax.set_xlabel("generation")
    ax.set_ylabel(f"fitted {'mean' if s['dim'] == 1 else 'mean norm'} (data units)")
    style.legend(ax, loc="lower left")
    fig.suptitle(_title(run, "mean"), fontsize=9)
    paths.append(plots.save(fig, outdir, "mean"))

    fig, ax = style.new(width=6.5, height=4.2)
    x = n + 1  # generation 0 on a log axis
    plots.seed_band(
        ax, x, run.metrics["w2_squared"], label=r"$W_2^2$ to $D_0$'s Gaussian", color=color
    )
    if s["exact_all"]:
        style.theory(
            ax,
            x,
            theory.expected_w2_squared(n, s["m"], s["est"], s["sigma"]),
            color,
            label="theory: E[W2²] (exact)",
        )
        if s["est"] == "unbiased":
            style.theory(
                ax,
                x,
                theory.first_order_w2_squared(n, s["m"], s["sigma"]),
                color,
                label=r"first order $\frac{3}{2}\sigma^2 (n+1)/M$",
                ls="-.",
                lw=1.2,
            )
    style.log_x(ax)
    style.log_y(ax)
    ax.set_xlabel("generation + 1 (log scale)")
    ax.set_ylabel("squared Wasserstein-2 distance (data units²)")
    ax.set_title(_title(run, "W2²"), fontsize=9)
    style.legend(ax, loc="upper left")
    paths.append(plots.save(fig, outdir, "w2"))
    return paths


def _fmt(x) -> str:
    return "" if x is None else f"{float(x):.4g}"


def summary(run) -> str:
    s = _setup(run)
    g_last = int(run.generations[-1])
    i_last = len(run.generations) - 1
    num_seeds = run.metrics["mean_error"].shape[1]
    h = horizon(run)
    past = h is not None and g_last > h
    mark = f" {DAGGER}" if past else ""
    lines = [
        f"## Gaussian chain: {_title(run, 'summary')}",
        "",
        f"Generations 0..{g_last}; theory: `collapse_jax/theory/` for the {s['regime']} regime.",
        "",
        f"At generation {g_last}, over {num_seeds} seeds. The median, the quantiles and the mean of "
        "the log variance (natural log) are reliable at any seed count; "
        + (
            f"the seed means are not: they are past the Monte Carlo horizon (generation {h:.0f} "
            f"here) and marked {DAGGER}.\n"
            if past
            else "so are the seed means here.\n"
        ),
        "| metric | seed median | 10% - 90% of seeds | seed mean ± s.e. | theory: E[metric] |",
        "| --- | --- | --- | --- | --- |",
    ]
    var_key = _var_key(s)
    if s["dim"] == 1:
        v = np.asarray(run.metrics["variance"][i_last], float)
        zeros = int(np.sum(v <= 0))
        log_v = np.log(v[v > 0])
        expected_log = (
            theory.expected_log_variance(g_last, s["m"], s["est"], s["sigma"])
            if s["exact_all"]
            else None
        )
        se = log_v.std(ddof=1) / np.sqrt(log_v.size) if log_v.size > 1 else float("nan")
        q10, q90 = np.quantile(log_v, [0.1, 0.9]) if log_v.size else (np.nan, np.nan)
        name = "log variance" + (f" ({zeros} seeds at 0 left out)" if zeros else "")
        lines.append(
            f"| {name} | {np.median(log_v):.4g} | {q10:.4g} - {q90:.4g} | "
            f"{log_v.mean():.4g} ± {se:.2g} | {_fmt(expected_log)} |"
        )
    order = [var_key, "std", "mean_error", "w2_squared"]
    for k in order + sorted(k for k in run.metrics if k not in order):
        if k not in run.metrics or np.asarray(run.metrics[k]).ndim != 2:
            continue
        v = np.asarray(run.metrics[k][i_last], float)
        se = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
        q10, q90 = np.quantile(v, [0.1, 0.9])
        lines.append(
            f"| {k} | {np.median(v):.4g} | {q10:.4g} - {q90:.4g} | "
            f"{v.mean():.4g} ± {se:.2g}{mark} | {_fmt(expected(run, k, g_last))} |"
        )
    if past:
        lines += [
            "",
            f"{DAGGER} Past generation {h:.0f} (the Monte Carlo horizon of {num_seeds} seeds at "
            f"M = {s['m']}) a seed mean cannot track its expectation: Var[sigma_n^2] / "
            "E[sigma_n^2]^2 = ((M+1)/(M-1))^(n+1) - 1 exceeds the seed count, so the expectation "
            "is carried by seeds too rare to have been drawn (`theory.monte_carlo_horizon`). "
            "Compare the median and the log variance instead.",
        ]
    if s["dim"] == 1:
        v = run.metrics["variance"][i_last]
        lines += [
            "",
            f"Variance collapse: {np.mean(v < 0.01 * s['sigma'] ** 2):.1%} of seeds have "
            f"sigma_n^2 < 1% of sigma^2 at generation {g_last}.",
        ]
    return "\n".join(lines) + "\n"


def sweep_figure(workdirs, outdir) -> Path:
    """The paper's picture across sample sizes: variance and W2^2 per M, with exact theory.

    Left: median variance per M against theory exp E[log sigma_n^2] (the typical seed); right:
    seed-mean W2^2 per M against its exact expectation (log-log). Overlays need pure replace with
    a normal D_0 in 1-D. Sample sizes are ordered colours (``style.ordered_colors``).
    """
    runs = sorted(
        (plots.load_run(w) for w in workdirs), key=lambda r: r.config["samples_per_generation"]
    )
    fig, axes = style.new(2, width=12, height=4.5)
    for run, color in zip(runs, style.ordered_colors(len(runs)), strict=True):
        s = _setup(run)
        n = run.generations
        v = np.asarray(run.metrics[_var_key(s)], float)
        label = f"M={s['m']}"
        axes[0].plot(n, np.median(v, axis=1), color=color, label=label, **style.MEDIAN_STYLE)
        axes[0].lines[-1].set_gid(style.MEDIAN)
        axes[1].plot(n + 1, np.mean(run.metrics["w2_squared"], axis=1), color=color, label=label)
        axes[1].lines[-1].set_gid(style.MEAN)
        if s["exact_all"]:
            style.theory(
                axes[0],
                n,
                np.exp(theory.expected_log_variance(n, s["m"], s["est"], s["sigma"])),
                color,
            )
            style.theory(
                axes[1], n + 1, theory.expected_w2_squared(n, s["m"], s["est"], s["sigma"]), color
            )
    style.log_y(axes[0])
    axes[0].set_xlabel("generation")
    axes[0].set_ylabel("seed median of the variance (data units²)")
    axes[0].set_title(r"typical seed (theory: exp E[log $\sigma_n^2$])", fontsize=9)
    style.log_x(axes[1])
    style.log_y(axes[1])
    axes[1].set_xlabel("generation + 1 (log scale)")
    axes[1].set_ylabel("seed mean of W2² (data units²)")
    axes[1].set_title("E[W2²] (theory: exact expectation)", fontsize=9)
    for ax in axes:
        style.legend(ax)
    fig.suptitle(
        f"Gaussian chains, {runs[0].metrics['w2_squared'].shape[1]} seeds per M "
        f"({runs[0].config['gaussian']['estimator']}, {runs[0].config['mixing']['regime']})",
        fontsize=9,
    )
    return plots.save(fig, outdir, "gaussian_sweep")
