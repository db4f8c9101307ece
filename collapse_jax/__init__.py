"""collapse_jax: model collapse (Shumailov et al., Nature 2024) in JAX, at many seeds."""

__version__ = "0.1.0"
