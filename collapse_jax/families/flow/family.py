"""The flow-matching and diffusion family: a generative ODE or DDPM retrained on its own samples
(Alemohammad et al. 2024, "Self-consuming generative models go MAD"; Bertrand et al. 2024, "On the
stability of iterative retraining of generative models on their own data").

Data (``flow.source``): ``gaussian`` (d-dimensional N(mean, std^2 I)), ``toy`` (the KDE family's
2-D sets, drawn by ``kde.draw_toy`` from ``flow.toy``), ``mnist`` (the VAE family's data lookup,
``flow.mnist``; pixels stored as uint8, the models see [-1, 1]; samples are rounded back to uint8,
as saved images would be).

Models (``flow.model``): ``affine`` (the exact oracle of ``affine.py``: the best affine velocity
field in closed form, objective ``flow``), ``mlp`` (``nets.MLP``), ``unet`` (``nets.UNet``, MNIST).
Objectives (``flow.objective``, ``objectives.py``): ``flow`` (conditional flow matching on the
linear path) or ``ddpm`` (noise prediction). Samplers (``flow.sampler``, ``samplers.py``): an ODE
solver of diffrax for either objective, or DDPM's ``ancestral`` and ``ddim``. Retraining
(``flow.init``): ``scratch`` (a fresh network every generation, as MAD) or ``warm`` (fine-tune the
previous generation's network, Bertrand et al.'s protocol).

The state of a seed is ``FlowState``: the fitted parameters (or the oracle's moments), the binned
training loss, and the key of the samples the metrics draw (fit draws it: metrics take no key).

Metrics per seed and generation, on ``eval_samples`` samples of the fitted model:
  low-dimensional data (gaussian, toy)
    mmd           ``|mean phi(samples) - E_truth phi|`` for ``mmd_features`` random Fourier
                  features of a Gaussian kernel of the median held-out distance (the KDE family's
                  kernel and truth embedding); a Monte Carlo estimate from the model's samples,
                  positively biased by O(1/sqrt(eval_samples)), the same at every generation.
    nll           held-out NLL of ``heldout_samples`` fresh truth draws: exact for ``affine``
                  (the push-forward N(m, C)); for networks the ODE's instantaneous change of
                  variables with the exact divergence (``samplers.log_likelihood``, solver
                  ``nll_solver`` on ``nll_steps`` steps). For ``ddpm`` it is the likelihood of its
                  probability-flow ODE at s = 1/T (noise std sqrt(beta_1) = 0.01 by default), not
                  of the ancestral sampler (whose density has no closed form).
    precision, recall, density, coverage   against ``prdc_real_samples`` fixed truth draws,
                  k = ``prdc_k`` (``evaluate.py``)
    cov_trace     trace of the model's covariance: exact for ``affine`` (the fitted C, which is
                  what theory.py's E[sigma^2] describes), else of the samples (ddof = 1);
                  ``mean_error`` |mean - mu0|^2 likewise (gaussian source only)
    snapshot      the first ``snapshot_points`` samples, for the scatter figures
  images (mnist)
    fid           the Frechet distance in the feature space of the fixed MNIST classifier the
                  VAE family trains (its 256-unit hidden layer; ``vae.train.train_classifier`` with
                  the ``classifier_*`` fields, trained once on the real pool). An MNIST feature
                  space, NOT Inception's: values are not comparable with published FIDs.
    precision, recall, density, coverage   on the same features against ``prdc_real_samples``
                  real images (a fixed permutation of the pool)
    class_share, class_entropy, min_class_share, classifier_heldout_accuracy   the digit balance
    sample_images the first ``grid_images`` samples (uint8)
  both: train_loss (the last bin of the objective), train_loss_curve (``loss_points`` bins).

Regimes: every one of ``mixing``. ``fresh`` draws new truth samples (images: real images never
used before, as the VAE family); curation scores with ``log_prob`` (``current``/``initial``: the
model's own likelihood, ``nll``'s computation; Hutchinson's estimate for images) or, for the
gaussian source only, ``truth_log_prob`` (``oracle``).
"""

import functools
import math
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax import family, mixing, rng
from collapse_jax.data import mnist
from collapse_jax.errors import ConfigError, require
from collapse_jax.families import kde
from collapse_jax.families.flow import affine, evaluate, nets, objectives, samplers, train
from collapse_jax.families.vae import train as vae_train

SOURCES = ("gaussian", "toy", "mnist")
MODELS = ("affine", "mlp", "unet")
INITS = ("scratch", "warm")
# Largest abar_T = prod(1 - beta_k) accepted: the signal sqrt(abar_T) left in x_T, which the
# samplers replace by pure noise (Ho et al.'s schedule: abar_T = 4e-5).
MAX_ABAR_T = 1e-2


@flax.struct.dataclass
class Truth:
    """What every seed is scored against; the fields of the other kind of data are None."""

    real_PxF: Any  # PRDC's real set: truth draws, or classifier features of real images
    real_sq_radii_P: Any  # its squared k-NN radii
    # low-dimensional data
    heldout_NxD: Any = None
    omega_RxD: Any = None
    phase_R: Any = None
    truth_embedding_R: Any = None
    blob_centers_KxD: Any = None
    mean_D: Any = None  # gaussian source: mu0
    # images
    images_NxHxW: Any = None
    labels_N: Any = None
    classifier: Any = None
    real_stats: Any = None


@flax.struct.dataclass
class FlowState:
    params: Any  # network parameters, or affine.Affine
    loss_K: jax.Array  # the objective averaged over loss_points bins of the training steps
    eval_key: jax.Array  # uint32 key data of the metrics' samples


def is_image(cfg) -> bool:
    return cfg.flow.source == "mnist"


def data_dim(cfg) -> int:
    f = cfg.flow
    if f.source == "gaussian":
        return f.gaussian.dim
    return kde.DIM if f.source == "toy" else nets.H * nets.W


def _plan(cfg) -> mixing.Plan:
    return mixing.plan_for(cfg)


# ---------------------------------------------------------------------------------------------
# Validation.


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _ints(v, ok=lambda x: x > 0) -> bool:
    return isinstance(v, list | tuple) and len(v) > 0 and all(_positive_int(x) and ok(x) for x in v)


def validate(cfg) -> None:
    f = cfg.flow
    require(f.source in SOURCES, "flow.source", f"one of {SOURCES}", f.source)
    require(f.model in MODELS, "flow.model", f"one of {MODELS}", f.model)
    objs = objectives.OBJECTIVES
    require(f.objective in objs, "flow.objective", f"one of {objs}", f.objective)
    require(f.init in INITS, "flow.init", f"one of {INITS}", f.init)
    require(
        f.sampler in samplers.SAMPLERS, "flow.sampler", f"one of {samplers.SAMPLERS}", f.sampler
    )
    sol = tuple(samplers.SOLVERS)
    require(f.nll_solver in sol, "flow.nll_solver", f"one of {sol}", f.nll_solver)
    if f.model == "affine":
        require(
            f.objective == "flow", "flow.objective", "'flow' for flow.model=affine", f.objective
        )
        require(f.source != "mnist", "flow.model", "'mlp' or 'unet' for flow.source=mnist", f.model)
    if f.model == "unet":
        require(f.source == "mnist", "flow.model", "'affine' or 'mlp' for 28x28-free data", f.model)
    if f.sampler in samplers.DDPM_SAMPLERS:
        require(
            f.objective == "ddpm",
            "flow.sampler",
            f"an ODE solver {sol} for objective {f.objective}",
            f.sampler,
        )
    for name in ("sampler_steps", "nll_steps", "ode_max_steps", "sample_chunk", "prdc_chunk"):
        require(_positive_int(f[name]), f"flow.{name}", "a positive integer", f[name])
    require(f.ode_rtol >= 0, "flow.ode_rtol", ">= 0 (0: fixed steps)", f.ode_rtol)
    require(f.ode_atol > 0, "flow.ode_atol", "> 0", f.ode_atol)
    require(
        isinstance(f.ddpm_steps, int) and f.ddpm_steps >= 2,
        "flow.ddpm_steps",
        "an integer >= 2 (T)",
        f.ddpm_steps,
    )
    require(
        0 < f.beta_start < f.beta_end < 1,
        "flow.beta_end",
        f"a value in (beta_start={f.beta_start}, 1)",
        f.beta_end,
    )
    # The samplers start from N(0, I) at step T: the schedule must have forgotten the data there.
    abar_T = float(np.prod(1.0 - np.linspace(f.beta_start, f.beta_end, f.ddpm_steps)))
    require(
        abar_T <= MAX_ABAR_T,
        "flow.beta_end",
        f"a schedule with abar_T <= {MAX_ABAR_T} (x_T close to N(0, I)); with "
        f"ddpm_steps={f.ddpm_steps} and beta_start={f.beta_start} abar_T = {abar_T:.3g}: "
        "raise beta_end or ddpm_steps",
        f.beta_end,
    )
    if f.sampler == "ddim":
        require(
            f.sampler_steps <= f.ddpm_steps,
            "flow.sampler_steps",
            f"at most flow.ddpm_steps={f.ddpm_steps} for the ddim sampler",
            f.sampler_steps,
        )
    for name in ("train_steps", "batch_size", "loss_points", "time_dim"):
        require(_positive_int(f[name]), f"flow.{name}", "a positive integer", f[name])
    require(
        f.train_steps % f.loss_points == 0,
        "flow.loss_points",
        f"a divisor of flow.train_steps={f.train_steps}",
        f.loss_points,
    )
    require(f.time_dim % 2 == 0, "flow.time_dim", "an even integer", f.time_dim)
    require(
        math.isfinite(f.learning_rate) and f.learning_rate > 0,
        "flow.learning_rate",
        "> 0",
        f.learning_rate,
    )
    require(f.weight_decay >= 0, "flow.weight_decay", ">= 0", f.weight_decay)
    require(f.grad_clip >= 0, "flow.grad_clip", ">= 0 (0: off)", f.grad_clip)
    require(0 <= f.ema_decay < 1, "flow.ema_decay", "a value in [0, 1) (0: off)", f.ema_decay)
    require(
        _ints(f.mlp_hidden), "flow.mlp_hidden", "a non-empty tuple of positive widths", f.mlp_hidden
    )
    require(
        _ints(f.unet_channels, lambda c: c % f.unet_groups == 0) and len(f.unet_channels) <= 3,
        "flow.unet_channels",
        f"1 to 3 widths (28, 14, 7 pixels), each a multiple of flow.unet_groups={f.unet_groups}",
        f.unet_channels,
    )
    require(f.conv_impl in ("matmul", "lax"), "flow.conv_impl", "'matmul' or 'lax'", f.conv_impl)
    k = f.prdc_k
    require(_positive_int(k), "flow.prdc_k", "a positive integer", k)
    require(
        f.eval_samples == 0 or (_positive_int(f.eval_samples) and f.eval_samples > k),
        "flow.eval_samples",
        f"0 (no sample metrics) or an integer > flow.prdc_k={k}",
        f.eval_samples,
    )
    require(
        _positive_int(f.prdc_real_samples) and f.prdc_real_samples > k,
        "flow.prdc_real_samples",
        f"an integer > flow.prdc_k={k}",
        f.prdc_real_samples,
    )
    require(
        f.heldout_samples == 0 or (_positive_int(f.heldout_samples) and f.heldout_samples > 1),
        "flow.heldout_samples",
        "0 (no NLL) or an integer > 1",
        f.heldout_samples,
    )
    for name in ("mmd_features", "mmd_truth_samples"):
        require(_positive_int(f[name]) and f[name] > 1, f"flow.{name}", "an integer > 1", f[name])
    for name in ("snapshot_points", "grid_images"):
        v = f[name]
        require(
            isinstance(v, int) and 0 <= v <= f.eval_samples,
            f"flow.{name}",
            f"an integer in [0, flow.eval_samples={f.eval_samples}]",
            v,
        )
    require(
        isinstance(f.heldout_seed, int) and f.heldout_seed >= 0,
        "flow.heldout_seed",
        "an integer >= 0",
        f.heldout_seed,
    )
    _validate_source(cfg)
    p = _plan(cfg)
    if p.score == "oracle" and f.source != "gaussian":
        raise ConfigError(
            f"mixing.curation.score=oracle: flow.source={f.source} has no true density; "
            "use initial, current or none (oracle needs flow.source=gaussian)"
        )


def _validate_source(cfg) -> None:
    """Every data section, the unused ones too (a typo is caught before a sweep reaches it)."""
    f = cfg.flow
    g = f.gaussian
    require(_positive_int(g.dim), "flow.gaussian.dim", "a positive integer", g.dim)
    require(math.isfinite(g.mean), "flow.gaussian.mean", "a finite number", g.mean)
    require(math.isfinite(g.std) and g.std > 0, "flow.gaussian.std", "> 0", g.std)
    t = f.toy
    require(t.dataset in kde.DATASETS, "flow.toy.dataset", f"one of {kde.DATASETS}", t.dataset)
    require(math.isfinite(t.noise) and t.noise >= 0, "flow.toy.noise", ">= 0", t.noise)
    require(t.angles in kde.ANGLES, "flow.toy.angles", f"one of {kde.ANGLES}", t.angles)
    require(
        0 < t.circles_factor < 1,
        "flow.toy.circles_factor",
        "a radius in (0, 1)",
        t.circles_factor,
    )
    c = np.asarray(t.blob_centers, dtype=float)
    require(
        c.ndim == 2 and c.shape[0] > 0 and c.shape[1] == kde.DIM and np.isfinite(c).all(),
        "flow.toy.blob_centers",
        "a non-empty tuple of 2-D points",
        t.blob_centers,
    )
    require(t.blob_std > 0, "flow.toy.blob_std", "> 0", t.blob_std)
    m = f.mnist
    require(m.source in ("idx", "tfds"), "flow.mnist.source", "'idx' or 'tfds'", m.source)
    require(m.split in mnist.PREFIX, "flow.mnist.split", f"one of {sorted(mnist.PREFIX)}", m.split)
    for name in ("classifier_hidden", "classifier_epochs", "classifier_batch_size"):
        require(_positive_int(f[name]), f"flow.{name}", "a positive integer", f[name])
    require(
        f.classifier_learning_rate > 0,
        "flow.classifier_learning_rate",
        "> 0",
        f.classifier_learning_rate,
    )
    require(
        0 < f.classifier_heldout < 1,
        "flow.classifier_heldout",
        "a fraction in (0, 1)",
        f.classifier_heldout,
    )


# ---------------------------------------------------------------------------------------------
# Data and the truth.


def draw(key, n: int, truth: Truth, cfg):
    """``n`` fresh draws of a low-dimensional truth."""
    f = cfg.flow
    if f.source == "gaussian":
        z = jax.random.normal(key, (n, f.gaussian.dim))
        return f.gaussian.mean + f.gaussian.std * z
    return kde.draw_toy(key, n, truth.blob_centers_KxD, f.toy)


def classifier_features(params, x01_NxHxW):
    """The MNIST classifier's hidden layer (the FID features) and its logits."""
    h = x01_NxHxW.reshape(x01_NxHxW.shape[0], -1)
    h = jax.nn.relu(h @ params["w1"] + params["b1"][None, :])
    return h, h @ params["w2"] + params["b2"][None, :]


def _map_chunks(fn, x, chunk: int):
    """``fn`` over leading-axis chunks of ``x`` (padded), concatenated and cut to len(x)."""
    n = x.shape[0]
    chunk = min(chunk, n)
    c = math.ceil(n / chunk)
    xp = jnp.pad(x, ((0, c * chunk - n),) + ((0, 0),) * (x.ndim - 1))
    out = jax.lax.map(fn, xp.reshape(c, chunk, *x.shape[1:]))
    return jax.tree.map(lambda a: a.reshape(c * chunk, *a.shape[2:])[:n], out)


def _reference_low_dim(cfg) -> Truth:
    f = cfg.flow
    centers = jnp.asarray(f.toy.blob_centers, jnp.float32)
    mean = jnp.full((f.gaussian.dim,), f.gaussian.mean, jnp.float32)
    stub = Truth(None, None, blob_centers_KxD=centers)
    d = data_dim(cfg)

    def draws(key):
        k_held, k_mmd, k_omega, k_phase, k_real = jax.random.split(key, 5)
        return (
            draw(k_held, f.heldout_samples, stub, cfg),
            draw(k_mmd, f.mmd_truth_samples, stub, cfg),
            jax.random.normal(k_omega, (f.mmd_features, d)),
            jax.random.uniform(k_phase, (f.mmd_features,), maxval=2 * jnp.pi),
            draw(k_real, f.prdc_real_samples, stub, cfg),
        )

    # Jitted: op by op the draws take seconds on a busy CPU.
    held, truth_x, omega_unit, phase, real = jax.jit(draws)(jax.random.key(f.heldout_seed))
    # The kernel's width: the median distance of truth pairs (the KDE family's rule; from the MMD's
    # own truth draws, as the held-out set may be empty).
    omega = omega_unit / kde.median_width(truth_x)
    embedding = jax.jit(kde.features)(truth_x, omega, phase).mean(0)
    radii = jax.jit(functools.partial(evaluate.knn_sq_radii, k=f.prdc_k, chunk=f.prdc_chunk))(real)
    return Truth(
        real_PxF=real,
        real_sq_radii_P=radii,
        heldout_NxD=held,
        omega_RxD=omega,
        phase_R=phase,
        truth_embedding_R=embedding,
        blob_centers_KxD=centers,
        mean_D=mean if f.source == "gaussian" else None,
    )


def _reference_mnist(cfg) -> Truth:
    f = cfg.flow
    data = mnist.load(f.mnist)
    n = data.images_NxHxW.shape[0]
    m = cfg.samples_per_generation
    if m > n:
        raise ConfigError(
            f"samples_per_generation: expected at most the {n} images of the MNIST "
            f"{data.split!r} pool, got {m}"
        )
    p = _plan(cfg)
    if p.regime == "fresh":
        need = m + (cfg.num_generations - 1) * p.num_original
        if need > n:
            raise ConfigError(
                f"mixing.regime=fresh: D_0 and {p.num_original} unused real images per generation "
                f"for {cfg.num_generations} generations need {need} images, but the MNIST "
                f"{data.split!r} pool has {n} (it supports {1 + (n - m) // p.num_original} "
                "generations)"
            )
    if f.prdc_real_samples > n:
        raise ConfigError(
            f"flow.prdc_real_samples: expected at most the {n} images of the pool, got "
            f"{f.prdc_real_samples}"
        )
    images = jnp.asarray(data.images_NxHxW)
    labels = jnp.asarray(data.labels_N)
    # The VAE family's classifier stream: the same classifier as a VAE run of the same seed.
    key = rng.run_key(cfg.seed, rng.CLASSIFIER)
    clf = jax.jit(functools.partial(vae_train.train_classifier, vae_cfg=f))(key, images, labels)

    @jax.jit
    def features(imgs):
        return _map_chunks(
            lambda x: classifier_features(clf.params, vae_train.to_unit(x))[0], imgs, 1000
        )

    stats = evaluate.real_stats(features(images))
    order = jax.random.permutation(
        jax.random.fold_in(jax.random.key(f.heldout_seed), rng.REAL_SET), n
    )
    real = features(images[order[: f.prdc_real_samples]])
    radii = jax.jit(functools.partial(evaluate.knn_sq_radii, k=f.prdc_k, chunk=f.prdc_chunk))(real)
    return Truth(
        real_PxF=real,
        real_sq_radii_P=radii,
        images_NxHxW=images,
        labels_N=labels,
        classifier=clf,
        real_stats=stats,
    )


def reference(cfg) -> Truth:
    return _reference_mnist(cfg) if is_image(cfg) else _reference_low_dim(cfg)


def original_data(key, truth: Truth, cfg):
    """D_0: M truth draws (``x_MxD``), or the first M images of the real pool for every seed."""
    if is_image(cfg):
        return truth.images_NxHxW[: cfg.samples_per_generation]
    return draw(key, cfg.samples_per_generation, truth, cfg)


def fresh_data(key, truth: Truth, n: int, generation, cfg):
    """Regime ``fresh``: new truth draws; images: pool images ``[M + (g - 1) n, M + g n)``, after
    D_0 and disjoint from every other generation's (``reference`` checks the pool is large
    enough), as the VAE family."""
    if not is_image(cfg):
        return draw(key, n, truth, cfg)
    start = cfg.samples_per_generation + (jnp.asarray(generation, jnp.int32) - 1) * n
    return jax.lax.dynamic_slice_in_dim(truth.images_NxHxW, start, n)


# ---------------------------------------------------------------------------------------------
# Model space: what the networks see.


def to_model(x, cfg):
    """Stored samples -> model inputs: floats as they are; uint8 images -> [-1, 1] (NHWC for the
    UNet, flat for the MLP)."""
    if not is_image(cfg):
        return x.astype(jnp.float32)
    y = x.astype(jnp.float32) / 127.5 - 1.0
    return y[..., None] if cfg.flow.model == "unet" else y.reshape(x.shape[0], -1)


def from_model(y, cfg):
    """Model outputs -> stored samples (images rounded to uint8, as saved images would be)."""
    if not is_image(cfg):
        return y
    y = y.reshape(y.shape[0], nets.H, nets.W)
    return jnp.round(jnp.clip((y + 1.0) * 127.5, 0.0, 255.0)).astype(jnp.uint8)


def model_shape(cfg) -> tuple[int, ...]:
    if is_image(cfg) and cfg.flow.model == "unet":
        return (nets.H, nets.W, 1)
    return (data_dim(cfg),)


def network(cfg):
    f = cfg.flow
    if f.model == "unet":
        return nets.UNet(tuple(f.unet_channels), f.unet_groups, f.time_dim, f.conv_impl)
    return nets.MLP(data_dim(cfg), tuple(f.mlp_hidden), f.time_dim)


def init_params(key, cfg):
    """Fresh parameters (Flax default initialisers), or an empty oracle."""
    if cfg.flow.model == "affine":
        return affine.empty(data_dim(cfg))
    x = jnp.zeros((1, *model_shape(cfg)), jnp.float32)
    return network(cfg).init(key, x, jnp.zeros((1,), jnp.float32))["params"]


def _apply(cfg):
    net = network(cfg)
    return lambda params, x, t_B: net.apply({"params": params}, x, t_B)


def velocity(params, cfg):
    """``v(x, t)`` of the fitted model in flow time (model space)."""
    f = cfg.flow
    if f.model == "affine":
        return lambda x, t: affine.velocity(params, x, t)
    apply = _apply(cfg)
    if f.objective == "flow":
        return lambda x, t: apply(params, x, jnp.full((x.shape[0],), t, jnp.float32))
    return objectives.ddpm_velocity(lambda x, s_B: apply(params, x, s_B), objectives.schedule(f))


def t_end(cfg) -> float:
    return objectives.ddpm_t_end(cfg.flow) if cfg.flow.objective == "ddpm" else 1.0


def _sample_chunk(key, params, z, cfg):
    """One chunk of noise ``z`` (model space) carried to samples by the configured sampler."""
    f, clip = cfg.flow, is_image(cfg)
    if f.objective == "ddpm":
        apply = _apply(cfg)
        eps_fn = lambda x, s_B: apply(params, x, s_B)  # noqa: E731
        sched = objectives.schedule(f)
        if f.sampler == "ancestral":
            return samplers.ancestral(eps_fn, key, z, sched, clip)
        if f.sampler == "ddim":
            return samplers.ddim(eps_fn, z, sched, f.sampler_steps, clip)
        x = samplers.ode_sample(velocity(params, cfg), z, t_end(cfg), f)
        return samplers.ddpm_denoise(eps_fn, x, sched, 1.0 - t_end(cfg), clip)
    x = samplers.ode_sample(velocity(params, cfg), z, 1.0, f)
    return jnp.clip(x, -1.0, 1.0) if clip else x


def sample_model_space(key, params, n: int, cfg):
    """``n`` samples in model space, ``sample_chunk`` at a time."""
    k_noise, k_steps = jax.random.split(key)
    shape = model_shape(cfg)
    chunk = min(cfg.flow.sample_chunk, n)
    c = math.ceil(n / chunk)
    z = jax.random.normal(k_noise, (c, chunk, *shape), jnp.float32)

    def one(args):
        zc, i = args
        return _sample_chunk(jax.random.fold_in(k_steps, i), params, zc, cfg)

    out = jax.lax.map(one, (z, jnp.arange(c)))
    return out.reshape(c * chunk, *shape)[:n]


# ---------------------------------------------------------------------------------------------
# The family's functions.


def init(key, cfg, data0) -> FlowState:
    del data0
    return FlowState(
        params=init_params(key, cfg),
        loss_K=jnp.zeros((cfg.flow.loss_points,), jnp.float32),
        eval_key=jax.random.key_data(key),
    )


def _loss_fn(cfg):
    apply = _apply(cfg)
    if cfg.flow.objective == "flow":
        return lambda params, x, key: objectives.flow_loss(apply, params, x, key)
    sched = objectives.schedule(cfg.flow)
    return lambda params, x, key: objectives.ddpm_loss(apply, params, x, key, sched)


def fit(key, state: FlowState, data: family.Data, cfg) -> FlowState:
    """The oracle in closed form, or a network trained on ``data`` (from scratch or from the
    previous generation's parameters, ``flow.init``)."""
    f = cfg.flow
    k_init, k_train, k_eval = jax.random.split(key, 3)
    if f.model == "affine":
        params = affine.fit(family.Data(data.x.astype(jnp.float32), data.weight))
        loss_K = jnp.zeros((f.loss_points,), jnp.float32)
    else:
        start = state.params if f.init == "warm" else init_params(k_init, cfg)
        params, loss_K = train.train(
            k_train, start, data, _loss_fn(cfg), lambda x: to_model(x, cfg), f
        )
    return FlowState(params=params, loss_K=loss_K, eval_key=jax.random.key_data(k_eval))


def sample(key, state: FlowState, n: int, cfg):
    """``n`` samples of the fitted model (images as uint8)."""
    return from_model(sample_model_space(key, state.params, n, cfg), cfg)


def log_prob(state: FlowState, x, cfg):
    """``log p(x)`` per sample: exact for the oracle, else the ODE's change of variables in model
    space (``samplers.log_likelihood``), ``sample_chunk`` samples at a time."""
    f = cfg.flow
    if f.model == "affine":
        return affine.log_prob(state.params, x.astype(jnp.float32))
    v = velocity(state.params, cfg)
    te = t_end(cfg)

    def one(xc):
        return samplers.log_likelihood(v, xc, te, f, f.nll_solver, f.nll_steps)

    return _map_chunks(one, to_model(x, cfg), f.sample_chunk)


def truth_log_prob(truth: Truth, x_NxD, cfg):
    """The true log-density (gaussian source; ``validate`` refuses the oracle score otherwise)."""
    g = cfg.flow.gaussian
    z = (x_NxD - truth.mean_D[None, :]) / g.std
    d = x_NxD.shape[-1]
    return -0.5 * jnp.sum(z**2, -1) - d * (math.log(g.std) + 0.5 * math.log(2 * math.pi))


def _moments(state: FlowState, x_NxD, cfg):
    """``(mean_D, cov_trace)`` of the model: the oracle's fitted moments, else the samples'."""
    if cfg.flow.model == "affine":
        return state.params.mean_D, jnp.trace(state.params.cov_DxD)
    mean_D = x_NxD.mean(0)
    xc = x_NxD - mean_D[None, :]
    return mean_D, jnp.sum(xc**2) / (x_NxD.shape[0] - 1)


def metrics(state: FlowState, data, origin: family.Origin, cfg) -> dict:
    del data
    f, truth = cfg.flow, origin.truth
    out = {"train_loss": state.loss_K[-1], "train_loss_curve": state.loss_K}
    if not is_image(cfg) and f.heldout_samples:
        out["nll"] = -jnp.mean(log_prob(state, truth.heldout_NxD, cfg))
    x = None
    if f.eval_samples:
        x = sample(jax.random.wrap_key_data(state.eval_key), state, f.eval_samples, cfg)
    if is_image(cfg):
        return out if x is None else out | _image_metrics(x, truth, cfg)
    if x is not None:
        phi = kde.features(x, truth.omega_RxD, truth.phase_R).mean(0)
        out["mmd"] = jnp.sqrt(jnp.sum((phi - truth.truth_embedding_R) ** 2))
        q = evaluate.prdc(truth.real_PxF, truth.real_sq_radii_P, x, f.prdc_k, f.prdc_chunk)
        out |= q._asdict()
        if f.snapshot_points:
            out["snapshot"] = x[: f.snapshot_points]
    if x is not None or f.model == "affine":
        mean_D, out["cov_trace"] = _moments(state, x, cfg)
        if f.source == "gaussian":
            out["mean_error"] = jnp.sum((mean_D - truth.mean_D) ** 2)
    return out


def _image_metrics(x, truth: Truth, cfg) -> dict:
    f = cfg.flow
    feats, logits = classifier_features(truth.classifier.params, vae_train.to_unit(x))
    fid = evaluate.frechet_distance(feats, truth.real_stats)
    q = evaluate.prdc(truth.real_PxF, truth.real_sq_radii_P, feats, f.prdc_k, f.prdc_chunk)
    share, entropy, smallest = evaluate.class_balance(logits)
    return q._asdict() | {
        "fid": fid,
        "class_share": share,
        "class_entropy": entropy,
        "min_class_share": smallest,
        "classifier_heldout_accuracy": truth.classifier.heldout_accuracy,
        "sample_images": x[: f.grid_images],
    }


FAMILY = family.Family(
    name="flow",
    validate=validate,
    reference=reference,
    original_data=original_data,
    init=init,
    fit=fit,
    sample=sample,
    metrics=metrics,
    fresh_data=fresh_data,
    log_prob=log_prob,
    truth_log_prob=truth_log_prob,
)
