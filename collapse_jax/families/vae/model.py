"""The paper's convolutional VAE for MNIST (Shumailov et al., Sec. 4 and the authors' code).

encoder  28x28x1 -conv 4x4/2 p1-> 14x14x64 -ReLU- conv 4x4/2 p1-> 7x7x128 -ReLU- flatten
         -> linear mu (20), linear logvar (20)
decoder  z (20) -linear-> 6272 -ReLU- 7x7x128 -convT 4x4/2 p1-> 14x14x64 -ReLU- convT 4x4/2 p1
         -> 28x28x1 -> sigmoid
647,081 parameters. Loss: BCE(sum) + KL(sum) over the batch, as the authors' PyTorch code.

Images are NHWC (XLA's native layout on CPU and GPU); flattening is therefore (H, W, C) where
PyTorch flattens (C, H, W): the same function up to a fixed permutation of the linear weights.
The convolutions are matmuls by default (``conv_s2``, ``conv_transpose_s2``): XLA:CPU's own
convolutions train this model about 8x slower (18.7 s against 2.4 s for one 256-image step on
the same busy 2-core machine), and an im2col of 16 strided slices, whose gradient is 16
interior-padded pads, spent 3/4 of a step in those pads (jax.profiler trace). Space-to-depth
(2x2 pixel blocks) turns the stride-2 4x4 conv into a stride-1 2x2 one: 4 contiguous slices,
edge pads in the gradient, 4x less CPU time per step than that im2col, the same GEMMs on a GPU.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

H = W = 28
LATENT_HW = 7


def conv_s2(x_BxHxWxC, kernel_4x4xCxO):
    """``Conv(k=4, s=2, p=1)`` as space-to-depth, a 2x2 im2col and one matmul.

    With the input padded and regrouped into 2x2 pixel blocks (``s[i] = xp[2i : 2i + 2]``), tap
    ``kh = 2a + ph`` reads block ``i + a`` at phase ``ph``: a 2x2 stride-1 conv on 4C channels. Its
    patches are 4 contiguous slices, and the gradient only edge pads (no strided slices, no
    interior padding, which XLA:CPU runs 10-30x slower than a copy; see the module docstring).
    """
    B, Hh, Ww, C = x_BxHxWxC.shape
    O = kernel_4x4xCxO.shape[-1]
    Ho, Wo = Hh // 2, Ww // 2
    xp = jnp.pad(x_BxHxWxC, ((0, 0), (1, 1), (1, 1), (0, 0)))
    s = xp.reshape(B, Ho + 1, 2, Wo + 1, 2, C).transpose(0, 1, 3, 2, 4, 5)
    s = s.reshape(B, Ho + 1, Wo + 1, 4 * C)  # channels (ph, pw, c)
    patches = jnp.concatenate(
        [s[:, a : a + Ho, b : b + Wo, :] for a in range(2) for b in range(2)], axis=-1
    )  # channels (a, b, ph, pw, c)
    k = kernel_4x4xCxO.reshape(2, 2, 2, 2, C, O).transpose(0, 2, 1, 3, 4, 5)
    return patches @ k.reshape(16 * C, O)


def conv_transpose_s2(x_BxHxWxC, kernel_4x4xOxC):
    """PyTorch's ``ConvTranspose2d(k=4, s=2, p=1)``: ``out[2i - 1 + k] += x[i] w[k]``.

    That is the transpose (the input gradient) of ``conv_s2`` with the same kernel, so it is built
    as one: a matmul and 4 edge-padded adds, and its own gradient is ``conv_s2`` again.
    """
    B, Hh, Ww, _ = x_BxHxWxC.shape
    O = kernel_4x4xOxC.shape[2]
    out = jax.ShapeDtypeStruct((B, 2 * Hh, 2 * Ww, O), x_BxHxWxC.dtype)
    (y,) = jax.linear_transpose(lambda a: conv_s2(a, kernel_4x4xOxC), out)(x_BxHxWxC)
    return y


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
