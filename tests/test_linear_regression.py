"""Linear-regression family: the fit, the sampler, the chain, resume, and the exact theory.

Theory tolerance: the seed mean of ``|w_n - w*|^2`` over S independent seeds (each its own design,
noise and chain) has standard error ``std / sqrt(S)`` (ddof=1 over the seeds); it must lie within
Z = 5 standard errors of ``theory.py`` at every checked generation (two-sided, ~6e-7 false alarms
per comparison under the CLT). The per-seed error scales with tr((X^T X)^-1), whose variance is
finite for T > d + 3; every checked point has T - d - 1 >= 6, so its third moment is finite too
and the seeds' sample std is a sound standard error.
"""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax import chain, family, mixing, plots, theory
from collapse_jax.errors import ConfigError
from collapse_jax.families import linear_regression
from collapse_jax.plots import linear_regression as lr_plots
from configs import linear_regression as lr_config

Z = 5.0
SEEDS = 4000
GENERATIONS = 6


def cfg_for(regime="replace", dim=3, t=12, **kw):
    cfg = lr_config.get_config("smoke")
    cfg.mixing.regime = regime
    cfg.linear_regression.dim, cfg.samples_per_generation = dim, t
    cfg.log_every_seconds = 0.0
    for k, v in kw.items():
        section, _, name = k.rpartition(".")
        (cfg[section] if section else cfg)[name] = v
    return cfg


@pytest.mark.parametrize("variant", ["paper", "cpu", "smoke"])
def test_every_sweep_point_has_a_closed_form(variant):
    # tests/test_configs.py validates every sweep point; the product of the sweep's fields cannot
    # hold T <= d + 1, where the closed form of the expected error does not exist.
    from launch import sweep

    for _, _, run_cfg in sweep.expand(lr_config.get_config(variant), "/unused"):
        d, t = run_cfg.linear_regression.dim, run_cfg.samples_per_generation
        assert t > d + 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("linear_regression.dim", 0),
        ("linear_regression.noise_variance", 0.0),
        ("linear_regression.noise_variance", float("nan")),
        ("linear_regression.ridge", -0.1),
        ("linear_regression.heldout_samples", 0),
        ("linear_regression.truth_seed", -1),
        ("samples_per_generation", 3),  # T <= d: X^T X singular, least squares undefined
    ],
)
def test_bad_config_is_one_line_error(field, value):
    cfg = cfg_for()
    section, _, name = field.rpartition(".")
    (cfg[section] if section else cfg)[name] = value
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as e:
        linear_regression.validate(cfg)
    assert "\n" not in str(e.value)


def test_launcher_bad_value_is_one_clear_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch.run",
            "--config=configs/linear_regression.py:smoke",
            f"--workdir={tmp_path}",
            "--config.linear_regression.noise_variance=-1.0",
        ],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last == "error: linear_regression.noise_variance: expected a positive number, got -1.0"
    assert "Traceback" not in r.stderr and not (tmp_path / "checkpoints").exists()


def test_ridge_allows_t_below_d():
    # T = 2 < d = 3: X^T X is singular, so only the ridge term makes the fit defined. The config
    # validates, the fit is numpy's ridge solution, and a short chain stays finite.
    cfg = cfg_for(t=2, **{"linear_regression.ridge": 0.1})
    linear_regression.validate(cfg)
    g = np.random.default_rng(1)
    x, y = g.normal(size=(2, 3)), g.normal(size=2)
    xy = jnp.asarray(np.concatenate([x, y[:, None]], 1), jnp.float32)
    state0 = linear_regression.State(jnp.zeros(3), xy[:, :3])
    got = linear_regression.fit(None, state0, mixing.full(xy), cfg).w_D
    want = np.linalg.solve(x.T @ x / 2 + 0.1 * np.eye(3), x.T @ y / 2)
    # The normal matrix's condition number is about (|x|^2 / 2 + 0.1) / 0.1 < 1e3 here, so
    # float32 Cholesky is good to ~1e3 * 6e-8 relative: 1e-4 leaves room.
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    cfg.num_seeds, cfg.num_generations = 3, 3
    for k, v in chain.simulate(cfg).items():
        assert np.all(np.isfinite(v)), k
    # Without the ridge the same T is refused (bad-config case above) and the fit is undefined.
    cfg.linear_regression.ridge = 0.0
    with pytest.raises(ConfigError, match="samples_per_generation"):
        linear_regression.validate(cfg)


@pytest.mark.parametrize("ridge", [0.0, 0.3])
def test_fit_matches_numpy_and_ignores_padding(ridge):
    cfg = cfg_for(dim=3, t=20, **{"linear_regression.ridge": ridge})
    g = np.random.default_rng(0)
    x = g.normal(size=(20, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3 * g.normal(size=20)
    xy = jnp.asarray(np.concatenate([x, y[:, None]], 1), jnp.float32)
    state0 = linear_regression.State(jnp.zeros(3), xy[:, :3])
    got = linear_regression.fit(None, state0, mixing.full(xy), cfg).w_D
    want = np.linalg.solve(x.T @ x / 20 + ridge * np.eye(3), x.T @ y / 20)
    if ridge == 0:
        np.testing.assert_allclose(want, np.linalg.lstsq(x, y, rcond=None)[0], rtol=1e-10)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # An accumulate buffer: the same rows among zero-weight slots of garbage.
    pad = np.full((15, 4), 1e3, np.float32)
    xp = jnp.asarray(np.concatenate([pad[:6], np.asarray(xy), pad[6:]]))
    wp = jnp.asarray(np.r_[np.zeros(6), np.ones(20), np.zeros(9)], jnp.float32)
    padded = linear_regression.fit(None, state0, mixing.Data(xp, wp), cfg).w_D
    np.testing.assert_allclose(padded, got, rtol=1e-5, atol=1e-6)


def test_sample_relabels_the_same_design():
    # Labels are x . w + N(0, sigma^2): the residuals' mean and variance within 5 standard errors.
    cfg = cfg_for(dim=2, t=50_000, **{"linear_regression.noise_variance": 2.5})
    x = jax.random.normal(jax.random.key(1), (50_000, 2))
    state = linear_regression.State(jnp.array([0.5, -1.0]), x)
    xy = np.asarray(linear_regression.sample(jax.random.key(2), state, 40_000, cfg), float)
    np.testing.assert_array_equal(xy[:, :2], np.asarray(x)[:40_000])
    r = xy[:, 2] - xy[:, :2] @ np.array([0.5, -1.0])
    n = r.size
    assert abs(r.mean()) < Z * r.std() / np.sqrt(n)
    sq = r**2 - 2.5
    assert abs(sq.mean()) < Z * sq.std() / np.sqrt(n)


@pytest.mark.parametrize("jit", [True, False])
def test_shapes_and_finiteness(jit):
    cfg = cfg_for()
    fam = linear_regression.FAMILY
    truth = fam.reference(cfg)

    def generation(key):
        k0, k1, k2 = jax.random.split(key, 3)
        xy0 = fam.original_data(k0, truth, cfg)
        data0 = mixing.full(xy0)
        s0 = fam.fit(k1, fam.init(k1, cfg, data0), data0, cfg)
        xy1 = fam.sample(k2, s0, cfg.samples_per_generation, cfg)
        s1 = fam.fit(k2, s0, mixing.full(xy1), cfg)
        return xy0, xy1, s1, fam.metrics(s1, data0, family.Origin(truth, xy0, s0), cfg)

    with jax.disable_jit(not jit):
        run = jax.jit(generation) if jit else generation
        xy0, xy1, s1, m = run(jax.random.key(0))
    assert xy0.shape == xy1.shape == (12, 4)
    assert s1.w_D.shape == (3,) and s1.x_TxD.shape == (12, 3)
    np.testing.assert_array_equal(xy1[:, :3], xy0[:, :3])  # the design is kept
    assert set(m) == {"test_error", "test_mse"}
    for k, v in m.items():
        assert jnp.shape(v) == () and np.isfinite(v), k


@pytest.mark.parametrize("regime", ["replace", "accumulate", "keep_real"])
def test_vmapped_chain_equals_loop_over_seeds(regime):
    cfg = cfg_for(regime, num_seeds=3, num_generations=4)
    if regime == "keep_real":
        cfg.mixing.gamma = 0.25
    got, want = chain.simulate(cfg), chain.simulate_per_seed(cfg)
    for k in got:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


def _read(workdir):
    return (workdir / "metrics.jsonl").read_bytes()


def test_resume_is_bitwise(tmp_path):
    # replace: run 4 generations; run 2, stop, resume to 4.
    full = chain.run(cfg_for(num_generations=4), tmp_path / "full")
    part = chain.run(cfg_for(num_generations=2), tmp_path / "part")
    chain.run(cfg_for(num_generations=4), part)
    assert _read(part) == _read(full)
    assert [json.loads(x)["generation"] for x in _read(part).splitlines()] == [0, 1, 2, 3]
    # accumulate (the buffer is sized by num_generations): lose the last checkpoint and line.
    cfg = cfg_for("accumulate", num_generations=4)
    full = chain.run(cfg, tmp_path / "acc_full")
    part = tmp_path / "acc_part"
    shutil.copytree(full, part)
    shutil.rmtree(part / "checkpoints" / "3")
    lines = _read(part).splitlines(keepends=True)
    (part / "metrics.jsonl").write_bytes(b"".join(lines[:-1]))
    chain.run(cfg, part)
    assert _read(part) == _read(full)


def test_run_report_and_sweep_figure(tmp_path):
    a = chain.run(cfg_for("replace"), tmp_path / "replace")
    b = chain.run(cfg_for("accumulate"), tmp_path / "accumulate")
    paths, summary = plots.report(a)
    assert [p.name for p in paths] == ["test_error.png", "profile.md"] and paths[
        0
    ].stat().st_size > 0
    assert "test_error at 4" in summary
    sweep = lr_plots.sweep_figure([a, b], tmp_path / "figures")
    assert sweep.name == "linear_regression_sweep.png" and sweep.stat().st_size > 0


# ------------------------------------------------------------------------------------------------
# The chain against theory.py's exact expectations.

# (d, T): T - d - 1 in {6, 7, 11}, small enough that 4000 seeds tell T - d - 1 from T - d (the
# shifted form is 7-9 standard errors off at every generation; measured).
POINTS = [(2, 9), (4, 12), (10, 22)]


@pytest.fixture(
    scope="module", params=[(r, d, t) for r in ("replace", "accumulate") for d, t in POINTS]
)
def theory_chain(request):
    regime, d, t = request.param
    cfg = cfg_for(regime, d, t, num_seeds=SEEDS, num_generations=GENERATIONS)
    cfg.linear_regression.noise_variance = 0.7
    return regime, d, t, chain.simulate(cfg)["test_error"]


def test_chain_matches_closed_form(theory_chain):
    regime, d, t, v_GxS = theory_chain
    n = np.arange(GENERATIONS)
    form = (
        theory.linear_regression_replace_error
        if regime == "replace"
        else theory.linear_regression_accumulate_error
    )
    expected = form(n, d, t, 0.7)
    mean = v_GxS.mean(1)
    se = v_GxS.std(1, ddof=1) / np.sqrt(v_GxS.shape[1])
    z = (mean - expected) / se
    assert np.all(np.abs(z) <= Z), f"{regime} d={d} T={t}: z-scores {np.round(z, 2)}"
    if regime == "accumulate":
        assert np.all(expected < theory.linear_regression_accumulate_limit(d, t, 0.7))
