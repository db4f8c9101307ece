"""Curation and provenance rules for the sampling step: pure, single-seed functions.

``mixing.curate`` keeps ``num_model`` of ``num_model * oversample`` model samples by the highest
score (``top``) or by resampling with P proportional to exp(score / T) (``resample``). This module
adds the rules of the papers since, each a pure function of a key and arrays:

Verification (Feng et al. 2024, "Beyond model collapse: scaling up with synthesized data requires
verification"): a verifier judges each candidate against the family's true quality (the truth's
log-density, or for MNIST a classifier's confidence) and errs with a chosen rate.
  ``verify``            accept iff quality >= threshold, each decision flipped with probability
                        ``error_rate`` (a symmetric binary verifier; 0 is an oracle, 0.5 a coin).
  ``noisy_score``       the quality plus Gaussian noise of a chosen std (a graded verifier);
                        ``pairwise_error_rate`` turns that std into the rate at which it orders
                        two candidates wrongly.
  ``select_accepted``   ``n`` candidates, accepted ones first, uniformly at random within each
                        class (so the kept set is all accepted ones when there are enough).

Bradley-Terry choice among K candidates (Ferbach et al. 2024, "Self-consuming generative models
with curated data provably optimize human preferences"): every kept sample is the choice of one
group of K i.i.d. candidates, candidate j chosen with probability
exp(beta r_j) / sum_k exp(beta r_k). With no real data, retraining on such choices raises the
expected reward every generation (their Lemma; ``theory.bradley_terry_curated`` is the exact
next distribution of a discrete model, and ``tests/test_curation.py`` checks the property on the
discrete chain).
  ``bradley_terry_choice``  the chosen index in each group of K.

Provenance (Drayson et al. 2025, "Machine-generated text detection prevents language model
collapse"): a detector scores each pool row's probability of being synthetic, and the learner
resamples its training set with weights (1 - p_synthetic)^b.
  ``detector_probability``  a detector of chosen separability: its score is N(+d/2, 1) on
                            synthetic rows and N(-d/2, 1) on real ones, and it reports the
                            posterior at equal priors, sigmoid(d s) (AUC = Phi(d / sqrt 2)).
  ``detector_weights``      (1 - p)^b.
  ``importance_resample``   ``n`` indices drawn with replacement, P proportional to the weights.
  ``detector_log_weights``  ``b log(1 - p_synthetic)`` of the same detector, computed in log space
                            (an oracle-like detector's (1 - p)^b underflows to 0 in float32).
  ``importance_choose``     ``n`` distinct indices, drawn one after another with P proportional to
                            the weights of those left (Gumbel top-k on the log-weights): the chain's
                            draw (``mixing.training_data``), which with equal weights is exactly
                            the uniform draw without replacement of unknown provenance.
"""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

# ---------------------------------------------------------------------------------------------
# Verification.


def verify(key, quality_N, threshold, error_rate: float) -> jax.Array:
    """``accept_N`` (bool): ``quality >= threshold``, each decision flipped with probability
    ``error_rate``. Non-finite quality counts as below any threshold."""
    good_N = jnp.where(jnp.isfinite(quality_N), quality_N >= threshold, False)
    if error_rate == 0.0:
        return good_N
    flip_N = jax.random.bernoulli(key, error_rate, good_N.shape)
    return good_N ^ flip_N


def noisy_score(key, quality_N, noise_std: float) -> jax.Array:
    """``quality + noise_std * z``, z ~ N(0, 1) per candidate (a graded verifier)."""
    if noise_std == 0.0:
        return quality_N
    z_N = jax.random.normal(key, quality_N.shape, jnp.result_type(quality_N, jnp.float32))
    return quality_N + noise_std * z_N


def pairwise_error_rate(quality_N, noise_std: float) -> float:
    """P(``noisy_score`` orders two distinct candidates of ``quality_N`` wrongly), averaged over
    every pair: ``Phi(-|q_i - q_j| / (sqrt 2 noise_std))`` (NumPy, host-side)."""
    q = np.asarray(quality_N, dtype=float)
    i, j = np.triu_indices(q.size, 1)
    gap = np.abs(q[i] - q[j])
    if noise_std == 0.0:
        return 0.0
    return float(norm.cdf(-gap / (np.sqrt(2.0) * noise_std)).mean())


def select_accepted(key, accept_N, n: int) -> jax.Array:
    """Indices of ``n`` candidates: accepted ones first, in uniformly random order within the
    accepted and the rejected (Gumbel keys, shifted so any accepted one outranks every rejected)."""
    g_N = jax.random.gumbel(key, accept_N.shape, jnp.float32)
    # Gumbel draws in float32 lie well within (-20, 60): 1e3 separates the classes.
    keys_N = g_N + jnp.where(accept_N, jnp.float32(1e3), jnp.float32(0.0))
    return jax.lax.top_k(keys_N, n)[1]


# ---------------------------------------------------------------------------------------------
# Bradley-Terry choice.


def bradley_terry_choice(key, reward_NxK, beta: float = 1.0) -> jax.Array:
    """``idx_N``: in each of the N groups of K candidates, candidate j with probability
    ``exp(beta r_j) / sum_k exp(beta r_k)``. Non-finite rewards are never chosen while a finite
    one is in the group."""
    logits = beta * reward_NxK.astype(jnp.float32)
    logits = jnp.where(jnp.isfinite(logits), logits, jnp.float32(-1e30))
    return jax.random.categorical(key, logits, axis=-1)


def bradley_terry_select(key, candidates_x, reward_C, num_groups: int, beta: float = 1.0):
    """``num_groups`` samples of ``candidates_x`` (C = num_groups * K rows, grouped in order): one
    Bradley-Terry choice per group of K consecutive candidates."""
    c = reward_C.shape[0]
    k = c // num_groups
    if k * num_groups != c:
        raise ValueError(f"bradley_terry_select: {c} candidates do not split into {num_groups}")
    idx_N = bradley_terry_choice(key, reward_C.reshape(num_groups, k), beta)
    return candidates_x[jnp.arange(num_groups) * k + idx_N]


# ---------------------------------------------------------------------------------------------
# Provenance: a synthetic-data detector and importance resampling by its score.


def detector_probability(key, synthetic_N, separation: float) -> jax.Array:
    """``p_synthetic_N`` of a detector whose score is ``N(+d/2, 1)`` on synthetic rows and
    ``N(-d/2, 1)`` on real ones (d = ``separation``); the posterior at equal priors is
    ``sigmoid(d s)``. d = 0 is blind (0.5 everywhere); its AUC is ``Phi(d / sqrt 2)``."""
    z_N = jax.random.normal(key, synthetic_N.shape, jnp.float32)
    s_N = z_N + jnp.where(synthetic_N, 0.5, -0.5) * separation
    return jax.nn.sigmoid(separation * s_N)


def detector_auc(separation: float) -> float:
    """The ROC AUC of ``detector_probability``'s score: ``Phi(d / sqrt 2)``."""
    return float(norm.cdf(separation / np.sqrt(2.0)))


def detector_weights(p_synthetic_N, exponent: float) -> jax.Array:
    """``(1 - p_synthetic)^b``: b = 0 ignores the detector, larger b trusts it more."""
    return (1.0 - p_synthetic_N) ** exponent


def importance_resample(key, weight_N, n: int) -> jax.Array:
    """``n`` indices drawn with replacement, P(i) proportional to ``weight_N`` (0 never drawn)."""
    logits = jnp.where(weight_N > 0, jnp.log(jnp.where(weight_N > 0, weight_N, 1.0)), -jnp.inf)
    return jax.random.categorical(key, logits, shape=(n,))


def detector_log_weights(key, synthetic_N, separation: float, exponent: float) -> jax.Array:
    """``log detector_weights(detector_probability(key, synthetic_N, separation), exponent)``,
    from the same draws: ``1 - sigmoid(d s) = sigmoid(-d s)``, so ``b log_sigmoid(-d s)``, finite
    wherever the detector is. b = 0 gives exactly 0 (equal weights)."""
    z_N = jax.random.normal(key, synthetic_N.shape, jnp.float32)
    s_N = z_N + jnp.where(synthetic_N, 0.5, -0.5) * separation
    return exponent * jax.nn.log_sigmoid(-separation * s_N)


def importance_choose(key, log_weight_N, n: int) -> jax.Array:
    """``n`` distinct indices: successive draws, each with P proportional to the weight among those
    not yet drawn (Gumbel top-k on ``log_weight_N``; -inf never drawn while n finite ones are
    left). Equal log-weights give the uniform draw without replacement."""
    g_N = jax.random.gumbel(key, log_weight_N.shape, jnp.float32)
    return jax.lax.top_k(log_weight_N + g_N, n)[1]
