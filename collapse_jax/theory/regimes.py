"""Closed forms of the regimes beyond ``replace`` (``mixing``): 1-D Gaussian and discrete.

Notation: M samples per generation, estimator divisor c(n) = n (mle) or n - 1 (unbiased) for a
fit on n samples, and for a fit on a pool of n samples with sum of squares about its mean T,
sigma^2 = T / c(n). Two facts do
all the work: (i) for n i.i.d. draws of variance s^2, E[T] = (n - 1) s^2 (any distribution); (ii)
pooling two groups of sizes n1, n2 with means m1, m2 and sums of squares T1, T2 gives
T = T1 + T2 + (n1 n2 / (n1 + n2)) (m1 - m2)^2. Every recursion below is linear in the previous
generation's E[sigma^2] and mean error, so it is exact in expectation (not asymptotic), and needs
only D_0's first two moments.
"""

import numpy as np
from scipy.special import gammaln

from collapse_jax.theory.replace import _divisor, tail_mask


def _c(n, estimator: str):
    return n - 1 if _divisor(2, estimator) == 1 else n


def accumulate_expected_variance(
    generation, samples_per_generation, estimator="mle", sigma=1.0, temperature=1.0
):
    """``E[sigma_g^2]`` under ``accumulate`` (generation g fits D_0 .. D_g, n_g = (g + 1) M).

    Adding M draws of the model N(mu_g, sigma_g^2) to a pool of n_g with sum of squares T_g: by (i)
    and (ii), ``E[T_(g+1) | past] = T_g + (M - 1) sigma_g^2 + (n_g M / n_(g+1)) sigma_g^2 / M
    = T_g + sigma_g^2 M (1 - 1 / n_(g+1))``. With ``sigma_g^2 = T_g / c(n_g)``:

      mle:       E[sigma_(g+1)^2 | past] = sigma_g^2 (1 - M / n_(g+1)^2) = sigma_g^2 (1 - 1/((g+2)^2 M))
      unbiased:  E[sigma_(g+1)^2 | past] = sigma_g^2 (1 - M / (n_(g+1) (n_(g+1) - 1)))

    and ``E[sigma_0^2] = sigma^2 (M - 1) / c(M)``. Hence (Kazdan et al. 2024, "Collapse or thrive")

      mle:       E[sigma_g^2] = sigma^2 prod_{k=1}^{g+1} (1 - 1 / (k^2 M))
      unbiased:  E[sigma_g^2] = sigma^2 prod_{k=2}^{g+1} (1 - 1 / (k (k M - 1)))

    Both converge to a positive limit (``accumulate_variance_limit``): no collapse.

    With a sampling temperature lambda the M new draws have variance lambda^2 sigma_g^2, so
    ``E[T_(g+1) | past] = T_g + lambda^2 sigma_g^2 M (1 - 1 / n_(g+1))`` and, for k = g + 1 >= 1,

      E[sigma_k^2] / E[sigma_(k-1)^2] = (c(k M) + lambda^2 M (1 - 1 / ((k+1) M))) / c((k+1) M)
                                      = 1 - (1 - lambda^2) / (k + 1) - lambda^2 / ((k+1)^2 M)   (mle)

    from ``E[sigma_0^2] = sigma^2 (M - 1) / c(M)``. The 1/(k+1) term makes the product behave like
    ``g^(lambda^2 - 1)``: accumulating all data no longer stops the collapse once lambda < 1 (the
    variance falls polynomially to 0), and lambda > 1 makes it grow without bound.
    """
    g = np.atleast_1d(np.asarray(generation, dtype=int))
    m = float(samples_per_generation)
    if temperature != 1.0:
        lam2 = float(temperature) ** 2
        k = np.arange(1, int(g.max()) + 1, dtype=float)
        c = _c((k + 1) * m, estimator)
        f = (_c(k * m, estimator) + lam2 * m * (1 - 1 / ((k + 1) * m))) / c
        v0 = sigma**2 * (m - 1) / _c(m, estimator)
        out = v0 * np.concatenate([[1.0], np.cumprod(f)])[g]
        return out if np.ndim(generation) else out[0]
    k = np.arange(1, int(g.max()) + 2, dtype=float)
    if estimator == "mle":
        f = 1 - 1 / (k**2 * m)
    else:
        _divisor(m, estimator)
        f = np.where(k == 1, 1.0, 1 - 1 / (k * (k * m - 1)))
    out = sigma**2 * np.cumprod(f)[g]
    return out if np.ndim(generation) else out[0]


def accumulate_variance_limit(samples_per_generation, estimator="mle", sigma=1.0):
    """``lim_g E[sigma_g^2]`` under ``accumulate``, from Euler's product for Gamma.

    ``prod_{k>=1} (k - a)(k - b) / (k (k - a - b)) = Gamma(1 - a - b) / (Gamma(1 - a) Gamma(1 - b))``.
    mle: a = -b = 1/sqrt(M), giving ``sigma^2 sin(pi / sqrt M) / (pi / sqrt M)`` (~ 1 - pi^2/(6M)).
    unbiased: ``1 - 1/(k(kM - 1)) = (k - a)(k - b) / (k (k - 1/M))`` with a, b the roots of
    ``M k^2 - k - 1`` (a + b = 1/M), and the k = 1 factor ``(1 - 2/M) / (1 - 1/M)`` divided out.
    """
    m = float(samples_per_generation)
    if estimator == "mle":
        x = np.pi / np.sqrt(m)
        return sigma**2 * np.sin(x) / x
    _divisor(m, estimator)
    disc = np.sqrt(1 + 4 * m)
    a, b = (1 + disc) / (2 * m), (1 - disc) / (2 * m)
    if m <= 2:
        raise ValueError(f"samples_per_generation: expected > 2 for the unbiased limit, got {m}")
    # For M > 2 both 1 - a and 1 - b are positive, so log-Gammas are the logs of the Gammas.
    log_full = gammaln(1 - 1 / m) - gammaln(1 - a) - gammaln(1 - b)
    return sigma**2 * np.exp(log_full) * (1 - 1 / m) / (1 - 2 / m)


def accumulate_expected_mean_error(
    generation, samples_per_generation, estimator="mle", sigma=1.0, temperature=1.0
):
    """``E[(mu_g - mu)^2]`` under ``accumulate``.

    ``mu_(g+1) - mu_g = (M / n_(g+1)) (ybar - mu_g)``, a martingale difference of variance
    ``M lambda^2 E[sigma_g^2] / n_(g+1)^2 = lambda^2 E[sigma_g^2] / ((g+2)^2 M)``, so
    ``E[(mu_g - mu)^2] = sigma^2 / M + lambda^2 sum_{j=1}^{g} E[sigma_(j-1)^2] / ((j+1)^2 M)``.
    At lambda = 1, since ``E[sigma_j^2] <= sigma^2`` for both estimators, it stays below
    ``(sigma^2 / M) sum_k 1/k^2 = pi^2 sigma^2 / (6 M)`` (Dey & Donoho's pi^2/6).
    """
    g = np.atleast_1d(np.asarray(generation, dtype=int))
    m = float(samples_per_generation)
    j = np.arange(1, int(g.max()) + 1)
    lam = temperature
    v = (
        accumulate_expected_variance(j - 1, m, estimator, sigma, temperature=lam)
        if j.size
        else np.zeros(0)
    )
    if lam != 1.0:
        v = v * float(lam) ** 2
    steps = np.concatenate([[sigma**2 / m], v / ((j + 1) ** 2 * m)])
    out = np.cumsum(steps)[g]
    return out if np.ndim(generation) else out[0]


def accumulate_expected_gini_simpson(generation, q_K, samples_per_generation):
    """``E[1 - sum_i p_(g,i)^2]`` of the discrete chain under ``accumulate``, exact.

    Adding X ~ Multinomial(M, p_g) to counts n_g p_g: ``E[(n_g p + X_i)^2 | p] = n_(g+1)^2 p_i^2
    + M p_i (1 - p_i)``, so ``E[1 - sum p_(g+1)^2] = E[1 - sum p_g^2] (1 - M / n_(g+1)^2)``: the
    Gaussian mle product again, ``(1 - sum q^2) prod_{k=1}^{g+1} (1 - 1/(k^2 M))``, which tends
    to ``(1 - sum q^2) sin(pi/sqrt M)/(pi/sqrt M)`` instead of 0 (replace).
    """
    q = np.asarray(q_K, dtype=float)
    return (1 - np.sum(q**2)) * accumulate_expected_variance(generation, samples_per_generation)


def _linear_recursion(num_generations, v0, e0, step):
    v, e = [v0], [e0]
    for _ in range(1, num_generations):
        nv, ne = step(v[-1], e[-1])
        v.append(nv)
        e.append(ne)
    return np.array(v), np.array(e)


def augment_moments(
    num_generations, samples_per_generation, augment_ratio, estimator, sigma=1.0, temperature=1.0
):
    """``(E[sigma_g^2], E[(mu_g - mu)^2])`` for g < num_generations under ``augment`` (lambda).

    Generation g >= 1 fits all of D_0 (M samples, mean a, sum of squares T_0) plus L = round(lambda M)
    draws of N(mu_(g-1), sigma_(g-1)^2) (Alemohammad et al. 2024's augmentation loop), n = M + L.
    With ``v = E[sigma_(g-1)^2]`` and ``d = E[(mu_(g-1) - a)^2]``, by (i) and (ii):

      E[T_g]     = (M - 1) sigma^2 + (L - 1) v + (M L / n) (d + v / L)
      E[sigma_g^2] = E[T_g] / c(n)
      d_g        = (L / n)^2 (d + v / L)          (mu_g - a = (L / n) (ybar - a))
      E[(mu_g - mu)^2] = sigma^2 / M + d_g        (the cross term vanishes: d_0 = 0 and
                                                  E[(a - mu)(mu_g - a)] = (L/n)^g E[(a-mu)(mu_0-a)])

    from ``E[sigma_0^2] = sigma^2 (M - 1) / c(M)``, d_0 = 0. Fixed point (``augment_fixed_point``):
    ``d* = L v* / (n^2 - L^2)`` and v* solves the first line, close to sigma^2 (1 - O(1/M)): the
    real data anchor the chain, so it never collapses, whatever lambda.

    A sampling temperature tau makes the model draws' variance ``tau^2 v``: every ``v`` above
    becomes ``tau^2 v`` (within the model group and in its mean's spread).
    """
    m = int(samples_per_generation)
    lam = round(augment_ratio * m)
    n = m + lam
    c, s2 = _c(n, estimator), sigma**2
    tau2 = float(temperature) ** 2

    def step(v, e):
        if tau2 != 1.0:
            v = tau2 * v
        d = e - s2 / m
        t = (m - 1) * s2 + (lam - 1) * v + (m / n) * (lam * d + v)
        d_new = (lam**2 * d + lam * v) / n**2
        return t / c, s2 / m + d_new

    return _linear_recursion(num_generations, s2 * (m - 1) / _c(m, estimator), s2 / m, step)


def augment_fixed_point(
    samples_per_generation, augment_ratio, estimator, sigma=1.0, temperature=1.0
):
    """``(v*, e*)``: the limits of ``augment_moments`` (the 2x2 linear fixed point)."""
    m = int(samples_per_generation)
    lam = round(augment_ratio * m)
    n = m + lam
    c, s2 = _c(n, estimator), sigma**2
    t2 = float(temperature) ** 2
    dv = lam * t2 / (n**2 - lam**2)  # d* = dv v*
    v = (m - 1) * s2 / (c - t2 * (lam - 1) - (m / n) * (lam * dv + t2))
    return v, s2 / m + dv * v


def fresh_moments(
    num_generations, samples_per_generation, gamma, estimator, sigma=1.0, temperature=1.0
):
    """``(E[sigma_g^2], E[(mu_g - mu)^2])`` for g < num_generations under ``fresh`` (gamma).

    Generation g >= 1 fits F = round(gamma M) new draws of the truth (mean f, E[(f - mu)^2] =
    sigma^2 / F, independent of the past) plus L = M - F draws of N(mu_(g-1), sigma_(g-1)^2)
    (Alemohammad et al.'s fresh-data loop). With ``v = E[sigma_(g-1)^2]``, ``e = E[(mu_(g-1) - mu)^2]``:

      E[T_g]   = (F - 1) sigma^2 + (L - 1) v + (F L / M) (e + v / L + sigma^2 / F)
      E[sigma_g^2] = E[T_g] / c(M)
      E[(mu_g - mu)^2] = (F sigma^2 + L^2 e + L v) / M^2

    Fixed point (``fresh_fixed_point``): ``e* = (F sigma^2 + L v*) / (M^2 - L^2)`` and v* from the
    first line. Any F >= 1 stops the collapse; for small F/M the model's mean wanders further from
    mu before the fresh draws pull it back, and that spread between the two groups enters the
    pooled variance, so v* can exceed sigma^2 (M = 10, F = 2, unbiased: v* = 1.31 sigma^2).

    A sampling temperature tau makes the model draws' variance ``tau^2 v``: every ``v`` above
    becomes ``tau^2 v``.
    """
    m = int(samples_per_generation)
    f = round(gamma * m)
    lam = m - f
    c, s2 = _c(m, estimator), sigma**2
    tau2 = float(temperature) ** 2

    def step(v, e):
        if tau2 != 1.0:
            v = tau2 * v
        t = (f - 1) * s2 + (lam - 1) * v + (f * lam / m) * e + (f / m) * v + (lam / m) * s2
        return t / c, (f * s2 + lam**2 * e + lam * v) / m**2

    return _linear_recursion(num_generations, s2 * (m - 1) / c, s2 / m, step)


def fresh_fixed_point(samples_per_generation, gamma, estimator, sigma=1.0, temperature=1.0):
    """``(v*, e*)``: the limits of ``fresh_moments`` (the 2x2 linear fixed point)."""
    m = int(samples_per_generation)
    f = round(gamma * m)
    lam = m - f
    c, s2 = _c(m, estimator), sigma**2
    t2 = float(temperature) ** 2
    # e = e0 + ev v, substituted into v = (k0 + kv v + ke e) / c.
    e0, ev = f * s2 / (m**2 - lam**2), lam * t2 / (m**2 - lam**2)
    k0, kv, ke = (f - 1) * s2 + (lam / m) * s2, t2 * ((lam - 1) + f / m), f * lam / m
    v = (k0 + ke * e0) / (c - kv - ke * ev)
    return v, e0 + ev * v


def curated_variance_factor(oversample):
    """Per-generation ``E[sigma_(g+1)^2] / sigma_g^2`` at large M, curation by the model's own density.

    ``mixing.curation`` with score ``current``, rule ``top``, oversample k keeps the M of kM draws
    of N(mu_g, sigma_g^2) with the highest density: those with |x - mu_g| below the (1/k)-quantile
    of |x - mu_g|, i.e. a normal truncated to |z| < t with ``t = Phi^-1((1 + 1/k) / 2)``. Its
    variance is ``tau = 1 - 2 t phi(t) / (2 Phi(t) - 1)`` (the truncated-normal variance). As
    M -> inf the empirical cut tends to t and ``E[sigma_g^2] -> sigma^2 tau^g``: the std shrinks by
    sqrt(tau) per generation (k = 2: tau = 0.143) and the model's mass beyond any fixed t0 sigma,
    ``2 Phi(-t0 / tau^(g/2))``, falls like ``exp(-t0^2 / (2 tau^g))``: doubly exponentially.
    """
    from scipy.stats import norm

    k = np.asarray(oversample, dtype=float)
    t = norm.ppf((1 + 1 / k) / 2)
    return 1 - 2 * t * norm.pdf(t) / (2 * norm.cdf(t) - 1)


def wright_fisher_count_distributions(q_K, samples_per_generation, num_generations):
    """``P[g, i, c]``: the exact law of state i's count c at generation g (pure ``replace``).

    Each state's count is a Wright-Fisher (binomial) chain: ``c_0 ~ Bin(M, q_i)`` and
    ``c_(g+1) | c_g ~ Bin(M, c_g / M)`` (a multinomial's margins are binomial), so its law is the
    vector ``P[g, i]`` pushed through the (M+1) x (M+1) binomial transition matrix: exact, in
    O(K M^2 G) operations. Replaces the diffusion approximation of ``first_order_absorption_time``.
    """
    from scipy.stats import binom

    q = np.asarray(q_K, dtype=float)
    m = int(samples_per_generation)
    c = np.arange(m + 1)
    trans = binom.pmf(c[None, :], m, c[:, None] / m)  # [from, to]
    p = binom.pmf(c[None, :], m, q[:, None])  # [K, M+1]
    out = [p]
    for _ in range(1, num_generations):
        p = p @ trans
        out.append(p)
    return np.stack(out)


def wright_fisher_support_and_tail(q_K, samples_per_generation, num_generations):
    """``(E[support size]_G, E[tail mass]_G)``: ``sum_i P(c_(g,i) > 0)`` and its q-weighted tail sum."""
    q = np.asarray(q_K, dtype=float)
    present = (
        1 - wright_fisher_count_distributions(q, samples_per_generation, num_generations)[:, :, 0]
    )
    tail = tail_mask(q, samples_per_generation)
    return present.sum(1), (present * np.where(tail, q, 0.0)[None]).sum(1)


def absorption_cdf(q_K, samples_per_generation, num_generations):
    """``P(absorbed_generation <= g)``: ``sum_i P(c_(g,i) = M)`` (a delta is absorbing, the events
    for different i are disjoint)."""
    p = wright_fisher_count_distributions(q_K, samples_per_generation, num_generations)
    return p[:, :, -1].sum(1)
