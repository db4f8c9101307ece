"""The paper's convolutional VAE for MNIST (Shumailov et al., Sec. 4 and the authors' code).

encoder  28x28x1 -conv 4x4/2 p1-> 14x14x64 -ReLU- conv 4x4/2 p1-> 7x7x128 -ReLU- flatten
         -> linear mu (20), linear logvar (20)
decoder  z (20) -linear-> 6272 -ReLU- 7x7x128 -convT 4x4/2 p1-> 14x14x64 -ReLU- convT 4x4/2 p1
         -> 28x28x1 -> sigmoid
647,081 parameters. Loss: BCE(sum) + KL(sum) over the batch, as the authors' PyTorch code.

Images are NHWC (XLA's native layout on CPU and GPU); flattening is therefore (H, W, C) where
PyTorch flattens (C, H, W): the same function up to a fixed permutation of the linear weights.
``transpose_kernel=True`` and padding ``k - 1 - p = 2`` make ``nn.ConvTranspose`` compute exactly
PyTorch's ``ConvTranspose2d(k=4, s=2, p=1)``.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

H = W = 28
LATENT_HW = 7


class Encoder(nn.Module):
    latent_dim: int

    @nn.compact
    def __call__(self, x_BxHxWx1):
        h = nn.relu(nn.Conv(64, (4, 4), (2, 2), padding=((1, 1), (1, 1)), name="conv1")(x_BxHxWx1))
        h = nn.relu(nn.Conv(128, (4, 4), (2, 2), padding=((1, 1), (1, 1)), name="conv2")(h))
        h = h.reshape(h.shape[0], -1)
        return nn.Dense(self.latent_dim, name="mu")(h), nn.Dense(self.latent_dim, name="logvar")(h)


class Decoder(nn.Module):
    @nn.compact
    def __call__(self, z_BxZ):
        """Pixel logits ``B x 28 x 28 x 1`` (the sigmoid is applied by the caller or the loss)."""
        h = nn.relu(nn.Dense(128 * LATENT_HW * LATENT_HW, name="fc")(z_BxZ))
        h = h.reshape(h.shape[0], LATENT_HW, LATENT_HW, 128)
        h = nn.ConvTranspose(
            64, (4, 4), (2, 2), padding=((2, 2), (2, 2)), transpose_kernel=True, name="deconv1"
        )(h)
        h = nn.relu(h)
        return nn.ConvTranspose(
            1, (4, 4), (2, 2), padding=((2, 2), (2, 2)), transpose_kernel=True, name="deconv2"
        )(h)


class VAE(nn.Module):
    latent_dim: int = 20

    def setup(self):
        self.encoder = Encoder(self.latent_dim)
        self.decoder = Decoder()

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
