r"""MNIST diffusion retrained on its own samples: the loops of Alemohammad et al. (2024), "Self-
consuming generative models go MAD" (``collapse_jax/families/flow``, a UNet).

    python -m launch.run --config=configs/mad.py:cpu --workdir=/tmp/mad_cpu
    python -m launch.report --workdir=/tmp/mad_cpu
    python -m launch.sweep --config=configs/mad.py:cpu --workdir=/tmp/mad_loops   # the 3 loops

Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):
  variant  paper (default) | cpu | smoke

variant=paper  MAD's MNIST setting as far as this project reads it: DDPM (T = 1000, Ho et al.'s linear
         betas) with a UNet on the 60,000 training images, ancestral sampling of all T steps,
         10 generations, the three loops as ``cfg.sweep`` (fully synthetic = ``replace``,
         synthetic augmentation = ``augment`` with lambda = 1, fresh data = ``fresh`` with half of
         each generation real). The UNet's widths, steps and learning rate are this project's
         choices (Ho et al.'s lr 2e-4, batch 128, EMA 0.9999), not read from the authors' code.
         Accelerator only; not timed yet.
variant=cpu  one seed, M = 2000 MNIST images, 5 generations, a UNet of widths (16, 32, 32)
  trained 1000 steps per generation by flow matching (Heun sampling). Not timed yet, and not yet
  checked to show recognisable digits.
variant=smoke  2 seeds, M = 32, a tiny UNet trained 4 steps, T = 20: what the tests run (needs
  the MNIST files of ``$COLLAPSE_JAX_DATA``).

The loops through ``cfg.mixing`` and Bertrand et al.'s lambda: see configs/flow.py.
"""

from configs import common
from configs import flow as flow_config

ARGS = common.ARGS


def get_config(arg=None):
    a = common.parse_arg(arg, ARGS)
    cfg = common.base("mad", a)
    f = cfg.flow = flow_config.flow_section()
    f.source, f.model = "mnist", "unet"
    f.objective, f.sampler = "ddpm", "ancestral"
    f.eval_samples = 1000
    f.prdc_real_samples = 1000
    f.grid_images = 64
    f.heldout_samples = 0  # no NLL for images (a likelihood in 784 dimensions is not the point)
    f.sample_chunk = 1000
    # One generation is minutes of an accelerator: save every one.
    cfg.checkpoint.every_generations = 1
    cfg.matmul_precision = "default"  # as the VAE family: convolutions need not be exact
    cfg.mixing.fresh_fraction = 0.5
    cfg.mixing.augment_ratio = 1.0
    flow_config.sweep_regimes(cfg, ("replace", "augment", "fresh"))

    if a.variant == "paper":
        cfg.num_seeds = 3
        cfg.num_generations = 10
        cfg.samples_per_generation = 60_000
        f.unet_channels = (64, 128, 128)
        f.time_dim = 128
        f.train_steps = 20_000
        f.batch_size = 128
        f.learning_rate = 2e-4
        f.grad_clip = 1.0
        f.ema_decay = 0.9999
        f.loss_points = 20
    elif a.variant == "cpu":
        cfg.num_seeds = 1
        cfg.num_generations = 5
        cfg.samples_per_generation = 2000
        f.unet_channels = (16, 32, 32)
        f.time_dim = 64
        f.train_steps = 1000
        f.batch_size = 64
        f.learning_rate = 1e-3
        f.objective, f.sampler, f.sampler_steps = "flow", "heun", 16
        f.eval_samples = 500
        f.prdc_real_samples = 1000
        f.sample_chunk = 500
    else:  # smoke
        flow_config.smoke_scale(cfg, f)
        f.unet_channels = (8, 8)
        f.unet_groups = 4
        f.train_steps = 4
        f.batch_size = 8
        f.eval_samples = 16
        f.prdc_real_samples = 32
        f.prdc_chunk = 16
        f.grid_images = 4
        f.sample_chunk = 16
        f.classifier_hidden = 16
        f.classifier_epochs = 1
    cfg.checkpoint.keep_generations = common.log_spaced_generations(cfg.num_generations)
    return cfg
