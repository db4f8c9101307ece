r"""VAE training throughput: our vmapped seeds against PyTorch (the authors' framework) seed after seed.

  python benchmarks/vae_vs_torch.py [--seeds=1,8] [--images=512] [--batch_size=256]

Both train the same 647,081-parameter conv VAE (BCE(sum) + KL(sum), Adam lr 1e-3 with coupled
weight decay 1e-5) for one epoch of ``--images`` images per seed in batches of ``--batch_size``.
JAX: ``jit(vmap(train))`` over S seeds, one XLA call (compile excluded, timed on the second call).
PyTorch: S models trained one after the other (eager, ``torch.get_num_threads()`` threads).
Reported: training images per second summed over seeds, and the ratio JAX / PyTorch.
"""

import argparse
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from collapse_jax import mixing
from collapse_jax.vae import train
from configs import vae as vae_config


def jax_images_per_second(num_seeds, x_NxHxW, vae_cfg):
    data = mixing.full(jnp.asarray(x_NxHxW))
    data_S = jax.tree.map(lambda a: jnp.broadcast_to(a, (num_seeds, *a.shape)), data)
    keys = jax.random.split(jax.random.key(0), num_seeds)
    fn = jax.jit(jax.vmap(lambda k, d: train.train(k, d, vae_cfg)))
    jax.block_until_ready(fn(keys, data_S))  # compile
    t = time.perf_counter()
    params, loss = fn(jax.random.split(jax.random.key(1), num_seeds), data_S)
    jax.block_until_ready((params, loss))
    dt = time.perf_counter() - t
    assert np.all(np.isfinite(np.asarray(loss)))
    return num_seeds * x_NxHxW.shape[0] * vae_cfg.epochs / dt


def torch_images_per_second(num_seeds, x_NxHxW, vae_cfg):
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

    x_all = torch.from_numpy(x_NxHxW.astype(np.float32) / 255.0)[:, None]
    B = vae_cfg.batch_size
    t = time.perf_counter()
    for s in range(num_seeds):
        torch.manual_seed(s)
        model = VAE()
        opt = torch.optim.Adam(
            model.parameters(), lr=vae_cfg.learning_rate, weight_decay=vae_cfg.weight_decay
        )
        for _ in range(vae_cfg.epochs):
            perm = torch.randperm(x_all.shape[0])
            for b in range(math.ceil(x_all.shape[0] / B)):
                x = x_all[perm[b * B : (b + 1) * B]]
                recon, mu, logvar = model(x)
                loss = F.binary_cross_entropy(recon, x, reduction="sum") - 0.5 * torch.sum(
                    1 + logvar - mu**2 - logvar.exp()
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
    dt = time.perf_counter() - t
    return num_seeds * x_NxHxW.shape[0] * vae_cfg.epochs / dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1,8")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--batch_size", type=int, default=256)
    args = ap.parse_args()
    v = ml_collections.ConfigDict(vae_config.get_config("paper").vae)
    v.epochs, v.batch_size = 1, args.batch_size
    x = np.random.default_rng(0).integers(0, 256, (args.images, 28, 28), dtype=np.uint8)
    import torch

    print(
        f"device: {jax.devices()[0].device_kind}; {os.cpu_count()} CPUs; "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads; "
        f"{args.images} images x 1 epoch per seed, batch {args.batch_size}"
    )
    print("| seeds | JAX vmapped (img/s) | PyTorch seed by seed (img/s) | ratio |")
    print("| ---: | ---: | ---: | ---: |")
    for s in (int(a) for a in args.seeds.split(",")):
        ours = jax_images_per_second(s, x, v)
        ref = torch_images_per_second(s, x, v)
        print(f"| {s} | {ours:.1f} | {ref:.1f} | {ours / ref:.2f} |", flush=True)


if __name__ == "__main__":
    main()
