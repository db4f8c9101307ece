"""Every family's figures and the sweep figures pass the mechanical half of the figure checklist
(``docs/figures.md``, ``collapse_jax/plots/checklist.py``): no clipped or overlapping text, a
legend entry for every mark, regime colours from the one table, log axes where the data is.

The runs are the smoke variants (the regime sweeps at ``regimes_smoke``), built once per module;
the OPT figures are checked on ``tests/test_pipeline.py``'s run and the VAE's below on a one-epoch
smoke run (the programs of ``tests/test_vae.py``'s resume test).
"""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from collapse_jax import chain, experiments, plots
from collapse_jax.plots import checklist, compare, regimes, style
from collapse_jax.plots import sweep as sweep_report
from launch import sweep

SMALL = ("gaussian", "discrete", "gmm", "linear_regression", "kde")
REGIMES_OF = {"gaussian": ("replace", "accumulate", "accumulate_subsample", "augment", "fresh")}


def assert_clean(found):
    assert found, "no figure was drawn"
    bad = {name: p for name, p in found.items() if p}
    assert not bad, "\n".join(f"{name}: {p}" for name, ps in bad.items() for p in ps)


def _config(experiment, variant="smoke"):
    return experiments.get(experiment).config_module().get_config(variant)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """One smoke run per small family, and a second one of another regime where the family has
    a replace-against-accumulate sweep figure."""
    root = tmp_path_factory.mktemp("smoke")
    out = {}
    for name in SMALL:
        out[name] = chain.run(_config(name), root / name)
    for name in ("linear_regression", "kde"):
        cfg = _config(name)
        cfg.mixing.regime = "accumulate"
        out[f"{name}_accumulate"] = chain.run(cfg, root / f"{name}_accumulate")
    return out


@pytest.fixture(scope="module")
def regime_sweeps(tmp_path_factory):
    """The Gaussian regime sweep at smoke size (5 regimes) and the discrete one's regimes with
    theory (replace, accumulate, augment)."""
    out = {}
    for name, keep in (("gaussian", None), ("discrete", ("replace", "accumulate", "augment"))):
        d = tmp_path_factory.mktemp(f"{name}_regimes")
        for run_dir, point, run_cfg in sweep.expand(_config(name, "regimes_smoke"), d):
            if keep is None or point["mixing.regime"] in keep:
                chain.run(run_cfg, run_dir)
        out[name] = d
    return out


@pytest.mark.parametrize("name", SMALL)
def test_family_figures_pass_the_checklist(name, smoke_runs):
    with checklist.collecting() as found:
        paths, _ = plots.report(smoke_runs[name])
    # Every figure the report wrote was checked (the report also writes profile.md).
    assert {p.stem for p in paths if p.suffix == ".png"} == set(found)
    assert_clean(found)


@pytest.mark.parametrize("name", SMALL)
def test_sweep_figures_pass_the_checklist(name, smoke_runs, tmp_path):
    second = smoke_runs.get(f"{name}_accumulate", smoke_runs[name])
    mod = experiments.get(name).plots()
    with checklist.collecting() as found:
        mod.sweep_figure([smoke_runs[name], second], tmp_path)
    fig = compare.figure(list(dict.fromkeys([smoke_runs[name], second])), compare.HEADLINE[name])
    found["compare"] = checklist.problems(fig)
    plt.close(fig)
    assert_clean(found)


@pytest.mark.parametrize("name", ["gaussian", "discrete"])
def test_regime_sweep_figures_pass_the_checklist(name, regime_sweeps):
    d = regime_sweeps[name]
    runs = [plots.load_run(r) for r in sweep_report.run_dirs(d)]
    with checklist.collecting() as found:
        figs = sweep_report.comparison_figures(d, runs)
    assert {f"regimes_{m}" for m in regimes.METRICS[name]} | {
        f"compare_{compare.HEADLINE[name]}"
    } == {p.stem for p in figs}
    assert_clean(found)


def _series_colours(fig) -> dict[str, str]:
    """``{legend text: colour}`` of every legend entry drawn as a line or patch."""
    out = {}
    for leg in [*(ax.get_legend() for ax in fig.axes), *fig.legends]:
        if leg is None:
            continue
        for t, h in zip(leg.get_texts(), leg.legend_handles, strict=False):
            if hasattr(h, "get_color") and not (h.get_gid() or "").startswith("key:"):
                out[t.get_text()] = h.get_color()
    return out


def test_one_colour_per_regime_in_every_figure(regime_sweeps, monkeypatch):
    """A regime has the same colour in the regime figure, the comparison figure and its own
    run's figures (``style.REGIME_COLORS``), and its theory line is that colour's dark shade."""
    import matplotlib.colors as mcolors

    d = regime_sweeps["gaussian"]
    figures = {}
    monkeypatch.setattr(plots, "save", lambda fig, outdir, name: figures.__setitem__(name, fig))
    regimes.figure(d, "variance")
    dirs = sweep_report.run_dirs(d)
    figures["compare"] = compare.figure(dirs, "variance")
    seen = {}
    for fig in (figures["regimes_variance"], figures["compare"]):
        for text, colour in _series_colours(fig).items():
            regime = checklist._regime_named(text)
            if regime is not None:
                seen.setdefault(regime, set()).add(mcolors.to_hex(colour))
    problems = {}
    for run_dir in dirs:
        run = plots.load_run(run_dir)
        regime = run.config["mixing"]["regime"]
        experiments.get("gaussian").plots().figures(run, run_dir / "figures")
        # Each regime's own figures (its theory branch) pass the checklist too.
        for name in ("variance", "mean", "w2"):
            problems[f"{regime}/{name}"] = checklist.problems(figures[name])
        mean = [ln for ln in figures["variance"].axes[0].lines if ln.get_gid() == style.MEAN]
        seen.setdefault(regime, set()).add(mcolors.to_hex(mean[0].get_color()))
        theory = [ln for ln in figures["variance"].axes[0].lines if ln.get_gid() == style.THEORY]
        if regime != "accumulate_subsample":  # no closed form there
            assert np.allclose(
                mcolors.to_rgb(theory[0].get_color()),
                style.theory_color(style.REGIME_COLORS[regime]),
            )
    plt.close("all")
    assert_clean(problems)
    assert set(seen) == set(REGIMES_OF["gaussian"])
    assert seen == {r: {style.REGIME_COLORS[r].lower()} for r in seen}


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_vae_figures_pass_the_checklist(shared_data, tmp_path):
    del shared_data
    cfg = _config("vae")
    cfg.vae.epochs = 1
    cfg.num_generations = 4
    run_dir = chain.run(cfg, tmp_path / "vae")
    with checklist.collecting() as found:
        plots.report(run_dir)
    assert {"vae_latent_kde", "vae_collapse"} <= set(found)
    assert_clean(found)


# The checker itself: each check fires on a figure made to fail it.


def _fig():
    fig, ax = style.new(width=4, height=3)
    ax.set_xlabel("generation")
    ax.set_ylabel("value")
    return fig, ax


def _problems(fig) -> str:
    out = "\n".join(checklist.problems(fig))
    plt.close(fig)
    return out


def test_checker_finds_clipped_and_overlapping_text():
    fig, ax = _fig()
    ax.plot([0, 1], [0, 1], label="a")
    style.legend(ax)
    fig.text(0.98, 0.5, "a label running off the edge")
    assert "clipped: text 'a label running off the edge'" in _problems(fig)
    fig, ax = _fig()
    ax.plot([0, 1], [0, 1], label="a")
    style.legend(ax)
    ax.set_title("title")
    ax.text(0.5, 1.02, "over the title", transform=ax.transAxes, ha="center")
    assert "overlap: texts" in _problems(fig)
    fig, ax = _fig()
    ax.plot([0, 1], [0, 1], label="a")
    style.legend(ax)
    ax.set_ylabel("a y label far longer than the axes is tall, so it runs past both ends")
    assert "label length: y label" in _problems(fig)


def test_checker_finds_unexplained_marks_and_missing_labels():
    fig, ax = _fig()
    ax.plot([0, 1], [0, 1], label="in no legend")
    assert "the mark 'in no legend' is not in a legend" in _problems(fig)
    fig, ax = _fig()
    plots.seed_band(ax, np.arange(3), np.ones((3, 4)), label="series")
    ax.legend()  # matplotlib's own legend: no key for the median and the band
    p = _problems(fig)
    assert "no key entry for the seed_median marks" in p and "seed_band" in p
    fig, ax = _fig()
    ax.plot([0, 1], [0, 1], color="k")
    ax.set_ylabel("")
    p = _problems(fig)
    assert "unlabelled Line2D" in p and "no y label" in p


def test_checker_finds_wrong_regime_colours_black_theory_and_long_log_axes():
    fig, ax = _fig()
    ax.plot([0, 1], [1, 2], color="C0", label="replace")
    style.legend(ax)
    assert "regime colour: 'replace'" in _problems(fig)
    fig, ax = _fig()
    ax.plot([0, 1], [1, 2], color=style.REGIME_COLORS["replace"], label="replace")
    ax.plot([0, 1], [1, 2], "k:", gid=style.THEORY, label="theory")
    style.legend(ax)
    assert "is not the darker shade of a series" in _problems(fig)
    fig, ax = _fig()
    y = np.r_[1e-9, np.geomspace(1e-4, 1, 50)]
    ax.plot(np.arange(51), y, label="distance")
    ax.set_yscale("log")
    style.legend(ax)
    assert "log axes: y starts at" in _problems(fig)
    fig, ax = _fig()
    ax.plot(np.arange(51), y, label="distance")
    style.log_y(ax)  # the fix: the lone point at generation 0 no longer sets the axis
    style.legend(ax)
    assert _problems(fig) == ""
