"""Test set-up: absl flags parsed, rank promotion is an error, one CPU device, offline data."""

import os
import sys
from pathlib import Path

import jax
import pytest
from absl import flags

from collapse_jax import compile_cache

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout, or wherever $COLLAPSE_JAX_DATA points (a git worktree's
# parent holds no shared/).
SHARED_DATA = Path(os.environ.get("COLLAPSE_JAX_DATA") or ROOT.parent / "shared" / "data")
sys.path.insert(0, str(ROOT))
# Data lookups (collapse_jax/data/fetch.py) read the offline copy instead of downloading.
if SHARED_DATA.is_dir():
    os.environ.setdefault("COLLAPSE_JAX_DATA", str(SHARED_DATA))

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
