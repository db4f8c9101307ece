"""GMM-EM family: EM against sklearn, monotone lower bound, exact L2, collapse safety, the chain."""

import json
import shutil
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from collapse_jax import chain, mixing, plots
from collapse_jax.errors import ConfigError
from collapse_jax.families import gmm
from collapse_jax.plots import gmm as gmm_plots
from configs import gmm as gmm_config

N, D, K = 240, 2, 3  # one shape for every EM test: each new shape is a new compile


def _random_gmm(rng, k=K, d=D, scale=1.0):
    a = rng.normal(size=(k, d, d))
    cov = a @ np.swapaxes(a, -1, -2) / d + 0.2 * np.eye(d)
    return gmm.GMM(rng.dirichlet(np.ones(k) * 3), rng.normal(size=(k, d)) * scale, cov)


def _problem(kind, seed):
    """Data ``x_NxD`` and an initial GMM, float64 numpy."""
    rng = np.random.default_rng(seed)
    truth = _random_gmm(rng, scale=3.0)
    z = rng.choice(K, N, p=truth.weights_K)
    x = np.stack(
        [rng.multivariate_normal(truth.means_KxD[k], truth.covariances_KxDxD[k]) for k in z]
    )
    init = _random_gmm(rng, scale=2.0)
    if kind == "flat":  # near-degenerate: the data lie within 1e-4 of a line
        x[:, 1] = 0.5 * x[:, 0] + 1e-4 * rng.normal(size=N)
    elif kind == "duplicates":  # a third of the samples are one point: a component collapses there
        x[: N // 3] = x[0]
    elif kind == "far_component":  # a component starting far from all data empties at once
        init = init._replace(means_KxD=init.means_KxD.copy())
        init.means_KxD[-1] = 1e3
    return x, init


@pytest.fixture(scope="module")
def em64():
    """EM jitted once in float64 (sklearn's precision) with fixed tol and max_iter."""
    f = jax.jit(partial(gmm.em, tol=1e-6, max_iter=200, reg_covar=1e-6))

    def call(x, init):
        # The x64 context only around the call: it must not leak into the other tests.
        with jax.enable_x64(True):
            out = f(mixing.full(jnp.asarray(x)), jax.tree.map(jnp.asarray, init))
            return jax.tree.map(np.asarray, out)

    return call


def _sklearn(x, init, **kw):
    from sklearn.mixture import GaussianMixture

    sk = GaussianMixture(
        K,
        covariance_type="full",
        tol=1e-6,
        max_iter=200,
        reg_covar=1e-6,
        weights_init=init.weights_K,
        means_init=init.means_KxD,
        precisions_init=np.linalg.inv(init.covariances_KxDxD),
        **kw,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sk.fit(x)


@pytest.mark.parametrize(
    "kind,seed", [("plain", 0), ("plain", 1), ("flat", 2), ("duplicates", 3), ("far_component", 4)]
)
def test_em_matches_sklearn_from_the_same_init(em64, kind, seed):
    x, init = _problem(kind, seed)
    sk = _sklearn(x, init)
    ours = em64(x, init)
    # The same arithmetic in float64: only rounding differs, amplified by the iterations and
    # by the conditioning (the flat problem's covariances have condition number ~1e8), so the
    # parameters agree to ~1e-9 relative and the iteration counts exactly.
    assert int(ours.n_iter) == sk.n_iter_
    assert bool(ours.converged) == sk.converged_
    np.testing.assert_allclose(ours.lower_bound, sk.lower_bound_, rtol=1e-9)
    np.testing.assert_allclose(ours.gmm.weights_K, sk.weights_, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ours.gmm.means_KxD, sk.means_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.gmm.covariances_KxDxD, sk.covariances_, rtol=1e-6, atol=1e-12)


def test_em_never_decreases_the_lower_bound():
    # EM's monotonicity holds for the exact M-step (reg_covar = 0); allow float64 rounding.
    with jax.enable_x64(True):
        step = jax.jit(partial(gmm.em_step, reg_covar=0.0))
        for seed in range(3):
            x, g = _problem("plain", 10 + seed)
            data, g = mixing.full(jnp.asarray(x)), jax.tree.map(jnp.asarray, g)
            bounds = []
            for _ in range(60):
                g, lb = step(data, g)
                bounds.append(float(lb))
            b = np.array(bounds)
            assert (np.diff(b) >= -1e-12 * np.abs(b[1:])).all(), np.diff(b).min()
            assert b[-1] > b[0] + 0.1  # and it did climb


# float32 EM jitted once for the tests below (one compile per data shape).
_em32 = jax.jit(partial(gmm.em, tol=1e-5, max_iter=50, reg_covar=1e-6))


def test_weights_equal_a_padded_buffer():
    # The accumulate regimes pass a 0/1-weighted buffer: EM on it must equal EM on the filled part.
    x, init = _problem("plain", 5)
    rng = np.random.default_rng(0)
    x_pad = np.concatenate([x, rng.normal(size=(N // 2, D)) * 1e3]).astype(np.float32)
    w_pad = np.concatenate([np.ones(N), np.zeros(N // 2)]).astype(np.float32)
    f = _em32
    init = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), init)
    a = f(mixing.full(jnp.asarray(x, jnp.float32)), init)
    b = f(mixing.Data(jnp.asarray(x_pad), jnp.asarray(w_pad)), init)
    assert int(a.n_iter) == int(b.n_iter)
    for u, v in zip(jax.tree.leaves(a.gmm), jax.tree.leaves(b.gmm), strict=True):
        np.testing.assert_allclose(u, v, rtol=2e-4, atol=1e-5)  # float32 sums of different length
    # k-means init never picks or averages an empty slot (they sit 1e3 away).
    cfg = gmm_config.get_config("smoke").gmm
    cfg.num_components = K
    start = gmm.initialize(
        jax.random.key(0), mixing.Data(jnp.asarray(x_pad), jnp.asarray(w_pad)), cfg
    )
    assert np.abs(np.asarray(start.means_KxD)).max() <= np.abs(x).max()


def test_l2_distance_matches_numerical_integration():
    rng = np.random.default_rng(7)
    a, b = _random_gmm(rng, k=2), _random_gmm(rng, k=3)
    # A 481^2 grid over [-12, 12]^2 (step 0.05): the densities are smooth with scale >= 0.45 and
    # negligible mass outside; for such integrands the Riemann sum converges faster than any
    # power of the step (as the trapezoid rule on rapidly decaying functions), far below 1e-4.
    t = np.linspace(-12, 12, 481)
    xy = np.stack(np.meshgrid(t, t), -1).reshape(-1, 2)

    def pdf(g):
        return sum(
            w * multivariate_normal(m, c).pdf(xy)
            for w, m, c in zip(g.weights_K, g.means_KxD, g.covariances_KxDxD, strict=True)
        )

    grid = np.sum((pdf(a) - pdf(b)) ** 2) * (t[1] - t[0]) ** 2
    with jax.enable_x64(True):
        ours = float(gmm.l2_distance_sq(jax.tree.map(jnp.asarray, a), jax.tree.map(jnp.asarray, b)))
        zero = float(gmm.l2_distance_sq(jax.tree.map(jnp.asarray, a), jax.tree.map(jnp.asarray, a)))
    np.testing.assert_allclose(ours, grid, rtol=1e-4)
    assert zero < 1e-15


def test_collapse_and_empty_components_stay_finite():
    # float32, as the chain runs: all samples at one point (a fully collapsed generation) and a
    # component initialised far from the data (it empties on the first E-step).
    cfg = gmm_config.get_config("smoke").gmm
    x = jnp.full((N, D), 0.3, jnp.float32)
    state = gmm.fit_gmm(jax.random.key(0), mixing.full(x), cfg)
    for leaf in jax.tree.leaves(state.gmm):
        assert np.isfinite(np.asarray(leaf)).all()
    np.testing.assert_allclose(
        state.gmm.covariances_KxDxD, 1e-6 * np.eye(D)[None].repeat(2, 0), rtol=1e-3, atol=1e-10
    )
    x, init = _problem("far_component", 4)
    init = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), init)
    st = _em32(mixing.full(jnp.asarray(x, jnp.float32)), init)
    w = np.asarray(st.gmm.weights_K)
    assert np.isfinite(w).all() and np.isfinite(np.asarray(st.lower_bound))
    # sklearn's behaviour: n_k floors at 10 eps, so the weight is ~10 eps / N and C = reg_covar I.
    assert w[-1] < 1e-6
    np.testing.assert_allclose(
        st.gmm.covariances_KxDxD[-1], 1e-6 * np.eye(D), rtol=1e-3, atol=1e-10
    )
    samples = gmm.sample_gmm(jax.random.key(1), st.gmm, 1000)
    assert np.isfinite(np.asarray(samples)).all()


def _smoke(**kw):
    cfg = gmm_config.get_config("smoke")
    for k, v in kw.items():
        cfg[k] = v
    return cfg


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    # The smoke config as it is: examples/analyse_run.py runs it too, so the two share compiled
    # programs through the XLA cache.
    cfg = _smoke()
    return cfg, chain.run(cfg, tmp_path_factory.mktemp("gmm") / "full")


def _rows(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_vmapped_chain_equals_a_loop_over_seeds():
    """The compacting loops' batching rule inside the real chain (k-means and EM of every seed).

    ``chain.simulate_per_seed`` runs the same single-seed step unvmapped, where the rule does not
    run at all. float64: in float32 the convergence test |change| < tol can flip on the last bit
    between kernels of different batch sizes (one EM iteration more), which float64 cannot.
    Generation 0 alone (the chain's ``first`` step: D_0, k-means, EM, metrics) is two compiles;
    later generations fit through the same ``fit``, and 5 seeds make two levels (5, then 1).
    """
    with jax.enable_x64(True):
        cfg = _smoke(num_seeds=5, num_generations=1, samples_per_generation=40, enable_x64=True)
        cfg.gmm.heldout_samples = 50
        got, want = chain.simulate(cfg), chain.simulate_per_seed(cfg)
    assert got.keys() == want.keys()
    for name, v in got.items():
        np.testing.assert_allclose(v, want[name], rtol=1e-9, atol=1e-12, err_msg=name)
    # The seeds' EM runs differ in length, so finished seeds sat frozen while others iterated.
    assert len(np.unique(got["em_iterations"])) > 2, got["em_iterations"]


def test_resume_is_exact(smoke_run, tmp_path):
    cfg, full = smoke_run
    part = tmp_path / "part"
    shutil.copytree(full, part)
    # Lose the last checkpoint and the last generation's line, as a kill would; resume.
    last = max(int(p.name) for p in (part / "checkpoints").iterdir() if p.name.isdigit())
    shutil.rmtree(part / "checkpoints" / str(last))
    lines = (part / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    (part / "metrics.jsonl").write_bytes(b"".join(lines[:-1]))
    chain.run(cfg, part)
    assert (part / "metrics.jsonl").read_bytes() == (full / "metrics.jsonl").read_bytes()


def test_metrics_and_figures(smoke_run, tmp_path):
    cfg, workdir = smoke_run
    run = plots.load_run(workdir)
    m = run.metrics
    G, S = cfg.num_generations, cfg.num_seeds
    assert m["weights"].shape == (G, S, 2) and m["covariances"].shape == (G, S, 2, 2, 2)
    np.testing.assert_allclose(m["weights"].read().sum(-1), 1, rtol=1e-5)
    assert (np.diff(m["weights"], axis=-1) <= 0).all()  # heaviest first
    np.testing.assert_allclose(m["l2_to_gmm0"][0], 0, atol=1e-6)  # GMM_0 itself
    assert (m["l2_to_gmm0"][1:] > 0).all()
    paths = gmm_plots.figures(run, tmp_path / "fig")
    assert {p.name for p in paths} == {"l2_distance.png", "components.png", "snapshots.png"}
    assert gmm_plots.sweep_figure([workdir, workdir], tmp_path / "fig").exists()
    assert "GMM-EM chain" in gmm_plots.summary(run)


@pytest.mark.parametrize(
    "field,value",
    [
        ("gmm.num_components", 0),
        ("gmm.tol", 0.0),
        ("gmm.reg_covar", -1.0),
        ("gmm.init_params", "kmeans++"),
        ("gmm.truth_weights", [0.5, 0.6]),
        ("gmm.truth_means", [[0.0, 0.0, 0.0]]),
        ("gmm.truth_covariances", [[[1.0, 2.0], [2.0, 1.0]]]),
        ("samples_per_generation", 1),
    ],
)
def test_bad_config_is_one_line_error(field, value):
    cfg = gmm_config.get_config("smoke")
    section, _, name = field.rpartition(".")
    (cfg[section] if section else cfg)[name] = value
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as e:
        gmm.validate(cfg)
    assert "\n" not in str(e.value)
