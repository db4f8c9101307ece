"""Figures of a discrete chain run, with ``theory.py`` overlaid.

support     support size and tail mass (original mass of states with q_i <= 1/M still present)
            against generation: seed mean, median dashed, 10-90% band; the exact generation-0
            expectations as markers. The tail goes first.
absorption  left: the fraction of seeds absorbed in a delta by each generation, with Littler's
            diffusion approximation of the mean absorption time; right: the absorbing states'
            frequencies against q (P(absorbed at i) = q_i) with binomial 2-s.e. bars.
diversity   Gini-Simpson index 1 - sum p^2 (seed mean) with its exact expectation
            (1 - sum q^2)(1 - 1/M)^(n+1) (pure replace), and the entropy.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import ml_collections
import numpy as np

from collapse_jax import plots, theory
from collapse_jax.families import discrete

THEORY = dict(color="k", ls=":", lw=1.2)


def _q(run) -> np.ndarray:
    return discrete.original_probs(ml_collections.ConfigDict(run.config))


def _title(run, what):
    c = run.config
    d = c["discrete"]
    return (
        f"{what}: K={d['num_states']} {d['distribution']}, M={c['samples_per_generation']}, "
        f"{c['mixing']['regime']}, {run.metrics['support_size'].shape[1]} seeds"
    )


def figures(run, outdir) -> list[Path]:
    n, q, m = run.generations, _q(run), run.config["samples_per_generation"]
    replace = run.config["mixing"]["regime"] == "replace"
    paths = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plots.seed_band(axes[0], n, run.metrics["support_size"], label="support size")
    axes[0].plot([0], [theory.expected_support_size_generation0(q, m)], "kx", label="theory, g=0")
    axes[0].set_ylabel("states present")
    plots.seed_band(axes[1], n, run.metrics["tail_mass"], label="tail mass", color="C3")
    axes[1].plot([0], [theory.expected_tail_mass_generation0(q, m)], "kx", label="theory, g=0")
    axes[1].set_ylabel(f"tail mass present (of {q[q <= 1 / m].sum():.3f})")
    for ax in axes:
        ax.set_xlabel("generation")
        ax.set_xscale("symlog", linthresh=1)
        ax.legend(fontsize=8)
    fig.suptitle(_title(run, "support and tail"), fontsize=9)
    paths.append(plots.save(fig, outdir, "support"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    absorbed_GxS = run.metrics["absorbed_generation"]
    last = absorbed_GxS[-1]
    s = last.size
    frac = np.array([np.mean((last >= 0) & (last <= g)) for g in n])
    axes[0].plot(n, frac, label="absorbed by generation")
    if replace:
        t = theory.first_order_absorption_time(q, m) - 1  # generations count from 0
        axes[0].axvline(t, **THEORY, label=f"diffusion approx. mean {t:.0f}")
        done = last[last >= 0]
        if done.size:
            axes[0].axvline(done.mean(), color="C0", ls="--", lw=1, label="mean (absorbed seeds)")
    axes[0].set_xlabel("generation")
    axes[0].set_ylabel("fraction of seeds")
    axes[0].legend(fontsize=8)
    state = run.metrics["absorbing_state"][-1]
    k = q.size
    freq = np.bincount(state[state >= 0].astype(int), minlength=k) / s
    idx = np.arange(k)
    axes[1].bar(idx, freq, color="C0", alpha=0.6, label="absorbing state frequency")
    if replace:
        se = np.sqrt(q * (1 - q) / s)
        axes[1].errorbar(idx, q, yerr=2 * se, fmt="k.", ms=3, lw=0.8, label="q_i ± 2 s.e.")
    axes[1].set_xlabel("state")
    axes[1].set_yscale("log")
    axes[1].legend(fontsize=8)
    fig.suptitle(_title(run, f"absorption ({np.mean(last >= 0):.1%} absorbed)"), fontsize=9)
    paths.append(plots.save(fig, outdir, "absorption"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plots.seed_band(axes[0], n, run.metrics["gini_simpson"], label="1 - sum p^2")
    if replace:
        axes[0].plot(n, theory.expected_gini_simpson(n, q, m), label="theory: mean", **THEORY)
    axes[0].set_xlabel("generation")
    axes[0].legend(fontsize=8)
    plots.seed_band(axes[1], n, run.metrics["entropy"], label="entropy (nats)", color="C2")
    axes[1].axhline(-(q[q > 0] * np.log(q[q > 0])).sum(), color="gray", lw=1, label="H(q)")
    axes[1].set_xlabel("generation")
    axes[1].legend(fontsize=8)
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
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, run in enumerate(runs):
        label = f"M={run.config['samples_per_generation']}"
        plots.seed_band(axes[0], run.generations, run.metrics["support_size"], label, f"C{i}")
        # Tail mass as a fraction of the tail's original mass: the tail (q_i <= 1/M) differs by M.
        q, m = _q(run), run.config["samples_per_generation"]
        total = max(q[q <= 1 / m].sum(), 1e-300)
        plots.seed_band(axes[1], run.generations, run.metrics["tail_mass"] / total, label, f"C{i}")
    axes[0].set_ylabel("support size")
    axes[1].set_ylabel("fraction of the tail's mass present (q_i <= 1/M)")
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("generation")
        ax.legend(fontsize=8)
    fig.suptitle(
        _title(runs[-1], "support and tail per M").replace(
            f"M={runs[-1].config['samples_per_generation']}, ", ""
        ),
        fontsize=9,
    )
    return plots.save(fig, outdir, "discrete_sweep")
