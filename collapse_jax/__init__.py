"""collapse_jax: model collapse (Shumailov et al., Nature 2024) in JAX, at many seeds."""

__version__ = "0.1.0"


def open_run(workdir, device=None):
    """Open a ``launch.run`` workdir for analysis: ``collapse_jax.runs.open_run``."""
    # Deferred: ``import collapse_jax`` stays light (no JAX import) for the launchers' flags.
    from collapse_jax import runs

    return runs.open_run(workdir, device)
