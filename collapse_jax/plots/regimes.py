"""The regime-comparison figure: one metric against generation for every regime of a sweep.

Each run of the sweep directory (``launch.sweep``) is one line in its regime's colour
(``style.REGIME_COLORS``): the seed mean, a 10-90% seed band, and, where ``theory.py`` has a closed
form for that regime and metric (1-D Gaussian ``variance`` and ``mean_error``; discrete
``gini_simpson``, ``support_size``, ``tail_mass``), the exact expectation dotted in the regime's
darker shade.
"""

from pathlib import Path

import numpy as np

from collapse_jax import plots, theory
from collapse_jax.errors import ConfigError
from collapse_jax.plots import Run, load_run, seed_band, style

# The metrics ``launch.regimes`` compares by default, per experiment (those with theory first).
METRICS = {
    "gaussian": ("variance", "mean_error"),
    "discrete": ("gini_simpson", "support_size", "tail_mass"),
    "gmm": ("l2_to_gmm0", "l2_to_truth"),
    "linear_regression": ("test_error",),
    "kde": ("nll", "mmd"),
    "vae": ("latent_std", "class_entropy"),
    "opt_wikitext": ("test_perplexity",),
}
_LOG = ("variance", "mean_error", "w2_squared", "l2_to_gmm0", "l2_to_truth", "test_error")


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


def check_sweep(all_runs, sweep_dir, metric: str | None = None) -> None:
    """A ``ConfigError`` naming what is missing unless ``all_runs`` form a regime sweep that
    records ``metric``."""
    from collapse_jax.plots import compare

    if not all_runs:
        raise FileNotFoundError(f"{sweep_dir}: no run with a metrics.jsonl under it")
    regimes_seen = [r.config["mixing"]["regime"] for r in all_runs]
    if len(all_runs) == 1:
        raise ConfigError(
            f"{sweep_dir}: one run ({regimes_seen[0]}), not a sweep: launch.regimes compares the "
            "runs of a sweep over mixing.regime (launch.sweep --config=configs/gaussian.py:regimes)"
        )
    if len(set(map(label, all_runs))) == 1:
        fields = compare.differing_fields([r.config for r in all_runs])
        raise ConfigError(
            f"{sweep_dir}: not a regime sweep: launch.regimes compares runs that differ in "
            f"mixing.regime (e.g. configs/gaussian.py:regimes), and these {len(all_runs)} runs all "
            f"use {regimes_seen[0]!r} (they differ in {', '.join(fields) or 'nothing'}); use "
            f"launch.report --workdir={sweep_dir} or launch.compare for this sweep"
        )
    other = [
        f
        for f in compare.differing_fields([r.config for r in all_runs])
        if not f.startswith("mixing.")
    ]
    if other:
        raise ConfigError(
            f"{sweep_dir}: launch.regimes compares runs that differ only in their mixing fields; "
            f"these also differ in {', '.join(other)}: use launch.report --workdir={sweep_dir} "
            f"(every run and the comparisons), or launch.compare with a glob that keeps one "
            f"value, e.g. --workdirs='{sweep_dir}/*{other[0]}=...*'"
        )
    if metric is not None:
        for run in all_runs:
            if metric not in run.metrics:
                raise ConfigError(
                    f"metrics: {run.workdir} ({run.config['experiment']}) has no metric "
                    f"{metric!r}; it has {sorted(run.metrics)}"
                )


def default_metrics(sweep_dir) -> tuple[str, ...]:
    """The metrics compared when none are named: the experiment's (``METRICS``)."""
    all_runs = runs(sweep_dir)
    if not all_runs:
        raise FileNotFoundError(f"{sweep_dir}: no run with a metrics.jsonl under it")
    experiment = all_runs[0].config["experiment"]
    return METRICS.get(experiment, ())


def figure(sweep_dir, metric: str, outdir=None, log=None) -> Path:
    """``regimes_<metric>.png`` in ``outdir`` (default ``sweep_dir/figures``)."""
    all_runs = runs(sweep_dir)
    check_sweep(all_runs, sweep_dir, metric)
    fig, ax = style.new(width=8.5, height=4.5)
    colors = style.run_colors([r.config for r in all_runs])
    for run, color in zip(all_runs, colors, strict=True):
        seed_band(
            ax, run.generations, run.metrics[metric], label=label(run), color=color, median=False
        )
        curve = theory_curve(run, metric)
        if curve is not None:
            style.theory(ax, run.generations, curve, color)
    if log if log is not None else metric in _LOG:
        style.log_y(ax)
    ax.set_xlabel("generation")
    ax.set_ylabel(style.metric_label(metric))
    first = all_runs[0].config
    ax.set_title(
        f"{first['experiment']}: M = {first['samples_per_generation']}, "
        f"{all_runs[0].metrics[metric].shape[1]} seeds per regime",
        fontsize=9,
    )
    style.figure_legend(fig, [ax])
    return plots.save(fig, Path(outdir or Path(sweep_dir) / "figures"), f"regimes_{metric}")


def table(sweep_dir, metric: str, generations=None) -> str:
    """A markdown table: seed mean (and its standard error) of ``metric`` and theory per regime."""
    all_runs = runs(sweep_dir)
    check_sweep(all_runs, sweep_dir, metric)
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
