"""The report of a sweep folder (``launch.sweep``'s DIR): ``launch.report --workdir=DIR``.

Writes every run's own report (``DIR/RUN/figures/*.png``, ``DIR/RUN/summary.md``), the sweep's
comparison figures in ``DIR/figures/`` (the headline metric of every run, ``compare_METRIC.png``;
the family's sweep figure where the swept fields are the ones it draws; the regime figures of
``launch.regimes`` for a sweep over ``mixing.regime`` alone) and ``DIR/summary.md``: the figures,
then the tables of ``tables(runs)`` (the runs' final metrics, a link to each run's figures).
"""

from pathlib import Path

import numpy as np

from collapse_jax import plots
from collapse_jax.plots import compare, regimes

# Metrics of the final-metrics table, per experiment (those a run records are shown).
TABLE_METRICS = {
    "gaussian": ("variance", "mean_error", "w2_squared"),
    "discrete": ("support_size", "tail_mass", "gini_simpson"),
    "gmm": ("l2_to_gmm0", "l2_to_truth", "heldout_loglik"),
    "linear_regression": ("test_error", "test_mse"),
    "kde": ("nll", "mmd"),
    "vae": ("latent_std", "class_entropy", "train_loss"),
    "opt_wikitext": ("test_perplexity", "data_ppl_q50", "distinct_4", "diversity"),
}
# The swept fields each family's ``sweep_figure`` tells apart (its panels, colours and labels).
SWEEP_FIGURE_FIELDS = {
    "gaussian": {"samples_per_generation"},
    "discrete": {"samples_per_generation"},
    "gmm": {"samples_per_generation"},
    "kde": {"mixing.regime", "kde.dataset", "kde.bandwidth", "samples_per_generation"},
    "linear_regression": {
        "mixing.regime",
        "linear_regression.dim",
        "linear_regression.noise_variance",
        "samples_per_generation",
    },
}


def is_sweep(directory) -> bool:
    """A folder of runs (``launch.sweep``'s), not a run: no config.json, runs below it."""
    d = Path(directory)
    return d.is_dir() and not (d / "config.json").exists() and any(d.glob("*/config.json"))


def run_dirs(sweep_dir) -> list[Path]:
    """The run folders of a sweep (any name, so sweeps of older versions are read too), in the
    order of their values (``T=32`` before ``T=100``, which sorting the names would swap)."""
    return sorted((p.parent for p in Path(sweep_dir).glob("*/config.json")), key=_by_values)


def _by_values(run_dir: Path) -> list[tuple]:
    """``FIELD=V+FIELD=V`` as ``[(FIELD, V)]``: numbers by value, the rest as text."""
    key = []
    for part in run_dir.name.split("+"):
        field, _, value = part.partition("=")
        try:
            key.append((field, 0, float(value), ""))
        except ValueError:
            key.append((field, 1, 0.0, value))
    return key


def report(sweep_dir) -> tuple[list[Path], str]:
    """Write the sweep's report; return the figure paths and the summary (markdown)."""
    sweep_dir = Path(sweep_dir)
    dirs = run_dirs(sweep_dir)
    if not dirs:
        raise FileNotFoundError(f"{sweep_dir}: no run under it (no */config.json)")
    run_figures, problems = {}, []
    for d in dirs:
        if not (d / "metrics.jsonl").exists():
            problems.append(f"- `{d.name}`: not started (no metrics.jsonl); rerun the sweep")
            continue
        paths, _ = plots.report(d)
        run_figures[d] = paths
    runs = [plots.load_run(d) for d in run_figures]
    figs = comparison_figures(sweep_dir, runs)
    fields = compare.differing_fields([r.config for r in runs])
    experiment = runs[0].config["experiment"] if runs else "?"
    lines = [
        f"# Sweep {sweep_dir.name}: {experiment}, {len(dirs)} runs",
        "",
        f"The runs differ in: {', '.join(f'`{f}`' for f in fields) or 'nothing'}. "
        "Each run's own report is its `summary.md` and `figures/`.",
        "",
    ]
    if problems:
        lines += ["Not reported:", "", *problems, ""]
    if figs:
        lines += ["## Comparison figures", ""]
        lines += [f"![{p.stem}]({p.relative_to(sweep_dir).as_posix()})" for p in figs]
        lines.append("")
    for heading, table in tables(runs, sweep_dir, run_figures):
        lines += [f"## {heading}", "", table, ""]
    summary = "\n".join(lines)
    (sweep_dir / "summary.md").write_text(summary)
    return figs, summary


def comparison_figures(sweep_dir: Path, runs) -> list[Path]:
    """The sweep's figures in ``sweep_dir/figures``: headline comparison, the family's sweep
    figure, the regime figures (see the module docstring for when each is drawn)."""
    if len(runs) < 2:
        return []
    out_dir = sweep_dir / "figures"
    experiment = runs[0].config["experiment"]
    dirs = [r.workdir for r in runs]
    fields = set(compare.differing_fields([r.config for r in runs]))
    paths = []
    metric = compare.HEADLINE.get(experiment)
    if metric is not None and all(metric in r.metrics for r in runs):
        paths.append(compare.compare(dirs, metric, out=out_dir / f"compare_{metric}.png"))
    mod = plots_module(experiment)
    if fields and fields <= SWEEP_FIGURE_FIELDS.get(experiment, set()):
        paths.append(mod.sweep_figure(dirs, out_dir))
    if experiment == "opt_wikitext":
        paths += mod.compare(dirs, out_dir)
    if fields and all(f.startswith("mixing.") for f in fields) and "mixing.regime" in fields:
        for m in regimes.METRICS.get(experiment, ()):
            if all(m in r.metrics for r in runs):
                paths.append(regimes.figure(sweep_dir, m, out_dir))
    return paths


def plots_module(experiment: str):
    from collapse_jax import experiments

    return experiments.get(experiment).plots()


def tables(runs, sweep_dir: Path, run_figures: dict) -> list[tuple[str, str]]:
    """Every table of the sweep report, as ``(heading, markdown)``, in order.

    The hook for per-run tables: a table over the runs (such as a collapse profile) is one more
    entry here, computed from ``runs`` (``plots.Run``s, one per reported run).
    """
    return [("Runs at their last generation", final_metrics_table(runs, sweep_dir, run_figures))]


def final_metrics_table(runs, sweep_dir: Path, run_figures: dict) -> str:
    """One row per run: its swept values, generations and seeds, the last generation's seed
    median (mean ± s.e.) of the experiment's table metrics, and links to its figures."""
    if not runs:
        return "(no run has metrics yet)"
    fields = compare.differing_fields([r.config for r in runs])
    experiment = runs[0].config["experiment"]
    metrics = [m for m in TABLE_METRICS.get(experiment, ()) if all(m in r.metrics for r in runs)]
    head = ["run", *[f"`{f}`" for f in fields], "generations", "seeds"]
    head += [f"{m}: median (mean ± s.e.)" for m in metrics] + ["figures"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for run in runs:
        name = run.workdir.name
        rel = run.workdir.relative_to(sweep_dir).as_posix()
        cells = [f"[{name}]({_link(rel)}/summary.md)"]
        cells += [str(compare._value(run.config, f)) for f in fields]
        g = run.generations
        seeds = {np.shape(run.metrics[m])[1] for m in metrics} or {"?"}
        cells += [f"0..{int(g[-1])}" if len(g) else "none", "/".join(map(str, seeds))]
        for m in metrics:
            v = np.asarray(run.metrics[m][-1], float).ravel()
            se = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
            cells.append(f"{np.median(v):.4g} ({v.mean():.4g} ± {se:.2g})")
        figs = run_figures.get(run.workdir, [])
        cells.append(
            ", ".join(f"[{p.stem}]({_link(p.relative_to(sweep_dir).as_posix())})" for p in figs)
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _link(path: str) -> str:
    # Markdown links break at spaces and parentheses; run names may hold both (tuple values).
    return path.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
