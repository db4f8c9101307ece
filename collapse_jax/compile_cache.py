"""A persistent XLA compilation cache, so a repeated or resumed run starts without recompiling.

The launchers call ``enable()`` once, before anything is compiled. The folder is
``$COLLAPSE_JAX_XLA_CACHE`` when that is set (empty: no cache), else ``xla/`` under the user's cache
directory (``platformdirs``: ``~/.cache/collapse_jax/xla`` on Linux). JAX keys every entry on the
program, the JAX/XLA versions, the backend and its flags, so a stale entry is never reused; results
are the same with or without it.
"""

import os
from pathlib import Path

import jax
import platformdirs
from absl import logging

ENV = "COLLAPSE_JAX_XLA_CACHE"
# Smaller programs recompile faster than a disk round trip would save.
MIN_COMPILE_SECONDS = 0.2


def default_dir() -> Path:
    return Path(platformdirs.user_cache_dir("collapse_jax")) / "xla"


def enable(path: str | os.PathLike | None = None) -> Path | None:
    """Point JAX's compilation cache at ``path`` (default: ``$COLLAPSE_JAX_XLA_CACHE``, then
    ``default_dir()``); ``""`` disables it. A folder set by JAX's own config is kept."""
    value = os.environ.get(ENV) if path is None else os.fspath(path)
    if value == "":
        return None
    if value is None and jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    folder = Path(value) if value else default_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        # A read-only home must not stop a run: it only loses the warm start.
        logging.warning("XLA compilation cache off: cannot create %s (%s)", folder, e)
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return folder
