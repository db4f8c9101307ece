"""The runnable examples run, and what they compute agrees with the run's records."""

import numpy as np
import pytest

import collapse_jax
from examples import analyse_run


def _mass_in_unit_disk(weights_K, means_KxD, covs_KxDxD, radial=200, angular=256):
    """P(|x| < 1) under a 2-D Gaussian mixture, by quadrature in polar coordinates: Gauss-Legendre
    in the radius, the periodic trapezoid rule in the angle (both far below 1e-6 for the smooth
    densities here)."""
    r_R, w_R = np.polynomial.legendre.leggauss(radial)
    r_R, w_R = 0.5 * (r_R + 1.0), 0.5 * w_R
    theta_A = 2 * np.pi * np.arange(angular) / angular
    x_RxAx2 = r_R[:, None, None] * np.stack([np.cos(theta_A), np.sin(theta_A)], -1)[None]
    total = 0.0
    for w, m, c in zip(weights_K, means_KxD, covs_KxDxD, strict=True):
        d = x_RxAx2 - m
        q = np.einsum("rai,ij,raj->ra", d, np.linalg.inv(c), d)
        pdf = np.exp(-0.5 * q) / (2 * np.pi * np.sqrt(np.linalg.det(c)))
        total += w * np.sum(w_R[:, None] * r_R[:, None] * pdf) * (2 * np.pi / angular)
    return total


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_analyse_run(tmp_path):
    out = analyse_run.main(tmp_path)
    # The KL from the restored models equals the KL from the recorded mean and variance.
    want = analyse_run.kl_to_standard_normal(
        out["recorded_mean_S"].astype(np.float32).astype(np.float64),
        out["recorded_variance_S"].astype(np.float32).astype(np.float64),
    )
    np.testing.assert_allclose(out["kl_S"], want, rtol=1e-12)
    assert out["generation"] > 0 and np.all(out["kl_S"] >= 0)
    # The share of 4000 draws of seed 0's last GMM inside the unit circle: binomial around that
    # GMM's own mass there (computed here from its restored parameters, not by sampling), within
    # 5 standard errors. A sampler drawing from another law, seed or generation lands outside.
    run = collapse_jax.open_run(tmp_path / "gmm")
    gmm = run.model(run.saved_generations[-1], seed=0).model.gmm
    p = _mass_in_unit_disk(
        *(np.asarray(a, np.float64) for a in (gmm.weights_K, gmm.means_KxD, gmm.covariances_KxDxD))
    )
    se = np.sqrt(p * (1 - p) / 4000)
    assert abs(out["gmm_inside"] - p) < 5 * se, (out["gmm_inside"], p, se)
    assert out["figure"].is_file()
    assert out["figure"] == tmp_path / "gaussian" / "figures" / "compare_variance.png"


def test_unit_disk_quadrature():
    # N(0, I): 1 - exp(-1/2); a shifted, correlated component against a Monte Carlo of 10^6.
    np.testing.assert_allclose(
        _mass_in_unit_disk([1.0], [np.zeros(2)], [np.eye(2)]), 1 - np.exp(-0.5), rtol=1e-9
    )
    m, c = np.array([0.4, -0.2]), np.array([[0.5, 0.2], [0.2, 0.3]])
    x = np.random.default_rng(0).multivariate_normal(m, c, 10**6)
    mc = np.mean(np.sum(x**2, 1) < 1)
    assert abs(_mass_in_unit_disk([1.0], [m], [c]) - mc) < 5 * np.sqrt(mc * (1 - mc) / 10**6)
