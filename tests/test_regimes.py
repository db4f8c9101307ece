"""The regimes augment and fresh, fit weights and curation on every family, at smoke size."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax import chain, experiments, mixing, rng
from collapse_jax.errors import ConfigError
from collapse_jax.families.vae import family as vae
from configs import discrete as discrete_config
from configs import gaussian as gaussian_config
from configs import gmm as gmm_config

CONFIGS = {"gaussian": gaussian_config, "discrete": discrete_config, "gmm": gmm_config}

# (regime, mixing fields): every new regime, each curation score and rule, and fit weights.
CASES = {
    "augment": ("augment", {"augment_ratio": 0.5}),
    "fresh": ("fresh", {"fresh_fraction": 0.3}),
    "augment_oracle_resample_weighted": (
        "augment",
        {
            "augment_ratio": 1.5,
            "real_weight": 2.0,
            "synthetic_weight": 1.0,
            "curation.score": "oracle",
            "curation.rule": "resample",
            "curation.temperature": 0.5,
        },
    ),
    "fresh_current_top": ("fresh", {"fresh_fraction": 0.3, "curation.score": "current"}),
    "keep_real_initial_top": (
        "keep_real",
        {"gamma": 0.2, "curation.score": "initial", "curation.oversample": 3},
    ),
}


def config(name, case, generations=4):
    cfg = CONFIGS[name].get_config("smoke")
    cfg.num_seeds, cfg.num_generations = 3, generations
    cfg.checkpoint.every_generations = 2
    regime, fields = CASES[case]
    cfg.mixing.regime = regime
    for k, v in fields.items():
        node = cfg.mixing
        *path, leaf = k.split(".")
        for p in path:
            node = node[p]
        node[leaf] = v
    return cfg


def loop_over_seeds(cfg, fam, keep_pools=False):
    """The chain as plain Python loops over seeds and generations (no vmap, no scan)."""
    plan = mixing.plan(cfg.mixing, cfg.samples_per_generation, cfg.num_generations)
    truth = fam.reference(cfg)
    out, pools = [], []
    for key in rng.seed_keys(cfg.seed, cfg.num_seeds):
        carry, m = chain.first_generation(fam, plan, cfg, key, truth)
        rows, seed_pools = [m], [carry]
        for g in range(1, cfg.num_generations):
            carry, m = chain.next_generation(fam, plan, cfg, key, truth, carry, jnp.int32(g))
            rows.append(m)
            seed_pools.append(carry)
        out.append({k: np.array([r[k] for r in rows]) for k in rows[0]})
        pools.append(seed_pools)
    stacked = {k: np.stack([o[k] for o in out], axis=1) for k in out[0]}
    return (stacked, pools) if keep_pools else stacked


# Every case runs on both small families; the default suite runs each case once (compiles
# dominate on 2 cores), the slow suite the rest.
FAST = [
    ("gaussian", "augment"),
    ("gaussian", "fresh"),
    ("gaussian", "augment_oracle_resample_weighted"),
    ("discrete", "fresh_current_top"),
    ("discrete", "keep_real_initial_top"),
]
SMALL = [
    pytest.param(f, c, marks=() if (f, c) in FAST else pytest.mark.slow)
    for f in ("gaussian", "discrete")
    for c in CASES
]


@pytest.mark.parametrize("name,case", SMALL)
def test_vmapped_chain_equals_loop_and_is_finite(name, case):
    cfg = config(name, case)
    got = chain.simulate(cfg)
    want = loop_over_seeds(cfg, experiments.family(name))
    assert set(got) == set(want)
    for k, v in got.items():
        assert v.shape[:2] == (cfg.num_generations, cfg.num_seeds), k
        assert np.all(np.isfinite(v)), k
        np.testing.assert_allclose(v, want[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize(
    "case",
    ["fresh_current_top", pytest.param("augment_oracle_resample_weighted", marks=pytest.mark.slow)],
)
def test_gmm_regimes_shapes_and_finite(case):
    cfg = config("gmm", case, generations=3)
    got = chain.simulate(cfg)
    for k, v in got.items():
        assert v.shape[:2] == (3, cfg.num_seeds) and np.all(np.isfinite(v)), k


@pytest.mark.slow
@pytest.mark.parametrize("case", ["fresh_current_top", "augment_oracle_resample_weighted"])
def test_gmm_vmapped_chain_equals_loop(case):
    # As tests/test_gmm.py: float64 (in float32 EM's convergence test can flip on the last bit
    # between batch sizes), the loop being the same chain built for one seed, fed each key in turn.
    with jax.enable_x64(True):
        cfg = config("gmm", case, generations=3)
        cfg.enable_x64 = True
        got, loop = chain.simulate(cfg), chain.simulate_per_seed(cfg)
        for k, v in got.items():
            np.testing.assert_allclose(v, loop[k], rtol=1e-9, atol=1e-12, err_msg=k)


@pytest.mark.parametrize(
    "name,case",
    [
        ("gaussian", "augment_oracle_resample_weighted"),
        pytest.param("discrete", "fresh", marks=pytest.mark.slow),
    ],
)
def test_resume_is_bitwise(tmp_path, name, case):
    full = chain.run(config(name, case, 5), tmp_path / "full")
    part = chain.run(config(name, case, 3), tmp_path / "part")
    chain.run(config(name, case, 5), part)
    assert (part / "metrics.jsonl").read_bytes() == (full / "metrics.jsonl").read_bytes()


def test_augment_keeps_all_of_d0_untouched_and_weighted():
    cfg = config("gaussian", "augment_oracle_resample_weighted")
    _, pools = loop_over_seeds(cfg, experiments.family("gaussian"), keep_pools=True)
    lam = round(1.5 * cfg.samples_per_generation)
    for seed_pools in pools:
        x0 = np.asarray(seed_pools[0].data0)
        for carry in seed_pools[1:]:
            pool = carry.pool
            assert pool.x.shape[0] == lam + x0.shape[0]
            np.testing.assert_array_equal(np.asarray(pool.x[lam:]), x0)
            np.testing.assert_array_equal(np.asarray(pool.weight[lam:]), 2.0)
            np.testing.assert_array_equal(np.asarray(pool.weight[:lam]), 1.0)
        # The synthetic part is replaced every generation.
        assert not np.array_equal(seed_pools[1].pool.x[:lam], seed_pools[2].pool.x[:lam])


def test_fresh_draws_are_new_every_generation():
    cfg = config("gaussian", "fresh")
    _, pools = loop_over_seeds(cfg, experiments.family("gaussian"), keep_pools=True)
    m = cfg.samples_per_generation
    f = round(0.3 * m)
    for seed_pools in pools:
        seen = set(np.asarray(seed_pools[0].data0).ravel().tolist())
        for carry in seed_pools[1:]:
            fresh = np.asarray(carry.pool.x[m - f :]).ravel().tolist()
            assert len(fresh) == f and not seen & set(fresh)
            seen |= set(fresh)


def _vae_truth(n):
    # Image i holds the number i in its first pixels, so a slice of the pool names its indices.
    ids = np.arange(n)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0, 0], images[:, 0, 1] = ids % 256, ids // 256
    return vae.Truth(jnp.asarray(images), jnp.zeros((n,), jnp.int32), None)


def test_vae_fresh_never_reuses_a_real_example():
    from configs import vae as vae_config

    cfg = vae_config.get_config("smoke")
    cfg.samples_per_generation, cfg.num_generations = 40, 6
    cfg.mixing.regime, cfg.mixing.fresh_fraction = "fresh", 0.25
    truth = _vae_truth(40 + 5 * 10)
    plan = mixing.plan(cfg.mixing, 40, 6)
    assert plan.num_original == 10

    def ids(x):
        x = np.asarray(x).astype(int)
        return (x[:, 0, 0] + 256 * x[:, 0, 1]).tolist()

    used = ids(vae.original_data(None, truth, cfg))
    ops = chain.step.family_ops(vae.FAMILY, cfg, truth)
    step = jax.jit(lambda g: ops.fresh_data(None, 10, g))
    for g in range(1, 6):
        new = ids(step(jnp.int32(g)))
        assert len(set(new)) == 10 and not set(new) & set(used)
        used += new
    assert sorted(used) == list(range(90))  # the whole pool, each image once


def test_vae_fresh_pool_too_small_is_one_clear_error(monkeypatch):
    from collapse_jax.data import mnist
    from configs import vae as vae_config

    cfg = vae_config.get_config("smoke")
    cfg.samples_per_generation, cfg.num_generations = 40, 7
    cfg.mixing.regime, cfg.mixing.fresh_fraction = "fresh", 0.25
    fake = mnist.Mnist(np.zeros((90, 28, 28), np.uint8), np.zeros(90, np.int32), "train")
    monkeypatch.setattr(mnist, "load", lambda vae_cfg: fake)
    with pytest.raises(ConfigError, match=r"need 100 images.*has 90 \(it supports 6 generations\)"):
        vae.reference(cfg)


def test_curate_keeps_the_best_or_resamples():
    cfg = gaussian_config.get_config("smoke")
    cfg.mixing.curation.score, cfg.mixing.curation.oversample = "current", 4
    p = mixing.plan(cfg.mixing, 5, 2)
    x = jnp.arange(20.0)
    scores = -jnp.abs(x - 7.3)
    kept = mixing.curate(jax.random.key(0), p, x, scores)
    assert sorted(np.asarray(kept).tolist()) == [5.0, 6.0, 7.0, 8.0, 9.0]
    cfg.mixing.curation.rule, cfg.mixing.curation.temperature = "resample", 1e-3
    p = mixing.plan(cfg.mixing, 5, 2)
    # At a tiny temperature resampling puts (almost) all mass on the best candidate.
    np.testing.assert_array_equal(mixing.curate(jax.random.key(0), p, x, scores), 7.0)
    # A NaN or -inf score never wins over finite ones.
    bad = scores.at[0].set(jnp.nan).at[1].set(-jnp.inf)
    np.testing.assert_array_equal(mixing.curate(jax.random.key(1), p, x, bad), 7.0)


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"regime": "augment", "augment_ratio": -1.0}, "mixing.augment_ratio: expected a finite"),
        ({"regime": "augment", "gamma": 0.1}, "set by mixing.augment_ratio"),
        (
            {"regime": "fresh", "fresh_fraction": 0.0},
            r"fresh_fraction: expected a fraction in \(0, 1\]",
        ),
        ({"regime": "fresh", "fresh_fraction": 0.01}, r"round\(it \* M\) >= 1"),
        ({"regime": "fresh", "gamma": 0.2}, "set by mixing.fresh_fraction"),
        ({"real_weight": 0.0}, "mixing.real_weight: expected a finite weight > 0"),
        ({"synthetic_weight": float("nan")}, "mixing.synthetic_weight"),
        ({"curation.score": "verifier"}, "mixing.curation.score: expected one of"),
        ({"curation.rule": "best"}, "mixing.curation.rule: expected one of"),
        ({"curation.oversample": 0}, "mixing.curation.oversample: expected a positive integer"),
        ({"curation.temperature": 0.0}, "mixing.curation.temperature"),
    ],
)
def test_bad_mixing_fields(fields, match):
    cfg = gaussian_config.get_config("smoke")
    for k, v in fields.items():
        node = cfg.mixing
        *path, leaf = k.split(".")
        for p in path:
            node = node[p]
        node[leaf] = v
    with pytest.raises(ConfigError, match=match):
        chain.validate(cfg)


def test_family_without_a_score_and_fractional_discrete_weight_are_clear_errors():
    from configs import vae as vae_config

    cfg = vae_config.get_config("smoke")
    cfg.mixing.curation.score = "oracle"  # MNIST has no true density
    plan = mixing.plan(cfg.mixing, cfg.samples_per_generation, cfg.num_generations)
    with pytest.raises(ConfigError, match="family vae has no truth_log_prob"):
        chain.check_family(vae.FAMILY, plan)
    cfg = discrete_config.get_config("smoke")
    cfg.mixing.real_weight = 1.5
    with pytest.raises(ConfigError, match=r"mixing\.real_weight: expected a whole number"):
        experiments.family("discrete").validate(cfg)


def test_regime_sweep_figure_and_table(tmp_path):
    from collapse_jax.plots import regimes
    from launch import sweep

    runs = sweep.expand(gaussian_config.get_config("smoke,sweep=regimes"), tmp_path)
    assert tuple(p["mixing.regime"] for _, p, _ in runs) == gaussian_config.REGIMES
    for run_dir, point, run_cfg in runs:
        if point["mixing.regime"] in ("accumulate_subsample", "augment"):
            chain.run(run_cfg, run_dir)
    path = regimes.figure(tmp_path, "variance")
    assert path.name == "regimes_variance.png" and path.stat().st_size > 0
    rows = regimes.table(tmp_path, "variance").splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == ["| accumulate_subsample", "| augment (lambda=1.0)"]
    assert "theory" not in rows[0] and "theory 0.95)" in rows[1]  # (M-1)/M at generation 0


@pytest.mark.slow  # 25-30 s of VAE compiles; the curation rules are covered on the small families
def test_vae_elbo_score_and_curation_needs_a_fixed_dataset():
    from collapse_jax.families.vae import model, train
    from configs import vae as vae_config

    cfg = vae_config.get_config("smoke")
    z = cfg.vae.latent_dim
    state = vae.VaeState(model.init_params(jax.random.key(0), z), None, None, True)
    x = jax.random.randint(jax.random.key(1), (6, 28, 28), 0, 256).astype(jnp.uint8)
    lp = vae.log_prob(state, x, cfg)
    want = -model.per_image_loss(state.params, train.to_unit(x), jnp.zeros((6, z)), z)
    assert lp.shape == (6,) and np.all(np.isfinite(lp))
    np.testing.assert_array_equal(lp, want)
    cfg.mixing.curation.score = "current"
    cfg.vae.samples = "fresh_per_batch"
    with pytest.raises(ConfigError, match=r"use vae\.samples=fixed_dataset"):
        vae.validate(cfg)
    cfg.vae.samples = "fixed_dataset"
    vae.validate(cfg)
