"""Tolerances for comparing two compiled programs that compute the same thing.

XLA promises no bit equality between two programs (a sharded and a single-device one, a vmapped
chain and a per-seed loop, two jax versions): each may fuse, reassociate and contract (FMA) the
float arithmetic differently. Bitwise equality is asserted only within one program (resume,
kill and rerun); between programs the tests use the bounds here.
"""

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)
# The per-term roundings around each sum: a product, a square root or a division per term.
PER_TERM_OPS = 8


def chain_rtol(num_generations: int, terms_per_generation: int) -> float:
    """Relative difference two programs may show after ``num_generations`` of a chain.

    Reassociating a float32 sum of n terms moves it by at most (n - 1) u sum|t_i| (u = eps / 2;
    Higham, *Accuracy and Stability of Numerical Algorithms*, eq. 4.4), so two orders differ by at
    most (n - 1) eps sum|t_i|, plus the per-term roundings. The keys are the same in both
    programs, so a generation's difference enters the next one's fit only through the fitted
    parameters, linearly: the differences add up over generations.
    """
    return num_generations * (terms_per_generation + PER_TERM_OPS) * EPS32


def assert_chains_close(got: dict, want: dict, rtol: float) -> None:
    """``got`` and ``want`` (``{metric: array}``) agree to ``rtol`` of each metric's magnitude.

    A metric near 0 (a mean error, a cancelling W2 sum) is compared at the scale of the metric's
    largest value, the magnitude its sums carry, not at its own; integer metrics exactly.
    """
    assert set(got) == set(want)
    for k, w in want.items():
        g, w = np.asarray(got[k]), np.asarray(w)
        if w.dtype.kind != "f":
            np.testing.assert_array_equal(g, w, err_msg=k)
            continue
        scale = float(np.max(np.abs(w[np.isfinite(w)]), initial=0.0))
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale, err_msg=k)


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
