r"""VAE on MNIST (Shumailov et al., Fig. 9): each generation trains a fresh conv VAE on the last one's
samples; the generation-0 encoder sees the latent distribution shrink.

    python -m launch.run --config=configs/vae.py:cpu --workdir=/tmp/vae_cpu
    python -m launch.report --workdir=/tmp/vae_cpu

Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):
  variant  paper (default) | cpu | smoke

variant=paper  the paper's setting: the 60,000 MNIST training images (found or fetched by
  ``collapse_jax.data.fetch``: ``vae.data_dir``, ``$COLLAPSE_JAX_DATA/mnist``, the cache, else a
  checked download), 30 epochs of batch 256, 20 generations, 5 seeds, fresh samples every batch.
  Accelerator only: about 1.4M images per generation and seed. Not timed yet.
variant=cpu  the first 8,000 images of the same lookup (the t10k images where only they are
  found, as in ``../shared/data/mnist``) as D_0, 6 epochs of batch 64 (750 Adam steps), 5
  generations, 2 seeds: 480k training images in all. Expected, as the paper's Fig. 9:
  recognisable if blurry digits of every class at generation 0, then blurred prototypes that lose
  contrast; the generation-0 encoder's latent std falls generation after generation (the paper:
  about 0.67 -> 0.43 in 5 generations) and its KDE narrows; the class entropy of the samples
  falls and the rarest digit's share shrinks; the training loss rises. Fewer Adam steps per
  generation make the samples fade to blank instead (the paper trains 7,000 steps per
  generation).

  Measured 2026-11-30 on an idle 2-core machine with ``python -m launch.run
  --config=configs/vae.py:cpu --workdir=/tmp/vae_cpu``: 6 min 52 s wall (12.9 CPU-minutes),
  compilation included; latent std of seed 0 0.728, 0.579, 0.487, 0.437, 0.349 over generations
  0..4, class entropy 2.24 -> 1.94 nats.
variant=smoke  a few batches of 32 images: what the tests run.

  Measured 2026-12-07 with ``python -m launch.run --config=configs/vae.py:smoke
  --workdir=/tmp/vae_smoke`` on the shared 2-core AMD EPYC dev machine (loaded: load average 13-24
  that hour; no XLA compile cache; MNIST from ``$COLLAPSE_JAX_DATA``): 308 s wall, 67 s CPU,
  compilation included.
"""

import ml_collections

from configs import common

ARGS = common.ARGS


def get_config(arg=None):
    a = common.parse_arg(arg, ARGS)
    cfg = common.base("vae", a)
    cfg.num_seeds = 5
    cfg.num_generations = 20
    cfg.samples_per_generation = 60_000  # M: images per epoch (the pool of generation 0)
    # One generation is hours of a CPU and minutes of a GPU: save every one.
    cfg.checkpoint.every_generations = 1
    # PyTorch runs its cuDNN convolutions in TF32 by default too; the statistics here do not
    # hinge on the last bits of a convolution.
    cfg.matmul_precision = "default"

    v = cfg.vae = ml_collections.ConfigDict()
    v.source = "idx"  # idx (IDX files, no TensorFlow) | tfds (TFDS's mnist; needs tensorflow)
    # idx: the folder of the IDX files; "" looks in $COLLAPSE_JAX_DATA/mnist, the cache, then
    # downloads. Relative paths start at the repository root.
    v.data_dir = ""
    v.prepared_dir = ""  # where TFDS writes the array_record files; "" is CACHE/tfds
    v.split = "train"  # falls back to "test" when data_dir holds only the t10k files
    v.samples = "fresh_per_batch"  # fresh_per_batch (the authors' code) | fixed_dataset
    v.latent_dim = 20
    v.batch_size = 256
    # Images per gradient micro-batch (a divisor of batch_size; 0: the whole batch). The same
    # Adam step, summed in slices: 32 trains one seed's batches of 256 faster on a CPU
    # (benchmarks/vae_vs_torch.py measures it); accelerators want the whole batch.
    v.micro_batch_size = 0
    v.epochs = 30
    v.learning_rate = 1e-3
    v.weight_decay = 1e-5  # coupled L2, as torch.optim.Adam(weight_decay=...)
    v.sample_chunk = 1000  # latents decoded at once by `sample` (bounds activation memory)
    # Metrics: samples per generation decoded for the statistics below.
    v.latent_samples = 100  # encoded by the generation-0 encoder (the paper's KDE)
    v.class_samples = 1000  # classified by the real-data MLP (the tail measure)
    v.grid_images = 64  # stored as uint8 in metrics.jsonl for the 8x8 sample grids
    v.kde_points = 121  # KDE grid over [-3, 3]
    # The digit classifier trained once on the real pool.
    v.classifier_hidden = 256
    v.classifier_epochs = 5
    v.classifier_batch_size = 128
    v.classifier_learning_rate = 1e-3
    v.classifier_heldout = 0.1  # share of the pool held out for its accuracy

    if a.variant == "cpu":
        cfg.num_seeds = 2
        cfg.num_generations = 5
        cfg.samples_per_generation = 8_000
        # 750 Adam steps per generation: with 375 (3 epochs) or 78 the undertrained decoders lost
        # contrast each generation and the samples faded to blank instead of the paper's
        # blurred prototypes.
        v.batch_size = 64
        v.epochs = 6
    elif a.variant == "smoke":
        cfg.num_seeds = 2
        cfg.num_generations = 3
        cfg.samples_per_generation = 64
        v.batch_size = 32
        v.epochs = 1
        v.sample_chunk = 32
        v.latent_samples = 8
        v.class_samples = 16
        v.grid_images = 4
        v.kde_points = 11
        v.classifier_hidden = 16
        v.classifier_epochs = 1
    cfg.checkpoint.keep_generations = common.log_spaced_generations(cfg.num_generations)
    return cfg
