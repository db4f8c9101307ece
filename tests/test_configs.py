"""Every experiment's config file and variant builds and validates; the table's entries resolve;
the launcher's errors are one line."""

import subprocess
import sys
from pathlib import Path

import jax
import pytest

from collapse_jax import chain, experiments
from collapse_jax.errors import DataError
from collapse_jax.family import Family, HostFamily, SingleRun

ROOT = Path(__file__).resolve().parents[1]


def _variants(mod) -> tuple[str, ...]:
    # A config may name more variants than the three every config has (e.g. gmm's `separated`).
    return tuple(getattr(mod, "VARIANTS", ("paper", "cpu", "smoke")))


CASES = [
    (name, v)
    for name, e in experiments.EXPERIMENTS.items()
    if e.config_path.is_file()  # a missing file fails test_every_experiment_resolves instead
    for v in _variants(e.config_module())
]


@pytest.mark.parametrize("name,variant", CASES, ids=[f"{n}:{v}" for n, v in CASES])
def test_every_config_variant_builds(name, variant):
    """Each variant, and each run of its sweep (``launch.sweep``), passes validation."""
    from launch import sweep

    cfg = experiments.get(name).config_module().get_config(variant)
    assert cfg.experiment == name
    fam = experiments.family(name)
    for _, _, run_cfg in sweep.expand(cfg, "/unused"):
        fam.validate(run_cfg)
        if isinstance(fam, Family):
            chain.validate(run_cfg)
    if variant == "smoke" and isinstance(fam, Family):
        # Trace the whole generation step without running it: shapes are static in the config.
        cfg.num_seeds = 2
        steps = chain.build(cfg, fam)
        try:
            truth = fam.reference(cfg)
        except DataError as e:  # the VAE's MNIST pool lives in ../shared/data
            pytest.skip(f"{name}:{variant} needs data: {e}")
        keys = jax.random.split(jax.random.key(0), 2)
        _, metrics = jax.eval_shape(steps.first, keys, truth)
        assert metrics and all(v.shape[0] == 2 for v in jax.tree.leaves(metrics))


@pytest.mark.parametrize("name", sorted(experiments.EXPERIMENTS))
def test_every_experiment_resolves(name):
    """The table's entry: its config file exists, its family imports, its plots draw."""
    e = experiments.get(name)
    assert e.name == name
    assert e.config_path.is_file(), e.config_path
    assert isinstance(e.family(), Family | HostFamily | SingleRun)
    if e.plots_module is not None:
        plots = e.plots()
        assert callable(plots.figures) and callable(plots.summary), e.plots_module


def test_every_config_file_is_in_the_table():
    files = {p.name for p in (ROOT / "configs").glob("*.py")} - {"__init__.py", "common.py"}
    assert files == {e.config for e in experiments.EXPERIMENTS.values()}


def _launch(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "launch.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_launcher_bad_value_is_one_clear_line(tmp_path):
    r = _launch(
        "--config=configs/gaussian.py:smoke", f"--workdir={tmp_path}", "--config.num_seeds=0"
    )
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last == "error: num_seeds: expected a positive integer, got 0"
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "checkpoints").exists()
