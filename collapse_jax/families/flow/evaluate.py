"""Sample-quality metrics of a generated set against a fixed real one.

k-NN precision and recall (Kynkaanniemi et al. 2019) and density and coverage (Naeem et al. 2020),
as the ``prdc`` package computes them (its ``compute_prdc``): Euclidean distances, the radius of a
point is the distance to its k-th nearest neighbour within its own set (the point itself not
counted), and a point is inside a ball when strictly closer than its radius:

  precision  share of generated points inside at least one real ball
  recall     share of real points inside at least one generated ball
  density    (1 / (k N_gen)) * the number of (generated point, real ball containing it) pairs
  coverage   share of real balls holding at least one generated point

Distances are compared squared (``|a|^2 + |b|^2 - 2 a.b``, floored at 0) and computed in chunks of
rows (``lax.map``), so a seed never holds more than ``chunk x N`` of them.

The Frechet distance between Gaussians fitted to two feature sets (FID when the features are
Inception's; here the caller's): ``|mu_1 - mu_2|^2 + tr S_1 + tr S_2 - 2 tr (S_2^1/2 S_1 S_2^1/2)^1/2``
with covariances of ddof = 1 (as ``pytorch-fid``'s ``np.cov``). The real set's square root is
computed once (``real_stats``); the trace of the square root is a sum of square roots of the
eigenvalues of a symmetric PSD matrix (``eigvalsh``), so no general matrix square root is needed.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def _chunked(fn, x_NxF, chunk: int):
    """``fn`` over row chunks of ``x_NxF`` (padded to whole chunks), concatenated, cut to N."""
    n = x_NxF.shape[0]
    c = max(1, math.ceil(n / chunk))
    xp = jnp.pad(x_NxF, ((0, c * chunk - n), (0, 0)))
    out = jax.lax.map(fn, (xp.reshape(c, chunk, -1), jnp.arange(c)))
    return jax.tree.map(lambda a: a.reshape(c * chunk, *a.shape[2:])[:n], out)


def sq_dist(a_AxF, b_BxF):
    """Squared Euclidean distances ``A x B``, floored at 0."""
    aa = jnp.sum(a_AxF**2, axis=1)[:, None]
    bb = jnp.sum(b_BxF**2, axis=1)[None, :]
    return jnp.maximum(aa + bb - 2.0 * (a_AxF @ b_BxF.T), 0.0)


def knn_sq_radii(x_NxF, k: int, chunk: int = 256):
    """Squared distance of each point to its k-th nearest neighbour in ``x_NxF`` (itself excluded:
    the (k+1)-th smallest distance, itself the first)."""

    def rows(args):
        xc, _ = args
        return -jax.lax.top_k(-sq_dist(xc, x_NxF), k + 1)[0][:, k]

    return _chunked(rows, x_NxF, chunk)


class Prdc(NamedTuple):
    precision: jax.Array
    recall: jax.Array
    density: jax.Array
    coverage: jax.Array


def prdc(real_RxF, real_sq_radii_R, fake_GxF, k: int, chunk: int = 256) -> Prdc:
    """Precision, recall, density, coverage of ``fake`` against ``real`` (module docstring)."""
    fake_sq_radii_G = knn_sq_radii(fake_GxF, k, chunk)

    def fake_rows(args):
        fc, _ = args
        return jnp.sum(sq_dist(fc, real_RxF) < real_sq_radii_R[None, :], axis=1)

    def real_rows(args):
        rc, i = args
        d2 = sq_dist(rc, fake_GxF)
        r2 = jax.lax.dynamic_slice_in_dim(
            jnp.pad(real_sq_radii_R, (0, chunk)), i * chunk, chunk
        )  # the chunk's own radii (padded rows are cut afterwards)
        recall = jnp.any(d2 < fake_sq_radii_G[None, :], axis=1)
        covered = jnp.min(d2, axis=1) < r2
        return recall, covered

    count_G = _chunked(fake_rows, fake_GxF, chunk)
    recall_R, covered_R = _chunked(real_rows, real_RxF, chunk)
    g = fake_GxF.shape[0]
    return Prdc(
        precision=jnp.mean(count_G > 0),
        recall=jnp.mean(recall_R),
        density=jnp.sum(count_G) / (k * g),
        coverage=jnp.mean(covered_R),
    )


class RealStats(NamedTuple):
    """Gaussian statistics of the real features, with the covariance's square root."""

    mean_F: jax.Array
    cov_sqrt_FxF: jax.Array
    cov_trace: jax.Array


def real_stats(features_NxF) -> RealStats:
    """Host-side, in float64: the real set's mean, covariance root (eigh) and trace."""
    f = np.asarray(features_NxF, np.float64)
    cov = np.cov(f, rowvar=False)
    lam, v = np.linalg.eigh(cov)
    root = (v * np.sqrt(np.maximum(lam, 0.0))) @ v.T
    return RealStats(
        jnp.asarray(f.mean(0), jnp.float32),
        jnp.asarray(root, jnp.float32),
        jnp.asarray(np.trace(cov), jnp.float32),
    )


def frechet_distance(features_NxF, real: RealStats):
    """The Frechet distance of the Gaussian fitted to ``features_NxF`` (ddof = 1) to ``real``'s."""
    n = features_NxF.shape[0]
    mean_F = features_NxF.mean(0)
    fc = features_NxF - mean_F[None, :]
    cov_FxF = (fc.T @ fc) / (n - 1)
    m = real.cov_sqrt_FxF @ cov_FxF @ real.cov_sqrt_FxF
    lam = jnp.linalg.eigvalsh(0.5 * (m + m.T))
    tr_sqrt = jnp.sum(jnp.sqrt(jnp.maximum(lam, 0.0)))
    return jnp.sum((mean_F - real.mean_F) ** 2) + jnp.trace(cov_FxF) + real.cov_trace - 2 * tr_sqrt


def class_balance(logits_NxC):
    """``(share_C, entropy, min share)`` of the argmax classes."""
    n, c = logits_NxC.shape
    share = jnp.bincount(jnp.argmax(logits_NxC, -1), length=c) / n
    entropy = -jnp.sum(jnp.where(share > 0, share * jnp.log(jnp.maximum(share, 1e-30)), 0.0))
    return share, entropy, jnp.min(share)
