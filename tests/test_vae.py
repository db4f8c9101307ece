"""The VAE family: the paper's architecture, vmapped training, fresh samples, metrics, resume.

Conv training compiles slowly on CPU (tens of seconds on a busy 2-core machine): each test compiles
at most one ``fit``, on the smoke config (two batches of 32 images per epoch).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from collapse_jax import chain, mixing
from collapse_jax.errors import ConfigError
from collapse_jax.families.vae import family as vae
from collapse_jax.families.vae import model, train
from collapse_jax.family import Origin
from configs import vae as vae_config


def smoke(**vae_fields):
    cfg = vae_config.get_config("smoke")
    cfg.vae.epochs = 3
    for k, v in vae_fields.items():
        cfg.vae[k] = v
    return cfg


def synthetic_images(key, n):
    """Blurry blobs in [0, 255]: cheap stand-ins for digits where real data is not the point."""
    return jax.random.randint(key, (n, 28, 28), 0, 256).astype(jnp.uint8)


def test_parameter_count_is_the_papers():
    shapes = jax.eval_shape(lambda k: model.init_params(k, 20), jax.random.key(0))
    assert model.num_params(shapes) == 647_081


@pytest.mark.parametrize("use_jit", [pytest.param(False, marks=pytest.mark.slow), True])
def test_forward_shapes_and_finite(use_jit):
    params = model.init_params(jax.random.key(0), 20)
    x = train.to_unit(synthetic_images(jax.random.key(1), 3))
    eps = jax.random.normal(jax.random.key(2), (3, 20))
    loss_fn = functools.partial(model.per_image_loss, latent_dim=20)
    dec = functools.partial(model.decode, latent_dim=20)
    if use_jit:
        loss_fn, dec = jax.jit(loss_fn), jax.jit(dec)
    loss = loss_fn(params, x, eps)
    assert loss.shape == (3,) and bool(jnp.all(jnp.isfinite(loss)))
    # BCE >= the entropy of the targets >= 0 and KL >= 0.
    assert bool(jnp.all(loss > 0))
    p = dec(params, eps)
    assert p.shape == (3, 28, 28) and bool(jnp.all((p >= 0) & (p <= 1)))


@pytest.mark.parametrize("impl", ["matmul", "lax"])
def test_matches_pytorch_with_the_same_weights(impl):
    """The same function as the authors' PyTorch model (k4 s2 p1 convs and transposed convs),
    with our im2col convolutions and with XLA's."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional
    params = model.init_params(jax.random.key(0), 20)
    p = jax.tree.map(lambda a: torch.from_numpy(np.array(a)), params)
    enc, dec = p["encoder"], p["decoder"]
    c1, c2 = nn.Conv2d(1, 64, 4, 2, 1), nn.Conv2d(64, 128, 4, 2, 1)
    d1, d2 = nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ConvTranspose2d(64, 1, 4, 2, 1)
    with torch.no_grad():
        # Flax conv kernels are HWIO, PyTorch's OIHW; transposed conv kernels here are HW(out)(in)
        # (transpose_kernel=True), PyTorch's (in)(out)HW.
        c1.weight.copy_(enc["conv1"]["kernel"].permute(3, 2, 0, 1))
        c2.weight.copy_(enc["conv2"]["kernel"].permute(3, 2, 0, 1))
        d1.weight.copy_(dec["deconv1"]["kernel"].permute(3, 2, 0, 1))
        d2.weight.copy_(dec["deconv2"]["kernel"].permute(3, 2, 0, 1))
        for m, b in (
            (c1, enc["conv1"]),
            (c2, enc["conv2"]),
            (d1, dec["deconv1"]),
            (d2, dec["deconv2"]),
        ):
            m.bias.copy_(b["bias"])
        x = train.to_unit(synthetic_images(jax.random.key(1), 2))
        h = F.relu(c2(F.relu(c1(torch.from_numpy(np.array(x))[:, None]))))
        # Our flatten is (H, W, C); PyTorch's (C, H, W).
        h = h.permute(0, 2, 3, 1).reshape(2, -1)
        mu_t = h @ enc["mu"]["kernel"] + enc["mu"]["bias"]
        z = jax.random.normal(jax.random.key(2), (2, 20))
        g = F.relu(torch.from_numpy(np.array(z)) @ dec["fc"]["kernel"] + dec["fc"]["bias"])
        g = g.reshape(2, 7, 7, 128).permute(0, 3, 1, 2)
        p_t = torch.sigmoid(d2(F.relu(d1(g))))[:, 0]
    vae_model = model.VAE(20, impl)
    mu, _ = vae_model.apply({"params": params}, x[..., None], method=model.VAE.encode)
    logits = vae_model.apply({"params": params}, z, method=model.VAE.decode_logits)
    # float32 sums of ~1000 terms in another order: agreement to ~1e-5 relative.
    np.testing.assert_allclose(np.asarray(mu), mu_t.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(logits[..., 0])), p_t.numpy(), atol=1e-5)


def test_vmapped_fresh_per_batch_fit_equals_per_seed_loop():
    """Generation >= 1 (fresh samples from the previous model, keep_real share of D_0)."""
    cfg = smoke()
    cfg.mixing.regime, cfg.mixing.gamma = "keep_real", 0.25
    plan = mixing.plan(cfg.mixing, cfg.samples_per_generation, cfg.num_generations)
    assert 0 < plan.num_model < cfg.samples_per_generation
    S, M = 2, cfg.samples_per_generation
    keys = jax.random.split(jax.random.key(3), S)
    prev = jax.vmap(lambda k: vae.init(k, cfg, None).replace(fitted=True))(keys)
    x = jax.vmap(lambda k: synthetic_images(k, M))(jax.random.split(jax.random.key(4), S))
    data = jax.vmap(mixing.full)(x)
    fit_keys = jax.random.split(jax.random.key(5), S)
    single = jax.jit(lambda k, s, d: vae.fit(k, s, d, cfg))
    batched = jax.jit(jax.vmap(lambda k, s, d: vae.fit(k, s, d, cfg)))
    out = batched(fit_keys, prev, data)
    for s in range(S):
        one = single(
            fit_keys[s], jax.tree.map(lambda a: a[s], prev), jax.tree.map(lambda a: a[s], data)
        )
        # Same ops with a seed axis added: float32 reassociation only. The losses agree closely.
        np.testing.assert_allclose(one.loss_E, out.loss_E[s], rtol=1e-4)
        np.testing.assert_array_equal(one.z_eval_NxZ, out.z_eval_NxZ[s])
        # Adam divides by sqrt(v): where a gradient is ~0 (a unit that is almost never active),
        # rounding-level changes can move a parameter by up to lr per step. So: nearly all of the
        # model tight (a small leaf such as a bias can hold a few dozen such units, so the share is
        # over the whole model), and every leaf as a whole the same training: its RMS difference
        # under half of one Adam step's share of how far training moved it from the (shared)
        # initialisation. Adam's early steps are ~lr each, so a leaf one step off, left untrained,
        # or trained on another seed's data is off by >= 1/steps of its movement; rounding is
        # far below (1.3e-5 of it at most with jax 0.10.2, 0 with 0.12.1; measured 2026-12-07).
        steps = cfg.vae.epochs * -(-M // cfg.vae.batch_size)
        k_init = jax.random.split(jax.random.split(fit_keys[s])[0])[0]  # train.train's init key
        init = model.init_params(k_init, cfg.vae.latent_dim)
        num_loose = 0
        leaves = zip(
            jax.tree.leaves(one.params),
            jax.tree.leaves(out.params),
            jax.tree.leaves(init),
            strict=True,
        )
        for a, b, a0 in leaves:
            a, b, a0 = np.asarray(a), np.asarray(b)[s], np.asarray(a0)
            moved, diff = np.sqrt(np.mean((a - a0) ** 2)), np.sqrt(np.mean((a - b) ** 2))
            assert moved > 0 and diff < 0.5 / steps * moved, (a.shape, diff, moved)
            num_loose += np.sum(np.abs(a - b) > 2e-5 + 2e-4 * np.abs(b))
        assert num_loose / model.num_params(one.params) < 0.005, num_loose
    assert out.fitted and bool(jnp.all(jnp.isfinite(out.loss_E)))
    assert out.loss_E.shape == (S, cfg.vae.epochs)


def test_micro_batches_give_the_whole_batchs_loss_and_gradient():
    """``vae.micro_batch_size``: the batch's summed loss and gradient over slices of it, vmapped
    over seeds as the chain runs it. Only the order of float32 sums differs: agreement to a few
    ulps of each leaf's largest entry (a dropped, doubled, averaged or misaligned micro-batch
    is off by O(1))."""
    cfg = smoke()
    v = cfg.vae
    S, B, Z = 2, v.batch_size, v.latent_dim
    k_p, k_x, k_e, k_w = jax.random.split(jax.random.key(7), 4)
    params = jax.vmap(lambda k: model.init_params(k, Z))(jax.random.split(k_p, S))
    x = train.to_unit(synthetic_images(k_x, S * B)).reshape(S, B, 28, 28)
    eps = jax.random.normal(k_e, (S, B, Z))
    w = (jax.random.uniform(k_w, (S, B)) < 0.8).astype(jnp.float32)  # some empty slots

    def loss_and_grad(micro):
        c = smoke(micro_batch_size=micro).vae
        return jax.jit(jax.vmap(lambda *a: train._loss_and_grad(*a, c)))(params, w, x, eps)

    whole = loss_and_grad(0)
    for micro in (8, 16):
        got = loss_and_grad(micro)
        for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(got), strict=True):
            scale = np.max(np.abs(np.asarray(a)), axis=tuple(range(1, np.ndim(a))), keepdims=True)
            assert np.all(np.abs(np.asarray(b) - np.asarray(a)) <= 1e-5 * scale), micro


def test_micro_batch_size_must_divide_the_batch():
    for bad in (12, -1, 64):
        with pytest.raises(ConfigError, match=r"vae\.micro_batch_size: expected 0 .* divisor"):
            vae.validate(smoke(micro_batch_size=bad))
    for ok in (0, 8, 32):
        vae.validate(smoke(micro_batch_size=ok))


def test_real_data_fit_lowers_the_loss_and_metrics_are_finite(shared_data):
    del shared_data
    cfg = smoke()
    single = jax.jit(lambda k, s, d: vae.fit(k, s, d, cfg))
    truth = vae.reference(cfg)
    x0 = vae.original_data(None, truth, cfg)
    assert x0.shape == (cfg.samples_per_generation, 28, 28) and x0.dtype == jnp.uint8
    d0 = mixing.full(x0)
    state0 = vae.init(jax.random.key(0), cfg, d0)
    fitted = single(jax.random.key(1), state0, d0)
    loss = np.asarray(fitted.loss_E)
    # Generation 0 on real digits: from ~543 nats (p = 1/2) the mean loss falls epoch by epoch.
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0] - 20, loss
    m = vae.metrics(fitted, d0, Origin(truth, x0, fitted), cfg)
    v = cfg.vae
    shapes = {
        "train_loss": (),
        "train_loss_by_epoch": (v.epochs,),
        "latent_mean": (),
        "latent_std": (),
        "latent_kde": (v.kde_points,),
        "class_share": (10,),
        "class_entropy": (),
        "min_class_share": (),
        "classifier_heldout_accuracy": (),
        "sample_images": (v.grid_images, 28, 28),
    }
    assert {k: tuple(a.shape) for k, a in m.items()} == shapes
    for k, a in m.items():
        assert bool(jnp.all(jnp.isfinite(a))), k
    np.testing.assert_allclose(float(jnp.sum(m["class_share"])), 1.0, rtol=1e-6)
    # Even the smoke classifier (16 hidden units, one epoch) beats chance by far on real digits.
    assert float(m["classifier_heldout_accuracy"]) > 0.5
    s = vae.sample(jax.random.key(2), fitted, 40, cfg)
    assert s.shape == (40, 28, 28) and s.dtype == jnp.uint8


def test_kde_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    values = np.random.default_rng(0).normal(0.2, 0.7, 300).astype(np.float32)
    grid = np.linspace(-3, 3, 13, dtype=np.float32)
    ours = np.asarray(vae.gaussian_kde(jnp.asarray(values), jnp.asarray(grid)))
    np.testing.assert_allclose(ours, stats.gaussian_kde(values)(grid), rtol=1e-4, atol=1e-7)


def test_fresh_per_batch_refuses_accumulate():
    cfg = smoke()
    cfg.mixing.regime = "accumulate"
    with pytest.raises(ConfigError, match=r"vae\.samples=fresh_per_batch"):
        vae.validate(cfg)
    cfg.vae.samples = "fixed_dataset"
    vae.validate(cfg)
    cfg.vae.samples = "bogus"
    with pytest.raises(ConfigError, match=r"vae\.samples: expected one of"):
        vae.validate(cfg)


def _check_resume(tmp_path, samples):
    """4 generations in one go == 2, stop, resume to 4: metrics.jsonl and the last generation's
    model bit for bit."""
    from collapse_jax import runs

    def cfg_for(num_generations):
        cfg = smoke(samples=samples, epochs=1)
        cfg.num_generations = num_generations
        return cfg

    whole = chain.run(cfg_for(4), tmp_path / "whole")
    part = chain.run(cfg_for(2), tmp_path / "part")
    assert (part / "metrics.jsonl").read_bytes().count(b"\n") == 2
    chain.run(cfg_for(4), part)
    a = (whole / "metrics.jsonl").read_bytes()
    assert a == (part / "metrics.jsonl").read_bytes()
    assert a.count(b"\n") == 4
    for u, v in zip(
        jax.tree.leaves(runs.open_run(whole).model(3)),
        jax.tree.leaves(runs.open_run(part).model(3)),
        strict=True,
    ):
        np.testing.assert_array_equal(u, v)


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_resume_is_exact(shared_data, tmp_path):
    """The authors' fresh samples every batch: the smoke VAE (two 32-image batches, one epoch)."""
    del shared_data
    _check_resume(tmp_path, "fresh_per_batch")


@pytest.mark.slow
def test_resume_is_exact_with_a_fixed_dataset(shared_data, tmp_path):
    del shared_data
    _check_resume(tmp_path, "fixed_dataset")
