"""Figures of the OPT WikiText pipeline (Shumailov et al., Fig. 1) from one run (one regime).

``launch.report`` draws one run; ``compare`` puts several regimes side by side (the paper's Fig. 1):

  python -m collapse_jax.plots.opt --out=/tmp/fig1 /tmp/opt_cpu /tmp/opt_cpu_keep10

perplexity_histograms  per-block perplexity of each generation's training data under the
                       generation-0 model (generations 0, 1, 2, 3, 5, 9 that exist; log x axis)
test_perplexity        test perplexity against generation (seed mean, 10-90% band, median)
tail                   rare-token probability mass (with the test set's empirical share), rare
                       token / n-gram NLL, and the distinct-n share of the training data
diversity              self-BLEU and rep-n of each generation's training data, and Drayson's
                       diversity prod_n (1 - rep_n) (``families/lm/diversity.py``)
"""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from collapse_jax import plots

HIST_GENERATIONS = (0, 1, 2, 3, 5, 9)


def regime_label(config: dict) -> str:
    mix = config["mixing"]
    data = "model data only" if mix["regime"] == "replace" else f"mixing {mix['regime']}"
    if mix["regime"] == "keep_real":
        data = f"{round(100 * mix['gamma'])}% original data"
    n = config["finetune"]["num_epochs"]
    decoder = config.get("lm_decoder", "beam")  # runs older than the decoder axis used beam
    return f"{config['lm_regime']} ({n} epoch{'s' * (n != 1)}, {data}, {decoder})"


def _hist_arrays(run) -> dict[int, np.ndarray]:
    """``generation -> per-block perplexities of every seed, pooled``, for the shown generations."""
    out = {}
    for g in HIST_GENERATIONS:
        files = sorted((run.workdir / "arrays").glob(f"gen_{g}_seed_*.npy"))
        if files and g in run.generations:
            out[g] = np.concatenate([np.load(f) for f in files])
    return out


def _names(run, prefix: str) -> list[str]:
    return sorted(k for k in run.metrics if k.startswith(prefix))


def figures(run, outdir) -> list[Path]:
    label = regime_label(run.config)
    paths = []

    if _hist_arrays(run):
        fig, ax = plt.subplots(figsize=(6.5, 4))
        _histograms(ax, run)
        paths.append(plots.save(fig, outdir, "perplexity_histograms"))

    x = run.generations
    fig, ax = plt.subplots(figsize=(5, 3.5))
    plots.seed_band(ax, x, run.metrics["test_perplexity"], label="test perplexity")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel("test perplexity")
    ax.set_title(label, fontsize=9)
    paths.append(plots.save(fig, outdir, "test_perplexity"))

    reference = _reference(run)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for name in _names(run, "rare_mass_"):
        line = plots.seed_band(axes[0], x, run.metrics[name], label=name.removeprefix("rare_"))
        share = reference.get(f"rare_tokens_{name.removeprefix('rare_mass_')}", {})
        if "test_share" in share:
            axes[0].axhline(share["test_share"], color=line.get_color(), ls=":", lw=1)
    axes[0].set_ylabel("P(next test token is rare)")
    axes[0].set_title("rare-token mass (dotted: empirical test share)", fontsize=9)
    # Rare tokens at every level; rare n-grams at the first level only (their levels mostly share
    # the hapax class, so the curves coincide).
    nll = _names(run, "rare_token_nll_")
    first_q = nll[0].removeprefix("rare_token_nll_") if nll else ""
    nll += [k for k in _names(run, "rare_") if "gram_nll_" in k and k.endswith(first_q)]
    for name in nll:
        plots.seed_band(axes[1], x, run.metrics[name], label=name.removeprefix("rare_"))
    axes[1].set_ylabel("NLL of rare test occurrences (nats)")
    for name in _names(run, "distinct_"):
        plots.seed_band(axes[2], x, run.metrics[name], label=name)
    axes[2].set_ylabel("distinct n-grams / n-grams of the training data")
    _finish(fig, axes, label)
    paths.append(plots.save(fig, outdir, "tail"))

    if "diversity" in run.metrics:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for name in [*_names(run, "self_bleu_"), "diversity"]:
            plots.seed_band(axes[0], x, run.metrics[name], label=name)
        axes[0].set_ylabel("self-BLEU / diversity of the training data")
        for name in _names(run, "rep_"):
            plots.seed_band(axes[1], x, run.metrics[name], label=name)
        axes[1].set_ylabel("share of repeated n-grams in a block")
        _finish(fig, axes, label)
        paths.append(plots.save(fig, outdir, "diversity"))
    return paths


def _finish(fig, axes, label: str) -> None:
    """Integer generations on every x axis, legends, and the run's label as the title."""
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("generation")
        ax.legend(fontsize=7)
    fig.suptitle(label, fontsize=9)


def _histograms(ax, run) -> None:
    arrays = _hist_arrays(run)
    if not arrays:
        return
    lo = min(a.min() for a in arrays.values())
    hi = max(a.max() for a in arrays.values())
    bins = np.geomspace(lo, hi * 1.0001, 60)
    cmap = plt.get_cmap("viridis")
    for i, (g, a) in enumerate(arrays.items()):
        color = cmap(i / max(len(arrays) - 1, 1))
        # Fractions per (geometric) bin, not a density in x: comparable on the log axis.
        weights = np.full(a.shape, 1.0 / a.size)
        ax.hist(
            a, bins=bins, weights=weights, histtype="step", lw=1.5, color=color, label=f"gen {g}"
        )
    ax.set_xscale("log")
    ax.set_xlabel("perplexity under the generation-0 model")
    ax.set_ylabel("fraction of blocks")
    ax.set_title(regime_label(run.config), fontsize=9)
    ax.legend(fontsize=8)


def compare(workdirs, outdir) -> list[Path]:
    """Fig. 1 of the paper for several runs (regimes): histograms per regime, test perplexity."""
    runs = [plots.load_run(w) for w in workdirs]
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        _histograms(ax, run)
    paths = [plots.save(fig, outdir, "compare_perplexity_histograms")]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for run in runs:
        plots.seed_band(
            ax, run.generations, run.metrics["test_perplexity"], regime_label(run.config)
        )
    ax.set_xlabel("generation")
    ax.set_ylabel("test perplexity")
    ax.legend(fontsize=7)
    paths.append(plots.save(fig, outdir, "compare_test_perplexity"))
    if all("diversity" in run.metrics for run in runs):
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        for run in runs:
            plots.seed_band(ax, run.generations, run.metrics["diversity"], regime_label(run.config))
        ax.set_xlabel("generation")
        ax.set_ylabel("diversity of the training data")
        ax.legend(fontsize=7)
        paths.append(plots.save(fig, outdir, "compare_diversity"))
    return paths


def _reference(run) -> dict:
    path = run.workdir / "reference.json"
    return json.loads(path.read_text()) if path.exists() else {}


def summary(run) -> str:
    m = run.metrics
    cols = [
        ("test ppl", "test_perplexity"),
        ("data ppl median", "data_ppl_q50"),
        ("data ppl 95%", "data_ppl_q95"),
        ("rare mass q10", "rare_mass_q10"),
        ("distinct-4", "distinct_4"),
        ("self-BLEU-4", "self_bleu_4"),
        ("diversity", "diversity"),
    ]
    cols = [(h, k) for h, k in cols if k in m]
    lines = [
        f"## OPT WikiText: {regime_label(run.config)}",
        "",
        f"{m['test_perplexity'].shape[1]} seed(s); seed mean (std). Data perplexities are "
        "scored by the generation-0 model.",
        "",
        "| generation | " + " | ".join(h for h, _ in cols) + " |",
        "| --- |" + " --- |" * len(cols),
    ]
    for i, g in enumerate(run.generations):
        cells = [f"{m[k][i].mean():.4g} ({m[k][i].std():.2g})" for _, k in cols]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Fig. 1 for several opt_wikitext runs.")
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    for path in compare(args.workdirs, args.out):
        print(path)
