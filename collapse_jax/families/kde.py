"""Kernel density chains: a Gaussian KDE refitted to its own samples (Kazdan et al. 2024).

The setting of Kazdan et al., "Collapse or thrive?" (code ``src/fit_kdes/fit_kdes.py``): 2-D toy
data, a Gaussian-kernel KDE fitted to the pool (sklearn ``KernelDensity``), the next data drawn
from it. The model is the pool itself: centres ``c_i`` with the pool's 0/1 weights ``w_i`` and an
isotropic bandwidth ``h``,

    p(x) = sum_i w_i N(x; c_i, h^2 I) / sum_i w_i.

Bandwidth (``cfg.kde.bandwidth_rule``): ``fixed`` (``cfg.kde.bandwidth``), or sklearn's rules on
``n = sum_i w_i`` samples in d = 2 dimensions: ``scott`` ``h = n^(-1/(d+4))``, ``silverman``
``h = (n (d + 2) / 4)^(-1/(d+4))`` (isotropic and unscaled, as sklearn; scipy's ``gaussian_kde``
would scale by the data covariance). Under ``accumulate`` n grows, so the rules shrink h.

``sample`` picks centres in proportion to their weights (inverse CDF of the cumulative weights)
and adds ``h`` times a standard normal. The state holds a fixed number of slots so its shape is
the same every generation: the accumulate buffer's capacity under ``accumulate``, else M.

Toy data (``cfg.kde.dataset``), drawn in JAX per seed after ``sklearn.datasets`` (checked
against it in the tests):
  blobs       ``make_blobs``: equal counts (sklearn's split) around ``blob_centers``, std ``blob_std``.
  circles     ``make_circles``: half on the unit circle, half on radius ``circles_factor``, plus
              N(0, noise^2 I).
  moons       ``make_moons``: half on (cos t, sin t), half on (1 - cos t, 1/2 - sin t),
              t in [0, pi], plus noise.
  swiss_roll  ``make_swiss_roll``'s (x, z) columns: (t cos t, t sin t), t = 1.5 pi (1 + 2u),
              plus noise. Kazdan et al. used all three columns (3-D, with y = 21 u); this family
              is 2-D, as the issue asks.
Kazdan et al.'s blobs redraw three centres per seed in [-10, 10]^2; here the centres are fixed in
the config (sklearn's draw with ``random_state=0`` by default) so every seed shares one truth.

Angles of circles and moons (``cfg.kde.angles``): sklearn does not draw them. ``make_circles`` and
``make_moons`` put each group's angles on an even grid (``np.linspace``; circles without the end
point), shuffle the points and add the noise: a stratified sample, whose empirical distribution is
far closer to the noisy curve than i.i.d. draws of the same size (at M = 100 a KDE of it scores a
lower held-out NLL). ``linspace`` builds exactly that set (sklearn's grid per group, the slots in
a random order, as sklearn's shuffle, so any prefix is still a fair subsample); ``iid`` draws
every angle uniformly on the same range: the same marginal law for one point, not the same
dataset law. Blobs and swiss_roll have no grid in sklearn (normal and uniform draws) and ignore
the field. Both the training data D_0 and the held-out and MMD samples use the field.

Metrics (one seed, one generation):
  nll         held-out negative log-likelihood, ``-mean_k log p(x_k)`` on ``heldout_samples`` fresh
              truth samples (Kazdan et al.'s "Mean Negative Log Prob (Test)"; they used 500).
  mmd         the maximum mean discrepancy between the KDE and the truth, for a fixed kernel:
              ``|E_p phi - E_truth phi|`` with ``mmd_features`` random Fourier features of a
              Gaussian kernel of width ``l`` (the median distance of held-out pairs, at most
              1000 of them). The features
              define a fixed positive-definite kernel, so this is an exact MMD for that kernel;
              ``E_p phi`` is closed form for a KDE (``E cos(w.(c + h z) + b) = exp(-h^2 |w|^2 / 2)
              cos(w.c + b)``) and ``E_truth phi`` is the mean over ``mmd_truth_samples`` truth
              draws, both shared by every seed. Why not only the NLL: the NLL diverges as soon as
              the KDE puts no mass near a held-out point (a shrinking bandwidth), while the MMD
              stays bounded and measures how far the mass moved.
  bandwidth   h.
  snapshot    (``snapshot_points`` > 0) the first points of the newest block of the training data,
              ``[P, 2]``: D_0 at generation 0, then samples of the previous generation's KDE.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax import family, sampling
from collapse_jax.errors import require
from collapse_jax.family import Data

DATASETS = ("blobs", "circles", "moons", "swiss_roll")
ANGLES = ("iid", "linspace")
BANDWIDTH_RULES = ("fixed", "scott", "silverman")
DIM = 2


class Truth(NamedTuple):
    """What every seed is scored against."""

    blob_centers_KxD: jax.Array
    heldout_NxD: jax.Array  # fresh truth samples for the NLL
    omega_RxD: jax.Array  # random Fourier features of the MMD kernel
    phase_R: jax.Array
    truth_embedding_R: jax.Array  # E_truth phi


class State(NamedTuple):
    """A KDE: its centres, their weights (0 for an empty slot) and the bandwidth."""

    centers_NxD: jax.Array
    weight_N: jax.Array
    bandwidth: jax.Array


def validate(cfg) -> None:
    k = cfg.kde
    require(k.dataset in DATASETS, "kde.dataset", f"one of {DATASETS}", k.dataset)
    require(k.angles in ANGLES, "kde.angles", f"one of {ANGLES}", k.angles)
    require(
        k.bandwidth_rule in BANDWIDTH_RULES,
        "kde.bandwidth_rule",
        f"one of {BANDWIDTH_RULES}",
        k.bandwidth_rule,
    )
    require(math.isfinite(k.bandwidth) and k.bandwidth > 0, "kde.bandwidth", "> 0", k.bandwidth)
    require(math.isfinite(k.noise) and k.noise >= 0, "kde.noise", "a number >= 0", k.noise)
    require(0 < k.circles_factor < 1, "kde.circles_factor", "a radius in (0, 1)", k.circles_factor)
    c = np.asarray(k.blob_centers, dtype=float)
    require(
        c.ndim == 2 and c.shape[0] > 0 and c.shape[1] == DIM and np.isfinite(c).all(),
        "kde.blob_centers",
        f"a non-empty list of {DIM}-D points",
        k.blob_centers,
    )
    require(k.blob_std > 0, "kde.blob_std", "a positive number", k.blob_std)
    for name in ("heldout_samples", "mmd_features", "mmd_truth_samples"):
        v = k[name]
        require(isinstance(v, int) and v > 1, f"kde.{name}", "an integer > 1", v)
    v = k.snapshot_points
    m = cfg.samples_per_generation
    require(
        isinstance(v, int) and 0 <= v <= m,
        "kde.snapshot_points",
        f"an integer in [0, samples_per_generation = {m}]",
        v,
    )
    require(
        isinstance(k.heldout_seed, int) and k.heldout_seed >= 0,
        "kde.heldout_seed",
        "an integer >= 0",
        k.heldout_seed,
    )
    sampling.validate(cfg, "kde")


def _grid_u(n: int, num_groups: int, endpoint: bool) -> np.ndarray:
    """Each slot's place in [0, 1] on its group's even grid (``np.linspace``), slot i in group
    i mod num_groups: sklearn's angles over their range."""
    u = np.zeros(n)
    for g in range(num_groups):
        count = len(range(g, n, num_groups))
        u[g::num_groups] = np.linspace(0.0, 1.0, count, endpoint=endpoint)
    return u


def draw(key, n: int, blob_centers_KxD, cfg) -> jax.Array:
    """``n`` samples ``x_nx2`` of the configured toy distribution."""
    return draw_toy(key, n, blob_centers_KxD, cfg.kde)


def draw_toy(key, n: int, blob_centers_KxD, k) -> jax.Array:
    """``n`` samples ``x_nx2`` of the toy set ``k`` names: any section with the fields
    ``dataset``, ``noise``, ``circles_factor``, ``blob_std`` and ``angles`` (``cfg.kde``; the flow
    family's ``cfg.flow.toy``)."""
    grid = k.angles == "linspace" and k.dataset in ("circles", "moons")
    k_u, k_noise = jax.random.split(key)  # k_u: the angles, or on a grid their order
    # sklearn's exact group sizes, interleaved so that any prefix is a fair sample: slot i is in
    # group i mod K (the first n mod K blobs get one sample more, as sklearn's split); for the
    # two-group sets group 1 (odd slots, n // 2 of them) is sklearn's outer circle or moon.
    i_n = jnp.arange(n)
    num_groups = blob_centers_KxD.shape[0] if k.dataset == "blobs" else 2
    group_n = i_n % num_groups
    z_nxD = jax.random.normal(k_noise, (n, DIM))
    if grid:
        # sklearn's grid, then its shuffle: a random order of the slots (groups and angles alike).
        u_n = jnp.asarray(_grid_u(n, 2, endpoint=k.dataset == "moons"), z_nxD.dtype)
        order_n = jax.random.permutation(k_u, n)
        u_n, group_n = u_n[order_n], group_n[order_n]
    else:
        u_n = jax.random.uniform(k_u, (n,))
    if k.dataset == "blobs":
        return blob_centers_KxD[group_n] + k.blob_std * z_nxD
    if k.dataset == "circles":
        t = 2 * jnp.pi * u_n
        r = jnp.where(group_n == 1, 1.0, k.circles_factor)
        x = jnp.stack([r * jnp.cos(t), r * jnp.sin(t)], axis=1)
    elif k.dataset == "moons":
        t = jnp.pi * u_n
        outer = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)
        inner = jnp.stack([1 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=1)
        x = jnp.where((group_n == 1)[:, None], outer, inner)
    else:
        t = 1.5 * jnp.pi * (1 + 2 * u_n)
        x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=1)
    return x + k.noise * z_nxD


def features(x_NxD, omega_RxD, phase_R):
    """Random Fourier features ``phi(x) = sqrt(2 / R) cos(omega . x + b)``."""
    r = omega_RxD.shape[0]
    return math.sqrt(2.0 / r) * jnp.cos(x_NxD @ omega_RxD.T + phase_R[None, :])


def median_width(heldout_NxD) -> float:
    """The MMD kernel's width: the median distance between held-out pairs (at most 1000 points,
    enough for a median with bounded memory)."""
    h = np.asarray(heldout_NxD, float)[:1000]
    dist = np.sqrt(((h[:, None, :] - h[None, :, :]) ** 2).sum(-1))
    return float(np.median(dist[np.triu_indices(len(h), 1)]))


def reference(cfg) -> Truth:
    k = cfg.kde
    centers = jnp.asarray(k.blob_centers, jnp.float32)

    def draws(key):
        k_held, k_mmd, k_omega, k_phase = jax.random.split(key, 4)
        return (
            draw(k_held, k.heldout_samples, centers, cfg),
            draw(k_mmd, k.mmd_truth_samples, centers, cfg),
            jax.random.normal(k_omega, (k.mmd_features, DIM)),
            jax.random.uniform(k_phase, (k.mmd_features,), maxval=2 * jnp.pi),
        )

    # Jitted: op by op, the draws take tens of seconds on a busy CPU.
    held, truth_x, omega_unit, phase = jax.jit(draws)(jax.random.key(k.heldout_seed))
    # The MMD kernel's width: the median distance between held-out pairs (fixed for the run).
    omega = omega_unit / median_width(held)
    embedding = jax.jit(features)(truth_x, omega, phase).mean(0)
    return Truth(centers, held, omega, phase, embedding)


def original_data(key, truth: Truth, cfg) -> jax.Array:
    """D_0 for one seed: ``x_Mx2``."""
    return draw(key, cfg.samples_per_generation, truth.blob_centers_KxD, cfg)


def num_slots(cfg) -> int:
    """Centres the state holds: the largest training set a generation can see (regime
    ``accumulate`` trains on every generation's M samples, any other regime on M)."""
    m = cfg.samples_per_generation
    return m * cfg.num_generations if cfg.mixing.regime == "accumulate" else m


def init(key, cfg, data0: Data) -> State:
    """An empty KDE (no filled slot); generation 0 is ``fit`` on D_0."""
    del key
    n = num_slots(cfg)
    dtype = data0.x.dtype
    return State(jnp.zeros((n, DIM), dtype), jnp.zeros((n,), dtype), jnp.ones((), dtype))


def bandwidth(n, cfg):
    """``h`` for ``n`` (weighted) samples by the configured rule."""
    k = cfg.kde
    if k.bandwidth_rule == "fixed":
        return jnp.asarray(k.bandwidth, jnp.float32)
    if k.bandwidth_rule == "scott":
        return n ** (-1.0 / (DIM + 4))
    return (n * (DIM + 2) / 4) ** (-1.0 / (DIM + 4))


def fit(key, state: State, data: Data, cfg) -> State:
    """The KDE of ``data``: its samples as centres, its weights, the rule's bandwidth."""
    del key, state
    slots, n = num_slots(cfg), data.x.shape[0]
    if n > slots:
        raise ValueError(f"kde.fit: {n} training samples exceed the state's {slots} slots")
    x = jnp.concatenate([data.x, jnp.zeros((slots - n, DIM), data.x.dtype)])
    w = jnp.concatenate([data.weight, jnp.zeros((slots - n,), data.weight.dtype)])
    w = w.astype(data.x.dtype)
    return State(x, w, jnp.asarray(bandwidth(w.sum(), cfg), data.x.dtype))


def sample(key, state: State, n: int, cfg) -> jax.Array:
    """``n`` draws ``x_nx2``: a centre by weight, plus ``h`` times a standard normal."""
    k_pick, k_noise = jax.random.split(key)
    cum_N = jnp.cumsum(state.weight_N)
    u_n = jax.random.uniform(k_pick, (n,), cum_N.dtype) * cum_N[-1]
    idx = jnp.searchsorted(cum_N, u_n, side="right")
    # u rounded up to the total would pick past the last filled slot: clip to it.
    last = state.weight_N.shape[0] - 1 - jnp.argmax(state.weight_N[::-1] > 0)
    idx = jnp.minimum(idx, last)
    z = jax.random.normal(k_noise, (n, DIM), state.centers_NxD.dtype)
    t = cfg.sampling.temperature
    if t != 1.0:  # the kernel noise scaled: a KDE of bandwidth lambda h
        z = z * jnp.asarray(t, z.dtype)
    return state.centers_NxD[idx] + state.bandwidth * z


def log_density(state: State, x_KxD) -> jax.Array:
    """``log p(x_k)`` of the KDE at each row of ``x_KxD``."""
    h = state.bandwidth
    sq_KxN = sum((x_KxD[:, None, j] - state.centers_NxD[None, :, j]) ** 2 for j in range(DIM))
    log_kernel = -sq_KxN / (2 * h**2) - DIM * jnp.log(jnp.sqrt(2 * jnp.pi) * h)
    p_N = state.weight_N / state.weight_N.sum()
    return jax.nn.logsumexp(log_kernel, b=p_N[None, :], axis=1)


def mmd(state: State, truth: Truth) -> jax.Array:
    """The MMD of the fixed random-feature kernel between the KDE and the truth (closed form)."""
    p_N = state.weight_N / state.weight_N.sum()
    damp_R = jnp.exp(-0.5 * state.bandwidth**2 * jnp.sum(truth.omega_RxD**2, axis=1))
    emb_R = damp_R * (p_N @ features(state.centers_NxD, truth.omega_RxD, truth.phase_R))
    return jnp.sqrt(jnp.sum((emb_R - truth.truth_embedding_R) ** 2))


def metrics(state: State, data: Data, origin: family.Origin, cfg) -> dict:
    truth = origin.truth
    out = {
        "nll": -jnp.mean(log_density(state, truth.heldout_NxD)),
        "mmd": mmd(state, truth),
        "bandwidth": state.bandwidth,
    }
    p, m = cfg.kde.snapshot_points, cfg.samples_per_generation
    if p:
        # The newest block: accumulate fills the buffer in order, so it ends at sum(weight).
        start = jnp.maximum(data.weight.sum().astype(jnp.int32) - m, 0)
        out["snapshot"] = jax.lax.dynamic_slice_in_dim(data.x, start, p)
    return out


FAMILY = family.Family(
    name="kde",
    validate=validate,
    reference=reference,
    original_data=original_data,
    init=init,
    fit=fit,
    sample=sample,
    metrics=metrics,
)
