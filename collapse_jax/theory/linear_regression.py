"""Closed forms of the linear-regression chain (Gerstgrasser et al. 2024, "Is model collapse
inevitable?", Theorems for replace and accumulate; Dohmatob et al. 2024, "Model collapse
demystified").

Setting, as ``linear_regression.py`` builds it: one seed's design X (T x d, rank d) is fixed
for every generation; fit i = 1, 2, ... (chain generation i - 1) sees labels
``y_i = X w_(i-1) + e_i`` with ``w_0 = w*`` and ``e_i ~ N(0, sigma^2 I_T)`` independent of
everything before. With ``P = (X^T X)^-1 X^T``, ``P y_i = w_(i-1) + Z_i`` where
``Z_i = P e_i ~ N(0, sigma^2 (X^T X)^-1)``, i.i.d. given X.

  replace     w_n = P y_n = w_(n-1) + Z_n, so w_n - w* = sum_{i<=n} Z_i and
              E[|w_n - w*|^2 | X] = n sigma^2 tr((X^T X)^-1).
  accumulate  fit n sees n copies of X with labels y_1..y_n; its normal equations
              n X^T X w_n = X^T sum_i y_i give w_n = (1/n) sum_{i<=n} (w_(i-1) + Z_i), so
              n w_n - (n-1) w_(n-1) = w_(n-1) + Z_n, i.e. w_n = w_(n-1) + Z_n / n and
              w_n - w* = sum_{i<=n} Z_i / i:  E[|w_n - w*|^2 | X] = sigma^2 tr((X^T X)^-1)
              sum_{i<=n} 1/i^2  <  (pi^2 / 6) sigma^2 tr((X^T X)^-1).

The pool's slot weights cancel (both sides of the normal equations divide by n = sum(weight)),
so the padded buffer changes nothing. For a Gaussian design X^T X ~ Wishart_d(I, T), whose
inverse has mean I / (T - d - 1) for T > d + 1, so E tr((X^T X)^-1) = d / (T - d - 1) and,
averaging over seeds (each its own X), the two expectations below follow. The accumulate form
needs the *same* X in every generation (the state carries it): with a fresh design per
generation the stacked normal equations weight the fits by their own X_i^T X_i and the 1/i
telescoping no longer holds exactly. Both forms are exact (not asymptotic), and since
w_n - w* is linear in the noise alone they hold for every w*. ``test_mse`` on fresh
(x, y = x.w* + e) has mean ``E|w_n - w*|^2 + sigma^2`` (x ~ N(0, I) independent of w_n).
"""

import numpy as np


def _lr_check(dim, samples_per_generation):
    d = np.asarray(dim, dtype=float)
    t = np.asarray(samples_per_generation, dtype=float)
    if np.any(t <= d + 1):
        raise ValueError(
            f"samples_per_generation: the Gaussian-design forms need T > d + 1, got T={t}, d={d}"
        )
    return d, t


def linear_regression_replace_error(generation, dim, samples_per_generation, noise_variance):
    """``E|w_n - w*|^2 = sigma^2 d n / (T - d - 1)`` with ``n = generation + 1`` fits (replace)."""
    d, t = _lr_check(dim, samples_per_generation)
    n = np.asarray(generation, dtype=float) + 1
    return noise_variance * d * n / (t - d - 1)


def linear_regression_accumulate_error(generation, dim, samples_per_generation, noise_variance):
    """``E|w_n - w*|^2 = sigma^2 d / (T - d - 1) sum_{i<=n} 1/i^2``, ``n = generation + 1``."""
    d, t = _lr_check(dim, samples_per_generation)
    n = np.asarray(generation, dtype=int) + 1
    # sum_{i<=n} 1/i^2 = pi^2/6 - psi'(n + 1) (trigamma), vectorised over generations.
    from scipy.special import polygamma

    partial_sum = np.pi**2 / 6 - polygamma(1, n + 1.0)
    return noise_variance * d / (t - d - 1) * partial_sum


def linear_regression_accumulate_limit(dim, samples_per_generation, noise_variance):
    """The accumulate error's bound for every n: ``(pi^2 / 6) sigma^2 d / (T - d - 1)``."""
    d, t = _lr_check(dim, samples_per_generation)
    return np.pi**2 / 6 * noise_variance * d / (t - d - 1)
