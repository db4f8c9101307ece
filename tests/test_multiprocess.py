"""Two processes joined by ``jax.distributed.initialize`` on localhost run one sharded chain.

Each process gets 2 forced CPU devices; the Gaussian smoke chain's 8 seeds are split over the 4
global devices, checkpointed by both processes (Orbax), resumed, and written by process 0 only.
Its metrics must equal a single-process, single-device run of the same config.

    pytest tests/test_multiprocess.py -m slow
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collapse_jax import chain
from configs import gaussian
from tests import float_bounds

WORKER = Path(__file__).resolve().parent / "multiprocess_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Two JAX start-ups plus a gloo rendezvous: ~20 s of CPU, too much for the default suite.
@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    import jax

    if not hasattr(jax.distributed, "initialize"):
        pytest.skip("this JAX build has no jax.distributed")
    workdir = tmp_path / "multi"
    coordinator = f"127.0.0.1:{_free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), coordinator, str(i), "2", str(workdir)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=300)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    logs = "\n".join(f"--- process {i}:\n{o[-3000:]}" for i, o in enumerate(outs))
    if any(p.returncode for p in procs) and "collectives" in logs.lower() and "gloo" in logs:
        pytest.skip(f"CPU collectives (gloo) unavailable in this jaxlib:\n{logs}")
    assert all(p.returncode == 0 for p in procs), logs

    cfg = gaussian.get_config("smoke")
    cfg.log_every_seconds = 0.0
    single = chain.run(cfg, tmp_path / "single")
    got = (workdir / "metrics.jsonl").read_text().splitlines()
    want = (single / "metrics.jsonl").read_text().splitlines()
    assert len(got) == len(want) == cfg.num_generations
    # Sharded over 4 devices in 2 processes against one device: two programs (float_bounds.py).
    rtol = float_bounds.chain_rtol(cfg.num_generations, cfg.samples_per_generation)
    columns = lambda lines: {  # noqa: E731
        k: np.asarray([json.loads(line)[k] for line in lines]) for k in json.loads(lines[0])
    }
    float_bounds.assert_chains_close(columns(got), columns(want), rtol)
    assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
