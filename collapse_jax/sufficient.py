"""Layout of the exact-statistics samplers (``cfg.<family>.sampler = "statistics"``).

A Gaussian or categorical model's fit depends on its data only through sufficient statistics
(count, mean, scatter; or counts per state), and the statistics of M draws from the model have a
closed-form law (normal mean and Wishart scatter; multinomial counts). A statistics sampler draws
those directly, so one generation costs O(d^3) or O(K) whatever M is.

The chain stays unchanged: a family's "samples" become *records*, one row of sufficient statistics
standing for many samples, and its ``fit`` pools the rows (weights 0/1 as ever). Every generation's
dataset takes ``rows_per_generation(cfg)`` pool rows instead of M:

  replace, accumulate, custom with gamma = beta = 0    one row: the model's M draws as one record
                                                        (accumulate keeps one record per generation
                                                        and pools them: Chan's parallel formula).
  keep_real, custom with gamma > 0 (beta = 0)          M rows: the model's alpha M draws as one
                                                        record padded by empty (count 0) rows, and
                                                        gamma M real samples of D_0 as one-sample
                                                        records, chosen by ``mixing`` as usual.

Both are exact in distribution. Keeping data of the previous dataset (beta > 0) and
``accumulate_subsample`` choose *samples* from the pool, which a record cannot split: they are
refused with a ``ConfigError``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.errors import ConfigError

SAMPLERS = ("samples", "statistics")


def check_regime(cfg, field: str) -> None:
    """Refuse the data policies a statistics sampler cannot run exactly, naming ``field``."""
    regime = cfg.mixing.regime
    keeps = round(cfg.mixing.beta * cfg.samples_per_generation) > 0  # mixing.Plan.num_kept
    if regime not in ("replace", "accumulate", "keep_real", "custom") or keeps:
        what = f"mixing.regime={regime}"
        if keeps:
            what += f" with mixing.beta={cfg.mixing.beta}"
        raise ConfigError(
            f"{field}: 'statistics' cannot run {what} (it needs single samples: of earlier model "
            "data, of D_0 next to model data, or of the truth); use 'samples'"
        )
    if cfg.mixing.curation.score != "none":
        raise ConfigError(
            f"{field}: 'statistics' cannot curate (mixing.curation.score="
            f"{cfg.mixing.curation.score!r} scores single samples); use 'samples'"
        )
    weights = (cfg.mixing.real_weight, cfg.mixing.synthetic_weight)
    if weights != (1.0, 1.0):
        raise ConfigError(
            f"{field}: 'statistics' cannot weigh its records by source (mixing.real_weight, "
            f"synthetic_weight = {weights}); use 'samples'"
        )


def _real_samples(cfg) -> int:
    """Samples of D_0 in each generation's dataset, in the regimes ``check_regime`` lets through
    (``mixing.Plan.num_original``: gamma M for keep_real and custom, none otherwise)."""
    mix = cfg.mixing
    if mix.regime in ("keep_real", "custom"):
        return round(mix.gamma * cfg.samples_per_generation)
    return 0


def real_rows(cfg) -> bool:
    """True where every dataset holds real samples of D_0, so D_0 stays one record per sample."""
    return _real_samples(cfg) > 0


def rows_per_generation(cfg) -> int:
    """Pool rows of one generation's dataset (records, not samples)."""
    return cfg.samples_per_generation if real_rows(cfg) else 1


def model_count(cfg) -> int:
    """Model samples one generation's record stands for (``mixing.Plan.num_model``: alpha M after
    rounding, with nothing kept)."""
    return cfg.samples_per_generation - _real_samples(cfg)


def pad_rows(record_R, n: int):
    """``record_R`` as row 0 of ``n`` rows; the others are empty records (count 0, all zeros)."""
    if n == 0:
        return jnp.zeros((0, *record_R.shape), record_R.dtype)
    pad = jnp.zeros((n - 1, *record_R.shape), record_R.dtype)
    return jnp.concatenate([record_R[None], pad])


# ---------------------------------------------------------------------------------------------
# Exact chi-square draws in one batch (the scatter of M normal draws is sigma^2 chi^2_{M-1}).
#
# ``jax.random.gamma`` runs Marsaglia and Tsang's rejection loop as a ``while_loop`` that splits
# its key on every try: at small M that loop, not the O(1) statistics, costs most of a generation.
# Here every call draws a fixed batch of K candidates from ONE uniform draw of its key and keeps the
# first accepted one; only when all K reject (at most 1e-6 of calls, K chosen for that from the
# static degrees of freedom) does a ``while_loop`` draw further batches, from keys folded from
# ``key``. The first
# accepted candidate of an i.i.d. sequence is what the sequential loop returns, so the law is
# exactly Gamma(alpha) (tests/test_statistics_sampler.py checks it against scipy.stats.chi2).
#
# Marsaglia & Tsang (2000), "A simple method for generating gamma variables", ACM TOMS 26(3):
# for a >= 1, d = a - 1/3, c = 1 / sqrt(9 d), x ~ N(0, 1), v = (1 + c x)^3: accept d v when v > 0
# and log u < x^2 / 2 + d - d v + d log v. For a < 1 (chi^2 with one degree of freedom) the same
# paper's boost: Gamma(a) = Gamma(a + 1) U^(1/a), one more uniform.

# The rejection rate per candidate is below (0.03 + 0.02 / a) / a for every a >= 1 (0.048 at a = 1,
# 5.7e-4 at a = 49.5, about 0.028 / a for large a, by numerical integration of the acceptance
# probability: tests/test_statistics_sampler.py).
# K trades random words (the cost: a draw of 2 K uniforms is most of a call) against the fallback,
# which under vmap runs for every seed once any seed needs it: at 1e-6 per call, 10^3 seeds enter
# it in 0.1% of generations, 10^5 in at most 10%. M = 100 (a = 49.5) and up get K = 2.
_ALL_REJECT = 1e-6


def reject_bound(a: float) -> float:
    """An upper bound on Marsaglia-Tsang's rejection rate per candidate at shape ``a >= 1``."""
    return (0.03 + 0.02 / a) / a


def gamma_candidates(alpha_min: float) -> int:
    """Candidates per call so that all of them reject with probability <= 1e-6 (alpha >= 1)."""
    a = max(float(alpha_min), 1.0)
    return max(1, math.ceil(math.log(_ALL_REJECT) / math.log(reject_bound(a))))


def normals_from(f, dtype):
    """Standard normals from uniforms on [0, 1), as ``jax.random.normal`` makes them (erfinv)."""
    lo = jnp.nextafter(jnp.asarray(-1.0, dtype), jnp.asarray(0.0, dtype))
    return jnp.sqrt(jnp.asarray(2.0, dtype)) * jax.lax.erf_inv(jnp.maximum(lo, 2.0 * f - 1.0))


def _mt_pick(a, x_K, u_K):
    """``(accepted, value)``: the first accepted Marsaglia-Tsang candidate along axis 0."""
    d = a - 1.0 / 3.0
    d_1 = d[None]
    t = jax.lax.rsqrt(9.0 * d_1) * x_K
    v = (1.0 + t) ** 3
    # x^2/2 + d (1 - v + log v), with v - 1 = t (3 + t (3 + t)) and log v = 3 log1p(t).
    log_ratio = 0.5 * x_K * x_K + d_1 * (3.0 * jnp.log1p(t) - t * (3.0 + t * (3.0 + t)))
    ok = (t > -1.0) & (jnp.log(u_K) < log_ratio)
    first = jnp.argmax(ok, axis=0)
    value = d * jnp.take_along_axis(v, first[None], axis=0)[0]
    return ok.any(axis=0), value


# The fallback's keys, fold_in(key, _FALLBACK + try): far from the counters (0 .. W S) of the
# batch drawn from ``key`` itself, so no fallback key repeats a word of that batch.
_FALLBACK = 0x46414C4C  # "FALL"


def _gamma_from(key, f_W, alpha, candidates: int):
    """Gamma(alpha) of shape ``alpha.shape`` from uniforms ``f_W`` on [0, 1) drawn from ``key``
    (last axis: K normals' uniforms, K acceptance uniforms, then a boost uniform where some
    alpha < 1); ``key`` seeds only the fallback batches."""
    dtype = f_W.dtype
    K = candidates
    boost = alpha < 1
    a = jnp.where(boost, alpha + 1.0, alpha)

    def batch(f_W):
        x_K = normals_from(jnp.moveaxis(f_W[..., :K], -1, 0), dtype)
        u_K = 1.0 - jnp.moveaxis(f_W[..., K : 2 * K], -1, 0)  # on (0, 1]
        return _mt_pick(a, x_K, u_K)

    ok, g = batch(f_W)

    def more(state):
        i, ok, g = state
        k_i = jax.random.fold_in(key, _FALLBACK + i)
        f = jax.random.uniform(k_i, (*alpha.shape, 2 * K), dtype)
        ok_i, g_i = batch(f)
        return i + 1, ok | ok_i, jnp.where(ok, g, g_i)

    # Under vmap the loop runs while any seed needs it: rarely at all, by the choice of K.
    _, _, g = jax.lax.while_loop(lambda s: ~jnp.all(s[1]), more, (jnp.uint32(0), ok, g))
    if f_W.shape[-1] > 2 * K:
        u = 1.0 - f_W[..., 2 * K]
        g = jnp.where(boost, g * jnp.exp(jnp.log(u) / alpha), g)
    return g


def _candidates(df) -> int:
    alpha = np.asarray(df, float) / 2.0
    return gamma_candidates(np.min(np.where(alpha < 1, alpha + 1.0, alpha)))


def chi2_width(df) -> int:
    """Uniforms per draw that ``chi2_from`` reads: 2 K candidates' (a normal and an acceptance
    uniform each; uniforms on (0, 1] are ``1 - f``, as a zero would accept any candidate or boost
    it to zero), and one more for the boost where some ``df < 2``."""
    return 2 * _candidates(df) + bool(np.min(df) < 2)


def chi2(key, df, dtype=jnp.float32):
    """``chi^2_df`` draws of shape ``np.shape(df)``, exact in law (``2 Gamma(df / 2)``);
    ``df``: static degrees of freedom > 0."""
    f_W = jax.random.uniform(key, (*np.shape(df), chi2_width(df)), dtype)
    return chi2_from(key, f_W, df)


def chi2_from(key, f_W, df):
    """``chi2`` from ``chi2_width(df)`` uniforms on [0, 1) per draw (last axis of ``f_W``) already
    drawn from ``key``, so a caller can draw them with its other numbers in one call."""
    df = np.asarray(df, float)
    if not np.all(df > 0):
        raise ValueError(f"df: expected degrees of freedom > 0, got {df}")
    if f_W.shape != (*df.shape, chi2_width(df)):
        raise ValueError(f"f_W: expected shape {(*df.shape, chi2_width(df))}, got {f_W.shape}")
    alpha = jnp.asarray(df / 2.0, f_W.dtype)
    return 2.0 * _gamma_from(key, f_W, alpha, _candidates(df))
