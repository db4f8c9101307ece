"""Floating-point bounds the tests compare two programs' values within."""

import numpy as np


def w2_squared_rounding_bound(mean_error, variance, std: float, dim: int = 1) -> np.ndarray:
    """Largest float32 difference between two evaluation orders of ``w2_squared`` (d = 1).

    W2^2 = |m - mu0|^2 + (tr C + d s0^2 - 2 s0 sqrt(tr C)): four terms that nearly cancel once the
    chain has collapsed. Summing n terms in float32 errs by at most (n - 1) u sum|t_i| (u = eps/2,
    the roundings of the sqrt and the products within the same bound's slack); two programs that
    fuse the sum differently (a sharded one, a recomputation, another jax version) can differ by
    twice that: 3 eps sum|t_i| for n = 4. Every input of the sum is bitwise the same in both.
    """
    if dim != 1:
        raise ValueError(f"dim: the bound is derived for d = 1, got {dim}")
    var = np.asarray(variance, np.float64)
    terms = (
        np.asarray(mean_error, np.float64) + var + std**2 + 2 * std * np.sqrt(np.maximum(var, 0))
    )
    return 3 * np.finfo(np.float32).eps * terms
