"""Regime composed: the data regime as orthogonal axes (``mixing``, ``docs/ecosystems.md``).

Each named regime but custom is a point of the axes (``mixing.as_composed``) and must run the same
program there: its pools bit for bit at the level of ``mixing`` (one program each, same inputs),
and its metrics byte for byte through the chain (slow). New points of the axes are checked against
``theory.axes_moments`` (``pool_moments`` with one lineage) within 5 standard errors at every
generation, as ``test_theory.py``; bad axes are one ``error:`` line naming the field.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax import chain, mixing, theory
from collapse_jax.errors import ConfigError
from collapse_jax.family import full
from configs import gaussian as gaussian_config
from tests.test_regime_theory import gaussian_cfg
from tests.test_theory import assert_mean_matches

NAMED = [
    ("replace", {}),
    ("accumulate", {}),
    ("accumulate_subsample", {}),
    ("keep_real", {"gamma": 0.3}),
    ("fresh", {"fresh_fraction": 0.2}),
    ("augment", {"augment_ratio": 0.5}),
]


def composed(cfg):
    """``cfg`` with its named regime spelled as the axes."""
    cfg = cfg.copy_and_resolve_references()
    for k, v in mixing.as_composed(cfg.mixing, cfg.samples_per_generation).items():
        cfg.mixing[k] = v
    cfg.mixing.gamma = 0.0  # keep_real's knob; composed takes alpha=1, beta=0, gamma=0
    return cfg


def _same(a, b):
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b)))


@pytest.mark.parametrize("regime,knob", NAMED)
def test_named_regimes_are_points_of_the_axes(regime, knob):
    m, g = 10, 5
    cfg = gaussian_cfg(regime, m, g, "mle", seeds=1, **knob)
    named, axes = mixing.plan_for(cfg), mixing.plan_for(composed(cfg))
    assert axes.regime == "composed"
    for field in ("num_model", "num_original", "capacity", "accumulates", "fresh"):
        assert getattr(named, field) == getattr(axes, field), field
    key = jax.random.key(3)
    x0 = jax.random.normal(jax.random.fold_in(key, 0), (m, 1))
    pools = [mixing.initial_pool(named, x0), mixing.initial_pool(axes, x0)]
    assert _same(*pools)
    for gen in range(1, g):
        k_mix, k_train, k_model, k_fresh = jax.random.split(jax.random.fold_in(key, gen), 4)
        model_x = jax.random.normal(k_model, (named.num_model, 1)) + gen
        fresh_x = jax.random.normal(k_fresh, (named.num_original, 1)) - gen
        pools = [
            mixing.next_pool(k_mix, p, pool, model_x, x0, gen, fresh_x)
            for p, pool in zip((named, axes), pools, strict=True)
        ]
        assert _same(*pools), f"{regime}: pool of generation {gen}"
        data = [
            mixing.training_data(k_train, p, pool)
            for p, pool in zip((named, axes), pools, strict=True)
        ]
        assert _same(*data), f"{regime}: training data of generation {gen}"


@pytest.mark.slow
@pytest.mark.parametrize("regime,knob", NAMED)
def test_named_regimes_spelled_as_axes_give_the_same_metrics(regime, knob):
    cfg = gaussian_cfg(regime, 10, 4, "mle", seeds=4, **knob)
    a, b = chain.simulate(cfg), chain.simulate(composed(cfg))
    assert a.keys() == b.keys()
    for k in a:
        assert np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes(), k


# Points no named regime reaches: the real data a share of a pool of another size, a fit on part
# of the pool, real data fresh under accumulate; one with a sampling temperature.
NEW_POINTS = [
    dict(pool="accumulate", real_source="fresh", real_samples=2, synthetic_samples=6,
         fit_samples=8, temperature=0.9, estimator="mle"),
    dict(pool="replace", real_source="original", real_samples=4, synthetic_samples=12,
         fit_samples=10, temperature=1.0, estimator="unbiased"),
]  # fmt: skip


@pytest.mark.parametrize("point", NEW_POINTS, ids=["accumulate_fresh_fit8", "replace_orig4_s12"])
def test_new_points_match_their_closed_form(point):
    m, g = 10, 10
    point = dict(point)
    lam, est = point.pop("temperature"), point.pop("estimator")
    cfg = gaussian_cfg("composed", m, g, est, **point)
    cfg.sampling.temperature = lam
    out = chain.simulate(cfg)
    v, e = theory.axes_moments(g, m, cfg.mixing, estimator=est, temperature=lam)
    assert_mean_matches(out["variance"], v, f"composed {point} E[sigma^2]")
    assert_mean_matches(out["mean_error"], e, f"composed {point} mean error")


def test_axes_moments_of_named_regimes_are_their_closed_forms():
    m, g = 12, 15
    n = np.arange(g)
    acc = theory.axes_moments(g, m, mixing.as_composed({"regime": "accumulate"}, m))
    np.testing.assert_allclose(acc[0], theory.accumulate_expected_variance(n, m), rtol=1e-12)
    fresh = {"regime": "fresh", "fresh_fraction": 0.25}
    v, e = theory.axes_moments(g, m, mixing.as_composed(fresh, m), estimator="unbiased")
    v2, e2 = theory.fresh_moments(g, m, 0.25, "unbiased")
    np.testing.assert_allclose(v, v2, rtol=1e-12)
    np.testing.assert_allclose(e, e2, rtol=1e-12)
    orig_acc = {"regime": "composed", **mixing.AXES_DEFAULTS}
    orig_acc.update(pool="accumulate", real_source="original", real_samples=2)
    assert theory.axes_moments(g, m, orig_acc) is None


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"pool": "grow"}, "mixing.pool: expected one of ('replace', 'accumulate')"),
        ({"real_source": "web"}, "mixing.real_source: expected one of"),
        ({"real_samples": 2}, "mixing.real_samples: expected 0 with mixing.real_source=none"),
        ({"real_source": "fresh"}, "mixing.real_samples: expected >= 1 with"),
        (
            {"real_source": "original", "real_samples": 11},
            "mixing.real_samples: expected at most M = 10 rows of D_0",
        ),
        (
            {"real_source": "fresh", "real_samples": 11},
            "mixing.real_samples: expected at most M = 10 (a fresh draw",
        ),
        ({"synthetic_samples": -2}, "mixing.synthetic_samples: expected an integer >= -1"),
        ({"synthetic_samples": 0}, "mixing.synthetic_samples: expected S + R >= 1 new rows"),
        ({"fit_samples": 11}, "mixing.fit_samples: expected at most the 10 rows"),
        ({"real_samples": -1}, "mixing.real_samples: expected an integer >= 0"),
        ({"gamma": 0.2, "alpha": 0.8}, "mixing.regime=composed takes alpha=1, beta=0, gamma=0"),
    ],
)
def test_bad_axes_are_one_line(fields, message):
    cfg = gaussian_config.get_config("smoke")
    cfg.samples_per_generation = 10
    cfg.mixing.regime = "composed"
    for k, v in fields.items():
        cfg.mixing[k] = v
    with pytest.raises(ConfigError) as err:
        mixing.plan_for(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_axes_need_regime_composed():
    cfg = gaussian_config.get_config("smoke")
    cfg.mixing.pool = "accumulate"
    with pytest.raises(ConfigError, match=r"mixing.pool: expected 'replace' .*regime=composed"):
        mixing.plan_for(cfg)


def test_composed_is_refused_by_families_whose_data_follow_named_regimes():
    from collapse_jax.chain import checks
    from configs import kde as kde_config

    cfg = kde_config.get_config("smoke")
    cfg.mixing.regime = "composed"
    with pytest.raises(ConfigError, match=r"^mixing\.regime: composed runs on the families"):
        checks.resolve(cfg)


def test_a_composed_pool_smaller_than_d0_carries_its_shape():
    x0 = jnp.arange(10.0)[:, None]
    cfg = gaussian_config.get_config("smoke")
    cfg.samples_per_generation = 10
    cfg.mixing.regime = "composed"
    cfg.mixing.synthetic_samples = 4
    p = mixing.plan_for(cfg)
    assert p.capacity == 4
    assert _same(mixing.initial_pool(p, x0), full(x0[:4]))


def test_ecosystem_figures_overlay_the_composed_closed_form():
    from collapse_jax.plots import ecosystem

    cfg = gaussian_config.get_config("smoke,sweep=ecosystem")
    g, m = 7, cfg.samples_per_generation
    v, e = ecosystem.gaussian_moments(cfg.to_dict(), g)
    v2, e2 = theory.axes_moments(g, m, cfg.mixing, estimator="mle")
    np.testing.assert_array_equal(v, v2)
    np.testing.assert_array_equal(e, e2)
    cfg.mixing.real_source = "original"
    cfg.mixing.pool = "accumulate"
    assert ecosystem.gaussian_moments(cfg.to_dict(), g) is None


def test_discrete_gini_simpson_under_the_axes():
    """The discrete chain at a point no named regime reaches, against ``axes_gini_simpson``
    (the one-hot reading of ``pool_moments``), and its named special cases to rounding."""
    from configs import discrete as discrete_config

    q = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    m, g = 10, 10
    n = np.arange(g)
    acc = mixing.as_composed({"regime": "accumulate"}, m)
    np.testing.assert_allclose(
        theory.axes_gini_simpson(g, m, q, acc),
        theory.accumulate_expected_gini_simpson(n, q, m),
        rtol=1e-12,
    )
    rep = mixing.as_composed({"regime": "replace"}, m)
    np.testing.assert_allclose(
        theory.axes_gini_simpson(g, m, q, rep), theory.expected_gini_simpson(n, q, m), rtol=1e-12
    )
    cfg = discrete_config.get_config("smoke")
    cfg.discrete.distribution, cfg.discrete.probs = "explicit", tuple(q)
    cfg.num_seeds, cfg.num_generations, cfg.samples_per_generation = 4000, g, m
    cfg.checkpoint.every_generations, cfg.checkpoint.keep_generations = g, ()
    cfg.mixing.regime = "composed"
    cfg.mixing.pool, cfg.mixing.real_source = "accumulate", "fresh"
    cfg.mixing.real_samples, cfg.mixing.synthetic_samples, cfg.mixing.fit_samples = 1, 4, 6
    out = chain.simulate(cfg)
    expected = theory.axes_gini_simpson(g, m, q, cfg.mixing)
    assert_mean_matches(out["gini_simpson"], expected, "discrete composed Gini-Simpson")


def test_ecosystem_figures_overlay_the_discrete_closed_form():
    from collapse_jax.plots import Run, ecosystem
    from configs import discrete as discrete_config

    cfg = discrete_config.get_config("smoke")
    cfg.mixing.regime = "composed"
    cfg.mixing.pool, cfg.mixing.real_source, cfg.mixing.real_samples = "accumulate", "fresh", 2
    gens = np.arange(5)
    run = Run(workdir=None, config=cfg.to_dict(), generations=gens, metrics={})
    q, m = ecosystem._discrete_q(cfg.to_dict()), cfg.samples_per_generation
    np.testing.assert_array_equal(
        ecosystem.theory_curve(run, "gini_simpson"), theory.axes_gini_simpson(5, m, q, cfg.mixing)
    )
    cfg.sampling.top_p = 0.9
    assert ecosystem.theory_curve(Run(None, cfg.to_dict(), gens, {}), "gini_simpson") is None


@pytest.mark.slow  # the GMM's EM program compiles for minutes on a loaded 2-core machine
def test_gmm_runs_a_composed_regime():
    """GMM has no closed form here: the composed pool must still run, finite, with the pool and
    training-set sizes the axes give."""
    from configs import gmm as gmm_config

    cfg = gmm_config.get_config("smoke")
    cfg.num_generations, cfg.num_seeds = 3, 2
    cfg.checkpoint.every_generations, cfg.checkpoint.keep_generations = 3, ()
    m = cfg.samples_per_generation
    cfg.mixing.regime = "composed"
    cfg.mixing.pool, cfg.mixing.real_source = "accumulate", "original"
    cfg.mixing.real_samples, cfg.mixing.synthetic_samples, cfg.mixing.fit_samples = 3, m, m
    p = mixing.plan_for(cfg)
    assert (p.num_model, p.num_original, p.capacity) == (m, 3, m + 2 * (m + 3))
    out = chain.simulate(cfg)
    for name, v in out.items():
        assert np.all(np.isfinite(np.asarray(v, float))), name
