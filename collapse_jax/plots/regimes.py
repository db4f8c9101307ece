"""The regime-comparison figure: one metric against generation for every regime of a sweep.

Each run of the sweep directory (``launch.sweep``) is one line: the seed mean, a 10-90% seed band,
and, where ``theory.py`` has a closed form for that regime and metric (1-D Gaussian ``variance``
and ``mean_error``; discrete ``gini_simpson``, ``support_size``, ``tail_mass``), the exact
expectation dashed in black.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from collapse_jax import theory
from collapse_jax.plots import Run, load_run, save, seed_band


def runs(sweep_dir) -> list[Run]:
    """Every finished or partial run under ``sweep_dir`` (a directory holding ``metrics.jsonl``)."""
    found = sorted(p.parent for p in Path(sweep_dir).glob("*/metrics.jsonl"))
    if (Path(sweep_dir) / "metrics.jsonl").exists():
        found = [Path(sweep_dir)]
    return [load_run(p) for p in found]


def label(run: Run) -> str:
    mix = run.config["mixing"]
    regime = mix["regime"]
    if regime == "augment":
        return f"augment (lambda={mix['augment_ratio']})"
    if regime == "fresh":
        return f"fresh (gamma={mix['fresh_fraction']})"
    if regime in ("keep_real", "custom"):
        return f"{regime} (alpha={mix['alpha']}, beta={mix['beta']}, gamma={mix['gamma']})"
    return regime


def theory_curve(run: Run, metric: str):
    """The exact expectation of ``metric`` for this run's generations, or None where there is none."""
    cfg, g = run.config, run.generations
    mix = cfg["mixing"]
    if mix["curation"]["score"] != "none" or (mix["real_weight"], mix["synthetic_weight"]) != (
        1.0,
        1.0,
    ):
        return None
    m, regime = cfg["samples_per_generation"], mix["regime"]
    if cfg["experiment"] == "gaussian" and cfg["gaussian"]["dim"] == 1:
        est, s = cfg["gaussian"]["estimator"], cfg["gaussian"]["std"]
        if metric not in ("variance", "mean_error"):
            return None
        if regime == "replace":
            f = theory.expected_variance if metric == "variance" else theory.expected_mean_error
            return f(g, m, est, s)
        if regime == "accumulate":
            if metric == "variance":
                return theory.accumulate_expected_variance(g, m, est, s)
            return theory.accumulate_expected_mean_error(g, m, est, s)
        if regime in ("augment", "fresh"):
            if regime == "augment":
                v, e = theory.augment_moments(g.max() + 1, m, mix["augment_ratio"], est, s)
            else:
                v, e = theory.fresh_moments(g.max() + 1, m, mix["fresh_fraction"], est, s)
            return (v if metric == "variance" else e)[g]
    if cfg["experiment"] == "discrete":
        from collapse_jax.families import discrete
        from configs import discrete as discrete_config

        c = discrete_config.get_config("smoke")
        c.discrete.update(cfg["discrete"])
        q = discrete.original_probs(c)
        if metric == "gini_simpson" and regime == "replace":
            return theory.expected_gini_simpson(g, q, m)
        if metric == "gini_simpson" and regime == "accumulate":
            return theory.accumulate_expected_gini_simpson(g, q, m)
        if metric in ("support_size", "tail_mass") and regime == "replace":
            support, tail = theory.wright_fisher_support_and_tail(q, m, int(g.max()) + 1)
            return (support if metric == "support_size" else tail)[g]
        if metric in ("support_size", "tail_mass") and regime in ("accumulate", "augment"):
            # D_0 stays in the pool, so no state of generation 0 is ever lost (nor one gained).
            support, tail = theory.wright_fisher_support_and_tail(q, m, 1)
            return np.full(g.shape, (support if metric == "support_size" else tail)[0])
    return None


def figure(sweep_dir, metric: str, outdir=None, log=None) -> Path:
    """``regimes_<metric>.png`` in ``outdir`` (default ``sweep_dir/figures``)."""
    all_runs = runs(sweep_dir)
    if not all_runs:
        raise FileNotFoundError(f"{sweep_dir}: no run with a metrics.jsonl under it")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    theory_drawn = False
    for run in all_runs:
        if metric not in run.metrics:
            raise KeyError(f"{run.workdir}: no metric {metric!r} (has {sorted(run.metrics)})")
        seed_band(ax, run.generations, run.metrics[metric], label=label(run), median=False)
        curve = theory_curve(run, metric)
        if curve is not None:
            ax.plot(run.generations, curve, "k--", lw=0.8, label=None)
            theory_drawn = True
    if theory_drawn:
        ax.plot([], [], "k--", lw=0.8, label="theory (exact expectation)")
    if log if log is not None else metric in ("variance", "mean_error", "w2_squared"):
        ax.set_yscale("log")
    ax.set_xlabel("generation")
    ax.set_ylabel(f"{metric} (seed mean, 10-90% band)")
    first = all_runs[0].config
    ax.set_title(
        f"{first['experiment']}: M = {first['samples_per_generation']}, "
        f"{all_runs[0].metrics[metric].shape[1]} seeds"
    )
    ax.legend(fontsize=8)
    return save(fig, Path(outdir or Path(sweep_dir) / "figures"), f"regimes_{metric}")


def table(sweep_dir, metric: str, generations=None) -> str:
    """A markdown table: seed mean (and its standard error) of ``metric`` and theory per regime."""
    all_runs = runs(sweep_dir)
    g_last = all_runs[0].generations.max()
    gens = generations or sorted({0, 1, 10, g_last // 2, g_last} & set(range(g_last + 1)))
    head = "| regime | " + " | ".join(f"g={g}" for g in gens) + " |"
    lines = [head, "|" + "---|" * (len(gens) + 1)]
    for run in all_runs:
        y = run.metrics[metric]
        curve = theory_curve(run, metric)
        cells = []
        for g in gens:
            i = int(np.searchsorted(run.generations, g))
            se = y[i].std(ddof=1) / np.sqrt(y.shape[1])
            cell = f"{y[i].mean():.4g} ± {se:.2g}"
            if curve is not None:
                cell += f" (theory {curve[i]:.4g})"
            cells.append(cell)
        lines.append(f"| {label(run)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
