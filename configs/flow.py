r"""Flow matching and diffusion on low-dimensional data, retrained on their own samples
(``collapse_jax/families/flow``): 2-D toy sets, and the exact affine oracle on Gaussian data.

    python -m launch.run --config=configs/flow.py:smoke --workdir=/tmp/flow_smoke
    python -m launch.sweep --config=configs/flow.py:cpu --workdir=/tmp/flow_cpu
    python -m launch.report --workdir="/tmp/flow_cpu/mixing.regime=replace"

Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):
  variant  paper (default) | cpu | smoke
  setup    cfm (default) | ddpm | oracle

setup=cfm  an MLP velocity field trained by conditional flow matching on the linear path, sampled
  by diffrax's Heun on a fixed grid; moons.
setup=ddpm  the same MLP trained by DDPM noise prediction (T = 1000, Ho et al.'s linear betas; the
  smoke variant T = 20), sampled by DDIM (eta = 0).
setup=oracle  the exact affine field (``flow.model=affine``) on d-dimensional Gaussian data, fitted
  in closed form and sampled by Tsit5: the Gaussian MLE refit, whose chain theory.py knows
  (tests/test_flow.py checks it at thousands of seeds).

variant=paper  100 seeds, M = 1000, 20 generations, the three loops as ``cfg.sweep`` (replace,
  accumulate, fresh with half of each generation real). Not timed yet.
variant=cpu  100 seeds, M = 200, 10 generations, a smaller MLP and 1000 Adam steps per
  generation. Not timed yet; the issue's expected picture (replace drifting, fresh and accumulate
  near generation 0) is not yet checked on it.
variant=smoke  2 seeds, M = 32, 3 generations, a tiny MLP trained 8 steps: what the tests run.

The loops of the papers, through ``cfg.mixing`` (``collapse_jax/mixing/``):
  MAD's fully synthetic loop        ``mixing.regime=replace``: each generation trains only on the
                                    previous model's M samples.
  MAD's synthetic augmentation loop ``mixing.regime=augment``: all of the fixed real set D_0 plus
                                    round(lambda M) samples of the previous model
                                    (``mixing.augment_ratio`` = lambda); keeping the samples of
                                    every past generation beside D_0 is ``accumulate``.
  MAD's fresh data loop             ``mixing.regime=fresh``: round(gamma M) real draws never seen
                                    before plus M - round(gamma M) samples of the previous model
                                    (``mixing.fresh_fraction`` = gamma, a fraction of M).
  MAD's sampling bias               ``mixing.curation``: keep the candidates the model itself finds
                                    most likely (score ``current``, rule ``top`` or ``resample``
                                    with ``temperature``), a quality-over-diversity bias of the
                                    same direction as MAD's (their bias is model specific:
                                    truncation for StyleGAN, guidance for diffusion).
  Bertrand et al.'s lambda          ``mixing.regime=augment`` with ``mixing.augment_ratio`` =
                                    lambda and ``flow.init=warm``: their training set is the n real
                                    samples plus lambda n samples of the current model, lambda a
                                    SYNTHETIC-TO-REAL RATIO (lambda = 1: as many synthetic as real,
                                    half of the set; not a fraction); each generation fine-tunes
                                    the previous network. The real share of the set is
                                    1 / (1 + lambda). ``keep_real`` (gamma = a real FRACTION of a
                                    set of fixed size M) is the same mixture with
                                    lambda = (1 - gamma) / gamma, drawn from D_0 with replacement
                                    rather than all of it.
"""

import ml_collections

from configs import common

ARGS = {"variant": common.VARIANTS, "setup": ("cfm", "ddpm", "oracle")}


def flow_section() -> ml_collections.ConfigDict:
    """Every field of ``cfg.flow`` at its default (shared with configs/mad.py)."""
    f = ml_collections.ConfigDict()
    f.source = "toy"  # toy | gaussian | mnist
    f.toy = ml_collections.ConfigDict()
    f.toy.dataset = "moons"  # blobs | circles | moons | swiss_roll (the KDE family's sets)
    f.toy.noise = 0.05  # sklearn's noise
    f.toy.circles_factor = 0.8
    f.toy.blob_centers = ((0.976, 4.304), (2.055, 0.898), (-1.527, 2.918))
    f.toy.blob_std = 1.0
    # i.i.d. angles, not the KDE family's sklearn grid: D_0, fresh draws and the held-out and
    # MMD sets are independent samples of the distribution.
    f.toy.angles = "iid"
    f.gaussian = ml_collections.ConfigDict()
    f.gaussian.dim = 2
    f.gaussian.mean = 0.0
    f.gaussian.std = 1.0
    f.mnist = ml_collections.ConfigDict()
    f.mnist.source = "idx"  # as the VAE family's vae.source, vae.data_dir, ...
    f.mnist.data_dir = ""  # "": $COLLAPSE_JAX_DATA/mnist, the cache, then a download
    f.mnist.prepared_dir = ""
    f.mnist.split = "train"  # falls back to "test" where only the t10k files are found

    f.model = "mlp"  # affine (the exact oracle; objective flow) | mlp | unet (MNIST)
    f.objective = "flow"  # flow (linear-path conditional flow matching) | ddpm
    f.init = "scratch"  # scratch (a fresh network per generation) | warm (fine-tune the last one)
    f.mlp_hidden = (128, 128, 128)
    f.time_dim = 64  # sinusoidal time features, then a 2-layer MLP of this width
    f.unet_channels = (32, 64, 64)  # widths at 28, 14, 7 pixels
    f.unet_groups = 8  # GroupNorm groups
    f.conv_impl = "matmul"  # matmul (im2col, fast on CPU) | lax (XLA's conv); the same function

    f.train_steps = 2000  # Adam steps per generation
    f.batch_size = 256
    f.learning_rate = 1e-3
    f.weight_decay = 0.0  # > 0: AdamW
    f.grad_clip = 0.0  # global-norm clipping; 0: off
    f.ema_decay = 0.0  # parameters sampled are this EMA of the iterates; 0: the last iterate
    f.loss_points = 10  # bins of the training loss kept in the state

    f.ddpm_steps = 1000  # T (Ho et al.)
    f.beta_start = 1e-4
    f.beta_end = 0.02
    # euler | heun | midpoint | tsit5 | dopri5 (diffrax ODE solvers, either objective) |
    # ancestral | ddim (ddpm only)
    f.sampler = "heun"
    f.sampler_steps = 32  # ODE steps (fixed grid) or the first step (adaptive); ddim's steps
    f.ode_rtol = 0.0  # > 0: adaptive steps (PIDController) with this rtol
    f.ode_atol = 1e-5
    f.ode_max_steps = 4096
    f.sample_chunk = 2048  # samples carried through one ODE at a time (memory)

    # Metrics.
    f.eval_samples = 1000  # model samples per seed and generation
    f.heldout_samples = 500  # truth draws scored for the NLL
    f.nll_solver = "heun"
    f.nll_steps = 32
    f.mmd_features = 512
    f.mmd_truth_samples = 20_000
    f.prdc_k = 5  # Naeem et al.'s k
    f.prdc_real_samples = 1000
    f.prdc_chunk = 256
    f.snapshot_points = 0  # samples recorded per generation for the scatter figures
    f.grid_images = 0  # images recorded per generation for the sample grids
    f.heldout_seed = 2024  # key of the held-out draws, MMD features and PRDC real set
    # MNIST's feature extractor: the VAE family's classifier (the same fields and defaults).
    f.classifier_hidden = 256
    f.classifier_epochs = 5
    f.classifier_batch_size = 128
    f.classifier_learning_rate = 1e-3
    f.classifier_heldout = 0.1
    return f


def sweep_regimes(cfg, regimes: tuple[str, ...]) -> None:
    """``cfg.sweep`` over ``mixing.regime``: the papers' loops, one run each."""
    cfg.sweep = ml_collections.ConfigDict()
    cfg.sweep.mixing = ml_collections.ConfigDict()
    cfg.sweep.mixing.regime = regimes


def smoke_scale(cfg, f) -> None:
    """What the smoke variants of this family share (flow, mad): 2 seeds, 3 generations of
    M = 32, a checkpoint every 2, tiny time features, T = 20, and a sweep of replace and fresh."""
    cfg.num_seeds = 2
    cfg.num_generations = 3
    cfg.samples_per_generation = 32
    cfg.checkpoint.every_generations = 2
    cfg.sweep.mixing.regime = ("replace", "fresh")
    f.time_dim = 8
    f.loss_points = 2
    # Ho et al.'s betas scaled by 1000 / T, so that abar_T stays small (flow.validate).
    f.ddpm_steps, f.beta_start, f.beta_end = 20, 5e-3, 0.4


def get_config(arg=None):
    a = common.parse_arg(arg, ARGS)
    cfg = common.base("flow", a)
    f = cfg.flow = flow_section()
    sweep_regimes(cfg, ("replace", "accumulate", "fresh"))
    cfg.mixing.fresh_fraction = 0.5

    if a.variant == "paper":
        cfg.num_seeds = 100
        cfg.num_generations = 20
        cfg.samples_per_generation = 1000
        cfg.checkpoint.every_generations = 5
        f.snapshot_points = 200
    elif a.variant == "cpu":
        cfg.num_seeds = 100
        cfg.num_generations = 10
        cfg.samples_per_generation = 200
        cfg.checkpoint.every_generations = 5
        f.mlp_hidden = (64, 64, 64)
        f.time_dim = 32
        f.train_steps = 1000
        f.batch_size = 128
        f.learning_rate = 3e-3
        f.sampler_steps = 16
        f.nll_steps = 16
        f.heldout_samples = 200
        f.snapshot_points = 200
        f.eval_samples = 500
        f.prdc_real_samples = 500
    else:  # smoke
        smoke_scale(cfg, f)
        f.mlp_hidden = (16, 16)
        f.train_steps = 8
        f.batch_size = 16
        f.sampler_steps = 4
        f.nll_steps = 4
        _small_metrics(f)
        f.snapshot_points = 8

    if a.setup == "ddpm":
        f.objective, f.sampler = "ddpm", "ddim"
        f.sampler_steps = min(f.sampler_steps * 2, f.ddpm_steps)
    elif a.setup == "oracle":
        f.source, f.model = "gaussian", "affine"
        f.sampler, f.sampler_steps = "tsit5", 16
        cfg.sweep.mixing.regime = ("replace", "accumulate")
        cfg.samples_per_generation = 10
        if a.variant != "smoke":
            cfg.num_seeds = 4000
            cfg.num_generations = 20
            cfg.checkpoint.every_generations = 20
        _small_metrics(f)
        # The moments of the fit are what theory.py knows; no sample metrics.
        f.eval_samples = f.heldout_samples = f.snapshot_points = 0
    cfg.checkpoint.keep_generations = common.log_spaced_generations(cfg.num_generations)
    return cfg


def _small_metrics(f) -> None:
    f.eval_samples = 32
    f.heldout_samples = 16
    f.mmd_features = 16
    f.mmd_truth_samples = 256
    f.prdc_real_samples = 32
    f.prdc_chunk = 16
