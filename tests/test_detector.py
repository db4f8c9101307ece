"""Provenance detector (``mixing.provenance=detector``): each fit's K rows are drawn from the pool
with P proportional to ``(1 - p_synthetic)^b`` of a detector of separation d (Drayson et al.
2025; ``curation.detector_log_weights``, ``curation.importance_choose``).

Tolerances as ``test_theory.py``: |seed mean - expectation| <= 5 standard errors at every
generation. With b = 0 every row weighs the same and the draw is the uniform one of unknown
provenance, so the chain follows ``theory.pool_moments``. With an oracle-like detector (d = 8,
b = 4: a synthetic row's log-weight is about -b d^2 / 2 = -128 against about 0 for a real one, so
it is drawn before the K real rows only when its score falls ~4 standard deviations from its
mean, and even then it must outrank a real row) and K = R real rows in the pool, every fit is on
the real rows: the chain follows ``pool_moments`` of a pool with no synthetic rows (S = 0), and
its variance stays far above the unknown-provenance chain's.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax import chain, curation, mixing, theory
from collapse_jax.errors import ConfigError
from configs import gaussian as gaussian_config
from tests.test_regime_theory import gaussian_cfg
from tests.test_theory import Z, assert_mean_matches

SEEDS, M, G = 2000, 10, 6


def detector_cfg(lineages, source, pool, d, b, seeds=SEEDS):
    return gaussian_cfg(
        "composed", M, G, "mle", seeds, num_lineages=lineages, synthetic_samples=M,
        fit_samples=M, real_source=source, real_samples=M, pool=pool, provenance="detector",
        detector_separation=d, detector_exponent=b,
    )  # fmt: skip


def moments(lineages, source, pool, synthetic=M):
    return theory.pool_moments(
        G, M, num_lineages=lineages, synthetic_per_lineage=synthetic, fit_samples=M,
        real_source=source, real_samples=M, pool=pool, estimator="mle",
    )  # fmt: skip


@pytest.mark.parametrize("lineages,pool", [(1, "replace"), (3, "accumulate")])
def test_blind_weights_have_the_law_of_unknown_provenance(lineages, pool):
    out = chain.simulate(detector_cfg(lineages, "fresh", pool, d=2.0, b=0.0))
    v, e = moments(lineages, "fresh", pool)
    assert_mean_matches(out["variance"], v, f"E[sigma^2] L={lineages} {pool}, b = 0")
    assert_mean_matches(out["mean_error"], e, f"E[mu^2] L={lineages} {pool}, b = 0")


@pytest.mark.parametrize("lineages,source", [(1, "original"), (3, "fresh")])
def test_oracle_detector_fits_the_real_rows(lineages, source):
    out = chain.simulate(detector_cfg(lineages, source, "replace", d=8.0, b=4.0))
    real_only, _ = moments(lineages, source, "replace", synthetic=0)
    assert_mean_matches(out["variance"], real_only, f"E[sigma^2] L={lineages} {source}, oracle")
    # The direction: far above the chain that cannot tell the rows apart.
    unknown, _ = moments(lineages, source, "replace")
    v = out["variance"][-1]
    se = v.std(ddof=1) / np.sqrt(v.size)
    assert v.mean() - unknown[-1] > Z * se, (v.mean(), unknown[-1], se)


def test_first_draw_follows_the_weights():
    """K = 1: the draw is row i with P = w_i / sum w, so given the detector's scores the real
    share of n independent draws is Binomial(n, W_real / W)."""
    p = mixing.Plan("composed", 12, 0, 8, 8, 20, real_source="fresh", fit_samples=1,
                    provenance="detector", detector_separation=1.0, detector_exponent=2.0)  # fmt: skip
    synthetic_N = mixing.synthetic_mask(p)
    assert synthetic_N.tolist() == [True] * 12 + [False] * 8
    pool = mixing.full(jnp.where(synthetic_N, 0.0, 1.0)[:, None])  # x = 1 on real rows
    detector = jax.random.key(3)
    n = 4000
    x_n = jax.vmap(lambda k: mixing.training_data(k, p, pool, detector).x[0, 0])(
        jax.random.split(jax.random.key(4), n)
    )
    w_N = np.asarray(curation.detector_weights(
        curation.detector_probability(detector, synthetic_N, 1.0), 2.0
    ), float)  # fmt: skip
    share = w_N[~synthetic_N].sum() / w_N.sum()
    assert 0.5 < share < 0.99  # a detector that helps, not an oracle: the test can tell them apart
    se = np.sqrt(share * (1 - share) / n)
    assert abs(float(np.mean(x_n)) - share) <= Z * se, (float(np.mean(x_n)), share, se)


def test_log_weights_are_those_of_the_detector():
    key, syn_N = jax.random.key(0), jnp.arange(64) % 3 == 0
    want = jnp.log(curation.detector_weights(curation.detector_probability(key, syn_N, 1.5), 3.0))
    got = curation.detector_log_weights(key, syn_N, 1.5, 3.0)
    # float32: log_sigmoid and log(1 - sigmoid) agree to a few ulps of 1 (|log w| <= ~60 here)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(curation.detector_log_weights(key, syn_N, 1.5, 0.0)) == 0)


def test_accumulated_mask_skips_the_original_rows():
    p = mixing.Plan("composed", 2, 0, 1, 3, 3 + 2 * 3, pool="accumulate", real_source="fresh",
                    fit_samples=2, provenance="detector")  # fmt: skip
    assert mixing.synthetic_mask(p).tolist() == [False] * 3 + [True, True, False] * 2


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"provenance": "oracle"}, r"mixing\.provenance: expected one of \('unknown', 'detector'\)"),
        ({"provenance": "detector"}, r"mixing\.provenance: expected unknown unless mixing\.regime=composed"),
        ({"regime": "composed", "provenance": "detector", "detector_exponent": -1.0},
         r"mixing\.detector_exponent: expected a finite exponent b >= 0"),
        ({"regime": "composed", "provenance": "detector", "detector_separation": -0.5},
         r"mixing\.detector_separation: expected a finite separation d >= 0"),
        ({"regime": "composed", "provenance": "detector"},
         r"mixing\.fit_samples: expected >= 1 with mixing\.provenance=detector"),
        ({"detector_exponent": 2.0}, r"mixing\.detector_exponent: expected 1\.0 unless"),
    ],
)  # fmt: skip
def test_bad_provenance_fields(fields, match):
    cfg = gaussian_config.get_config("smoke")
    for k, v in fields.items():
        cfg.mixing[k] = v
    with pytest.raises(ConfigError, match=match):
        chain.validate(cfg)


def test_ecosystem_overlay_only_where_the_draw_is_uniform():
    from collapse_jax.plots import ecosystem

    cfg = gaussian_config.get_config("smoke,sweep=detector")
    assert ecosystem.gaussian_moments(cfg.to_dict(), 6) is None  # d = 2, b = 4: no closed form
    cfg.mixing.detector_exponent = 0.0
    v, e = ecosystem.gaussian_moments(cfg.to_dict(), 6)
    want = theory.pool_moments(
        6, 20, synthetic_per_lineage=20, fit_samples=20, real_source="fresh", real_samples=20,
        estimator="mle",
    )  # fmt: skip
    np.testing.assert_array_equal([v, e], want)
