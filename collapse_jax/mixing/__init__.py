"""The sampling step of learning with generational data (Shumailov et al., Sec. 3).

The next dataset is drawn from ``p_(i+1) = alpha * p_theta(i+1) + beta * p_i + gamma * p_0``: model
samples, data kept from the previous dataset, and original data. The counts are fixed at trace
time, so every generation has static shapes.

A pool is a ``family.Data``: samples ``x`` with a leading sample axis and a ``weight`` per slot (0
for an empty slot). Only the accumulating regimes have empty slots (a buffer of ``num_generations * M`` filled as the chain
goes); every family's ``fit`` honours the weights.

Named regimes:
  replace               alpha = 1: each generation sees only its predecessor's samples.
  accumulate            all data so far (D_0 .. D_i), as the authors' accumulate experiment and
                        Gerstgrasser et al. (2024).
  accumulate_subsample  M samples drawn without replacement from all data so far.
  keep_real             a fraction gamma of original data each generation (the paper's 10% LLM
                        regime), alpha = 1 - gamma.
  custom                explicit alpha, beta, gamma.
  augment               all of D_0 plus round(lambda * M) new model samples each generation
                        (``mixing.augment_ratio`` = lambda; Alemohammad et al. 2024's synthetic
                        augmentation loop): the synthetic part is replaced, the real part stays.
  fresh                 round(gamma * M) new draws from the original distribution each generation
                        (never seen before) plus M - round(gamma * M) model samples, with gamma =
                        ``mixing.fresh_fraction`` (Alemohammad et
                        al.'s fresh-data loop). The family's ``fresh_data`` draws them (a new sample
                        of the truth for the small families; unused real examples for the VAE
                        and the LM).
  composed              the regime spelled as orthogonal axes (``docs/ecosystems.md``), each a
                        field of ``cfg.mixing``:
      pool               replace (each pool is the generation's new rows) | accumulate (the new
                         rows join every earlier pool, D_0 included)
      real_source        none | original (rows of the fixed D_0, drawn without replacement; all
                         of it, in order, when real_samples = M) | fresh (new draws of the truth,
                         the family's ``fresh_data``)
      real_samples       R real rows per generation (0 with real_source none)
      synthetic_samples  S model samples per generation; -1 is M - R (a fixed total of M rows)
      fit_samples        K rows each fit draws from the pool without replacement; 0 the whole pool
      num_lineages       L models per seed sharing each pool (``chain/lineages.py``): each draws
                         S samples, the pool holds all L S and the R real rows, and each fits its
                         own K rows of it (1: the chain of one model, as every other regime)
      provenance         unknown (the K rows are a uniform draw: the learner cannot tell real
                         from synthetic) | detector (a detector of separation
                         ``detector_separation`` d scores every pool row, and the K rows are drawn
                         one after another with P proportional to (1 - p_synthetic)^b, b =
                         ``detector_exponent``; Drayson et al. 2025); b = 0 or d = 0 is the uniform
                         draw again
                        Every named regime but custom is one point of these axes (``as_composed``)
                        and runs the same program there, so its metrics are the same bytes.

Per-source weights (``mixing.real_weight``, ``mixing.synthetic_weight``) are frequency weights in
the fit: a slot of weight w counts as w samples (the Gaussian's ``n`` is the weights' sum). Real
slots are D_0 and fresh draws; model samples and data kept from the previous pool (beta) are
synthetic. Generation 0 always fits D_0 with weight 1.

Curation (``mixing.curation``): instead of ``num_model`` model samples, draw ``oversample`` times
as many candidates, score each, and keep ``num_model`` of them by ``rule``:
  top       the highest scores (with the model's own density and oversample k: the central 1/k).
  resample  ``num_model`` draws with replacement, P(candidate) proportional to exp(score / T)
            (importance resampling, as GeorgeDrayson/model_collapse).
Scores: ``oracle`` the true log-density (a verifier, Feng et al. 2024: ``truth_log_prob``),
``initial`` the generation-0 model's log-likelihood, ``current`` the sampling model's own
(``log_prob``); ``none`` switches curation off.

One module a job: ``regimes`` (the static ``Plan`` of ``cfg.mixing``, every named regime's counts),
``axes`` (regime composed and ``as_composed``), ``pool`` (the pool, the fit's rows, curation).
"""

from collapse_jax.family import Data, full
from collapse_jax.mixing.axes import (
    AXES_DEFAULTS,
    POOLS,
    PROVENANCES,
    REAL_SOURCES,
    as_composed,
)
from collapse_jax.mixing.pool import (
    choose,
    curate,
    initial_pool,
    next_pool,
    synthetic_mask,
    training_data,
)
from collapse_jax.mixing.regimes import REGIMES, RULES, SCORES, Plan, plan, plan_for

__all__ = [
    "AXES_DEFAULTS",
    "POOLS",
    "PROVENANCES",
    "REAL_SOURCES",
    "REGIMES",
    "RULES",
    "SCORES",
    "Data",
    "Plan",
    "as_composed",
    "choose",
    "curate",
    "full",
    "initial_pool",
    "next_pool",
    "plan",
    "plan_for",
    "synthetic_mask",
    "training_data",
]
