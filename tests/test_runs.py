"""The analysis API (collapse_jax.open_run): restored models reproduce the recorded metrics,
sampling is the family's, kept generations survive retention, errors name what exists."""

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import collapse_jax
from collapse_jax import chain, mixing, rng
from collapse_jax.errors import CheckpointError
from collapse_jax.family import Origin, full
from configs import discrete, gaussian, gmm, vae
from tests import float_bounds


def recompute_metrics(run, generation):
    """Metrics of every seed at ``generation`` from the restored Carry, as the chain computes them
    (``chain.first_generation`` for generation 0, ``chain.next_generation`` after), vmapped."""
    fam, cfg = run.family, run.config
    plan = mixing.plan_for(cfg, fam)
    truth = fam.reference(cfg)
    keys_S = rng.seed_keys(cfg.seed, cfg.num_seeds)

    def one(seed_key, carry):
        if generation == 0:
            data = full(carry.data0)
        else:
            k_train = rng.GenerationKeys.of(seed_key, generation).train
            data = mixing.training_data(k_train, plan, carry.pool)
        return fam.metrics(carry.model, data, Origin(truth, carry.data0, carry.model0), cfg)

    with jax.default_matmul_precision(cfg.matmul_precision):
        out = jax.jit(jax.vmap(one))(keys_S, run.model(generation))
    return jax.device_get(out)


EPS32 = float(np.finfo(np.float32).eps)


def _term_scales(run, generation) -> dict[str, tuple[int, np.ndarray]]:
    """``{metric: (n, S_S)}`` for the float metrics that a recomputation may round differently: a
    sum of ``n`` terms whose absolute values add up to at most ``S`` per seed."""
    fam, cfg = run.family, run.config
    carry = run.model(generation)
    if cfg.experiment == "discrete":
        # p_K = counts / sum (one correctly rounded division) feeds four K-term sums of one sign
        # each (or, for Gini-Simpson, 1 minus a sum of squares that add up to at most 1).
        K = cfg.discrete.num_states
        m = {k: np.abs(np.asarray(run.metrics[k][generation], np.float64)) for k in run.metrics}
        return {
            "tail_mass": (K, m["tail_mass"]),
            "entropy": (K, m["entropy"]),
            "tv_distance": (K, m["tv_distance"]),
            "gini_simpson": (K, np.ones_like(m["gini_simpson"])),
        }
    if cfg.experiment == "gmm":
        gmm_lib = importlib.import_module("collapse_jax.families.gmm")
        truth = fam.reference(cfg)

        def scales(state, state0):
            a, b, t = state.gmm, state0.gmm, truth.gmm
            lp_N = gmm_lib._per_sample_log_likelihood(truth.heldout_x_NxD, a)
            inner = gmm_lib._inner
            return {
                "l2_to_gmm0": inner(a, a) + 2 * inner(a, b) + inner(b, b),
                "l2_to_truth": inner(a, a) + 2 * inner(a, t) + inner(t, t),
                "heldout_loglik": jnp.mean(jnp.abs(lp_N)),
            }

        with jax.default_matmul_precision(cfg.matmul_precision):
            s = jax.device_get(jax.jit(jax.vmap(scales))(carry.model, carry.model0))
        K, N = cfg.gmm.num_components, truth.heldout_x_NxD.shape[0]
        return {
            "l2_to_gmm0": (3 * K * K, np.asarray(s["l2_to_gmm0"], np.float64)),
            "l2_to_truth": (3 * K * K, np.asarray(s["l2_to_truth"], np.float64)),
            "heldout_loglik": (N, np.asarray(s["heldout_loglik"], np.float64)),
        }
    return {}


# Metrics of a decoder's images go through float32 convolutions (thousands of terms per output,
# then nonlinearities and an argmax), for which no useful rounding bound exists: only what the VAE
# copies from its restored state is compared, which identifies the restored model exactly.
_COPIED_FROM_STATE = {"vae": ("train_loss", "train_loss_by_epoch", "classifier_heldout_accuracy")}

# Per-term roundings besides the reassociation of the sum itself: the division, product, log or
# exp that makes each term (a handful of correctly rounded or few-ulp operations).
_PER_TERM_ULPS = 8


def assert_metrics_match(run, generation):
    """The restored models reproduce the recorded metrics.

    The recomputation is another XLA program than the chain's, which XLA may fuse differently
    (reassociated sums, contracted multiply-adds): no bit equality is promised between two
    programs. Reassociating a float32 sum of n terms moves it by at most (n - 1) u sum|t_i|
    (u = eps / 2; Higham, Accuracy and Stability, eq. 4.4), so two orders differ by at most
    (n - 1) eps sum|t_i|, plus the per-term roundings. The restored inputs of every sum are bitwise
    the stored ones; integer metrics and values copied from the state must match exactly.
    """
    got = recompute_metrics(run, generation)
    row = int(np.flatnonzero(run.generations == generation)[0])
    assert set(got) == set(run.metrics)
    scales = _term_scales(run, generation)
    copied = _COPIED_FROM_STATE.get(run.config.experiment)
    for name, v in got.items():
        if copied is not None and name not in copied:
            continue
        # metrics.jsonl holds 9 significant digits: every float32 reads back to itself exactly.
        v = np.asarray(v)
        want = np.asarray(run.metrics[name][row]).astype(v.dtype)
        if name == "w2_squared" and run.config.experiment == "gaussian":
            g = run.config.gaussian
            mean_error = np.asarray(run.metrics["mean_error"][row])
            bound = float_bounds.w2_squared_rounding_bound(
                mean_error, np.asarray(run.metrics["variance"][row]), g.std, g.dim
            )
        elif name in scales:
            n, s_S = scales[name]
            bound = (n - 1 + _PER_TERM_ULPS) * EPS32 * s_S
        else:
            np.testing.assert_array_equal(v, want, err_msg=name)
            continue
        err = np.abs(v.astype(np.float64) - want.astype(np.float64))
        assert np.all(err <= bound), (name, err.max(), bound[err.argmax()])


@pytest.fixture(scope="module")
def gaussian_run(tmp_path_factory):
    """40 generations, a checkpoint every 2, only the latest one rolling: far beyond max_to_keep.

    Kept generations 3 and 7 are not multiples of every_generations: chain.run ends chunks there.
    """
    cfg = gaussian.get_config("smoke")
    cfg.num_generations = 40
    cfg.checkpoint.every_generations = 2
    cfg.checkpoint.max_to_keep = 1
    cfg.checkpoint.keep_generations = [0, 3, 7, 20, 100]  # 100 is never reached
    return chain.run(cfg, tmp_path_factory.mktemp("gaussian"))


def test_kept_generations_survive_a_long_run(gaussian_run):
    run = collapse_jax.open_run(gaussian_run)
    assert run.saved_generations == [0, 3, 7, 20, 39]
    assert list(run.generations) == list(range(40))
    assert run.metrics["variance"].shape == (40, 8)


def test_resume_from_a_kept_generation_is_bitwise(gaussian_run, tmp_path):
    """Resume from generation 7 (off the every_generations grid) after losing 20 and 39."""
    crashed = tmp_path / "crashed"
    shutil.copytree(gaussian_run, crashed)
    for g in (20, 39):
        shutil.rmtree(crashed / "checkpoints" / str(g))
    cfg = gaussian.get_config("smoke")
    cfg.num_generations = 40
    cfg.checkpoint.every_generations = 2
    cfg.checkpoint.max_to_keep = 1
    cfg.checkpoint.keep_generations = [0, 3, 7, 20, 100]
    chain.run(cfg, crashed)
    want = (gaussian_run / "metrics.jsonl").read_bytes()
    assert (crashed / "metrics.jsonl").read_bytes() == want
    assert collapse_jax.open_run(crashed).saved_generations == [0, 3, 7, 20, 39]


def test_gaussian_metrics_recomputed_from_restored_models(gaussian_run):
    run = collapse_jax.open_run(gaussian_run)
    for g in (0, 7, 39):
        assert_metrics_match(run, g)


def test_frame_is_long_form(gaussian_run):
    run = collapse_jax.open_run(gaussian_run)
    df = run.frame()
    assert list(df.columns) == ["generation", "seed", "metric", "value"]
    v = df.query("metric == 'variance' and generation == 7 and seed == 5")["value"]
    assert v.item() == run.metrics["variance"][7, 5]
    assert len(df) == 40 * 8 * sum(m.ndim == 2 for m in run.metrics.values())


def test_model_selects_seeds_and_lands_on_cpu(gaussian_run):
    run = collapse_jax.open_run(gaussian_run)
    every = run.model(20)
    two = run.model(20, seeds=[5, 2])
    one = run.model(20, seed=5)
    assert every.model.mean_D.shape == (8, 1) and two.model.mean_D.shape == (2, 1)
    assert one.model.mean_D.shape == (1,)
    np.testing.assert_array_equal(two.model.cov_DxD[0], every.model.cov_DxD[5])
    np.testing.assert_array_equal(one.model.cov_DxD, every.model.cov_DxD[5])
    assert {d.platform for d in every.model.mean_D.devices()} == {"cpu"}
    # The restored variance is the one recorded for that generation and seed.
    assert np.float32(one.model.cov_DxD[0, 0]) == np.float32(run.metrics["variance"][20, 5])


def test_unknown_generation_or_seed_names_what_exists(gaussian_run):
    run = collapse_jax.open_run(gaussian_run)
    with pytest.raises(CheckpointError, match=r"generation 8 is not saved.*0, 3, 7, 20, 39"):
        run.model(8)
    with pytest.raises(CheckpointError, match=r"seed 8 does not exist; seeds are 0 \.\. 7"):
        run.model(7, seed=8)
    with pytest.raises(CheckpointError, match=r"seed 9 does not exist"):
        run.model(7, seeds=[0, 9])
    with pytest.raises(TypeError, match=r"seeds: expected a list of seed indices, got 3"):
        run.model(7, seeds=3)
    with pytest.raises(CheckpointError, match=r"generation 8 is not saved"):
        run.sample(8, 10, seed=0, key=jax.random.key(0))
    with pytest.raises(KeyError, match=r"'varaince' is not recorded; recorded metrics: .*variance"):
        run.metrics["varaince"]
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        collapse_jax.open_run(gaussian_run / "checkpoints")


def test_gaussian_sample_is_the_restored_model(gaussian_run):
    run = collapse_jax.open_run(gaussian_run)
    n = 4000
    x = run.sample(20, n, 3, jax.random.key(1))
    assert x.shape == (n, 1)
    np.testing.assert_array_equal(x, run.sample(20, n, 3, jax.random.key(1)))
    assert not np.array_equal(x, run.sample(20, n, 3, jax.random.key(2)))
    mean, var = run.metrics["mean"][20, 3], run.metrics["variance"][20, 3]
    # The draws' mean is that seed's fitted mean within 5 standard errors.
    assert abs(float(np.mean(x)) - mean) < 5 * np.sqrt(var / n)


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_gmm_restore_and_sample(tmp_path):
    cfg = gmm.get_config("smoke")
    run = collapse_jax.open_run(chain.run(cfg, tmp_path))
    assert set(cfg.checkpoint.keep_generations) <= set(run.saved_generations)
    for g in run.saved_generations:
        assert_metrics_match(run, g)
    x = run.sample(3, 64, 1, jax.random.key(0))
    assert x.shape == (64, cfg.gmm.dim)
    np.testing.assert_array_equal(x, run.sample(3, 64, 1, jax.random.key(0)))


def test_discrete_restore_and_sample(tmp_path):
    cfg = discrete.get_config("smoke")
    run = collapse_jax.open_run(chain.run(cfg, tmp_path))
    for g in (0, 5, cfg.num_generations - 1):
        assert_metrics_match(run, g)
    x = run.sample(5, 50, 0, jax.random.key(0))
    counts_K = np.asarray(run.model(5, seed=0).model.counts_K)
    assert x.shape == (50,)
    assert counts_K[np.asarray(x)].min() > 0, "a draw outside the restored model's support"
    np.testing.assert_array_equal(x, run.sample(5, 50, 0, jax.random.key(0)))


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_vae_restore_and_sample(tmp_path, shared_data):
    del shared_data
    # Generation 0 only (the chain's first step): one VAE compile, the cost of this test.
    cfg = vae.get_config("smoke")
    cfg.num_generations = 1
    run = collapse_jax.open_run(chain.run(cfg, tmp_path))
    assert_metrics_match(run, 0)
    images = run.sample(0, 4, 1, jax.random.key(0))
    assert images.shape == (4, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, run.sample(0, 4, 1, jax.random.key(0)))
    assert not np.array_equal(images, run.sample(0, 4, 1, jax.random.key(1)))


def test_open_run_imports_no_plotting_backend(gaussian_run):
    """A notebook's matplotlib backend is its own: reading a run imports no matplotlib at all."""
    code = (
        "import sys, collapse_jax\n"
        "run = collapse_jax.open_run(sys.argv[1])\n"
        "run.metrics['variance'][0], run.frame()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code, str(gaussian_run)],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        check=True,
    )
    assert out.stdout.splitlines()[-1] == "[]"
