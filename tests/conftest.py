"""Test set-up: absl flags parsed, rank promotion is an error, one CPU device, offline data."""

import os
import sys
from pathlib import Path

import jax
import pytest
from absl import flags

from collapse_jax import compile_cache

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
# Data lookups (collapse_jax/data/fetch.py) read the offline copy instead of downloading.
if SHARED_DATA.is_dir():
    os.environ.setdefault("COLLAPSE_JAX_DATA", str(SHARED_DATA))

# The suite compiles far more than it computes (most tests run a program once, at toy sizes):
# LLVM's cheapest optimisation level cuts XLA:CPU's compile time by about a third. XLA's own
# passes (fusion, layout, the ops and their order) are unchanged, so the tests check the same
# programs. Read when the backend starts, so before any test computes; the subprocesses the tests
# start inherit it. An XLA_FLAGS that already sets the level wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

flags.FLAGS.mark_as_parsed()
jax.config.update("jax_numpy_rank_promotion", "raise")
# Many tests build the same programs (each chain.build makes new jit objects): the launchers'
# persistent XLA cache (``$COLLAPSE_JAX_XLA_CACHE``, else the user cache folder; empty disables
# it) compiles each once per machine, shared by the xdist workers and, through the variable, by
# the subprocesses the tests start. Results are unaffected.
_xla_cache = compile_cache.enable()
if _xla_cache is not None:
    os.environ[compile_cache.ENV] = str(_xla_cache)


@pytest.fixture
def shared_data():
    """``../shared/data``; tests needing it skip on machines without it (users use the hubs)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA
