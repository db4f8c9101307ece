"""Figures of data-ecosystem sweeps: arms compared with their exact theory, rank-frequency curves.

``comparison`` draws one metric against generation for every run of a sweep directory (the seed
mean and a 10-90% seed band per arm) with the exact expectation dashed where ``theory.py`` has
one for that arm (``theory_curve``): the 1-D Gaussian under any sampling temperature and the
regimes ``pool_moments`` covers, and the discrete chain's support, tail mass and Gini-Simpson
under any sampling bias while its compositions fit in memory (``theory.truncated_chain_law``).
``rank_frequencies`` draws "A tale of tails"'s picture: the fitted frequencies sorted per seed,
averaged by rank, at a few generations (log-log), the truth's Zipf law beside them.
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from collapse_jax import mixing, theory
from collapse_jax.plots import Run, load_run, save, seed_band


def runs(sweep_dir) -> list[Run]:
    """Every run (a directory holding ``metrics.jsonl``) under ``sweep_dir``, in name order."""
    found = sorted(p.parent for p in Path(sweep_dir).glob("*/metrics.jsonl"))
    if (Path(sweep_dir) / "metrics.jsonl").exists():
        found = [Path(sweep_dir)]
    return [load_run(p) for p in found]


def label(run: Run) -> str:
    """The arm's name: its sweep folder (``FIELD=VALUE``), else its regime and sampling."""
    name = run.workdir.name
    if "=" in name:
        return name
    s = run.config.get("sampling", {})
    return f"{run.config['mixing']['regime']}, temperature {s.get('temperature', 1.0)}"


def _discrete_q(cfg) -> np.ndarray:
    from collapse_jax.families import discrete
    from configs import discrete as discrete_config

    c = discrete_config.get_config("smoke")
    c.discrete.update(cfg["discrete"])
    return discrete.original_probs(c)


def gaussian_moments(cfg: dict, num_generations: int, cross: bool = False):
    """``(E[sigma^2], E[(mu - mu0)^2])`` of a 1-D Gaussian run (``cross``: and the two lineages'
    ``E[(mu_l - mu0)(mu_k - mu0)]``), or None where no closed form is known (curation, fit
    weights, a detector that tells rows apart, regime custom, the statistics sampler's records
    included)."""
    mix, g = cfg["mixing"], cfg["gaussian"]
    if g["dim"] != 1 or mix["curation"]["score"] != "none":
        return None
    if (mix["real_weight"], mix["synthetic_weight"]) != (1.0, 1.0):
        return None
    # A detector with d = 0 or b = 0 weights every row alike: the uniform draw, as unknown.
    if mix.get("provenance", "unknown") == "detector" and (
        mix["detector_separation"] > 0 and mix["detector_exponent"] > 0
    ):
        return None
    m, est, sd = cfg["samples_per_generation"], g["estimator"], g["std"]
    lam = cfg.get("sampling", {}).get("temperature", 1.0)
    kw = dict(estimator=est, temperature=lam, sigma=sd, cross=cross)
    if mix["regime"] == "custom":
        return None
    axes = mixing.as_composed(mix, m)
    return theory.axes_moments(num_generations, m, axes, **kw)


def theory_curve(run: Run, metric: str):
    """The exact expectation of ``metric`` at the run's generations, or None."""
    cfg, gens = run.config, np.asarray(run.generations)
    if gens.size == 0:
        return None
    n = int(gens.max()) + 1
    if cfg["experiment"] == "gaussian" and metric in ("variance", "mean_error", "lineage_spread"):
        moments = gaussian_moments(cfg, n, cross=True)
        if moments is None:
            return None
        v, e, p = moments
        # (the spread of two lineages, 2 (e - p): theory.lineage_spread)
        return {"variance": v, "mean_error": e, "lineage_spread": 2 * (e - p)}[metric][gens]
    mix = cfg["mixing"]
    weights = (mix["real_weight"], mix["synthetic_weight"])
    plain = mix["curation"]["score"] == "none" and weights == (1.0, 1.0)
    unbiased = cfg.get("sampling", {}) in ({}, dict(temperature=1.0, top_k=0, top_p=1.0))
    if cfg["experiment"] == "discrete" and metric == "gini_simpson" and plain and unbiased:
        if mix["regime"] != "custom":  # every other regime is a point of the axes
            m = cfg["samples_per_generation"]
            axes = mixing.as_composed(mix, m)
            curve = theory.axes_gini_simpson(n, m, _discrete_q(cfg), axes)
            return None if curve is None else curve[gens]
    if cfg["experiment"] == "discrete" and cfg["mixing"]["regime"] == "replace":
        if cfg["mixing"]["curation"]["score"] != "none":
            return None
        q, m = _discrete_q(cfg), cfg["samples_per_generation"]
        s = cfg.get("sampling", {})
        bias = dict(
            temperature=s.get("temperature", 1.0),
            top_k=s.get("top_k", 0),
            top_p=s.get("top_p", 1.0),
        )
        if metric in ("support_size", "tail_mass"):
            try:
                support, tail, _ = theory.truncated_support_and_tail(q, m, n, **bias)
            except ValueError:  # too many compositions for the exact law
                if bias != dict(temperature=1.0, top_k=0, top_p=1.0):
                    return None
                support, tail = theory.wright_fisher_support_and_tail(q, m, n)
            return (support if metric == "support_size" else tail)[gens]
        if metric == "gini_simpson" and bias == dict(temperature=1.0, top_k=0, top_p=1.0):
            return theory.expected_gini_simpson(gens, q, m)
    return None


def runs_with(sweep_dir, metric: str) -> list[Run]:
    """The arms that record ``metric`` (one lineage records no ``lineage_spread``); a KeyError
    naming an arm's metrics when none does."""
    all_runs = runs(sweep_dir)
    if not all_runs:
        raise FileNotFoundError(f"{sweep_dir}: no run with a metrics.jsonl under it")
    have = [r for r in all_runs if metric in r.metrics]
    if not have:
        run = all_runs[0]
        raise KeyError(f"{run.workdir}: no metric {metric!r} (has {sorted(run.metrics)})")
    return have


def comparison(sweep_dir, metric: str, outdir=None, log=None) -> Path:
    """``ecosystem_<metric>.png``: every arm of the sweep that records ``metric``, exact theory
    dashed where known."""
    all_runs = runs_with(sweep_dir, metric)
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    drawn = False
    for run in all_runs:
        seed_band(ax, run.generations, run.metrics[metric], label=label(run), median=False)
        curve = theory_curve(run, metric)
        if curve is not None:
            # Black on top of the arm's own colour: where they agree the line still shows.
            ax.plot(run.generations, curve, "k--", lw=0.8, zorder=5)
            drawn = True
    if drawn:
        ax.plot([], [], "k--", lw=1.0, label="exact expectation")
    if log if log is not None else metric in ("variance", "mean_error", "w2_squared", "tail_mass"):
        ax.set_yscale("log")
    ax.set_xlabel("generation")
    ax.set_ylabel(f"{metric} (seed mean, 10-90% band)")
    first = all_runs[0]
    ax.set_title(
        f"{first.config['experiment']}: M = {first.config['samples_per_generation']}, "
        f"{first.metrics[metric].shape[1]} seeds per arm"
    )
    ax.legend(fontsize=8)
    return save(fig, Path(outdir or Path(sweep_dir) / "figures"), f"ecosystem_{metric}")


def table(sweep_dir, metric: str, generations=None) -> str:
    """A markdown table: each arm's seed mean ± standard error, and the exact value where known."""
    all_runs = runs_with(sweep_dir, metric)
    g_last = int(all_runs[0].generations.max())
    gens = sorted(set(generations or {0, 1, 10, g_last // 2, g_last}) & set(range(g_last + 1)))
    lines = ["| arm | " + " | ".join(f"g={g}" for g in gens) + " |", "|" + "---|" * (len(gens) + 1)]
    for run in all_runs:
        y = np.asarray(run.metrics[metric], float)
        while y.ndim > 2:
            y = y.mean(-1)
        curve = theory_curve(run, metric)
        cells = []
        for g in gens:
            i = int(np.searchsorted(run.generations, g))
            se = y[i].std(ddof=1) / np.sqrt(y.shape[1]) if y.shape[1] > 1 else float("nan")
            cell = f"{y[i].mean():.4g} ± {se:.2g}"
            if curve is not None:
                cell += f" (exact {curve[i]:.4g})"
            cells.append(cell)
        lines.append(f"| {label(run)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rank_frequencies(sweep_dir, generations=(0, 1, 5, 20), outdir=None) -> Path:
    """``ecosystem_rank_frequency.png``: per arm, the mean fitted frequency by rank (sorted within
    each seed) at ``generations``, log-log, with the truth's q; needs the discrete runs' metric
    ``frequencies`` (``discrete.record_frequencies``)."""
    all_runs = [r for r in runs(sweep_dir) if "frequencies" in r.metrics]
    if not all_runs:
        raise KeyError(f"{sweep_dir}: no run records 'frequencies' (discrete.record_frequencies)")
    fig, axes = plt.subplots(
        1, len(all_runs), figsize=(3.2 * len(all_runs), 3.4), sharey=True, layout="constrained"
    )
    axes = np.atleast_1d(axes)
    cmap = plt.get_cmap("viridis")
    for ax, run in zip(axes, all_runs, strict=True):
        q = np.sort(_discrete_q(run.config))[::-1]
        ranks = np.arange(1, q.size + 1)
        ax.plot(ranks, q, "k-", lw=1.5, label="truth q")
        freq = run.metrics["frequencies"]
        shown = [g for g in generations if g <= int(run.generations.max())]
        for j, g in enumerate(shown):
            i = int(np.searchsorted(run.generations, g))
            p = -np.sort(-np.asarray(freq[i], float), axis=-1)  # [S, K], descending per seed
            mean = p.mean(0)
            ok = mean > 0
            ax.plot(ranks[ok], mean[ok], "o-", ms=2.5, lw=1, color=cmap(j / max(len(shown), 1)))
            ax.plot([], [], "o-", ms=2.5, color=cmap(j / max(len(shown), 1)), label=f"g={g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(label(run), fontsize=9)
        ax.set_xlabel("rank")
    axes[0].set_ylabel("mean fitted frequency at that rank")
    axes[-1].legend(fontsize=7)
    return save(fig, Path(outdir or Path(sweep_dir) / "figures"), "ecosystem_rank_frequency")


def config_summary(run: Run) -> str:
    """The sampling and mixing fields of a run, one JSON line (for tables and logs)."""
    keep = {k: run.config[k] for k in ("sampling", "mixing") if k in run.config}
    return json.dumps(keep, sort_keys=True)
