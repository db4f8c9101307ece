"""Closed forms the chains are checked against (NumPy/SciPy, host-side), derivations in each
module's docstring.

    replace            the Gaussian chain (Shumailov et al., Theorem 3.1) and the discrete chain
    regimes            accumulate, augment, fresh, curation, Wright-Fisher (``mixing``)
    ecosystem          many lineages sharing one pool, any real-data source (``pool_moments``)
    tails              the discrete chain with sampling bias (tempered, top-k / top-p) and the
                       Bradley-Terry curated law
    linear_regression  the linear-regression chain (Gerstgrasser et al. 2024)
"""

from collapse_jax.theory.ecosystem import (
    POOL_POLICIES,
    REAL_SOURCES,
    axes_gini_simpson,
    axes_moments,
    lineage_spread,
    pool_moments,
)
from collapse_jax.theory.linear_regression import (
    linear_regression_accumulate_error,
    linear_regression_accumulate_limit,
    linear_regression_replace_error,
)
from collapse_jax.theory.regimes import (
    absorption_cdf,
    accumulate_expected_gini_simpson,
    accumulate_expected_mean_error,
    accumulate_expected_variance,
    accumulate_variance_limit,
    augment_fixed_point,
    augment_moments,
    curated_variance_factor,
    fresh_fixed_point,
    fresh_moments,
    wright_fisher_count_distributions,
    wright_fisher_support_and_tail,
)
from collapse_jax.theory.replace import (
    ESTIMATORS,
    absorption_probability,
    expected_gini_simpson,
    expected_log_variance,
    expected_mean_error,
    expected_std,
    expected_std_error_squared,
    expected_support_size_generation0,
    expected_tail_mass_generation0,
    expected_variance,
    expected_variance_squared,
    expected_w2_squared,
    first_order_absorption_time,
    first_order_w2_squared,
    mean_chi,
    monte_carlo_horizon,
    survival_probability,
    tail_mask,
    variance_ratio,
)
from collapse_jax.theory.tails import (
    biased_probabilities,
    bradley_terry_curated,
    compositions,
    expected_rank_frequencies,
    truncate,
    truncated_chain_law,
    truncated_support_and_tail,
)

__all__ = [
    "ESTIMATORS",
    "POOL_POLICIES",
    "REAL_SOURCES",
    "absorption_cdf",
    "absorption_probability",
    "accumulate_expected_gini_simpson",
    "accumulate_expected_mean_error",
    "accumulate_expected_variance",
    "accumulate_variance_limit",
    "augment_fixed_point",
    "augment_moments",
    "axes_gini_simpson",
    "axes_moments",
    "biased_probabilities",
    "bradley_terry_curated",
    "compositions",
    "curated_variance_factor",
    "expected_gini_simpson",
    "expected_log_variance",
    "expected_mean_error",
    "expected_rank_frequencies",
    "expected_std",
    "expected_std_error_squared",
    "expected_support_size_generation0",
    "expected_tail_mass_generation0",
    "expected_variance",
    "expected_variance_squared",
    "expected_w2_squared",
    "first_order_absorption_time",
    "first_order_w2_squared",
    "fresh_fixed_point",
    "fresh_moments",
    "lineage_spread",
    "linear_regression_accumulate_error",
    "linear_regression_accumulate_limit",
    "linear_regression_replace_error",
    "mean_chi",
    "monte_carlo_horizon",
    "pool_moments",
    "survival_probability",
    "tail_mask",
    "truncate",
    "truncated_chain_law",
    "truncated_support_and_tail",
    "variance_ratio",
    "wright_fisher_count_distributions",
    "wright_fisher_support_and_tail",
]
