"""Figures of a discrete chain run, with ``theory.py`` overlaid.

support     support size and tail mass (original mass of states with q_i <= 1/M still present)
            against generation: seed mean, median dashed, 10-90% band; their exact expectations
            (Wright-Fisher, replace; constant under accumulate and augment), else the exact
            generation-0 values as markers. The tail goes first.
absorption  left: the fraction of seeds absorbed in a delta by each generation, with its exact law
            (replace) and Littler's diffusion approximation of the mean absorption time; right:
            the absorbing states' frequencies against q (P(absorbed at i) = q_i) with binomial
            2-s.e. bars.
diversity   Gini-Simpson index 1 - sum p^2 (seed mean) with its exact expectation
            (1 - sum q^2)(1 - 1/M)^(n+1) (pure replace), and the entropy.

Theory follows the run's regime (``plots.regimes.theory_curve``); series are in the regime's
colour, theory in its darker shade (``style``).
"""

from pathlib import Path

import ml_collections
import numpy as np
from matplotlib.ticker import MaxNLocator

from collapse_jax import plots, theory
from collapse_jax.families import discrete
from collapse_jax.plots import regimes, style


def _q(run) -> np.ndarray:
    return discrete.original_probs(ml_collections.ConfigDict(run.config))


def _title(run, what):
    c = run.config
    d = c["discrete"]
    return (
        f"{what}: K={d['num_states']} {d['distribution']}, M={c['samples_per_generation']}, "
        f"{c['mixing']['regime']}, {run.metrics['support_size'].shape[1]} seeds"
    )


def _symlog_x(ax) -> None:
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("generation (log scale past 1)")


def figures(run, outdir) -> list[Path]:
    n, q, m = run.generations, _q(run), run.config["samples_per_generation"]
    replace = run.config["mixing"]["regime"] == "replace"
    color = style.run_color(run.config)
    paths = []

    fig, axes = style.new(2, width=11, height=4.2)
    tail_total = q[q <= 1 / m].sum()
    for ax, key, label in (
        (axes[0], "support_size", "support size"),
        (axes[1], "tail_mass", "tail mass present"),
    ):
        plots.seed_band(ax, n, run.metrics[key], label=label, color=color)
        curve = regimes.theory_curve(run, key)
        if curve is not None:
            style.theory(ax, n, curve, color, label="theory: exact expectation")
        else:
            g0 = (
                theory.expected_support_size_generation0(q, m)
                if key == "support_size"
                else theory.expected_tail_mass_generation0(q, m)
            )
            ax.plot([0], [g0], "x", color=style.theory_color(color), label="theory at g=0")
            ax.lines[-1].set_gid(style.THEORY)
        _symlog_x(ax)
        style.legend(ax, loc="upper right")
    axes[0].set_ylabel(f"states present (of K={q.size})")
    axes[1].set_ylabel(
        f"original mass of tail states present\n(tail: q_i <= 1/M, mass {tail_total:.3f})"
    )
    fig.suptitle(_title(run, "support and tail"), fontsize=9)
    paths.append(plots.save(fig, outdir, "support"))

    fig, axes = style.new(2, width=11, height=4.2)
    absorbed_GxS = run.metrics["absorbed_generation"]
    last = absorbed_GxS[-1]
    s = last.size
    frac = np.array([np.mean((last >= 0) & (last <= g)) for g in n])
    axes[0].plot(n, frac, color=color, label="absorbed by generation (share of seeds)")
    if replace:
        cdf = theory.absorption_cdf(q, m, int(n[-1]) + 1)[n]
        style.theory(axes[0], n, cdf, color, label="theory: P(absorbed by g), exact")
        t = theory.first_order_absorption_time(q, m) - 1  # generations count from 0
        axes[0].axvline(
            t,
            color=style.theory_color(color),
            ls="-.",
            lw=1,
            gid=style.THEORY,
            label=f"diffusion approx. of the mean time ({t:.0f})",
        )
        done = last[last >= 0]
        if done.size:
            axes[0].axvline(
                done.mean(),
                color=color,
                ls="--",
                lw=1,
                label=f"mean time, absorbed seeds ({done.mean():.0f})",
            )
    axes[0].set_xlabel("generation")
    axes[0].set_ylabel("fraction of seeds absorbed")
    style.legend(axes[0], loc="lower right")
    state = run.metrics["absorbing_state"][-1]
    k = q.size
    freq = np.bincount(state[state >= 0].astype(int), minlength=k) / s
    idx = np.arange(k)
    axes[1].bar(idx, freq, color=color, alpha=0.6, label="share of seeds absorbed there")
    if replace:
        se = np.sqrt(q * (1 - q) / s)
        axes[1].errorbar(
            idx,
            q,
            yerr=2 * se,
            fmt=".",
            color=style.theory_color(color),
            ms=3,
            lw=0.8,
            label="theory: q_i ± 2 s.e.",
        )
    axes[1].set_xlabel("state i (most probable first)")
    axes[1].set_ylabel("fraction of seeds absorbed in state i")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if np.any(freq > 0) or replace:
        axes[1].set_yscale("log")
    else:  # accumulate and augment keep D_0: no seed is ever absorbed
        axes[1].set_title("no seed absorbed", fontsize=9)
    style.legend(axes[1], loc="upper right")
    fig.suptitle(_title(run, f"absorption ({np.mean(last >= 0):.1%} absorbed)"), fontsize=9)
    paths.append(plots.save(fig, outdir, "absorption"))

    fig, axes = style.new(2, width=11, height=4.2)
    plots.seed_band(axes[0], n, run.metrics["gini_simpson"], label="1 - sum p_i^2", color=color)
    curve = regimes.theory_curve(run, "gini_simpson")
    if curve is not None:
        style.theory(axes[0], n, curve, color, label="theory: exact expectation")
    axes[0].set_xlabel("generation")
    axes[0].set_ylabel("Gini-Simpson index 1 - sum p_i^2")
    style.legend(axes[0], loc="upper right")
    plots.seed_band(axes[1], n, run.metrics["entropy"], label="entropy of p_n", color=color)
    axes[1].axhline(
        -(q[q > 0] * np.log(q[q > 0])).sum(),
        color=style.REFERENCE,
        lw=1,
        label="H(q), the original",
    )
    axes[1].set_xlabel("generation")
    axes[1].set_ylabel("entropy (nats)")
    style.legend(axes[1], loc="center right")
    fig.suptitle(_title(run, "diversity"), fontsize=9)
    paths.append(plots.save(fig, outdir, "diversity"))
    return paths


def summary(run) -> str:
    q, m = _q(run), run.config["samples_per_generation"]
    last = run.metrics["absorbed_generation"][-1]
    state = run.metrics["absorbing_state"][-1]
    s = last.size
    g_last = int(run.generations[-1])
    k_show = min(q.size, 5)
    freq = np.bincount(state[state >= 0].astype(int), minlength=q.size) / s
    lines = [
        f"## Discrete chain: {_title(run, 'summary')}",
        "",
        f"- tail (q_i <= 1/M): {int(np.sum(q <= 1 / m))} of {q.size} states, mass "
        f"{q[q <= 1 / m].sum():.3f}; still present at generation {g_last}: "
        f"{run.metrics['tail_mass'][-1].mean():.4f} (seed mean)",
        f"- support size: generation 0 {run.metrics['support_size'][0].mean():.2f} "
        f"(theory {theory.expected_support_size_generation0(q, m):.2f}), generation {g_last} "
        f"{run.metrics['support_size'][-1].mean():.2f}",
        f"- absorbed by generation {g_last}: {np.mean(last >= 0):.1%} of {s} seeds; mean "
        f"absorption generation {last[last >= 0].mean() if np.any(last >= 0) else float('nan'):.1f}"
        f" (diffusion approximation {theory.first_order_absorption_time(q, m) - 1:.1f})",
        "",
        "| state | q_i | absorbed there (fraction of seeds) | 2 s.e. |",
        "| --- | --- | --- | --- |",
    ]
    for i in range(k_show):
        lines.append(
            f"| {i} | {q[i]:.4f} | {freq[i]:.4f} | {2 * np.sqrt(q[i] * (1 - q[i]) / s):.4f} |"
        )
    return "\n".join(lines) + "\n"


def sweep_figure(workdirs, outdir) -> Path:
    """Support size and tail mass against generation, one seed band per sample size M."""
    runs = sorted(
        (plots.load_run(w) for w in workdirs), key=lambda r: r.config["samples_per_generation"]
    )
    fig, axes = style.new(2, width=11, height=4.2)
    for run, color in zip(runs, style.ordered_colors(len(runs)), strict=True):
        label = f"M={run.config['samples_per_generation']}"
        plots.seed_band(axes[0], run.generations, run.metrics["support_size"], label, color)
        # Tail mass as a fraction of the tail's original mass: the tail (q_i <= 1/M) differs by M.
        q, m = _q(run), run.config["samples_per_generation"]
        total = max(q[q <= 1 / m].sum(), 1e-300)
        plots.seed_band(
            axes[1], run.generations, np.asarray(run.metrics["tail_mass"]) / total, label, color
        )
    axes[0].set_ylabel("support size (states present)")
    axes[1].set_ylabel("share of the tail's original mass present\n(tail: q_i <= 1/M)")
    for ax in axes:
        _symlog_x(ax)
        style.legend(ax, loc="upper right")
    fig.suptitle(
        _title(runs[-1], "support and tail per M").replace(
            f"M={runs[-1].config['samples_per_generation']}, ", ""
        ),
        fontsize=9,
    )
    return plots.save(fig, outdir, "discrete_sweep")
