"""Test set-up: absl flags parsed, rank promotion is an error, one CPU device."""

import sys
from pathlib import Path

import jax
import pytest
from absl import flags

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

flags.FLAGS.mark_as_parsed()
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def shared_data():
    """``../shared/data``; tests needing it skip on machines without it (users use the hubs)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA
