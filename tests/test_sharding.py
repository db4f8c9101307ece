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


def test_worker_runs_every_check(results):
    assert sorted(results) == sorted(CHECKS)


@pytest.mark.parametrize("name", CHECKS)
def test_check(results, name):
    if results.get(name) != "ok":
        pytest.fail(f"{name}:\n{results.get(name, 'not run')}")
