"""Discrete family: exact sampler, weighted counts, metrics, absorption bookkeeping, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax import chain, family, mixing, plots
from collapse_jax.errors import ConfigError
from collapse_jax.families import discrete
from collapse_jax.plots import discrete as plots_discrete
from configs import discrete as discrete_config


def smoke():
    return discrete_config.get_config("smoke")


@pytest.mark.parametrize("variant", ["paper", "cpu", "smoke"])
def test_default_distribution_has_a_tail(variant):
    # tests/test_configs.py validates every variant; the point of the Zipf default is a real tail
    # at the configured M.
    cfg = discrete_config.get_config(variant)
    q = discrete.original_probs(cfg)
    assert q.shape == (cfg.discrete.num_states,) and abs(q.sum() - 1) < 1e-12
    assert np.any(q <= 1 / cfg.samples_per_generation)


@pytest.mark.parametrize(
    "field, value",
    [
        ("discrete.num_states", 0),
        ("discrete.distribution", "poisson"),
        ("discrete.zipf_exponent", -1.0),
        ("samples_per_generation", 0),
    ],
)
def test_bad_config_is_one_line_error(field, value):
    cfg = smoke()
    section, _, name = field.rpartition(".")
    (cfg[section] if section else cfg)[name] = value
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as e:
        discrete.validate(cfg)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "probs", [(0.5, 0.5), (0.5, 0.6, 0.1, -0.2, 0.0), (0.5, 0.6, 0.0, 0.0, 0.0)]
)
def test_bad_explicit_probs(probs):
    cfg = smoke()
    cfg.discrete.distribution, cfg.discrete.probs = "explicit", probs
    with pytest.raises(ConfigError, match=r"discrete\.probs"):
        discrete.validate(cfg)


def test_explicit_and_uniform_probs():
    cfg = smoke()
    cfg.discrete.distribution, cfg.discrete.probs = "explicit", (0.1, 0.2, 0.3, 0.0, 0.4)
    discrete.validate(cfg)
    np.testing.assert_allclose(discrete.original_probs(cfg), [0.1, 0.2, 0.3, 0.0, 0.4])
    cfg.discrete.distribution = "uniform"
    np.testing.assert_allclose(discrete.original_probs(cfg), np.full(5, 0.2))


def test_sampler_is_exact_on_counts():
    counts = jnp.array([3, 0, 5, 0, 2], jnp.int32)
    n = 100_000
    x = np.asarray(discrete._sample_counts(jax.random.key(0), counts, n))
    freq = np.bincount(x, minlength=5)
    assert freq[1] == freq[3] == 0  # a lost state never comes back
    p = np.asarray(counts) / 10
    # Binomial counts: 5 standard errors per state.
    assert np.all(np.abs(freq - n * p) <= 5 * np.sqrt(n * p * (1 - p)) + 1e-9), freq


def test_weighted_fit_ignores_padding():
    cfg = smoke()
    x = jnp.array([0, 2, 2, 4, 1, 2], jnp.int32)
    st = discrete.init(None, cfg, mixing.full(x))
    plain = discrete.fit(None, st, mixing.full(x), cfg)
    xp = jnp.concatenate([jnp.array([3, 3, 0], jnp.int32), x, jnp.array([3], jnp.int32)])
    wp = jnp.concatenate([jnp.zeros(3), jnp.ones(6), jnp.zeros(1)])
    padded = discrete.fit(None, st, mixing.Data(xp, wp), cfg)
    np.testing.assert_array_equal(plain.counts_K, [1, 1, 3, 0, 1])
    np.testing.assert_array_equal(padded.counts_K, plain.counts_K)
    assert int(plain.generation) == 0 and int(plain.absorbed_generation) == -1


def test_absorption_bookkeeping():
    cfg = smoke()
    truth = discrete.reference(cfg)
    st = discrete.init(None, cfg, None)
    delta = mixing.full(jnp.full((10,), 4, jnp.int32))
    mixed = mixing.full(jnp.arange(10, dtype=jnp.int32) % 5)
    st = discrete.fit(None, st, mixed, cfg)  # generation 0: all five states
    origin = family.Origin(truth, mixed.x, st)
    m = discrete.metrics(st, mixed, origin, cfg)
    assert int(m["support_size"]) == 5 and int(m["absorbed"]) == 0
    assert int(m["absorbing_state"]) == -1 and int(m["absorbed_generation"]) == -1
    np.testing.assert_allclose(m["entropy"], np.log(5), rtol=1e-6)
    np.testing.assert_allclose(m["tv_distance"], 0.5 * np.abs(0.2 - truth.q_K).sum(), rtol=1e-5)
    # Tail at M = 10: q_i <= 0.1 is state 4 only (Zipf 1.1 over 5 states: q_3 = 0.101).
    q = np.asarray(truth.q_K)
    np.testing.assert_allclose(m["tail_mass"], q[4], rtol=1e-6)
    assert q[3] > 0.1 >= q[4]
    st = discrete.fit(None, st, delta, cfg)  # generation 1: a delta at state 4
    st = discrete.fit(None, st, mixed, cfg)  # generation 2 (keep_real can leave the delta)
    st = discrete.fit(None, st, delta, cfg)  # generation 3: a delta again
    m = discrete.metrics(st, delta, origin, cfg)
    assert int(m["absorbed"]) == 1 and int(m["absorbing_state"]) == 4
    assert int(m["absorbed_generation"]) == 1  # the first time, not the latest
    assert int(m["support_size"]) == 1 and float(m["entropy"]) == 0.0
    assert float(m["gini_simpson"]) == 0.0
    np.testing.assert_allclose(m["tail_mass"], q[4], rtol=1e-6)


@pytest.mark.parametrize("jit", [True, False])
def test_family_shapes_and_finiteness(jit):
    cfg = smoke()
    fam = discrete.FAMILY
    truth = fam.reference(cfg)

    def generation(key):
        k0, k1, k2 = jax.random.split(key, 3)
        data0 = mixing.full(fam.original_data(k0, truth, cfg))
        s0 = fam.fit(k1, fam.init(k1, cfg, data0), data0, cfg)
        x1 = fam.sample(k2, s0, cfg.samples_per_generation, cfg)
        s1 = fam.fit(k2, s0, mixing.full(x1), cfg)
        return data0.x, x1, fam.metrics(s1, data0, family.Origin(truth, data0.x, s0), cfg)

    with jax.disable_jit(not jit):
        x0, x1, m = (jax.jit(generation) if jit else generation)(jax.random.key(0))
    assert x0.shape == x1.shape == (cfg.samples_per_generation,)
    assert x0.dtype == x1.dtype == jnp.int32
    for k, v in m.items():
        assert jnp.shape(v) == () and np.isfinite(v), k


def test_run_metrics_and_report(tmp_path):
    # The smoke config end to end: chain.run's metrics.jsonl, then the figures and summary.
    cfg = smoke()
    chain.run(cfg, tmp_path)
    run = plots.load_run(tmp_path)
    m = run.metrics
    g, s = cfg.num_generations, cfg.num_seeds
    for k, v in m.items():
        assert v.shape == (g, s) and np.all(np.isfinite(v)), k
    # Pure replace: support never grows, and a seed stays absorbed once it is.
    assert np.all(np.diff(m["support_size"], axis=0) <= 0)
    assert np.all(np.diff(m["absorbed"], axis=0) >= 0)
    last = m["absorbed_generation"][-1]
    assert np.all((last >= 0) == (m["absorbed"][-1] == 1))
    for seed in np.flatnonzero(last >= 0):
        first = np.flatnonzero(m["absorbed"][:, seed])[0]
        assert first == last[seed]
    paths, summary = plots.report(tmp_path)
    assert [p.name for p in paths] == [
        "support.png",
        "absorption.png",
        "diversity.png",
        "profile.md",
    ]
    assert all(p.stat().st_size > 0 for p in paths)
    # The across-M figure (one workdir per M in a sweep; the same run twice is enough here).
    sweep = plots_discrete.sweep_figure([tmp_path, tmp_path], tmp_path / "figures")
    assert sweep.name == "discrete_sweep.png" and sweep.stat().st_size > 0
    assert "Discrete chain" in summary
    assert "Collapse profile" in (tmp_path / "profile.md").read_text()
