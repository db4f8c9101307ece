"""The generational chain: the only package that knows seeds and generations.

Generation 0 draws D_0 and fits it; generation g >= 1 draws the next dataset from the mixture of
the previous model's samples, kept data and original data (``mixing``) and fits it. Keys depend
only on (cfg.seed, seed index, generation) (``rng.py``): seed s is the same stream whatever the
number of seeds, and a resumed run needs no stored keys.

    step     the generation function of both paths, and the compiled ``first`` / ``span``
             programs of the vmapped path (``build``)
    run      the vmapped run: spans between checkpoints, records, saves, resume; ``simulate``
    host     the host path (``HostFamily``: the LM): the same generation function in a Python
             loop, each sub-step saved
    workdir  every path of a run directory and the rules by which a config may resume it
    checks   every check of a config, before anything is written
"""

from pathlib import Path

import jax

from collapse_jax import metrics as metrics_lib
from collapse_jax.chain import checks, host, step, workdir
from collapse_jax.chain import run as _run
from collapse_jax.chain.checks import check_family, validate
from collapse_jax.chain.host import load_or, run_host
from collapse_jax.chain.run import simulate, simulate_per_seed
from collapse_jax.chain.step import (
    Carry,
    Program,
    build,
    chunk_ends,
    first_generation,
    next_generation,
    over_seeds,
)
from collapse_jax.chain.workdir import RUN_OUTPUTS, Workdir
from collapse_jax.data import fetch
from collapse_jax.family import HostFamily, SingleRun

__all__ = [
    "RUN_OUTPUTS",
    "Carry",
    "Program",
    "Workdir",
    "build",
    "check_family",
    "checks",
    "chunk_ends",
    "first_generation",
    "host",
    "load_or",
    "next_generation",
    "over_seeds",
    "run",
    "run_host",
    "simulate",
    "simulate_per_seed",
    "step",
    "validate",
    "workdir",
]


def run(cfg, workdir, overwrite: bool = False) -> Path:
    """Run (or resume) ``cfg`` in ``workdir`` following the output contract; returns its path."""
    fam, mesh = checks.resolve(cfg)
    is_main = jax.process_index() == 0
    wd = Workdir(workdir).prepare(cfg, overwrite, write=is_main, outputs=fam.outputs)
    metrics_lib.quiet_orbax()
    fetch.reset()
    if isinstance(fam, SingleRun):
        fam.run(cfg, wd.path)
    elif isinstance(fam, HostFamily):
        host.run_host(fam, cfg, wd, is_main)
    else:
        _run.run_vmapped(fam, cfg, wd, mesh, is_main)
    return wd.path
