"""Many lineages, one pool, inside the chain (``chain/lineages.py``).

Tolerance as ``test_theory.py``: |seed mean - theory| <= 5 standard errors (sample std / sqrt(S))
at every generation, here against ``theory.pool_moments`` (the lineage mean of the variance and
of the mean error) and ``theory.lineage_spread`` (the spread between two lineages' means). At
generation 0 every lineage is the fit of D_0, so the spread is exactly 0 there (no standard
error to compare with): it is checked to be 0, and against theory from generation 1 on.
"""

import jax
import numpy as np
import pytest

import collapse_jax
from collapse_jax import chain, experiments, mixing, theory
from collapse_jax.errors import ConfigError
from configs import discrete as discrete_config
from configs import gaussian as gaussian_config
from configs import gmm as gmm_config
from tests.test_regime_theory import gaussian_cfg
from tests.test_theory import assert_mean_matches

SEEDS = 4000

# lineages, synthetic per lineage S, fit rows K, real source, real rows R, pool, estimator, lambda
CASES = [
    (1, 10, 10, "none", 0, "replace", "mle", 1.0),  # the control: one lineage, plain replace
    (3, 8, 8, "none", 0, "replace", "mle", 1.0),
    (3, 6, 8, "fresh", 4, "replace", "unbiased", 0.9),
    (3, 5, 10, "original", 5, "replace", "mle", 1.0),
    (3, 4, 6, "fresh", 2, "accumulate", "mle", 1.0),
]
# The default suite keeps a shared-pool case of each pool policy; the rest run in CI's slow leg.
SLOW_CASES = (0, 2, 3)


def lineage_cfg(case, m=10, g=8, seeds=SEEDS):
    lineages, syn, fit, source, real, pool, est, lam = case
    cfg = gaussian_cfg(
        "composed", m, g, est, seeds, num_lineages=lineages, synthetic_samples=syn,
        fit_samples=fit, real_source=source, real_samples=real, pool=pool,
    )  # fmt: skip
    cfg.sampling.temperature = lam
    return cfg


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.slow) if i in SLOW_CASES else c
        for i, c in enumerate(CASES)
    ],
    ids=lambda c: f"L{c[0]}-{c[5]}-{c[3]}",
)
def test_lineages_match_pool_moments(case):
    lineages, syn, fit, source, real, pool, est, lam = case
    m, g = 10, 8
    out = chain.simulate(lineage_cfg(case, m, g))
    kw = dict(
        num_lineages=lineages, synthetic_per_lineage=syn, fit_samples=fit, real_source=source,
        real_samples=real, pool=pool, estimator=est, temperature=lam,
    )  # fmt: skip
    v, e = theory.pool_moments(g, m, **kw)
    assert_mean_matches(out["variance"], v, f"E[sigma^2] {case}")
    assert_mean_matches(out["mean_error"], e, f"E[(mu - mu0)^2] {case}")
    if lineages == 1:
        assert "lineage_spread" not in out  # the one-lineage program, unchanged
        return
    spread = theory.lineage_spread(g, m, **kw)
    assert spread[0] == 0 and np.all(out["lineage_spread"][0] == 0)
    assert_mean_matches(out["lineage_spread"][1:], spread[1:], f"lineage spread {case}")


def test_axes_moments_reads_the_lineages():
    cfg = lineage_cfg(CASES[2], seeds=8)
    v, e = theory.axes_moments(8, 10, cfg.mixing, estimator="unbiased", temperature=0.9)
    want = theory.pool_moments(
        8, 10, num_lineages=3, synthetic_per_lineage=6, fit_samples=8, real_source="fresh",
        real_samples=4, estimator="unbiased", temperature=0.9,
    )  # fmt: skip
    np.testing.assert_array_equal([v, e], want)


@pytest.mark.parametrize(
    "mod,fields",
    [
        (discrete_config, {"synthetic_samples": 6, "fit_samples": 8}),
        pytest.param(gmm_config, {}, marks=pytest.mark.slow),  # EM: a minute on 2 loaded cores
    ],
    ids=["discrete", "gmm"],
)
def test_other_families_run_lineages(mod, fields):
    cfg = mod.get_config("smoke")
    cfg.num_seeds, cfg.num_generations, cfg.checkpoint.every_generations = 3, 3, 2
    cfg.mixing.regime, cfg.mixing.num_lineages = "composed", 3
    for k, v in fields.items():
        cfg.mixing[k] = v
    out = chain.simulate(cfg)
    for k, v in out.items():
        assert v.shape[:2] == (3, 3) and np.all(np.isfinite(v)), k
    assert np.all(out["lineage_spread"][0] == 0) and np.all(out["lineage_spread"][1:] >= 0)


def test_vmapped_lineages_equal_one_seed_at_a_time():
    cfg = lineage_cfg(CASES[4], g=3, seeds=3)
    got, want = chain.simulate(cfg), chain.simulate_per_seed(cfg)
    for k, v in got.items():
        np.testing.assert_allclose(v, want[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_resume_with_lineages_is_bitwise(tmp_path):
    def cfg(g):
        c = lineage_cfg(CASES[2], g=g, seeds=3)  # (replace: accumulate sizes its buffer by G)
        c.checkpoint.every_generations = 2
        return c

    full = chain.run(cfg(5), tmp_path / "full")
    part = chain.run(cfg(3), tmp_path / "part")
    chain.run(cfg(5), part)
    assert (part / "metrics.jsonl").read_bytes() == (full / "metrics.jsonl").read_bytes()
    run = collapse_jax.open_run(full)
    for lineage in (0, 2):
        x = run.sample(4, 7, seed=1, key=jax.random.key(0), lineage=lineage)
        assert x.shape == (7, 1) and np.isfinite(x).all()
    with pytest.raises(ConfigError, match=r"lineage: expected an integer in \[0, 3\), got 3"):
        run.sample(4, 7, seed=1, key=jax.random.key(0), lineage=3)


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"num_lineages": 0}, r"mixing\.num_lineages: expected an integer >= 1, got 0"),
        ({"num_lineages": 2}, r"mixing\.num_lineages: expected 1 unless mixing\.regime=composed"),
        (
            {"regime": "composed", "num_lineages": 3, "fit_samples": 61},
            r"mixing\.fit_samples: expected at most the 60 rows",
        ),
    ],
)
def test_bad_lineage_fields(fields, match):
    cfg = gaussian_config.get_config("smoke")
    for k, v in fields.items():
        cfg.mixing[k] = v
    with pytest.raises(ConfigError, match=match):
        chain.validate(cfg)


def test_lineages_need_a_composing_family():
    from configs import kde as kde_config

    cfg = kde_config.get_config("smoke")
    cfg.mixing.regime, cfg.mixing.num_lineages = "composed", 2
    fam = experiments.family("kde")
    with pytest.raises(ConfigError, match=r"mixing\.regime: composed runs on the families"):
        chain.check_family(fam, mixing.plan_for(cfg, fam))
