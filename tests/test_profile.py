"""The collapse profile: its statistics on series of known shape, its tables, and its coverage of
every family's metrics."""

import json
import math
import re

import numpy as np
import pytest
from scipy import integrate, stats

from collapse_jax import chain, experiments, profile
from collapse_jax.family import HostFamily, SingleRun

RNG = np.random.default_rng(0)
G, S = 60, 200


def series(shape_G, noise=1.0, seeds=S, seed=0):
    """``shape + noise``, a fixed draw per call: the verdicts of pure noise have, by design, a
    ~5% false-alarm rate each (a t-test at 95%), so a test fixes which draw it reads."""
    rng = np.random.default_rng(seed)
    return shape_G[:, None] + noise * rng.standard_normal((shape_G.size, seeds))


@pytest.mark.parametrize(
    "name,shape,direction,verdict",
    [
        ("linear rise", 0.2 * np.arange(G), +1, "diverges"),
        ("step then flat", np.where(np.arange(G) >= 10, 3.0, 0.0), +1, "plateaus"),
        ("rise then back", 3.0 * np.exp(-0.5 * ((np.arange(G) - 15) / 5.0) ** 2), +1, "recovers"),
        ("noise", np.zeros(G), +1, "none"),
        ("falls, read as a rise", -0.2 * np.arange(G), +1, "none"),
        ("falls", -0.2 * np.arange(G), -1, "diverges"),
        ("either way", -0.2 * np.arange(G), 0, "diverges"),
    ],
)
def test_verdicts(name, shape, direction, verdict):
    out = profile.measure(series(shape), direction)
    assert out["verdict"] == verdict, (name, out)


def test_first_significant_generation_and_interval():
    # A step of 1 at generation 20 with noise 1 and 200 seeds: z = 1 / sqrt(2 / 200) = 10, far
    # above the Bonferroni critical value (~3.4 for 59 tests), and z = 0 before it.
    shape = np.where(np.arange(G) >= 20, 1.0, 0.0)
    out = profile.measure(series(shape), +1)
    assert out["first_significant"] == 20
    # The change's interval is a Student-t one over the paired seed differences.
    y = series(shape, seed=1)
    d = y[-1] - y[0]
    out = profile.measure(y, +1)
    half = stats.t.ppf(0.975, S - 1) * d.std(ddof=1) / math.sqrt(S)
    np.testing.assert_allclose([out["change"], out["change_ci"]], [d.mean(), half])


def test_one_seed_reports_values_only():
    out = profile.measure(series(0.2 * np.arange(G), seeds=1), +1)
    assert out["verdict"] == "n/a (1 seed)" and out["first_significant"] is None
    assert math.isnan(out["change_ci"]) and np.isfinite(out["change"])


def test_gaussian_kl_to_truth_is_the_integral():
    cfg = {"gaussian": {"dim": 1, "std": 1.5, "mean": 0.3}}
    mean, var = 0.9, 0.4
    got = profile.definitions._gaussian_derived(
        cfg, {"variance": np.array([[var]]), "mean": [[mean]]}
    )

    def integrand(x):
        p = stats.norm.pdf(x, 0.3, 1.5)
        return p * (stats.norm.logpdf(x, 0.3, 1.5) - stats.norm.logpdf(x, mean, math.sqrt(var)))

    kl = integrate.quad(integrand, -20, 20)[0]
    np.testing.assert_allclose(got["kl_to_truth"][0, 0], kl, rtol=1e-8)
    # The truth's own tails: 2 Phi(-2) beyond 2 sigma (the thinner side holds half), 2 Phi(-4).
    truth = profile.definitions._gaussian_derived(
        cfg, {"variance": np.array([[2.25]]), "mean": [[0.3]]}
    )
    np.testing.assert_allclose(truth["tail_mass_2sd"][0, 0], stats.norm.sf(2.0), rtol=1e-12)
    np.testing.assert_allclose(truth["mass_beyond_4sd"][0, 0], 2 * stats.norm.sf(4.0), rtol=1e-9)
    np.testing.assert_allclose(truth["kl_to_truth"][0, 0], 0.0, atol=1e-15)


def test_every_chain_family_has_a_profile_table():
    for name, exp in experiments.EXPERIMENTS.items():
        if isinstance(exp.family(), SingleRun):
            continue
        assert profile.MEASURES.get(name), name
        for m in profile.MEASURES[name]:
            assert m.definition in profile.DEFINITIONS or m.definition == "risk", (name, m)
        for k in profile.UNMEASURED.get(name, ()):
            assert k in profile.DEFINITIONS or k == "risk"


@pytest.mark.parametrize(
    "experiment",
    [
        "gaussian",
        "discrete",
        pytest.param("gmm", marks=pytest.mark.slow),
        "kde",
        "linear_regression",
    ],
)
def test_measures_name_metrics_the_family_writes(experiment):
    """Every measure of a vmapped family reads a metric its smoke run writes (or a derived one)."""
    cfg = experiments.get(experiment).config_module().get_config("smoke")
    cfg.num_generations = 3
    out = chain.simulate(cfg)
    derived = profile.DERIVED.get(experiment, lambda c, m: {})(cfg.to_dict(), out)
    for m in profile.MEASURES[experiment]:
        if m.metric.endswith("*"):
            continue
        if experiment == "gaussian" and m.metric == "cov_trace":  # d > 1 only
            continue
        assert m.metric in out or m.metric in derived, (experiment, m.metric, sorted(out))

    class Run:
        config = cfg
        metrics = out
        generations = np.arange(3)

    rows = profile.of_run(Run())
    assert rows and all(r["seeds"] == cfg.num_seeds for r in rows)
    assert "| definition |" in profile.markdown(rows)


def fake_run(path, experiment, values_GxS, metric, extra=None):
    """A workdir with config.json and per-seed metrics.jsonl lines (no array store)."""
    path.mkdir(parents=True)
    cfg = {"experiment": experiment, "samples_per_generation": 100} | (extra or {})
    (path / "config.json").write_text(json.dumps(cfg))
    lines = [
        json.dumps({"generation": g, metric: [float(v) for v in row]})
        for g, row in enumerate(values_GxS)
    ]
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return path


def test_write_profile_of_a_workdir(tmp_path):
    y = np.exp(series(0.1 * np.arange(20), noise=0.2, seeds=30))
    run = fake_run(tmp_path / "run", "kde", y, "nll")
    path = profile.write(run)
    text = path.read_text()
    assert "Population risk" in text and "held-out NLL" in text and "diverges" in text
    rows = json.loads((run / "profile.json").read_text())
    assert rows[0]["metric"] == "nll" and rows[0]["first_significant"] is not None
    assert "Not measured by this family's metrics" in text


def test_a_pipe_in_a_label_keeps_the_table_whole(tmp_path):
    y = np.exp(series(0.1 * np.arange(20), noise=0.2, seeds=30))
    profile.write(fake_run(tmp_path / "run", "kde", y, "nll"))
    rows = json.loads((tmp_path / "run" / "profile.json").read_text())
    rows[0]["label"] = "KL(truth || model)"  # the Gaussian's risk measure
    table = [x for x in profile.markdown(rows).splitlines() if x.startswith("|")]
    # Ten cell borders on every line of a nine-column table; an escaped pipe is no border.
    assert all(len(re.findall(r"(?<!\\)\|", x)) == 10 for x in table), table
    assert "KL(truth \\|\\| model)" in table[2]


def test_sweep_profile_and_scaling_law(tmp_path):
    # Risk ~ 1/M at generation 0 and the same for every M at the end: the scaling law flattens.
    for m in (10, 100, 1000):
        shape = np.concatenate([[1.0 / m], np.full(9, 0.05)])
        y = shape[:, None] * np.exp(0.01 * RNG.standard_normal((10, 40)))
        run = fake_run(tmp_path / f"samples_per_generation={m}", "kde", y, "nll")
        cfg = json.loads((run / "config.json").read_text()) | {"samples_per_generation": m}
        (run / "config.json").write_text(json.dumps(cfg))
    rows = profile.scaling_rows(profile.sweep_runs(tmp_path))
    assert len(rows) == 1 and rows[0]["verdict"] == "changes"
    np.testing.assert_allclose(rows[0]["slope_generation0"], -1.0, atol=0.02)
    np.testing.assert_allclose(rows[0]["slope_final"], 0.0, atol=0.02)
    text = profile.write_sweep(tmp_path).read_text()
    assert text.count("### Collapse profile") == 3 and "Change in scaling law" in text


def test_host_family_measures_are_declared():
    # The LM's metric names are families of prefixes (one per configured quantile / order).
    exp = experiments.get("opt_wikitext")
    assert isinstance(exp.family(), HostFamily)
    names = {m.metric for m in profile.MEASURES["opt_wikitext"]}
    assert {"test_perplexity", "data_log_ppl_mean", "rare_token_nll_*"} <= names


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_ecosystem_sweep_figures_tables_and_report(tmp_path):
    """A two-arm tail-cutting sweep at smoke size through launch.ecosystem's pieces and
    launch.report's sweep branch: figures, the exact law in the table, every arm's profile."""
    import subprocess
    import sys

    from collapse_jax.plots import ecosystem
    from configs import discrete as discrete_config
    from tests.conftest import ROOT

    for p in (1.0, 0.8):
        cfg = discrete_config.get_config("tails_smoke")
        cfg.sampling.top_p = p
        chain.run(cfg, tmp_path / f"sampling.top_p={p}")
    path = ecosystem.comparison(tmp_path, "support_size")
    assert path.name == "ecosystem_support_size.png" and path.stat().st_size > 0
    text = ecosystem.table(tmp_path, "support_size")
    assert text.count("exact") == 2 * 4  # both arms, generations 0, 1, 3 and 5
    assert ecosystem.rank_frequencies(tmp_path).stat().st_size > 0
    r = subprocess.run(
        [sys.executable, "-m", "launch.report", f"--workdir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    sweep = (tmp_path / "profile.md").read_text()
    assert sweep.count("### Collapse profile") == 2 and "Disappearance of real tail data" in sweep
    for p in (1.0, 0.8):
        assert (tmp_path / f"sampling.top_p={p}" / "profile.json").exists()
