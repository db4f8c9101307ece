"""Closed forms of the ``replace`` regime: the Gaussian chain and the discrete chain.

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
