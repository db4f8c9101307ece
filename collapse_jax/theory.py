"""Closed forms the chains are checked against (NumPy/SciPy, host-side).

Gaussian chain, 1-D, pure ``replace``, M samples per generation (Shumailov et al., Theorem 3.1 and
its supplementary proof). Generation 0 is the fit on D_0 (M samples of the truth N(mu, sigma^2));
generation n >= 1 is the fit on M samples of the generation n-1 model. With the estimator's divisor
``c`` (``M - 1`` for ``unbiased``, ``M`` for ``mle``), Cochran's theorem gives, for Gaussian data,

    sigma_n^2 = sigma^2 * prod_{i=0..n} X_i / c,      X_i ~ chi^2_{M-1} i.i.d.,
    mu_n | past ~ N(mu_{n-1}, sigma_{n-1}^2 / M),     mu_0 ~ N(mu, sigma^2 / M),

with each generation's sample mean independent of its sample variance. Hence, with
``r = (M - 1) / c`` (1 for unbiased, (M-1)/M for mle) and ``a = E[sqrt(X / c)]``:

    E[sigma_n^2]         = sigma^2 r^(n+1)
    E[sigma_n]           = sigma a^(n+1),   E[sqrt(chi^2_k)] = sqrt(2) Gamma((k+1)/2) / Gamma(k/2)
    E[(mu_n - mu)^2]     = sigma^2 / M + sum_{i<n} E[sigma_i^2] / M = (sigma^2 / M) sum_{j=0..n} r^j
    E[W2^2(N(mu_n, sigma_n^2), N(mu, sigma^2))]
                         = E[(mu_n - mu)^2] + E[sigma_n^2] - 2 sigma E[sigma_n] + sigma^2

(in 1-D, W2^2 between Gaussians is (mu_1 - mu_2)^2 + (sigma_1 - sigma_2)^2). These are exact,
not asymptotic. The increments ``mu_i - mu_{i-1}`` are martingale differences, so the mean error
and ``E[sigma_n^2]`` need only D_0's first two moments: they are exact for any D_0 with variance
sigma^2 (Theorem 3.1's setting). ``E[sigma_n]`` and the W2 expectation use the chi distribution of
the generation-0 fit and are exact only for Gaussian D_0.

So with the unbiased estimator ``E[sigma_n^2] = sigma^2`` for every n while ``sigma_n^2 -> 0``
almost surely (``E[log sigma_n^2]`` falls linearly): the mean is carried by ever rarer seeds, and
``E[W2^2]`` grows without bound, like ``(n+1) sigma^2 / M`` from the mean's random walk.

Sampling temperature lambda (``cfg.sampling.temperature``; MAD's sampling bias, Alemohammad et al.
2024): generation n >= 1 fits M draws of ``N(mu_(n-1), lambda^2 sigma_(n-1)^2)``, so each
resampling multiplies the variance by ``lambda^2 X / c`` and the mean's step variance by lambda^2;
D_0 is the truth's, untempered. Every form above keeps its derivation with one factor lambda^2
(lambda for the std) per resampling, n of them by generation n:

    E[sigma_n^2]     = sigma^2 r (lambda^2 r)^n     (unbiased: lambda^(2n) sigma^2;
                                                    mle: (lambda^2 (M-1)/M)^n E[sigma_0^2])
    E[sigma_n]       = sigma a (lambda a)^n
    E[(mu_n - mu)^2] = (sigma^2 / M) sum_{j=0..n} (lambda^2 r)^j
    E[log sigma_n^2] = log sigma^2 + (n+1) (psi((M-1)/2) + log(2/c)) + n log lambda^2

so E[sigma_n^2] is a geometric sequence of ratio lambda^2 r: the unbiased chain keeps its mean
only at lambda = 1, and the mle chain at lambda^2 = M / (M - 1).

Discrete chain (Sec. 3.1): counts ~ Multinomial(M, p_n), p_{n+1} = counts / M. ``p_n`` is a bounded
martingale with E[p_n] = q, absorbed in a delta almost surely, so P(absorbed at state i) = q_i.
"""

import math

import numpy as np
from scipy.special import gammaln

ESTIMATORS = ("unbiased", "mle")


def _divisor(m, estimator: str):
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: expected one of {ESTIMATORS}, got {estimator!r}")
    return m - 1 if estimator == "unbiased" else m


def _n_m(generation, samples_per_generation):
    n = np.asarray(generation, dtype=float)
    m = np.asarray(samples_per_generation, dtype=float)
    if np.any(m < 2):
        raise ValueError(f"samples_per_generation: expected >= 2, got {samples_per_generation!r}")
    return n, m


def mean_chi(k):
    """``E[sqrt(X)]`` for ``X ~ chi^2_k``: ``sqrt(2) Gamma((k+1)/2) / Gamma(k/2)`` (via gammaln)."""
    k = np.asarray(k, dtype=float)
    return np.sqrt(2.0) * np.exp(gammaln((k + 1) / 2) - gammaln(k / 2))


def variance_ratio(samples_per_generation, estimator: str):
    """``r = E[sigma_(n+1)^2 | sigma_n^2] / sigma_n^2 = (M - 1) / c``."""
    m = np.asarray(samples_per_generation, dtype=float)
    return (m - 1) / _divisor(m, estimator)


def expected_variance(
    generation, samples_per_generation, estimator="unbiased", sigma=1.0, dim=1, temperature=1.0
):
    """``E[sigma_n^2] = sigma^2 r^(n+1) lambda^(2n)``; for ``dim > 1``, ``E[tr Sigma_n]`` is ``dim``
    times that.

    Exact for any D_0 with covariance ``sigma^2 I`` (the Wishart mean is the covariance).
    """
    n, m = _n_m(generation, samples_per_generation)
    lam2 = float(temperature) ** 2
    return dim * sigma**2 * variance_ratio(m, estimator) ** (n + 1) * lam2**n


def expected_variance_squared(
    generation, samples_per_generation, estimator="unbiased", sigma=1.0, temperature=1.0
):
    """``E[sigma_n^4] = sigma^4 ((M-1)(M+1) / c^2)^(n+1) lambda^(4n)`` (``E[X^2] = k(k+2)``);
    Gaussian D_0."""
    n, m = _n_m(generation, samples_per_generation)
    lam4 = float(temperature) ** 4
    return sigma**4 * ((m - 1) * (m + 1) / _divisor(m, estimator) ** 2) ** (n + 1) * lam4**n


def monte_carlo_horizon(num_seeds, samples_per_generation):
    """The generation past which a mean over ``num_seeds`` seeds cannot track ``E[sigma_n^2]``.

    ``Var[sigma_n^2] / E[sigma_n^2]^2 = ((M+1)/(M-1))^(n+1) - 1`` (either estimator) grows
    geometrically: once it exceeds S the seed mean's relative standard error passes 1 and the
    mean is carried by seeds too rare to have been drawn, so the seed mean falls below the
    theory line. Returns the n where the relative variance equals S.
    """
    m = np.asarray(samples_per_generation, dtype=float)
    return np.log1p(num_seeds) / np.log((m + 1) / (m - 1)) - 1


def expected_std(
    generation, samples_per_generation, estimator="unbiased", sigma=1.0, temperature=1.0
):
    """``E[sigma_n] = sigma (E[sqrt(chi^2_{M-1})] / sqrt(c))^(n+1) lambda^n``; Gaussian D_0."""
    n, m = _n_m(generation, samples_per_generation)
    a = mean_chi(m - 1) / np.sqrt(_divisor(m, estimator))
    return sigma * a ** (n + 1) * float(temperature) ** n


def expected_mean_error(
    generation, samples_per_generation, estimator="unbiased", sigma=1.0, dim=1, temperature=1.0
):
    """``E[|mu_n - mu|^2] = dim (sigma^2 / M) sum_{j=0..n} (lambda^2 r)^j``.

    ``mu_0`` has variance sigma^2/M; generation i >= 1 adds an uncorrelated step of variance
    ``lambda^2 E[sigma_{i-1}^2] / M = sigma^2 (lambda^2 r)^i / M``. Exact for any D_0 with
    covariance sigma^2 I.
    """
    n, m = _n_m(generation, samples_per_generation)
    r = variance_ratio(m, estimator) * float(temperature) ** 2
    # sum_{j=0..n} r^j; r == 1 (unbiased) is the limit n + 1.
    with np.errstate(divide="ignore", invalid="ignore"):
        geometric = np.where(r == 1.0, n + 1, (1 - r ** (n + 1)) / np.where(r == 1.0, 0.5, 1 - r))
    return dim * sigma**2 / m * geometric


def expected_std_error_squared(
    generation, samples_per_generation, estimator="unbiased", sigma=1.0, temperature=1.0
):
    """``E[(sigma_n - sigma)^2] = E[sigma_n^2] - 2 sigma E[sigma_n] + sigma^2``; Gaussian D_0."""
    lam = temperature
    ev = expected_variance(generation, samples_per_generation, estimator, sigma, temperature=lam)
    es = expected_std(generation, samples_per_generation, estimator, sigma, temperature=lam)
    return ev - 2 * sigma * es + sigma**2


def expected_w2_squared(
    generation, samples_per_generation, estimator="unbiased", sigma=1.0, temperature=1.0
):
    """``E[W2^2(N(mu_n, sigma_n^2), N(mu, sigma^2))]``, exact for Gaussian D_0 (1-D).

    ``W2^2 = (mu_n - mu)^2 + (sigma_n - sigma)^2``; the expectation is the sum of
    ``expected_mean_error`` and ``expected_std_error_squared``.
    """
    g, m, lam = generation, samples_per_generation, temperature
    return expected_mean_error(g, m, estimator, sigma, temperature=lam) + (
        expected_std_error_squared(g, m, estimator, sigma, temperature=lam)
    )


def expected_log_variance(
    generation, samples_per_generation, estimator="unbiased", sigma=1.0, temperature=1.0
):
    """``E[log sigma_n^2] = log sigma^2 + (n+1) (psi((M-1)/2) + log(2 / c)) + n log lambda^2``;
    Gaussian D_0.

    Negative drift for both estimators (Jensen), so the median variance collapses geometrically
    while (unbiased) the mean stays at sigma^2: ``exp`` of this is the typical seed's variance.
    A temperature adds ``log lambda^2`` a generation: lambda^2 > exp(-drift) outruns the collapse.
    """
    from scipy.special import digamma

    n, m = _n_m(generation, samples_per_generation)
    drift = digamma((m - 1) / 2) + np.log(2.0 / _divisor(m, estimator))
    return np.log(sigma**2) + (n + 1) * drift + n * np.log(float(temperature) ** 2)


def first_order_w2_squared(generation, samples_per_generation, sigma=1.0):
    """The paper's first-order form for the unbiased chain: ``E[W2^2] ~ (3/2) sigma^2 (n+1) / M``.

    From the exact form: the mean error is ``(n+1) sigma^2 / M`` and, with
    ``a = E[sqrt(X / (M-1))] = 1 - 1 / (4M) + O(M^-2)``,
    ``2 sigma^2 (1 - a^(n+1)) ~ (n+1) sigma^2 / (2M)``.
    Valid while ``n << M``; the exact expression saturates the std term at ``2 sigma^2``.
    """
    n, m = _n_m(generation, samples_per_generation)
    return 1.5 * sigma**2 * (n + 1) / m


# ------------------------------------------------------------------------------------------------
# Discrete chain.


def absorption_probability(q_K):
    """P(the chain is absorbed in state i) = q_i: ``p_n`` is a bounded martingale with mean q."""
    return np.asarray(q_K, dtype=float)


def survival_probability(p, samples_per_generation):
    """P(a state of mass p appears among M multinomial draws) = ``1 - (1 - p)^M``."""
    return 1.0 - (1.0 - np.asarray(p, dtype=float)) ** samples_per_generation


def expected_support_size_generation0(q_K, samples_per_generation):
    """``E[#states present at generation 0] = sum_i 1 - (1 - q_i)^M`` (the fit on D_0)."""
    return survival_probability(q_K, samples_per_generation).sum()


def tail_mask(q_K, samples_per_generation):
    """The tail: states with ``q_i <= 1 / M`` (expected count at most one per generation)."""
    return np.asarray(q_K, dtype=float) <= 1.0 / samples_per_generation


def expected_tail_mass_generation0(q_K, samples_per_generation):
    """E[original mass of tail states present at generation 0] = sum_tail q_i (1 - (1-q_i)^M)."""
    q = np.asarray(q_K, dtype=float)
    keep = tail_mask(q, samples_per_generation)
    return float((q * survival_probability(q, samples_per_generation))[keep].sum())


def expected_gini_simpson(generation, q_K, samples_per_generation):
    """``E[1 - sum_i p_{n,i}^2] = (1 - sum_i q_i^2) (1 - 1/M)^(n+1)`` (pure replace), exact.

    One multinomial resampling maps ``E[p_i (1 - p_i) | p] `` to ``p_i (1 - p_i) (1 - 1/M)``
    (the Wright-Fisher heterozygosity decay); generation n is n + 1 resamplings of q.
    """
    n = np.asarray(generation, dtype=float)
    q = np.asarray(q_K, dtype=float)
    return (1.0 - np.sum(q**2)) * (1.0 - 1.0 / samples_per_generation) ** (n + 1)


def first_order_absorption_time(q_K, samples_per_generation):
    """Diffusion approximation of the mean number of resamplings until a delta (Littler 1975).

    ``-2 M sum_i (1 - q_i) log(1 - q_i)`` for the haploid Wright-Fisher chain of M draws; first
    order in 1/M. The chain's ``absorbed_generation`` counts from 0, i.e. one resampling fewer.
    """
    q = np.asarray(q_K, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q < 1.0, (1.0 - q) * np.log1p(-np.minimum(q, 1.0 - 1e-300)), 0.0)
    return float(-2.0 * samples_per_generation * terms.sum())


# ------------------------------------------------------------------------------------------------
# Regimes beyond replace (``mixing.py``), 1-D Gaussian and discrete. Notation: M samples per
# generation, estimator divisor c(n) = n (mle) or n - 1 (unbiased) for a fit on n samples, and for a
# fit on a pool of n samples with sum of squares about its mean T, sigma^2 = T / c(n). Two facts do
# all the work: (i) for n i.i.d. draws of variance s^2, E[T] = (n - 1) s^2 (any distribution); (ii)
# pooling two groups of sizes n1, n2 with means m1, m2 and sums of squares T1, T2 gives
# T = T1 + T2 + (n1 n2 / (n1 + n2)) (m1 - m2)^2. Every recursion below is linear in the previous
# generation's E[sigma^2] and mean error, so it is exact in expectation (not asymptotic), and needs
# only D_0's first two moments.


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


# ------------------------------------------------------------------------------------------------
# Many lineages, one pool (1-D Gaussian): the data ecosystem of docs/ecosystems.md.


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
):
    """``(E[sigma_g^2], E[(mu_g - mu)^2])`` of one lineage of an ecosystem sharing one pool, exact.

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
    out_v, out_e = [v], [e]
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
    return np.array(out_v), np.array(out_e)


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


# ------------------------------------------------------------------------------------------------
# The discrete chain with sampling bias (``cfg.sampling``): tempered and tail-cut resampling
# (Dohmatob et al. 2024, "A tale of tails"). Each state's count is no longer a Markov chain of its
# own (whether a state survives a top-k / top-p cut depends on every other count), so the
# Wright-Fisher oracle above extends by running the chain on whole count vectors: the
# compositions of M into K parts, C(M + K - 1, K - 1) of them, with the multinomial transition
# ``P(c' | c) = Multinomial(c'; M, cut(c))``. Exact for any K and M whose composition count fits
# in memory (a dense S x S matrix: K = 5, M = 12 gives S = 1820).


def compositions(total: int, parts: int) -> np.ndarray:
    """Every vector of ``parts`` non-negative integers summing to ``total``: int64 ``[S, parts]``."""
    import itertools

    rows = []
    for bars in itertools.combinations(range(total + parts - 1), parts - 1):
        edges = (-1, *bars, total + parts - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(parts)])
    return np.asarray(rows, dtype=np.int64).reshape(-1, parts)


def truncate(w_SxK, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """``discrete.truncate`` in NumPy, row by row: the same ranks (ties to the lower index), and for
    integer weights the same float32 comparison ``before < float32(top_p) * float32(total)``."""
    w = np.asarray(w_SxK)
    if not top_k and top_p >= 1.0:
        return w
    order = np.argsort(-w, axis=-1, kind="stable")
    rank = np.argsort(order, axis=-1, kind="stable")
    keep = w > 0
    if top_k:
        keep &= rank < top_k
    if top_p < 1.0:
        sorted_w = np.take_along_axis(np.where(keep, w, 0), order, axis=-1)
        before = np.take_along_axis(np.cumsum(sorted_w, -1) - sorted_w, rank, axis=-1)
        total = sorted_w.sum(-1, keepdims=True)
        if np.issubdtype(w.dtype, np.integer):
            keep &= before.astype(np.float32) < np.float32(top_p) * total.astype(np.float32)
        else:
            keep &= before < top_p * total
    return np.where(keep, w, 0)


def biased_probabilities(counts_SxK, temperature=1.0, top_k=0, top_p=1.0) -> np.ndarray:
    """What a fit of counts ``c`` is sampled with: ``c^(1/lambda)`` renormalised, then cut."""
    c = np.asarray(counts_SxK, dtype=np.int64)
    if temperature == 1.0:
        w = truncate(c, top_k, top_p).astype(float)
    else:
        with np.errstate(divide="ignore"):
            logc = np.where(c > 0, np.log(np.maximum(c, 1)), -np.inf)
        w = np.exp((logc - logc.max(-1, keepdims=True)) / temperature)
        w = truncate(np.where(c > 0, w, 0.0), top_k, top_p)
    return w / w.sum(-1, keepdims=True)


def truncated_chain_law(
    q_K,
    samples_per_generation,
    num_generations,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    max_states=6000,
):
    """``(P_GxS, compositions_SxK)``: the exact law of the fitted counts of the discrete chain
    (pure replace) whose generation g >= 1 samples M states from ``biased_probabilities`` of
    generation g - 1's counts; generation 0 fits M draws of q (untempered, uncut).

    With no bias it equals the Wright-Fisher law (``wright_fisher_count_distributions`` are its
    margins). Tempered probabilities are compared in float64 here and float32 in the chain, so a
    top-p cut that ties to the last bit may differ; without a temperature both compare integers
    the same way, and the law is the chain's exactly.
    """
    from scipy.special import gammaln as lg

    q = np.asarray(q_K, dtype=float)
    m, k = int(samples_per_generation), q.size
    size = math.comb(m + k - 1, k - 1)
    if size > max_states:
        raise ValueError(
            f"samples_per_generation, num_states: C(M + K - 1, K - 1) = {size} compositions "
            f"exceed max_states = {max_states}"
        )
    comps = compositions(m, k)
    log_coef = lg(m + 1) - lg(comps + 1).sum(-1)  # [S]

    def log_pmf(logp_XxK):
        # sum_j c_j log p_j with 0 log 0 = 0: a -inf log-probability becomes a huge negative.
        return log_coef[None, :] + np.maximum(logp_XxK, -1e30) @ comps.T

    with np.errstate(divide="ignore"):
        p0 = np.exp(log_pmf(np.log(q)[None]))[0]
        step = np.exp(log_pmf(np.log(biased_probabilities(comps, temperature, top_k, top_p))))
    out = [p0]
    for _ in range(1, int(num_generations)):
        out.append(out[-1] @ step)
    return np.stack(out), comps


def truncated_support_and_tail(q_K, samples_per_generation, num_generations, **bias):
    """``(E[support size]_G, E[tail mass]_G, P(absorbed by g)_G)`` of ``truncated_chain_law``; the
    tail is ``tail_mask`` (q_i <= 1/M), its mass the original q of the tail states present."""
    q = np.asarray(q_K, dtype=float)
    law, comps = truncated_chain_law(q, samples_per_generation, num_generations, **bias)
    present = comps > 0
    tail = np.where(tail_mask(q, samples_per_generation), q, 0.0)
    absorbed = present.sum(-1) == 1
    return law @ present.sum(-1), law @ (present @ tail), law @ absorbed


def expected_rank_frequencies(q_K, samples_per_generation, num_generations, **bias):
    """``E[p_(g,(r))]_GxK``: the expected r-th largest fitted frequency (the rank-frequency curve of
    "A tale of tails"), from ``truncated_chain_law``."""
    law, comps = truncated_chain_law(q_K, samples_per_generation, num_generations, **bias)
    ranked = -np.sort(-comps, axis=-1) / float(samples_per_generation)
    return law @ ranked


def bradley_terry_curated(p_K, reward_K, num_candidates, beta=1.0):
    """The law of one Bradley-Terry choice among K i.i.d. candidates of p (Ferbach et al. 2024).

    Candidate j of the K is kept with probability ``w_j / sum_k w_k``, ``w = exp(beta r)``. By
    symmetry of the K draws, ``P(keep state i) = K p_i E[w_i / (w_i + sum_{m<K} w_(X_m))]`` with
    ``X_1 .. X_(K-1)`` i.i.d. p; the expectation is a finite sum over the compositions of K - 1.
    A discrete chain refitted by frequencies on M such choices has ``E[p_(g+1) | p_g] =`` this
    law of ``p_g``, so ``E[r]`` under it never decreases (Ferbach et al.'s Lemma; here a
    submartingale at any M, since E_p[r] is linear in p).
    """
    p = np.asarray(p_K, dtype=float)
    # Renormalised: off the simplex the map is not mass-preserving, and iterating it would
    # amplify a rounding error in sum(p) about K-fold per step.
    p = p / p.sum()
    w = np.exp(beta * (np.asarray(reward_K, dtype=float) - np.max(reward_K)))
    k = int(num_candidates)
    if k == 1:
        return p.copy()
    others = compositions(k - 1, p.size)  # counts of the other K - 1 candidates per state
    from scipy.special import gammaln as lg

    with np.errstate(divide="ignore"):
        logp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), -np.inf)
    log_prob = lg(k) - lg(others + 1).sum(-1) + np.maximum(logp, -1e30) @ others.T
    prob = np.exp(log_prob)  # [C]
    rest = others @ w  # [C]
    share = w[:, None] / (w[:, None] + rest[None, :])  # [K, C]
    return k * p * (share @ prob)


# ------------------------------------------------------------------------------------------------
# Linear regression chain (Gerstgrasser et al. 2024, "Is model collapse inevitable?", Theorems
# for replace and accumulate; Dohmatob et al. 2024, "Model collapse demystified").
#
# Setting, as ``linear_regression.py`` builds it: one seed's design X (T x d, rank d) is fixed
# for every generation; fit i = 1, 2, ... (chain generation i - 1) sees labels
# ``y_i = X w_(i-1) + e_i`` with ``w_0 = w*`` and ``e_i ~ N(0, sigma^2 I_T)`` independent of
# everything before. With ``P = (X^T X)^-1 X^T``, ``P y_i = w_(i-1) + Z_i`` where
# ``Z_i = P e_i ~ N(0, sigma^2 (X^T X)^-1)``, i.i.d. given X.
#
#   replace     w_n = P y_n = w_(n-1) + Z_n, so w_n - w* = sum_{i<=n} Z_i and
#               E[|w_n - w*|^2 | X] = n sigma^2 tr((X^T X)^-1).
#   accumulate  fit n sees n copies of X with labels y_1..y_n; its normal equations
#               n X^T X w_n = X^T sum_i y_i give w_n = (1/n) sum_{i<=n} (w_(i-1) + Z_i), so
#               n w_n - (n-1) w_(n-1) = w_(n-1) + Z_n, i.e. w_n = w_(n-1) + Z_n / n and
#               w_n - w* = sum_{i<=n} Z_i / i:  E[|w_n - w*|^2 | X] = sigma^2 tr((X^T X)^-1)
#               sum_{i<=n} 1/i^2  <  (pi^2 / 6) sigma^2 tr((X^T X)^-1).
#
# The pool's slot weights cancel (both sides of the normal equations divide by n = sum(weight)),
# so the padded buffer changes nothing. For a Gaussian design X^T X ~ Wishart_d(I, T), whose
# inverse has mean I / (T - d - 1) for T > d + 1, so E tr((X^T X)^-1) = d / (T - d - 1) and,
# averaging over seeds (each its own X), the two expectations below follow. The accumulate form
# needs the *same* X in every generation (the state carries it): with a fresh design per
# generation the stacked normal equations weight the fits by their own X_i^T X_i and the 1/i
# telescoping no longer holds exactly. Both forms are exact (not asymptotic), and since
# w_n - w* is linear in the noise alone they hold for every w*. ``test_mse`` on fresh
# (x, y = x.w* + e) has mean ``E|w_n - w*|^2 + sigma^2`` (x ~ N(0, I) independent of w_n).


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
