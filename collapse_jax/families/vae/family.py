"""The VAE-on-MNIST family (Shumailov et al., Fig. 9): recursive generations of a conv VAE.

Generation 0 trains a fresh VAE on real MNIST. Generation k >= 1 trains a fresh VAE on samples of
generation k - 1, in one of two modes (``cfg.vae.samples``):

  fresh_per_batch  the authors' code: every batch holds the previous model's decoder probabilities
                   for fresh z ~ N(0, I); with ``mixing.regime=keep_real`` the real share of each
                   epoch's slots is read from D_0. The chain still materialises the pool through
                   ``sample`` (one decoder pass over M latents, about 1 / (6 * epochs) of the
                   training cost); ``fit`` reads only its real slots.
  fixed_dataset    one synthetic dataset of M images per generation (``sample``, stored as uint8
                   like real pixels), as in the other families; every mixing regime applies.

The state of a seed is ``VaeState``; ``fitted`` is static (part of the tree structure), so the
generation-0 fit, which receives ``init``'s untrained state, compiles without the sampler.

Metrics (per seed and generation), all computed from the same ``eval_samples`` decoder
probabilities for latents drawn once per fit:
  train_loss, train_loss_by_epoch   mean per-image negative ELBO of the last / every epoch
  latent_mean, latent_std           of the generation-0 encoder's means of the first
                                    ``latent_samples`` samples (all 20 coordinates pooled; the
                                    paper's std falls from about 0.67 to 0.43 in 5 generations)
  latent_kde                        their Gaussian KDE (Scott's bandwidth, as scipy) on
                                    ``kde_points`` points over [-3, 3]
  class_share, class_entropy,       digit balance under an MLP trained on the real pool (the tail
  min_class_share                   measure: rare digits thin out, then vanish); the real pool has
                                    entropy ~ log 10 = 2.303 and min share ~ 0.09
  classifier_heldout_accuracy       that MLP's accuracy on held-out real images (same every row)
  sample_images                     the first ``grid_images`` samples as uint8, for the 8x8 grids

Regimes: ``fresh`` takes real images never used before (``fresh_data``); curation scores images by
their ELBO (``log_prob``; there is no oracle density for MNIST), with ``vae.samples=fixed_dataset``.
"""

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from collapse_jax import family, rng, sampling
from collapse_jax.data import mnist
from collapse_jax.errors import ConfigError, require
from collapse_jax.families.vae import model, train

SAMPLES = ("fresh_per_batch", "fixed_dataset")
KDE_RANGE = (-3.0, 3.0)


@flax.struct.dataclass
class VaeState:
    params: Any
    loss_E: jax.Array  # mean per-image training loss of each epoch
    z_eval_NxZ: jax.Array  # latents the metrics decode (drawn by fit: metrics take no key)
    fitted: bool = flax.struct.field(pytree_node=False, default=False)


@flax.struct.dataclass
class Truth:
    images_NxHxW: jax.Array  # uint8, the real pool
    labels_N: jax.Array
    classifier: train.Classifier


def _eval_count(v) -> int:
    return max(v.latent_samples, v.class_samples, v.grid_images)


def _real_slots(cfg) -> int:
    """Slots of a generation's pool that hold real images, after the model samples
    (``mixing.next_pool``'s layout): all of D_0 for ``augment``, gamma M for ``keep_real`` and
    ``custom``, the fresh share for ``fresh``, none for ``replace``."""
    m, mix = cfg.samples_per_generation, cfg.mixing
    if mix.regime == "augment":
        return m
    if mix.regime == "fresh":
        return round(mix.fresh_fraction * m)
    if mix.regime in ("keep_real", "custom"):
        return round(mix.gamma * m)
    return 0


def validate(cfg) -> None:
    v = cfg.vae
    require(v.source in ("idx", "tfds"), "vae.source", "'idx' or 'tfds'", v.source)
    require(v.split in mnist.PREFIX, "vae.split", f"one of {sorted(mnist.PREFIX)}", v.split)
    require(v.samples in SAMPLES, "vae.samples", f"one of {SAMPLES}", v.samples)
    for field in ("latent_dim", "batch_size", "epochs", "sample_chunk", "classifier_hidden"):
        require(
            isinstance(v[field], int) and v[field] > 0,
            f"vae.{field}",
            "a positive integer",
            v[field],
        )
    for field in ("classifier_epochs", "classifier_batch_size"):
        require(
            isinstance(v[field], int) and v[field] > 0,
            f"vae.{field}",
            "a positive integer",
            v[field],
        )
    mb = v.micro_batch_size
    require(
        isinstance(mb, int) and mb >= 0 and (mb == 0 or v.batch_size % mb == 0),
        "vae.micro_batch_size",
        f"0 (the whole batch) or a divisor of vae.batch_size ({v.batch_size})",
        mb,
    )
    require(v.learning_rate > 0, "vae.learning_rate", "> 0", v.learning_rate)
    require(v.weight_decay >= 0, "vae.weight_decay", ">= 0", v.weight_decay)
    require(
        v.classifier_learning_rate > 0,
        "vae.classifier_learning_rate",
        "> 0",
        v.classifier_learning_rate,
    )
    require(
        0 < v.classifier_heldout < 1,
        "vae.classifier_heldout",
        "a fraction in (0, 1)",
        v.classifier_heldout,
    )
    require(
        isinstance(v.latent_samples, int) and v.latent_samples >= 2,
        "vae.latent_samples",
        "an integer >= 2",
        v.latent_samples,
    )
    require(
        isinstance(v.class_samples, int) and v.class_samples >= 1,
        "vae.class_samples",
        "a positive integer",
        v.class_samples,
    )
    require(
        isinstance(v.grid_images, int) and v.grid_images >= 0,
        "vae.grid_images",
        "an integer >= 0",
        v.grid_images,
    )
    require(
        isinstance(v.kde_points, int) and v.kde_points >= 2, "vae.kde_points", ">= 2", v.kde_points
    )
    sampling.validate(cfg, "vae")
    mix = cfg.mixing
    if v.samples == "fresh_per_batch" and mix.curation.score != "none":
        raise ConfigError(
            "mixing.curation: vae.samples=fresh_per_batch trains on new decoder samples every "
            "batch, so curated pool samples would never be used; use vae.samples=fixed_dataset"
        )
    keeps = round(mix.beta * cfg.samples_per_generation) > 0
    if v.samples == "fresh_per_batch" and (mix.regime.startswith("accumulate") or keeps):
        raise ConfigError(
            f"vae.samples=fresh_per_batch draws each batch from the previous model, which leaves "
            f"nothing to accumulate or keep (mixing.regime={mix.regime}, beta={mix.beta}); "
            "use vae.samples=fixed_dataset, or mixing.regime=replace or keep_real"
        )


def reference(cfg) -> Truth:
    """The real pool and the digit classifier trained on it (host side, shared by all seeds)."""
    data = mnist.load(cfg.vae)
    n = data.images_NxHxW.shape[0]
    if cfg.samples_per_generation > n:
        raise ConfigError(
            f"samples_per_generation: expected at most the {n} images of the MNIST "
            f"{data.split!r} pool, got {cfg.samples_per_generation}"
        )
    if cfg.mixing.regime == "fresh":
        per_gen = _real_slots(cfg)
        need = cfg.samples_per_generation + (cfg.num_generations - 1) * per_gen
        if need > n:
            raise ConfigError(
                f"mixing.regime=fresh: D_0 and {per_gen} unused real images per generation "
                f"for {cfg.num_generations} generations need {need} images, but the MNIST "
                f"{data.split!r} pool has {n} (it supports "
                f"{1 + (n - cfg.samples_per_generation) // per_gen} generations)"
            )
    images = jnp.asarray(data.images_NxHxW)
    labels = jnp.asarray(data.labels_N)
    key = rng.run_key(cfg.seed, rng.CLASSIFIER)
    clf = jax.jit(functools.partial(train.train_classifier, vae_cfg=cfg.vae))(key, images, labels)
    return Truth(images, labels, clf)


def original_data(key, truth: Truth, cfg):
    """D_0: the first M images of the real pool, the same for every seed (``key`` unused)."""
    del key
    return truth.images_NxHxW[: cfg.samples_per_generation]


def fresh_data(key, truth: Truth, n: int, generation, cfg):
    """Regime ``fresh``: real images never used before, drawn without replacement.

    Generation g >= 1 takes pool images ``[M + (g - 1) n, M + g n)``: after D_0 (the first M) and
    disjoint from every other generation's. ``reference`` checks that the pool holds
    ``M + (G - 1) n`` images. The pool's order is the file's, so these are as random as D_0 is.
    """
    del key
    start = cfg.samples_per_generation + (jnp.asarray(generation, jnp.int32) - 1) * n
    return jax.lax.dynamic_slice_in_dim(truth.images_NxHxW, start, n)


def log_prob(state: VaeState, x_NxHxW, cfg):
    """The ELBO of each image (curation scores ``current``/``initial``), at the posterior mean.

    ``-(BCE + KL)`` with ``z = mu(x)`` (eps = 0): deterministic, since a score takes no key; a
    lower bound on log p(x) up to the reparameterisation noise the training loss averages over.
    """
    v = cfg.vae
    eps = jnp.zeros((x_NxHxW.shape[0], v.latent_dim), jnp.float32)
    return -model.per_image_loss(state.params, train.to_unit(x_NxHxW), eps, v.latent_dim)


def init(key, cfg, data0) -> VaeState:
    del data0
    v = cfg.vae
    return VaeState(
        params=model.init_params(key, v.latent_dim),
        loss_E=jnp.zeros((v.epochs,), jnp.float32),
        z_eval_NxZ=jnp.zeros((_eval_count(v), v.latent_dim), jnp.float32),
        fitted=False,
    )


def fit(key, state: VaeState, data: family.Data, cfg) -> VaeState:
    """A fresh VAE on ``data`` (or, fresh per batch, on the previous model's samples)."""
    v = cfg.vae
    k_train, k_eval = jax.random.split(key)
    if v.samples == "fresh_per_batch" and state.fitted:
        num_model = data.x.shape[0] - _real_slots(cfg)
        t = cfg.sampling.temperature
        params, loss_E = train.train(k_train, data, v, state.params, num_model, t)
    else:
        params, loss_E = train.train(k_train, data, v)
    z_eval = jax.random.normal(k_eval, (_eval_count(v), v.latent_dim))
    return VaeState(params=params, loss_E=loss_E, z_eval_NxZ=z_eval, fitted=True)


def sample(key, state: VaeState, n: int, cfg):
    """``n`` decoder probabilities for z ~ N(0, lambda^2 I) (``sampling.temperature``; metrics
    decode their own untempered latents), stored as uint8 pixels."""
    v = cfg.vae
    z = jax.random.normal(key, (n, v.latent_dim))
    if cfg.sampling.temperature != 1.0:
        z = z * cfg.sampling.temperature
    return train.to_pixels(train.decode_chunked(state.params, z, v.latent_dim, v.sample_chunk))


def gaussian_kde(values_N, grid_P):
    """scipy.stats.gaussian_kde(values)(grid) in 1-D: Scott's factor n^(-1/5), ddof=1 std."""
    n = values_N.shape[0]
    h = jnp.std(values_N, ddof=1) * n ** (-0.2)
    u = (grid_P[:, None] - values_N[None, :]) / h
    return jnp.mean(jnp.exp(-0.5 * u**2), axis=1) / (h * jnp.sqrt(2 * jnp.pi))


def metrics(state: VaeState, data, origin: family.Origin, cfg) -> dict:
    del data
    v = cfg.vae
    Z = v.latent_dim
    probs = model.decode(state.params, state.z_eval_NxZ, Z)
    mu, _ = model.encode(origin.state0.params, probs[: v.latent_samples], Z)
    means = mu.reshape(-1)
    grid = jnp.linspace(*KDE_RANGE, v.kde_points)
    logits = train.classifier_logits(origin.truth.classifier.params, probs[: v.class_samples])
    counts = jnp.bincount(jnp.argmax(logits, -1), length=train.NUM_CLASSES)
    share = counts / v.class_samples
    return {
        "train_loss": state.loss_E[-1],
        "train_loss_by_epoch": state.loss_E,
        "latent_mean": jnp.mean(means),
        "latent_std": jnp.std(means),
        "latent_kde": gaussian_kde(means, grid),
        "class_share": share,
        "class_entropy": -jnp.sum(jnp.where(share > 0, share * jnp.log(share), 0.0)),
        "min_class_share": jnp.min(share),
        "classifier_heldout_accuracy": origin.truth.classifier.heldout_accuracy,
        "sample_images": train.to_pixels(probs[: v.grid_images]),
    }


FAMILY = family.Family(
    name="vae",
    validate=validate,
    reference=reference,
    original_data=original_data,
    init=init,
    fit=fit,
    sample=sample,
    metrics=metrics,
    fresh_data=fresh_data,
    log_prob=log_prob,
)
