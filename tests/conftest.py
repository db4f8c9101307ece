"""Test set-up: absl flags parsed, rank promotion is an error, one CPU device, offline data."""

import os
import sys
from pathlib import Path

import jax
import pytest
from absl import flags

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
# Data lookups (collapse_jax/data/fetch.py) read the offline copy instead of downloading.
if SHARED_DATA.is_dir():
    os.environ.setdefault("COLLAPSE_JAX_DATA", str(SHARED_DATA))

flags.FLAGS.mark_as_parsed()
jax.config.update("jax_numpy_rank_promotion", "raise")
# Many tests build the same programs (each chain.build makes new jit objects): XLA's persistent
# cache compiles each once per machine, shared by the xdist workers. Results are unaffected.
jax.config.update("jax_compilation_cache_dir", str(ROOT / ".cache" / "jax_tests"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture
def shared_data():
    """``../shared/data``; tests needing it skip on machines without it (users use the hubs)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA
