r"""Flow/diffusion training throughput: our jitted training loop against the same network and
optimiser in PyTorch.

  python benchmarks/flow_vs_torch.py [--only=mlp,unet] [--steps=50] [--rounds=3] [--quick]

Both sides train the same network (``collapse_jax/families/flow/nets.py``; the PyTorch twin below
has the same layers, initial weights copied from ours, and the same parameter count) with Adam on
the conditional flow-matching loss (linear path), float32, batches drawn from a fixed pool:

  mlp   the 2-D toys' MLP (``configs/flow.py:cpu``: hidden (64, 64, 64), time features 64),
        batch 128
  unet  the MNIST UNet (``configs/mad.py:cpu`` widths), batch 64 of 28x28 images

JAX: ``--steps`` Adam steps in one ``lax.scan`` (``flow.train.train``, what a chain runs inside
``fit``), one XLA call. PyTorch: the same steps in an eager loop, ``torch.get_num_threads()``
threads (XLA:CPU uses every core). Both warmed up, then interleaved rounds (``_common.py``);
reported: training steps per second, median [min-max] over rounds, and the per-round ratio.

``accelerator_section(tiny)`` is the GPU form for ``benchmarks/accelerator.py`` (both sides on the
device; ``tiny``: toy sizes on CPU, what the tests run).
"""

import argparse
import math

import _common  # first: puts the repository root on sys.path
import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax import family as family_lib
from collapse_jax.families.flow import family, nets, train
from configs import flow as flow_config
from configs import mad as mad_config


def config(kind: str, steps: int):
    """The cpu variant's config of ``kind`` (``mlp``: the toys; ``unet``: MNIST) for ``steps``."""
    cfg = flow_config.get_config("cpu") if kind == "mlp" else mad_config.get_config("cpu")
    f = cfg.flow
    f.objective, f.ema_decay, f.grad_clip, f.weight_decay = "flow", 0.0, 0.0, 0.0
    f.train_steps, f.loss_points = steps, 1
    family.validate(cfg)
    return cfg


def pool(cfg, n: int = 2048) -> np.ndarray:
    g = np.random.default_rng(0)
    if family.is_image(cfg):
        return g.integers(0, 256, (n, nets.H, nets.W), dtype=np.uint8)
    return g.normal(size=(n, family.data_dim(cfg))).astype(np.float32)


def jax_side(cfg, x):
    data = family_lib.full(jnp.asarray(x))
    fn = jax.jit(
        lambda key, p: train.train(
            key, p, data, family._loss_fn(cfg), lambda a: family.to_model(a, cfg), cfg.flow
        )
    )
    params = family.init_params(jax.random.key(0), cfg)
    calls = iter(range(1 << 30))

    def once():
        _, loss = jax.block_until_ready(fn(jax.random.key(next(calls)), params))
        assert np.all(np.isfinite(np.asarray(loss)))

    return once, params


# ---------------------------------------------------------------------------------------------
# The PyTorch twin.


def _torch_modules():
    import torch
    from torch import nn
    from torch.nn import functional as F

    def time_features(t, dim):
        half = dim // 2
        freqs = torch.exp(
            -math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half
        )
        args = 1000.0 * t[:, None] * freqs[None, :]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    class TimeEmbedding(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.dim, self.fc1, self.fc2 = dim, nn.Linear(dim, dim), nn.Linear(dim, dim)

        def forward(self, t):
            return self.fc2(F.silu(self.fc1(time_features(t, self.dim))))

    class MLP(nn.Module):
        def __init__(self, d, hidden, time_dim):
            super().__init__()
            self.time = TimeEmbedding(time_dim)
            widths = [d, *hidden]
            self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, hidden, strict=False))
            self.temb = nn.ModuleList(nn.Linear(time_dim, w) for w in hidden)
            self.out = nn.Linear(hidden[-1], d)

        def forward(self, x, t):
            emb = self.time(t)
            for fc, temb in zip(self.fc, self.temb, strict=True):
                x = F.silu(fc(x) + temb(emb))
            return self.out(x)

    class ResBlock(nn.Module):
        def __init__(self, cin, cout, groups, time_dim):
            super().__init__()
            self.norm1, self.conv1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
            self.temb = nn.Linear(time_dim, cout)
            self.norm2 = nn.GroupNorm(groups, cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
            self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

        def forward(self, x, emb):
            h = self.conv1(F.silu(self.norm1(x)))
            h = h + self.temb(F.silu(emb))[:, :, None, None]
            h = self.conv2(F.silu(self.norm2(h)))
            return (x if self.skip is None else self.skip(x)) + h

    class UNet(nn.Module):
        def __init__(self, channels, groups, time_dim):
            super().__init__()
            self.time = TimeEmbedding(time_dim)
            self.stem = nn.Conv2d(1, channels[0], 3, padding=1)
            ins = [channels[0], *channels[:-1]]
            self.down = nn.ModuleList(
                ResBlock(a, b, groups, time_dim) for a, b in zip(ins, channels, strict=True)
            )
            self.mid = ResBlock(channels[-1], channels[-1], groups, time_dim)
            up_in = [
                (channels[i + 1] if i + 1 < len(channels) else channels[-1]) + channels[i]
                for i in range(len(channels))
            ]
            self.up = nn.ModuleList(
                ResBlock(up_in[i], channels[i], groups, time_dim) for i in range(len(channels))
            )
            self.norm_out = nn.GroupNorm(groups, channels[0])
            self.out = nn.Conv2d(channels[0], 1, 3, padding=1)

        def forward(self, x, t):
            emb = self.time(t)
            h = self.stem(x)
            skips = []
            for i, block in enumerate(self.down):
                h = block(h, emb)
                skips.append(h)
                if i < len(self.down) - 1:
                    h = F.avg_pool2d(h, 2)
            h = self.mid(h, emb)
            for i in reversed(range(len(self.up))):
                h = self.up[i](torch.cat([h, skips.pop()], dim=1), emb)
                if i > 0:
                    h = F.interpolate(h, scale_factor=2, mode="nearest")
            return self.out(F.silu(self.norm_out(h)))

    return MLP, UNet


def torch_model(cfg, params):
    """The PyTorch twin of ``family.network(cfg)`` with ``params`` (ours) copied into it."""
    import torch

    MLP, UNet = _torch_modules()
    f = cfg.flow
    if f.model == "unet":
        model = UNet(tuple(f.unet_channels), f.unet_groups, f.time_dim)
    else:
        model = MLP(family.data_dim(cfg), tuple(f.mlp_hidden), f.time_dim)
    ours = nets.num_params(params)
    theirs = sum(p.numel() for p in model.parameters())
    assert ours == theirs, (ours, theirs)
    flat = {
        "/".join(str(k.key) for k in path): np.asarray(v)
        for path, v in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(_our_weight(flat, name, tuple(p.shape))))
    return model


def _our_weight(flat, torch_name: str, shape) -> np.ndarray:
    """Our array for a PyTorch parameter name (Dense kernels transposed, conv kernels OIHW)."""
    parts = torch_name.split(".")
    leaf = parts[-1]
    path = parts[:-1]
    # ModuleList indices: "fc.0" -> "fc0", "down.1" -> "down1"
    names = []
    for p in path:
        if p.isdigit():
            names[-1] += p
        else:
            names.append(p)
    norm = any(n.startswith("norm") for n in names[-1:])
    key = "/".join(names) + "/" + ({"weight": "scale" if norm else "kernel"}.get(leaf, leaf))
    a = flat[key]
    if leaf == "weight" and not norm:
        if a.ndim == 2:  # a Dense kernel, or our Dense standing for a 1x1 conv
            return np.ascontiguousarray(a.T).reshape(shape)
        if a.ndim == 4:
            return np.ascontiguousarray(a.transpose(3, 2, 0, 1))
    return np.ascontiguousarray(a.reshape(shape))


def torch_side(cfg, x, params, device="cpu"):
    import torch
    from torch.nn import functional as F

    f = cfg.flow
    model = torch_model(cfg, params).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=f.learning_rate)
    if family.is_image(cfg):
        data = torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0)[:, None].to(device)
    else:
        data = torch.from_numpy(x).to(device)
    g = torch.Generator(device=device).manual_seed(0)

    def once():
        for _ in range(f.train_steps):
            idx = torch.randint(0, data.shape[0], (f.batch_size,), generator=g, device=device)
            x1 = data[idx]
            t = torch.rand(f.batch_size, generator=g, device=device)
            x0 = torch.randn(x1.shape, generator=g, device=device)
            tb = t.reshape(-1, *([1] * (x1.ndim - 1)))
            loss = F.mse_loss(model((1 - tb) * x0 + tb * x1, t), x1 - x0)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return once


def rows(kinds=("mlp", "unet"), steps=50, rounds=3, quick=False, device="cpu"):
    if quick:
        steps, rounds = 4, 1
    cmd = "python benchmarks/flow_vs_torch.py" + (" --quick" if quick else "")
    out = []
    for kind in kinds:
        cfg = config(kind, steps)
        x = pool(cfg, 256 if quick else 2048)
        ours, params = jax_side(cfg, x)
        t = _common.interleave({"jax": ours, "torch": torch_side(cfg, x, params, device)}, rounds)
        f = cfg.flow
        what = f"UNet {tuple(f.unet_channels)}" if kind == "unet" else f"MLP {tuple(f.mlp_hidden)}"
        out.append(
            _common.Row(
                f"flow matching training, {what}, {nets.num_params(params):,} params, batch "
                f"{f.batch_size}, {steps} Adam steps per call, float32, both warmed up "
                "(steps/s)",
                cmd,
                _common.Cell(_common.rate(steps, t["jax"])),
                _common.Cell(_common.rate(steps, t["torch"]), f"PyTorch ({device}) "),
                _common.Cell(_common.ratio(t["torch"], t["jax"]), suffix="x"),
            )
        )
    return out


def accelerator_section(tiny: bool, rounds: int = 3):
    """Rows of the GPU form (for ``benchmarks/accelerator.py``): both sides on the device."""
    import torch

    device = "cuda" if torch.cuda.is_available() and not tiny else "cpu"
    return rows(steps=4 if tiny else 200, rounds=1 if tiny else rounds, quick=tiny, device=device)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="mlp,unet")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="4 steps, 1 round: a correctness run")
    a = ap.parse_args(argv)
    import torch

    print(_common.machine() + f"; torch threads {torch.get_num_threads()}")
    kinds = tuple(k for k in a.only.split(",") if k)
    print(_common.table(rows(kinds, a.steps, a.rounds, a.quick)))


if __name__ == "__main__":
    main()
