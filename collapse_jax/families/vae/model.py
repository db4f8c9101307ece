"""The paper's convolutional VAE for MNIST (Shumailov et al., Sec. 4 and the authors' code).

encoder  28x28x1 -conv 4x4/2 p1-> 14x14x64 -ReLU- conv 4x4/2 p1-> 7x7x128 -ReLU- flatten
         -> linear mu (20), linear logvar (20)
decoder  z (20) -linear-> 6272 -ReLU- 7x7x128 -convT 4x4/2 p1-> 14x14x64 -ReLU- convT 4x4/2 p1
         -> 28x28x1 -> sigmoid
647,081 parameters. Loss: BCE(sum) + KL(sum) over the batch, as the authors' PyTorch code.

Images are NHWC (XLA's native layout on CPU and GPU); flattening is therefore (H, W, C) where
PyTorch flattens (C, H, W): the same function up to a fixed permutation of the linear weights.
The convolutions are computed as im2col matmuls by default (``conv_s2``, ``conv_transpose_s2``):
XLA:CPU runs convolutions inside while loops (the training scans) about 6x slower than at top
level (jax-ml/jax#12868; measured here: 4.5 vs 25.7 images/s for the same two steps).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

H = W = 28
LATENT_HW = 7


def conv_s2(x_BxHxWxC, kernel_4x4xCxO):
    """``Conv(k=4, s=2, p=1)`` as 16 strided slices and one matmul (im2col).

    XLA:CPU runs convolutions inside a while loop (our scans over batches and epochs) several
    times slower than at top level (jax-ml/jax#12868); slices, pads and dots do not suffer.
    """
    B, Hh, Ww, C = x_BxHxWxC.shape
    Ho, Wo = Hh // 2, Ww // 2
    xp = jnp.pad(x_BxHxWxC, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = [
        xp[:, kh : kh + 2 * Ho : 2, kw : kw + 2 * Wo : 2, :] for kh in range(4) for kw in range(4)
    ]
    cols = jnp.stack(cols, axis=3).reshape(B, Ho, Wo, 16 * C)
    return cols @ kernel_4x4xCxO.reshape(16 * C, -1)


def conv_transpose_s2(x_BxHxWxC, kernel_4x4xOxC):
    """PyTorch's ``ConvTranspose2d(k=4, s=2, p=1)``: ``out[2i - 1 + k] += x[i] w[k]``, as one matmul
    and 16 interior-padded adds (col2im); same XLA:CPU reason as ``conv_s2``."""
    B, Hh, Ww, C = x_BxHxWxC.shape
    O = kernel_4x4xOxC.shape[2]
    k = jnp.transpose(kernel_4x4xOxC, (3, 0, 1, 2)).reshape(C, 16 * O)
    cols = (x_BxHxWxC @ k).reshape(B, Hh, Ww, 4, 4, O)
    zero = jnp.zeros((), x_BxHxWxC.dtype)
    out = 0.0
    for kh in range(4):
        for kw in range(4):
            # x[i] lands at 2i + k in a (2H + 2)-long canvas; cropping 1 each side gives 2H.
            cfg = ((0, 0, 0), (kh, 3 - kh, 1), (kw, 3 - kw, 1), (0, 0, 0))
            out = out + jax.lax.pad(cols[:, :, :, kh, kw, :], zero, cfg)
    return out[:, 1 : 2 * Hh + 1, 1 : 2 * Ww + 1, :]


class Conv(nn.Module):
    """``nn.Conv(features, (4, 4), (2, 2), padding=1)``: the same parameters and initialisers;
    ``impl`` "lax" runs ``lax.conv_general_dilated``, "matmul" ``conv_s2``."""

    features: int
    impl: str

    @nn.compact
    def __call__(self, x):
        shape = (4, 4, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if self.impl == "lax":
            y = jax.lax.conv_general_dilated(
                x, kernel, (2, 2), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        else:
            y = conv_s2(x, kernel)
        return y + bias[None, None, None, :]


class ConvTranspose(nn.Module):
    """PyTorch's ``ConvTranspose2d(k=4, s=2, p=1)`` with ``nn.ConvTranspose(transpose_kernel=True)``
    parameters (kernel ``(4, 4, out, in)``, same initialisers)."""

    features: int
    impl: str

    @nn.compact
    def __call__(self, x):
        shape = (4, 4, self.features, x.shape[-1])
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if self.impl == "lax":
            # transpose_kernel and padding k - 1 - p = 2 give exactly PyTorch's transposed conv.
            y = jax.lax.conv_transpose(
                x,
                kernel,
                (2, 2),
                ((2, 2), (2, 2)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                transpose_kernel=True,
            )
        else:
            y = conv_transpose_s2(x, kernel)
        return y + bias[None, None, None, :]


class Encoder(nn.Module):
    latent_dim: int
    impl: str = "matmul"

    @nn.compact
    def __call__(self, x_BxHxWx1):
        h = nn.relu(Conv(64, self.impl, name="conv1")(x_BxHxWx1))
        h = nn.relu(Conv(128, self.impl, name="conv2")(h))
        h = h.reshape(h.shape[0], -1)
        return nn.Dense(self.latent_dim, name="mu")(h), nn.Dense(self.latent_dim, name="logvar")(h)


class Decoder(nn.Module):
    impl: str = "matmul"

    @nn.compact
    def __call__(self, z_BxZ):
        """Pixel logits ``B x 28 x 28 x 1`` (the sigmoid is applied by the caller or the loss)."""
        h = nn.relu(nn.Dense(128 * LATENT_HW * LATENT_HW, name="fc")(z_BxZ))
        h = h.reshape(h.shape[0], LATENT_HW, LATENT_HW, 128)
        h = nn.relu(ConvTranspose(64, self.impl, name="deconv1")(h))
        return ConvTranspose(1, self.impl, name="deconv2")(h)


class VAE(nn.Module):
    latent_dim: int = 20
    # "matmul" (im2col; fast inside XLA:CPU loops, plain GEMMs on GPU) or "lax" (XLA convs);
    # the same parameters and function, checked against PyTorch in the tests.
    impl: str = "matmul"

    def setup(self):
        self.encoder = Encoder(self.latent_dim, self.impl)
        self.decoder = Decoder(self.impl)

    def __call__(self, x_BxHxWx1, eps_BxZ):
        mu, logvar = self.encoder(x_BxHxWx1)
        z = mu + jnp.exp(0.5 * logvar) * eps_BxZ
        return self.decoder(z), mu, logvar

    def encode(self, x_BxHxWx1):
        return self.encoder(x_BxHxWx1)

    def decode_logits(self, z_BxZ):
        return self.decoder(z_BxZ)


def init_params(key, latent_dim: int):
    """Fresh parameters (Flax default initialisers) for one VAE."""
    x = jnp.zeros((1, H, W, 1), jnp.float32)
    eps = jnp.zeros((1, latent_dim), jnp.float32)
    return VAE(latent_dim).init(key, x, eps)["params"]


def num_params(params) -> int:
    return sum(int(p.size) for p in jax.tree.leaves(params))


def encode(params, x_BxHxW, latent_dim: int):
    """Encoder means and log-variances of images in [0, 1]."""
    return VAE(latent_dim).apply({"params": params}, x_BxHxW[..., None], method=VAE.encode)


def decode(params, z_BxZ, latent_dim: int):
    """Decoder Bernoulli probabilities ``B x 28 x 28`` (the authors' samples for the next model)."""
    logits = VAE(latent_dim).apply({"params": params}, z_BxZ, method=VAE.decode_logits)
    return jax.nn.sigmoid(logits[..., 0])


def per_image_loss(params, x_BxHxW, eps_BxZ, latent_dim: int):
    """Negative ELBO per image: BCE(sum over pixels) + KL(q(z|x) || N(0, I)).

    BCE from logits (``softplus(l) - x * l``) equals ``binary_cross_entropy(sigmoid(l), x)``
    without its log(0) clamp; targets ``x`` may be probabilities (the fresh-per-batch samples).
    """
    logits, mu, logvar = VAE(latent_dim).apply({"params": params}, x_BxHxW[..., None], eps_BxZ)
    logits = logits[..., 0]
    bce = jnp.sum(jax.nn.softplus(logits) - x_BxHxW * logits, axis=(1, 2))
    kl = -0.5 * jnp.sum(1.0 + logvar - mu**2 - jnp.exp(logvar), axis=1)
    return bce + kl
