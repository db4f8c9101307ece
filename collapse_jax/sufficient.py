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

import jax.numpy as jnp

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
