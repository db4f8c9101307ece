"""The trained fields: an MLP with a time embedding for low-dimensional data and a small UNet for
28x28 images (Flax linen, as the VAE family).

Both map ``(x, t)`` to an output of ``x``'s shape: the velocity of the flow objective, or the noise
of DDPM's (``objectives.py``); ``t`` in [0, 1] is flow time or ``k / T`` for DDPM step k. The time
enters as sinusoidal features (Ho et al.'s, of ``1000 t``) through a two-layer MLP, added to every
hidden layer (MLP) or every residual block (UNet).

UNet (``unet_channels`` = (c0, c1, c2), resolutions 28, 14, 7): a 3x3 conv to c0; down the levels a
residual block (GroupNorm, SiLU, 3x3 conv, plus the time embedding, GroupNorm, SiLU, 3x3 conv;
a 1x1 projection on the skip when the width changes) then a 2x2 average pool; a middle block; up the
levels the skip concatenated, a residual block, then a 2x nearest-neighbour upsampling; GroupNorm,
SiLU and a 3x3 conv to one channel, its kernel zero at init (the untrained field predicts 0). No
attention: at 7x7 on MNIST it buys little and costs CPU time. The 3x3 convs are an im2col of 9
contiguous slices and one matmul by default (``conv_impl="matmul"``; its gradient is edge pads):
the VAE family measured XLA:CPU's own convolutions several times slower inside its training loop
(``families/vae/model.py``); ``"lax"`` uses ``lax.conv_general_dilated``, the same function.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

H = W = 28


def time_features(t_B, dim: int, max_period: float = 10_000.0):
    """``[cos, sin]`` of ``1000 t`` at ``dim / 2`` geometric frequencies (Ho et al.'s embedding of
    integer steps, here of t in [0, 1])."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = 1000.0 * t_B[:, None].astype(jnp.float32) * freqs[None, :]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class TimeEmbedding(nn.Module):
    dim: int

    @nn.compact
    def __call__(self, t_B):
        e = time_features(t_B, self.dim)
        e = nn.silu(nn.Dense(self.dim, name="fc1")(e))
        return nn.Dense(self.dim, name="fc2")(e)


class MLP(nn.Module):
    """``x_BxD, t_B -> out_BxD``: SiLU layers, the time embedding added before each activation
    (every layer sees the time, rather than only the input)."""

    out_dim: int
    hidden: tuple[int, ...]
    time_dim: int

    @nn.compact
    def __call__(self, x_BxD, t_B):
        emb = TimeEmbedding(self.time_dim, name="time")(t_B)
        h = x_BxD
        for i, width in enumerate(self.hidden):
            h = nn.Dense(width, name=f"fc{i}")(h) + nn.Dense(width, name=f"temb{i}")(emb)
            h = nn.silu(h)
        return nn.Dense(self.out_dim, name="out")(h)


def conv3x3_matmul(x_BxHxWxC, kernel_3x3xCxO):
    """A 3x3 'SAME' stride-1 convolution as 9 contiguous slices and one matmul."""
    _, Hh, Ww, C = x_BxHxWxC.shape
    xp = jnp.pad(x_BxHxWxC, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.concatenate(
        [xp[:, a : a + Hh, b : b + Ww, :] for a in range(3) for b in range(3)], axis=-1
    )
    return patches @ kernel_3x3xCxO.reshape(9 * C, kernel_3x3xCxO.shape[-1])


class Conv3(nn.Module):
    """``nn.Conv(features, (3, 3), padding="SAME")``'s parameters; ``impl`` picks the kernel."""

    features: int
    impl: str = "matmul"
    zero_init: bool = False

    @nn.compact
    def __call__(self, x):
        init = nn.initializers.zeros_init() if self.zero_init else nn.initializers.lecun_normal()
        kernel = self.param("kernel", init, (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if self.impl == "lax":
            y = jax.lax.conv_general_dilated(
                x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        else:
            y = conv3x3_matmul(x, kernel)
        return y + bias[None, None, None, :]


class ResBlock(nn.Module):
    features: int
    groups: int
    impl: str

    @nn.compact
    def __call__(self, x, emb_BxE):
        h = nn.silu(nn.GroupNorm(self.groups, name="norm1")(x))
        h = Conv3(self.features, self.impl, name="conv1")(h)
        h = h + nn.Dense(self.features, name="temb")(nn.silu(emb_BxE))[:, None, None, :]
        h = nn.silu(nn.GroupNorm(self.groups, name="norm2")(h))
        h = Conv3(self.features, self.impl, name="conv2")(h)
        skip = x if x.shape[-1] == self.features else nn.Dense(self.features, name="skip")(x)
        return skip + h


def downsample(x_BxHxWxC):
    B, Hh, Ww, C = x_BxHxWxC.shape
    return x_BxHxWxC.reshape(B, Hh // 2, 2, Ww // 2, 2, C).mean(axis=(2, 4))


def upsample(x_BxHxWxC):
    return jnp.repeat(jnp.repeat(x_BxHxWxC, 2, axis=1), 2, axis=2)


class UNet(nn.Module):
    """``x_BxHxWx1, t_B -> out_BxHxWx1`` (module docstring)."""

    channels: tuple[int, ...] = (32, 64, 64)
    groups: int = 8
    time_dim: int = 128
    impl: str = "matmul"

    @nn.compact
    def __call__(self, x_BxHxWx1, t_B):
        emb = TimeEmbedding(self.time_dim, name="time")(t_B)
        h = Conv3(self.channels[0], self.impl, name="stem")(x_BxHxWx1)
        skips = []
        last = len(self.channels) - 1
        for i, ch in enumerate(self.channels):
            h = ResBlock(ch, self.groups, self.impl, name=f"down{i}")(h, emb)
            skips.append(h)
            if i < last:
                h = downsample(h)
        h = ResBlock(self.channels[-1], self.groups, self.impl, name="mid")(h, emb)
        for i in reversed(range(len(self.channels))):
            h = jnp.concatenate([h, skips.pop()], axis=-1)
            h = ResBlock(self.channels[i], self.groups, self.impl, name=f"up{i}")(h, emb)
            if i > 0:
                h = upsample(h)
        h = nn.silu(nn.GroupNorm(self.groups, name="norm_out")(h))
        return Conv3(1, self.impl, zero_init=True, name="out")(h)


def num_params(params) -> int:
    return sum(int(p.size) for p in jax.tree.leaves(params))
