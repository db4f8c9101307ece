"""Sharded chains and LM steps on 8 forced CPU devices, in one subprocess.

The rest of the suite keeps one device, and XLA fixes the device count at start-up, so the
checks live in ``tests/sharding_worker.py`` and run in a child process (one JAX start-up for all
of them); each check is reported as its own test here.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parent / "sharding_worker.py"
CHECKS = [
    "sharded_chain_equals_single_device",
    "indivisible_seed_count_is_rejected",
    "checkpoints_restore_across_device_counts",
    "sharded_opt_train_step_equals_unsharded",
    "sharded_beam_search_equals_unsharded",
    "finetune_with_num_devices_equals_single_device",
    "sub_meshes_are_disjoint",
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharding") / "results.json"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0 or not out.exists():
        pytest.fail(f"sharding worker failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_worker_runs_every_check(results):
    assert sorted(results) == sorted(CHECKS)


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
@pytest.mark.parametrize("name", CHECKS)
def test_check(results, name):
    if results.get(name) != "ok":
        pytest.fail(f"{name}:\n{results.get(name, 'not run')}")


# --- launch/sweep.py (in this process: no devices needed beyond one) ---


def _sweep_cfg():
    from configs import gaussian

    cfg = gaussian.get_config("smoke")
    cfg.num_seeds, cfg.num_generations, cfg.log_every_seconds = 2, 3, 0.0
    cfg.sweep.samples_per_generation = (10, 20)
    cfg.sweep.gaussian = {"estimator": ("unbiased", "mle")}
    return cfg


def test_sweep_expands_the_product_into_run_dirs(tmp_path):
    from launch import sweep

    runs = sweep.expand(_sweep_cfg(), tmp_path)
    names = [r[0].name for r in runs]
    # ConfigDict keeps fields sorted, so the product runs over them in that order.
    assert names == [
        "gaussian.estimator=unbiased+samples_per_generation=10",
        "gaussian.estimator=unbiased+samples_per_generation=20",
        "gaussian.estimator=mle+samples_per_generation=10",
        "gaussian.estimator=mle+samples_per_generation=20",
    ]
    assert [(c.samples_per_generation, c.gaussian.estimator) for _, _, c in runs] == [
        (10, "unbiased"),
        (20, "unbiased"),
        (10, "mle"),
        (20, "mle"),
    ]
    cmd = sweep.command("configs/gaussian.py:smoke", runs[2][0], runs[2][1], ["--config.seed=3"])
    assert cmd.endswith(
        "--config.gaussian.estimator=mle --config.samples_per_generation=10 --config.seed=3"
    )
    no_sweep = _sweep_cfg()
    no_sweep.sweep = {}
    assert [r[0] for r in sweep.expand(no_sweep, tmp_path)] == [tmp_path]


def test_sweep_rejects_bad_fields():
    from collapse_jax.errors import ConfigError
    from launch import sweep

    cfg = _sweep_cfg()
    cfg.sweep.gaussian = {"no_such_field": (1,)}
    with pytest.raises(ConfigError, match=r"no field gaussian\.no_such_field"):
        sweep.expand(cfg, "/tmp/x")
    cfg.sweep.gaussian = {"dim": 3}
    with pytest.raises(ConfigError, match=r"sweep.gaussian.dim: expected a non-empty tuple"):
        sweep.expand(cfg, "/tmp/x")


def test_sweep_runs_are_the_runs_of_their_commands(tmp_path):
    """Each run dir holds what ``launch.run`` with the printed overrides writes, and resumes."""
    from collapse_jax import chain
    from launch import sweep

    cfg = _sweep_cfg()
    cfg.sweep.gaussian = {}
    for run_dir, point, run_cfg in sweep.expand(cfg, tmp_path):
        chain.run(run_cfg, run_dir)
        rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == 3
        saved = json.loads((run_dir / "config.json").read_text())
        assert saved["samples_per_generation"] == point["samples_per_generation"]
        direct = cfg.copy_and_resolve_references()
        direct.samples_per_generation = point["samples_per_generation"]
        chain.run(direct, run_dir)  # the command's config: accepted as the same run (a resume)
        assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3


def test_fsdp_spec_splits_the_largest_divisible_axis_of_large_leaves():
    from jax.sharding import PartitionSpec as P

    from collapse_jax import sharding

    assert sharding.fsdp_spec((50272, 768), 8) == P("data")  # embedding: the vocab axis
    assert sharding.fsdp_spec((768, 3072), 8) == P(None, "data")  # fc1: the wider axis
    assert sharding.fsdp_spec((50271, 768), 8) == P(None, "data")  # vocab not divisible
    assert sharding.fsdp_spec((768,), 8) == P()  # a bias: too small to be worth splitting
    assert sharding.fsdp_spec((1001, 999), 8) == P()  # nothing divisible: replicated
