r"""VAE training throughput: our seeds in one XLA call against PyTorch (the authors' framework) seed
after seed.

  python benchmarks/vae_vs_torch.py [--seeds=1,8] [--images=2048] [--batch_size=256] [--rounds=3] \
      [--micro_batch_size=32] [--seed_batch=1]
  python benchmarks/vae_vs_torch.py --profile --images=1024   # where our step's time goes

Both train the same 647,081-parameter conv VAE (BCE(sum) + KL(sum), Adam lr 1e-3 with coupled
weight decay 1e-5) for one epoch of ``--images`` images per seed in batches of ``--batch_size``.
JAX: ``jit(over_seeds(train))`` over S seeds, one XLA call (``chain.over_seeds``, what the chain
runs: ``vmap``, or ``lax.map`` over batches of ``seed_batch`` vmapped seeds). PyTorch: S models
trained one after the other (eager, ``torch.get_num_threads()`` threads). Both sides are warmed up first (JAX compiles;
PyTorch's first call sets up its kernels, once several times slower than steady state, which an
earlier version of this script timed), then rounds alternate (``_common.py``). Reported: training
images per second summed over seeds (median [min-max] over rounds), and the per-round ratio.
2048 images are 8 steps per XLA call: a chain trains a whole generation (hundreds of steps) in one
call, and each call maps its temporary buffers afresh (about 220 MB per seed at batch 256), so few
steps per call overstate that cost (the accelerator form: 0.60-0.68x PyTorch at 512 images,
0.82-0.84x at 2048, idle, 2026-11-30).
Ours runs twice, interleaved with PyTorch: the CPU form, with ``vae.micro_batch_size`` (each
batch's gradient summed over micro-batches of that many images, then one Adam step: the same
step) and ``seed_batch`` (1: seeds one after another, as PyTorch's); and the accelerator form,
the whole batch and all seeds vmapped (``micro_batch_size=0``, ``seed_batch=0``).
"""

import argparse
import math

import _common  # first: puts the repository root on sys.path
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from collapse_jax import chain, compile_cache, mixing
from collapse_jax.errors import ConfigError
from collapse_jax.families.vae import family, train
from configs import vae as vae_config


def config(batch_size: int, micro_batch_size: int = 0, seed_batch: int = 0):
    """The paper's VAE config for one epoch with these overrides, checked by the chain's and the
    family's own validation (``ConfigError`` names the field)."""
    cfg = vae_config.get_config("paper")
    cfg.vae.epochs, cfg.vae.batch_size = 1, batch_size
    cfg.vae.micro_batch_size, cfg.seed_batch = micro_batch_size, seed_batch
    chain.validate(cfg)
    family.validate(cfg)
    return cfg


def images(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def jax_side(num_seeds, x_NxHxW, vae_cfg, seed_batch=0):
    """A blocking call training ``num_seeds`` VAEs for one epoch (``chain.over_seeds``)."""
    data = mixing.full(jnp.asarray(x_NxHxW))
    data_S = jax.tree.map(lambda a: jnp.broadcast_to(a, (num_seeds, *a.shape)), data)
    seeds = ml_collections.ConfigDict({"seed_batch": seed_batch})
    fn = jax.jit(chain.over_seeds(lambda k, d: train.train(k, d, vae_cfg), seeds))
    calls = iter(range(1 << 30))

    def once():
        keys = jax.random.split(jax.random.key(next(calls)), num_seeds)
        _, loss = jax.block_until_ready(fn(keys, data_S))
        assert np.all(np.isfinite(np.asarray(loss)))

    return once


def torch_side(num_seeds, x_NxHxW, vae_cfg, device="cpu"):
    """A blocking call training ``num_seeds`` PyTorch VAEs one after the other."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class VAE(nn.Module):
        def __init__(self, z=20):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 64, 4, 2, 1), nn.Conv2d(64, 128, 4, 2, 1)
            self.mu, self.logvar = nn.Linear(6272, z), nn.Linear(6272, z)
            self.fc = nn.Linear(z, 6272)
            self.d1 = nn.ConvTranspose2d(128, 64, 4, 2, 1)
            self.d2 = nn.ConvTranspose2d(64, 1, 4, 2, 1)

        def forward(self, x):
            h = F.relu(self.c2(F.relu(self.c1(x)))).flatten(1)
            mu, logvar = self.mu(h), self.logvar(h)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            h = F.relu(self.fc(z)).view(-1, 128, 7, 7)
            return torch.sigmoid(self.d2(F.relu(self.d1(h)))), mu, logvar

    x_all = torch.from_numpy(x_NxHxW.astype(np.float32) / 255.0)[:, None].to(device)
    B = vae_cfg.batch_size

    def once():
        for s in range(num_seeds):
            train_one(s)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def train_one(s):
        torch.manual_seed(s)
        model = VAE().to(device)
        opt = torch.optim.Adam(
            model.parameters(), lr=vae_cfg.learning_rate, weight_decay=vae_cfg.weight_decay
        )
        for _ in range(vae_cfg.epochs):
            perm = torch.randperm(x_all.shape[0], device=device)
            for b in range(math.ceil(x_all.shape[0] / B)):
                x = x_all[perm[b * B : (b + 1) * B]]
                recon, mu, logvar = model(x)
                loss = F.binary_cross_entropy(recon, x, reduction="sum") - 0.5 * torch.sum(
                    1 + logvar - mu**2 - logvar.exp()
                )
                opt.zero_grad()
                loss.backward()
                opt.step()

    return once


# --quick (and accelerator.py --tiny): one seed, 64 images in batches of 32 (seconds, one compile).
QUICK_IMAGES = 64


def rows(
    seeds=(1, 8),
    n=2048,
    batch_size=256,
    rounds=3,
    quick=False,
    micro_batch_size=32,
    seed_batch=1,
):
    if quick:
        seeds, n, batch_size, micro_batch_size, rounds = (1,), QUICK_IMAGES, 32, 16, 1
    v = config(batch_size).vae
    micro = config(batch_size, micro_batch_size, seed_batch).vae
    x = images(n)
    cmd = "python benchmarks/vae_vs_torch.py" + (" --quick" if quick else "")
    ours_side, theirs_side = _common.jax_side(), _common.torch_side("float32")
    out = []
    for s in seeds:
        sides = {"cpu": jax_side(s, x, micro, seed_batch), "whole": jax_side(s, x, v)}
        t = _common.interleave({**sides, "torch": torch_side(s, x, v)}, rounds)
        work = s * n * v.epochs
        for side, how in (
            ("cpu", f"micro-batches of {micro_batch_size}, seed_batch={seed_batch}"),
            ("whole", "whole-batch gradient, all seeds vmapped"),
        ):
            out.append(
                _common.Row(
                    f"VAE training, S={s} seeds, {n} images x 1 epoch each, batch "
                    f"{batch_size}, {how}, vs PyTorch seed after seed, both warmed up "
                    "(images/s)",
                    cmd,
                    _common.Cell(_common.rate(work, t[side])),
                    _common.Cell(_common.rate(work, t["torch"]), "PyTorch "),
                    _common.Cell(_common.ratio(t["torch"], t[side]), suffix="x"),
                    ours_side=ours_side,
                    reference_side=theirs_side,
                )
            )
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,8")
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--batch_size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--micro_batch_size", type=int, default=32, help="vae.micro_batch_size of our first side"
    )
    ap.add_argument("--seed_batch", type=int, default=1, help="seed_batch of our first side")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"S=1, {QUICK_IMAGES} images, batch 32, micro-batches of 16, 1 round",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="per-op time of our S=1 epoch (with --micro_batch_size) instead (xprof)",
    )
    a = ap.parse_args(argv)
    compile_cache.enable()
    try:
        cfg = config(a.batch_size, a.micro_batch_size, a.seed_batch)
    except ConfigError as e:
        ap.error(str(e))
    if a.profile:
        once = jax_side(1, images(a.images), cfg.vae)
        once()
        print(_common.machine())
        print(f"one epoch of {a.images} images, batch {a.batch_size}, S=1, per call of 3:")
        print(_common.op_profile(once))
        return
    import torch

    print(_common.machine() + f"; torch threads {torch.get_num_threads()}")
    seeds = tuple(int(v) for v in a.seeds.split(","))
    args = (a.images, a.batch_size, a.rounds, a.quick, a.micro_batch_size, a.seed_batch)
    print(_common.table(rows(seeds, *args)))


if __name__ == "__main__":
    main()
