"""KDE family: toy data against sklearn, density and bandwidths against sklearn, the sampler and
the MMD's closed form against Monte Carlo, the chain, resume and figures.

Statistical tolerances: means of N i.i.d. terms within Z = 5 standard errors (from the terms' own
sample std); distributions by a two-sample Kolmogorov-Smirnov test at p > 1e-6 per feature
(sklearn's samples are evenly spaced in angle: against ``angles="iid"`` data, which is less even,
the test is conservative; ``angles="linspace"`` is sklearn's construction itself, checked point
for point without noise).
"""

import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.stats

from collapse_jax import chain, family, mixing, plots
from collapse_jax.errors import ConfigError
from collapse_jax.families import kde
from collapse_jax.plots import kde as kde_plots
from configs import kde as kde_config

Z = 5.0


def cfg_for(dataset="moons", regime="replace", **kw):
    cfg = kde_config.get_config("smoke")
    cfg.kde.dataset = dataset
    cfg.mixing.regime = regime
    cfg.log_every_seconds = 0.0
    for k, v in kw.items():
        section, _, name = k.rpartition(".")
        (cfg[section] if section else cfg)[name] = v
    return cfg


@pytest.mark.parametrize(
    "field, value",
    [
        ("kde.dataset", "spirals"),
        ("kde.angles", "grid"),
        ("kde.bandwidth_rule", "scot"),
        ("kde.bandwidth", 0.0),
        ("kde.noise", -0.1),
        ("kde.circles_factor", 1.0),
        ("kde.blob_centers", [[0.0, 1.0, 2.0]]),
        ("kde.blob_std", 0.0),
        ("kde.heldout_samples", 1),
        ("kde.mmd_features", 0),
        ("kde.snapshot_points", 25),  # more than samples_per_generation = 24
    ],
)
def test_bad_config_is_one_line_error(field, value):
    cfg = cfg_for()
    section, _, name = field.rpartition(".")
    (cfg[section] if section else cfg)[name] = value
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")) as e:
        kde.validate(cfg)
    assert "\n" not in str(e.value)


def _sklearn(dataset, n, cfg):
    from sklearn import datasets

    k = cfg.kde
    r = np.random.RandomState(0)
    if dataset == "blobs":
        return datasets.make_blobs(
            n, centers=np.array(k.blob_centers), cluster_std=k.blob_std, random_state=r
        )[0]
    if dataset == "circles":
        return datasets.make_circles(n, noise=k.noise, factor=k.circles_factor, random_state=r)[0]
    if dataset == "moons":
        return datasets.make_moons(n, noise=k.noise, random_state=r)[0]
    return datasets.make_swiss_roll(n, noise=k.noise, random_state=r)[0][:, [0, 2]]


@pytest.mark.parametrize(
    "dataset, angles",
    [(d, "iid") for d in kde.DATASETS] + [("circles", "linspace"), ("moons", "linspace")],
)
def test_toy_data_match_sklearn(dataset, angles):
    cfg = cfg_for(dataset, **{"kde.angles": angles})
    n = 20_000
    centers = jnp.asarray(cfg.kde.blob_centers, jnp.float32)
    ours = np.asarray(
        jax.jit(partial(kde.draw, n=n, cfg=cfg))(jax.random.key(3), blob_centers_KxD=centers)
    )
    theirs = _sklearn(dataset, n, cfg)
    features = {
        "x": lambda a: a[:, 0],
        "y": lambda a: a[:, 1],
        "radius": lambda a: np.linalg.norm(a - theirs.mean(0), axis=1),
    }
    for name, f in features.items():
        p = scipy.stats.ks_2samp(f(ours), f(theirs)).pvalue
        assert p > 1e-6, (dataset, name, p)


@pytest.mark.parametrize("angles", kde.ANGLES)
@pytest.mark.parametrize("dataset, n", [("blobs", 11), ("circles", 11), ("moons", 11)])
def test_group_sizes_match_sklearn(dataset, n, angles):
    # Noise off: every point sits exactly on its group, so the counts can be read off.
    from sklearn import datasets

    cfg = cfg_for(dataset, **{"kde.noise": 0.0, "kde.blob_std": 1e-6, "kde.angles": angles})
    centers = jnp.asarray(cfg.kde.blob_centers, jnp.float32)
    x = np.asarray(kde.draw(jax.random.key(0), n, centers, cfg), float)
    if dataset == "blobs":
        ours = np.argmin(((x[:, None] - np.asarray(centers)[None]) ** 2).sum(-1), axis=1)
        theirs = datasets.make_blobs(n, centers=np.asarray(centers), random_state=0)[1]
    else:
        make = datasets.make_circles if dataset == "circles" else datasets.make_moons
        # sklearn's label 0 is the outer circle / upper moon: points on the unit circle.
        ours = (np.abs(np.linalg.norm(x, axis=1) - 1) > 1e-5).astype(int)
        theirs = make(n, random_state=0)[1]
    np.testing.assert_array_equal(np.bincount(ours), np.bincount(theirs))


@pytest.mark.parametrize("dataset", ["circles", "moons"])
@pytest.mark.parametrize("n", [2, 11, 24, 100])
def test_linspace_angles_are_sklearns_points(dataset, n):
    # Noise off, sklearn's construction without its shuffle: the same points, in another order.
    from sklearn import datasets

    cfg = cfg_for(dataset, **{"kde.noise": 0.0, "kde.angles": "linspace"})
    centers = jnp.asarray(cfg.kde.blob_centers, jnp.float32)
    ours = np.asarray(kde.draw(jax.random.key(n), n, centers, cfg), float)
    if dataset == "moons":
        theirs = datasets.make_moons(n, shuffle=False)[0]
    else:
        theirs = datasets.make_circles(n, shuffle=False, factor=cfg.kde.circles_factor)[0]

    # One-to-one: the best matching of our points to sklearn's moves none of them further than
    # float32 cos and sin of float32 angles can (a few float32 ulps of sklearn's float64).
    dist = np.linalg.norm(ours[:, None] - theirs[None], axis=-1)
    i, j = scipy.optimize.linear_sum_assignment(dist)
    assert dist[i, j].max() < 2e-6, dist[i, j].max()
    # The order is random (sklearn's shuffle): not the grid's own order.
    if n >= 24:
        assert not np.allclose(ours, theirs, atol=1e-3)


def test_linspace_moons_give_the_peers_generation_0_nll():
    # Kazdan et al.'s generation 0 per seed (their fit_kdes.py): make_moons(M, noise) to train,
    # KernelDensity(bandwidth=h), mean -log p on a fresh make_moons(500, noise) of that seed. Ours
    # fits the same KDE (kde.fit: every point a centre, fixed h) to our D_0 and is scored on the
    # same per-seed test sets by kde.log_density. With linspace angles the seed means must agree
    # within 5 standard errors of their difference; with i.i.d. angles (the issue: 0.810 against
    # the peer's 0.731) they must not: the check tells the two constructions apart.
    from sklearn import datasets
    from sklearn.neighbors import KernelDensity

    seeds, m, h, noise = 100, 100, 0.1, 0.05
    tests = [datasets.make_moons(500, noise=noise, random_state=1000 + s)[0] for s in range(seeds)]
    peer = np.array(
        [
            -KernelDensity(bandwidth=h)
            .fit(datasets.make_moons(m, noise=noise, random_state=s)[0])
            .score_samples(tests[s])
            .mean()
            for s in range(seeds)
        ]
    )
    test_SxNxD = jnp.asarray(np.stack(tests), jnp.float32)

    def ours(angles):
        cfg = cfg_for(
            "moons",
            samples_per_generation=m,
            **{"kde.noise": noise, "kde.bandwidth": h, "kde.angles": angles},
        )
        centers = jnp.asarray(cfg.kde.blob_centers, jnp.float32)

        def nll(key, test_NxD):
            x = kde.draw(key, m, centers, cfg)
            state = kde.fit(None, None, mixing.full(x), cfg)
            return -jnp.mean(kde.log_density(state, test_NxD))

        keys = jax.random.split(jax.random.key(7), seeds)
        return np.asarray(jax.jit(jax.vmap(nll))(keys, test_SxNxD), float)

    def z(a, b):
        se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        return (a.mean() - b.mean()) / se

    linspace, iid = ours("linspace"), ours("iid")
    assert abs(z(linspace, peer)) < Z, (linspace.mean(), peer.mean(), z(linspace, peer))
    assert z(iid, peer) > Z, (iid.mean(), peer.mean(), z(iid, peer))


def test_bandwidth_rules_and_density_match_sklearn():
    from sklearn.neighbors import KernelDensity

    g = np.random.default_rng(0)
    x = g.normal(size=(37, 2)).astype(np.float32)
    query = g.normal(size=(11, 2)).astype(np.float32) * 2
    for rule in ("fixed", "scott", "silverman"):
        cfg = cfg_for(**{"kde.bandwidth_rule": rule, "kde.bandwidth": 0.3})
        # A padded buffer: the 37 points among zero-weight slots of garbage.
        xp = np.concatenate([np.full((5, 2), 50.0, np.float32), x])
        wp = np.r_[np.zeros(5), np.ones(37)].astype(np.float32)
        cfg.samples_per_generation = 42
        state = kde.fit(None, None, mixing.Data(jnp.asarray(xp), jnp.asarray(wp)), cfg)
        sk = KernelDensity(bandwidth=0.3 if rule == "fixed" else rule).fit(x)
        np.testing.assert_allclose(float(state.bandwidth), sk.bandwidth_, rtol=1e-5)
        np.testing.assert_allclose(
            kde.log_density(state, jnp.asarray(query)),
            sk.score_samples(query),
            rtol=1e-4,
            atol=1e-4,
        )


def test_sampler_draws_from_the_weighted_mixture():
    cfg = cfg_for(**{"kde.bandwidth": 0.4})
    centers = np.array([[0.0, 0.0], [3.0, -1.0], [99.0, 99.0], [-2.0, 5.0]], np.float32)
    weight = np.array([1.0, 1.0, 0.0, 1.0], np.float32)  # slot 2 is empty: never drawn
    state = kde.State(jnp.asarray(centers), jnp.asarray(weight), jnp.float32(0.4))
    n = 200_000
    x = np.asarray(kde.sample(jax.random.key(4), state, n, cfg), float)
    assert np.abs(x - 99.0).min() > 10
    c = centers[weight > 0]
    mean = c.mean(0)
    cov = np.cov(c.T, ddof=0) + 0.16 * np.eye(2)
    xc = x - mean
    t = (xc[:, :, None] * xc[:, None, :]).reshape(n, -1) - cov.ravel()
    for terms in (xc, t):
        z = terms.mean(0) / (terms.std(0, ddof=1) / np.sqrt(n))
        assert np.all(np.abs(z) < Z), z


def test_mmd_embedding_is_the_kde_expectation():
    # The closed-form feature mean of a KDE against the mean over its own samples (5 s.e.).
    cfg = cfg_for(**{"kde.bandwidth": 0.3})
    truth = kde.reference(cfg)

    @jax.jit
    def fit_and_sample(key):
        k_data, k_sample = jax.random.split(key)
        data = kde.original_data(k_data, truth, cfg)
        state = kde.fit(None, None, mixing.full(data), cfg)
        x = kde.sample(k_sample, state, 100_000, cfg)
        return state, kde.features(x, truth.omega_RxD, truth.phase_R)

    state, phi = fit_and_sample(jax.random.key(5))
    phi = np.asarray(phi, float)
    damp = np.exp(-0.5 * 0.09 * np.sum(np.asarray(truth.omega_RxD) ** 2, axis=1))
    closed = damp * np.asarray(
        kde.features(state.centers_NxD, truth.omega_RxD, truth.phase_R)
    ).mean(0)
    z = (phi.mean(0) - closed) / (phi.std(0, ddof=1) / np.sqrt(len(phi)))
    assert np.all(np.abs(z) < Z), np.abs(z).max()
    # And the MMD itself: |embedding - truth embedding|.
    want = np.linalg.norm(closed - np.asarray(truth.truth_embedding_R))
    np.testing.assert_allclose(kde.mmd(state, truth), want, rtol=1e-4)


@pytest.mark.parametrize("jit", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_shapes_and_finiteness(jit):
    cfg = cfg_for()
    fam = kde.FAMILY
    truth = fam.reference(cfg)
    m = cfg.samples_per_generation

    def generation(key):
        k0, k1, k2 = jax.random.split(key, 3)
        x0 = fam.original_data(k0, truth, cfg)
        data0 = mixing.full(x0)
        s0 = fam.fit(k1, fam.init(k1, cfg, data0), data0, cfg)
        x1 = fam.sample(k2, s0, m, cfg)
        s1 = fam.fit(k2, s0, mixing.full(x1), cfg)
        # A collapsed KDE (every centre equal) must still give finite metrics.
        dead = fam.fit(k2, s0, mixing.full(jnp.zeros_like(x1) + 0.25), cfg)
        origin = family.Origin(truth, x0, s0)
        return x0, x1, fam.metrics(s1, data0, origin, cfg), fam.metrics(dead, data0, origin, cfg)

    with jax.disable_jit(not jit):
        run = jax.jit(generation) if jit else generation
        x0, x1, met, dead = run(jax.random.key(0))
    assert x0.shape == x1.shape == (m, 2)
    for out in (met, dead):
        assert set(out) == {"nll", "mmd", "bandwidth", "snapshot"}
        assert out["snapshot"].shape == (cfg.kde.snapshot_points, 2)
        for k, v in out.items():
            assert np.all(np.isfinite(v)), k
        assert all(jnp.shape(out[k]) == () for k in ("nll", "mmd", "bandwidth"))
    assert dead["nll"] > met["nll"]  # a point mass explains the moons worse


@pytest.mark.parametrize("regime", ["replace", pytest.param("accumulate", marks=pytest.mark.slow)])
def test_vmapped_chain_equals_loop_over_seeds(regime):
    cfg = cfg_for(regime=regime, num_seeds=3, num_generations=3)
    got, want = chain.simulate(cfg), chain.simulate_per_seed(cfg)
    for k in got:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5, err_msg=k)
    if regime == "accumulate":  # the rule sees the growing pool
        assert got["snapshot"].shape == (3, 3, cfg.kde.snapshot_points, 2)


def _read(workdir):
    return (workdir / "metrics.jsonl").read_bytes()


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_resume_is_bitwise(tmp_path):
    full = chain.run(cfg_for(num_generations=4), tmp_path / "full")
    part = chain.run(cfg_for(num_generations=2), tmp_path / "part")
    chain.run(cfg_for(num_generations=4), part)
    assert _read(part) == _read(full)
    assert [json.loads(x)["generation"] for x in _read(part).splitlines()] == [0, 1, 2, 3]
    # The accumulate buffer's resume is the generic chain's (tests/test_chain.py, and
    # tests/test_linear_regression.py for a family state); not repeated here to keep this cheap.


def test_run_report_and_sweep_figure(tmp_path):
    a = chain.run(cfg_for(), tmp_path / "replace")
    b = chain.run(cfg_for(regime="accumulate"), tmp_path / "accumulate")
    paths, summary = plots.report(a)
    assert [p.name for p in paths] == ["kde_metrics.png", "kde_snapshots.png", "profile.md"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert "| nll |" in summary
    run = plots.load_run(b)
    assert run.metrics["snapshot"].shape == (4, 4, 8, 2)
    sweep = kde_plots.sweep_figure([a, b], tmp_path / "figures")
    assert sweep.name == "kde_sweep.png" and sweep.stat().st_size > 0
