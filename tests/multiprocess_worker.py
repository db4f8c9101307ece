"""One of two processes of a localhost multi-host run; ``tests/test_multiprocess.py`` starts both.

    python tests/multiprocess_worker.py COORDINATOR PROCESS_ID NUM_PROCESSES WORKDIR

Each process has 2 forced CPU devices (4 global devices); they run the Gaussian smoke chain
with its 8 seeds sharded over all 4, stop after 7 generations and resume to the end.
"""

import os
import sys
from pathlib import Path

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax

from collapse_jax import chain, distributed
from configs import gaussian


def smoke(**kw):
    cfg = gaussian.get_config("smoke")
    cfg.log_every_seconds = 0.0
    for k, v in kw.items():
        cfg[k] = v
    return cfg


def main(coordinator, process_id, num_processes, workdir):
    distributed.initialize(coordinator, int(num_processes), int(process_id), timeout_seconds=60)
    assert jax.process_count() == int(num_processes) and jax.device_count() == 4
    chain.run(smoke(num_devices=0, num_generations=7), workdir)
    chain.run(smoke(num_devices=0), workdir)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
