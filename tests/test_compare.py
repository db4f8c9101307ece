"""launch.compare: several runs in one figure, labelled by the config field that differs."""

import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from collapse_jax import chain
from collapse_jax.errors import ConfigError
from collapse_jax.plots import compare
from configs import gaussian

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two short Gaussian chains that differ only in the sample-size field (a two-point sweep)."""
    sweep = tmp_path_factory.mktemp("sweep")
    dirs = []
    for m in (19, 20):  # close sizes: cheap, and the labels are what is checked here
        cfg = gaussian.get_config("smoke")
        cfg.num_generations = 6
        cfg.samples_per_generation = m
        dirs.append(chain.run(cfg, sweep / f"samples_per_generation={m}"))
    return dirs


def test_differing_fields_are_found():
    a = {"seed": 0, "gmm": {"tol": 1e-5, "dim": 2}, "num_devices": 1}
    b = {"seed": 0, "gmm": {"tol": 1e-3, "dim": 2}, "num_devices": 4, "extra": 1}
    assert compare.differing_fields([a, b]) == ["extra", "gmm.tol"]
    assert compare.differing_fields([a, a]) == []


def test_legend_names_the_differing_field(two_runs):
    fig = compare.figure(two_runs, "variance")
    (legend,) = fig.legends
    assert legend.get_title().get_text() == "samples_per_generation"
    # The runs' values, then the grey key of the marks (mean, median, band).
    assert [t.get_text() for t in legend.get_texts()][:2] == ["19", "20"]
    plt.close(fig)
    fig = compare.figure(two_runs, "variance", label="seed")
    assert [t.get_text() for t in fig.legends[0].get_texts()][:2] == ["0", "0"]
    assert fig.legends[0].get_title().get_text() == "seed"
    plt.close(fig)


def test_spans_decades():
    import numpy as np

    assert compare.spans_decades([np.array([[1.0], [1e-4]])])
    assert not compare.spans_decades([np.array([[1.0], [0.5]])])
    assert not compare.spans_decades([np.array([[1.0], [0.0]])])  # zero: no log axis


def test_bad_metric_names_what_exists(two_runs):
    with pytest.raises(ConfigError, match=r"has no 'varaince'; it has \[.*'variance'"):
        compare.figure(two_runs, "varaince")
    with pytest.raises(ConfigError, match=r"label: no config field 'nope'"):
        compare.figure(two_runs, "variance", label="nope")


def test_launcher_writes_the_figure_and_fails_in_one_line(two_runs, tmp_path):
    out = tmp_path / "fig.png"
    args = [sys.executable, "-m", "launch.compare", f"--workdirs={two_runs[0]},{two_runs[1]}"]
    done = subprocess.run(
        [*args, "--metric=variance", f"--out={out}"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run(
        [*args[:3], f"--workdirs={two_runs[0]},{tmp_path / 'nowhere'}", "--metric=variance"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere' / 'config.json'}: missing; is this a launch.run workdir?"
    ]


def test_sweep_writes_the_comparison_of_its_runs(two_runs):
    from launch import sweep

    cfg = gaussian.get_config("smoke")
    cfg.num_generations = 6
    cfg.sweep.samples_per_generation = [19, 20]
    runs = sweep.expand(cfg, two_runs[0].parent)
    assert [r[0] for r in runs] == two_runs  # the fixture's runs are this sweep's
    path = sweep.compare_figure(cfg, runs)
    assert path == two_runs[0].parent / "figures" / "compare_variance.png"
    assert path.read_bytes()[:4] == b"\x89PNG"
