"""Every config file and variant builds and validates; the launcher's errors are one line."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from collapse_jax import chain, experiments
from collapse_jax.errors import DataError
from collapse_jax.family import Family

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.py") if p.stem not in ("__init__", "common"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"cfg_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _variants(mod) -> tuple[str, ...]:
    # A config may name more variants than the three every config has (e.g. gmm's `separated`).
    return tuple(getattr(mod, "VARIANTS", ("paper", "cpu", "smoke")))


CASES = [(p, v) for p in CONFIGS for v in _variants(_load(p))]


@pytest.mark.parametrize("path,variant", CASES, ids=[f"{p.stem}:{v}" for p, v in CASES])
def test_every_config_variant_builds(path, variant):
    cfg = _load(path).get_config(variant)
    fam = experiments.family(cfg.experiment)
    fam.validate(cfg)
    if isinstance(fam, Family):
        chain.validate(cfg)
    if variant == "smoke" and isinstance(fam, Family):
        # Trace the whole generation step without running it: shapes are static in the config.
        cfg.num_seeds = 2
        steps = chain.build(cfg, fam)
        try:
            truth = fam.reference(cfg)
        except DataError as e:  # the VAE's MNIST pool lives in ../shared/data
            pytest.skip(f"{path.stem}:{variant} needs data: {e}")
        keys = jax.random.split(jax.random.key(0), 2)
        _, metrics = jax.eval_shape(steps.first, keys, truth)
        assert metrics and all(v.shape[0] == 2 for v in jax.tree.leaves(metrics))


def test_configs_found():
    names = {p.stem for p in CONFIGS}
    assert {"gaussian", "discrete"} <= names


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
