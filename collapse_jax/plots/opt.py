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

import numpy as np
from matplotlib.ticker import MaxNLocator

from collapse_jax import plots
from collapse_jax.plots import style

HIST_GENERATIONS = (0, 1, 2, 3, 5, 9)


def regime_label(config: dict) -> str:
    """What a run's generations did: epochs, data and decoder (the ``lm_regime`` preset's name is
    left out: a ``cpu`` variant of the paper's "5ep" regime runs fewer epochs)."""
    mix = config["mixing"]
    data = "model data only" if mix["regime"] == "replace" else f"mixing {mix['regime']}"
    if mix["regime"] == "keep_real":
        data = f"{round(100 * mix['gamma'])}% original data"
    n = config["finetune"]["num_epochs"]
    decoder = config.get("lm_decoder", "beam")  # runs older than the decoder axis used beam
    return f"{n} epoch{'s' * (n != 1)} a generation, {data}, {decoder}"


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
    color = style.run_color(run.config)
    paths = []

    if _hist_arrays(run):
        fig, ax = style.new(width=6.5, height=4)
        _histograms(ax, run)
        paths.append(plots.save(fig, outdir, "perplexity_histograms"))

    x = run.generations
    fig, ax = style.new(width=5.5, height=3.8)
    plots.seed_band(ax, x, run.metrics["test_perplexity"], label="test perplexity", color=color)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel("test perplexity (per token)")
    ax.set_title(label, fontsize=9)
    style.legend(ax)
    paths.append(plots.save(fig, outdir, "test_perplexity"))

    reference = _reference(run)
    fig, axes = style.new(3, width=15, height=4)
    rare = _names(run, "rare_mass_")
    for name, c in zip(rare, style.ordered_colors(len(rare)), strict=True):
        level = name.removeprefix("rare_mass_")
        plots.seed_band(axes[0], x, run.metrics[name], label=f"rare tokens, {level}", color=c)
        share = reference.get(f"rare_tokens_{level}", {})
        if "test_share" in share:
            axes[0].axhline(
                share["test_share"], color=c, ls=":", lw=1, label=f"{level}: test-set share"
            )
    axes[0].set_ylabel("P(next test token is rare)")
    axes[0].set_title("rare-token probability mass", fontsize=9)
    # Rare tokens at every level; rare n-grams at the first level only (their levels mostly share
    # the hapax class, so the curves coincide).
    nll = _names(run, "rare_token_nll_")
    first_q = nll[0].removeprefix("rare_token_nll_") if nll else ""
    nll += [k for k in _names(run, "rare_") if "gram_nll_" in k and k.endswith(first_q)]
    for name, c in zip(nll, style.ordered_colors(len(nll)), strict=True):
        kind, _, level = name.removeprefix("rare_").partition("_nll_")
        kind = "tokens" if kind == "token" else kind.replace("gram", "-grams")
        plots.seed_band(axes[1], x, run.metrics[name], label=f"rare {kind}, {level}", color=c)
    axes[1].set_ylabel("NLL of rare test occurrences\n(nats per token)")
    axes[1].set_title("rare tokens and n-grams", fontsize=9)
    distinct = _names(run, "distinct_")
    for name, c in zip(distinct, style.ordered_colors(len(distinct)), strict=True):
        plots.seed_band(axes[2], x, run.metrics[name], label=name.replace("_", "-"), color=c)
    axes[2].set_ylabel("distinct n-grams / all n-grams\nof the training data")
    axes[2].set_title("distinct-n of the training data", fontsize=9)
    _finish(fig, axes, label)
    paths.append(plots.save(fig, outdir, "tail"))

    if "diversity" in run.metrics:
        fig, axes = style.new(2, width=11, height=4)
        names = [*_names(run, "self_bleu_"), "diversity"]
        for name, c in zip(names, style.ordered_colors(len(names)), strict=True):
            plots.seed_band(axes[0], x, run.metrics[name], label=name, color=c)
        axes[0].set_ylabel("self-BLEU; diversity\n(of the training data)")
        rep = _names(run, "rep_")
        for name, c in zip(rep, style.ordered_colors(len(rep)), strict=True):
            plots.seed_band(axes[1], x, run.metrics[name], label=name, color=c)
        axes[1].set_ylabel("share of repeated n-grams in a block")
        _finish(fig, axes, label)
        paths.append(plots.save(fig, outdir, "diversity"))
    return paths


def _finish(fig, axes, label: str) -> None:
    """Integer generations on every x axis, legends, and the run's label as the title."""
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("generation")
        style.legend(ax, fontsize=7)
    fig.suptitle(label, fontsize=9)


def _histograms(ax, run) -> None:
    arrays = _hist_arrays(run)
    if not arrays:
        return
    lo = min(a.min() for a in arrays.values())
    hi = max(a.max() for a in arrays.values())
    bins = np.geomspace(lo, hi * 1.0001, 60)
    for (g, a), color in zip(arrays.items(), style.ordered_colors(len(arrays)), strict=True):
        # Fractions per (geometric) bin, not a density in x: comparable on the log axis.
        weights = np.full(a.shape, 1.0 / a.size)
        ax.hist(
            a, bins=bins, weights=weights, histtype="step", lw=1.5, color=color, label=f"gen {g}"
        )
    ax.set_xscale("log")
    ax.set_xlabel("perplexity under the generation-0 model (log scale)")
    ax.set_ylabel("fraction of blocks")
    ax.set_title(regime_label(run.config), fontsize=9)
    style.legend(ax)


def compare(workdirs, outdir) -> list[Path]:
    """Fig. 1 of the paper for several runs (regimes): histograms per regime, test perplexity."""
    runs = [plots.load_run(w) for w in workdirs]
    colors = style.run_colors([r.config for r in runs])
    fig, axes = style.new(len(runs), width=6 * len(runs), height=4, squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        _histograms(ax, run)
    paths = [plots.save(fig, outdir, "compare_perplexity_histograms")]
    fig, ax = style.new(width=6.5, height=3.8)
    for run, color in zip(runs, colors, strict=True):
        plots.seed_band(
            ax, run.generations, run.metrics["test_perplexity"], regime_label(run.config), color
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("generation")
    ax.set_ylabel("test perplexity (per token)")
    style.legend(ax, fontsize=7)
    paths.append(plots.save(fig, outdir, "compare_test_perplexity"))
    if all("diversity" in run.metrics for run in runs):
        fig, ax = style.new(width=6.5, height=3.8)
        for run, color in zip(runs, colors, strict=True):
            plots.seed_band(
                ax, run.generations, run.metrics["diversity"], regime_label(run.config), color
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("generation")
        ax.set_ylabel("diversity of the training data")
        style.legend(ax, fontsize=7)
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
