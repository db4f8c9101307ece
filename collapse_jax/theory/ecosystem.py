"""Many lineages, one pool (1-D Gaussian): the data ecosystem of ``docs/ecosystems.md``.

``pool_moments`` is exact in expectation for L lineages sharing each generation's pool, any real
data source and pool policy; the named single-lineage regimes are its special cases (the notation
and facts (i), (ii) of ``theory/regimes.py``).
"""

import numpy as np

from collapse_jax.theory.regimes import _c

POOL_POLICIES = ("replace", "accumulate")
REAL_SOURCES = ("none", "original", "fresh")


def pool_moments(
    num_generations,
    samples_per_generation,
    *,
    num_lineages=1,
    synthetic_per_lineage=None,
    fit_samples=None,
    real_source="none",
    real_samples=0,
    original_samples=None,
    pool="replace",
    estimator="mle",
    temperature=1.0,
    sigma=1.0,
    cross=False,
):
    """``(E[sigma_g^2], E[(mu_g - mu)^2])`` of one lineage of an ecosystem sharing one pool, exact
    (``cross``: also ``p = E[(mu_l - mu)(mu_k - mu)]`` of two lineages l != k, as a third array).

    The ecosystem: L lineages (``num_lineages``) per seed; M = ``samples_per_generation`` is the
    default of the sizes below. Generation 0: every lineage fits all of D_0 (``original_samples`` =
    M_0 draws of N(mu, sigma^2)). Generation g >= 1: each lineage draws S
    (``synthetic_per_lineage``) samples of its
    model N(mu_l, lambda^2 sigma_l^2) (lambda the temperature); the pool is the union of the L S
    synthetic rows and the real-data source's rows (``original``: ``real_samples`` = R rows drawn
    without replacement from the fixed D_0, R = M_0 keeping all of it; ``fresh``: R new draws of
    the truth; ``none``). Under ``pool="replace"`` the pool is just those rows; under
    ``"accumulate"`` they are added to every earlier pool (D_0 included; real source ``none`` or
    ``fresh``). Each lineage then fits K = ``fit_samples`` rows drawn without replacement from the
    pool, independently of the others (K = 0: the whole pool), with divisor c(K). The
    learner cannot tell real from synthetic (unknown provenance): its draw is uniform.

    It covers the named regimes as single-lineage cases: replace (S = K = M), keep_real (S = M - R,
    original R of M_0 = M), fresh (S = M - R, fresh R), augment (S = lambda M, original R = M_0 = M,
    K = S + M), accumulate (K = the whole pool) and accumulate_subsample (accumulate, K = M).

    Derivation (centre at mu = 0; three moments per generation, linear in each other):
    ``V = E[sigma_l^2]``, ``e = E[mu_l^2]`` (the mean error), ``p = E[mu_l mu_k]`` for l != k
    (also ``E[mu_l Pbar]`` with Pbar the pool's mean, since given the pool E[mu_l] = Pbar), and
    ``a_c = E[a mu_l]`` with a the mean of D_0. A pool of N rows with mean ybar and sum of squares
    T: a lineage's uniform draw of K rows without replacement has (simple random sampling)
    ``E[T_K | pool] = (K - 1) T / (N - 1)``, ``E[mu_l | pool] = ybar`` and
    ``Var[mu_l | pool] = h T`` with ``h = (N - K) / (K N (N - 1))``, independently across lineages.
    Hence, from the pool's moments,

      V' = (K - 1) E[T] / (c(K) (N - 1)),   e' = E[ybar^2] + h E[T],   p' = E[ybar^2].

    The new rows: lineage group l (S rows) has ``E[sum y^2] = S (e + lambda^2 V)`` and
    ``E[(sum y)^2] = S^2 e + S lambda^2 V``, two groups ``E[sum_l y sum_k y] = S^2 p``; the real rows
    (R of them, mean b) have ``E[sum y^2] = R sigma^2``, ``E[b^2] = sigma^2 / R`` (any R-subset of
    D_0 is an i.i.d. sample in law) and ``E[b mu_l] = a_c`` (original: E[b | D_0] = a) or 0 (fresh).
    So ``E[(N ybar)^2] = S^2 (L (e + lambda^2 V / S) + L (L - 1) p) + 2 S L R E[b mu] + R sigma^2``
    and ``E[T] = E[sum y^2] - E[(N ybar)^2] / N``; ``a_c' = E[a ybar] = (S L a_c + R E[a b]) / N``
    with ``E[a b] = sigma^2 / M_0`` (original) or 0. Accumulating adds the new block (n_a rows, mean
    A) to the old pool (n rows, mean Pbar, E[T_old]) by fact (ii) of the section above:
    ``E[T] = E[T_old] + E[T_A] + (n n_a / (n + n_a)) E[(Pbar - A)^2]``, with
    ``E[Pbar n_a A] = S L p``, and the new pool mean's ``E[Pbar'^2]`` from the same terms. Each
    step is linear in (V, e, p, a_c, E[T_old]), so the recursion is exact in expectation for any
    M, L, S, R, K, and needs only the truth's first two moments.

    With L > 1 the lineages share every pool, so their means are correlated (p > 0): the spread
    between two lineages is ``E[(mu_l - mu_k)^2] = 2 (e - p)``. What has no closed form here: a
    learner that weights rows by a synthetic-data detector (importance resampling; the draw is no
    longer uniform, and the weights depend on the rows), fit weights other than 1, and the
    original source under ``accumulate`` (D_0's rows entering the pool more than once).
    """
    G, M, L = int(num_generations), int(samples_per_generation), int(num_lineages)
    S = M if synthetic_per_lineage is None else int(synthetic_per_lineage)
    K = M if fit_samples is None else int(fit_samples)
    M0 = M if original_samples is None else int(original_samples)
    R = int(real_samples) if real_source != "none" else 0
    if pool not in POOL_POLICIES:
        raise ValueError(f"pool: expected one of {POOL_POLICIES}, got {pool!r}")
    if real_source not in REAL_SOURCES:
        raise ValueError(f"real_source: expected one of {REAL_SOURCES}, got {real_source!r}")
    if real_source == "original" and not 0 < R <= M0:
        raise ValueError(f"real_samples: expected 1..{M0} rows of D_0, got {R}")
    if real_source == "original" and pool == "accumulate":
        raise ValueError("real_source=original under pool=accumulate has no closed form here")
    if L < 1 or S < 0 or M0 < 2 or K == 1 or K < 0:
        raise ValueError(f"expected L >= 1, S >= 0, M_0 >= 2, K 0 or >= 2; got {L}, {S}, {M0}, {K}")
    s2, lam2 = float(sigma) ** 2, float(temperature) ** 2
    ab = s2 / M0 if real_source == "original" else 0.0  # E[a b]

    # Generation 0: every lineage is the fit on all of D_0.
    v, e = s2 * (M0 - 1) / _c(M0, estimator), s2 / M0
    p = ac = e
    n, t_pool = M0, (M0 - 1) * s2
    out_v, out_e, out_p = [v], [e], [p]
    for _ in range(1, G):
        n_a = L * S + R
        sum_sq = L * S * (e + lam2 * v) + R * s2
        sum_a2 = S * S * (L * e + L * (L - 1) * p) + S * L * lam2 * v
        cross_b = ac if real_source == "original" else 0.0
        sum_a2 += 2 * S * L * R * cross_b + R * s2  # E[(n_a A)^2]
        t_a = sum_sq - sum_a2 / n_a
        if pool == "replace":
            n_pool, t_pool, ybar2 = n_a, t_a, sum_a2 / n_a**2
            ac = (S * L * ac + R * ab) / n_a
        else:
            pa = S * L * p  # E[Pbar n_a A]
            d2 = p - 2 * pa / n_a + sum_a2 / n_a**2  # E[(Pbar - A)^2]
            n_pool = n + n_a
            t_pool = t_pool + t_a + n * n_a / n_pool * d2
            ybar2 = (n * n * p + 2 * n * pa + sum_a2) / n_pool**2
            n = n_pool
        k = K or n_pool
        if k > n_pool:
            raise ValueError(f"fit_samples: K = {k} rows asked of a pool of {n_pool}")
        h = (n_pool - k) / (k * n_pool * (n_pool - 1))
        v = (k - 1) * t_pool / (_c(k, estimator) * (n_pool - 1))
        e, p = ybar2 + h * t_pool, ybar2
        out_v.append(v)
        out_e.append(e)
        out_p.append(p)
    if cross:
        return np.array(out_v), np.array(out_e), np.array(out_p)
    return np.array(out_v), np.array(out_e)


def lineage_spread(num_generations, samples_per_generation, **kw):
    """``E[(mu_l - mu_k)^2]`` of two lineages l != k, exact: ``2 (e - p)`` from ``pool_moments``
    (same arguments); 0 at generation 0, when every lineage is the fit of D_0."""
    _, e, p = pool_moments(num_generations, samples_per_generation, cross=True, **kw)
    return 2 * (e - p)


def axes_moments(num_generations, samples_per_generation, axes, **kw):
    """``pool_moments`` of one lineage of regime composed (``axes``: ``mixing.as_composed``'s
    dict, or ``cfg.mixing``; ``num_lineages`` lineages), or None where it has no closed form (real_source original under
    pool accumulate). ``kw``: estimator, temperature, sigma."""
    m, r = int(samples_per_generation), axes["real_samples"]
    s = m - r if axes["synthetic_samples"] == -1 else axes["synthetic_samples"]
    if axes["pool"] == "accumulate" and axes["real_source"] == "original":
        return None
    lineages = axes["num_lineages"] if "num_lineages" in axes else 1  # (saved before lineages)
    k = axes["fit_samples"] or (0 if axes["pool"] == "accumulate" else lineages * s + r)
    return pool_moments(
        num_generations,
        m,
        num_lineages=lineages,
        synthetic_per_lineage=s,
        fit_samples=k,
        real_source=axes["real_source"],
        real_samples=r,
        pool=axes["pool"],
        **kw,
    )


def axes_gini_simpson(num_generations, samples_per_generation, q_K, axes):
    """``E[1 - sum_i p_(g,i)^2]`` of the discrete chain (refit by frequencies) under regime
    composed, exact: ``(1 - sum q^2)`` times ``axes_moments``' mle variance at sigma = 1.

    Code a state as its one-hot vector in R^K. The frequencies p of n rows are their mean, and
    ``1 - sum p^2 = sum_i p_i (1 - p_i)`` is the trace of their mle covariance (T / n). Sampling
    the fitted frequencies draws i.i.d. rows of mean p and covariance trace exactly that, as the
    Gaussian chain draws rows of its fitted mean and mle variance; every step of
    ``pool_moments``' derivation uses only first two moments and is linear, so it holds for each
    coordinate, and the traces add. The truth's trace is ``1 - sum q^2``. (No sampling temperature
    or tail cut: those change the law of the draws, not just its scale.)
    """
    q = np.asarray(q_K, dtype=float)
    moments = axes_moments(num_generations, samples_per_generation, axes, estimator="mle")
    return None if moments is None else (1 - np.sum(q**2)) * moments[0]
