"""Training one VAE (pure, single seed; the chain vmaps it) and the real-MNIST digit classifier.

``train`` is the authors' loop as one XLA computation: a ``lax.scan`` over epochs of a
``lax.scan`` over batches, Adam with PyTorch's coupled L2 weight decay, the summed BCE + KL loss.
An epoch is a pass over the filled slots of the pool in a fresh random order, in
``ceil(slots / batch_size)`` batches (PyTorch's ``DataLoader`` keeps the last partial batch too);
a batch with no filled slot (the empty tail of an accumulating buffer) changes nothing, Adam's step
count included.

Fresh samples per batch (the authors' code): with a ``sampler`` (the previous generation's
parameters), every slot ``i < num_model`` of a batch is replaced by the sampler's decoder
probabilities for a fresh ``z ~ N(0, I)``; the other slots (real data in the ``keep_real`` regime)
are read from the pool. The model slots of the pool are never read in that mode.

Micro-batches (``vae_cfg.micro_batch_size`` > 0): each batch's gradient is summed over
``batch_size / micro_batch_size`` slices of it in a ``lax.scan``, then one Adam step: the same
step as the whole batch's gradient, its sums in another order (float32 rounding apart). On a CPU
it keeps the step's activations and patch matrices small: at batch 256 one seed's whole-batch
epoch faults in about 220 MB of fresh buffers on every call (38 MB with micro-batches of 32), and
micro-batches train one seed faster on a CPU (docs/performance.md has the measurements and
their commands). Accelerators want the whole batch (0).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from collapse_jax.families.vae import model
from collapse_jax.family import Data

NUM_CLASSES = 10


def optimizer(vae_cfg) -> optax.GradientTransformation:
    """``torch.optim.Adam(lr, weight_decay)``: L2 added to the gradient before the Adam moments."""
    return optax.chain(
        optax.add_decayed_weights(vae_cfg.weight_decay), optax.adam(vae_cfg.learning_rate)
    )


def to_unit(x_u8):
    """uint8 pixels -> float32 in [0, 1]."""
    return x_u8.astype(jnp.float32) / 255.0


def to_pixels(p):
    """Probabilities in [0, 1] -> uint8 (the pool's storage; 1/510 rounding error at most)."""
    return jnp.round(jnp.clip(p, 0.0, 1.0) * 255.0).astype(jnp.uint8)


def decode_chunked(params, z_NxZ, latent_dim: int, chunk: int):
    """``model.decode`` in chunks of ``chunk`` latents, so 60k samples never hold 60k activations."""
    n = z_NxZ.shape[0]
    num_chunks = math.ceil(n / chunk)
    z = jnp.pad(z_NxZ, ((0, num_chunks * chunk - n), (0, 0)))
    p = jax.lax.map(
        lambda zc: model.decode(params, zc, latent_dim), z.reshape(num_chunks, chunk, -1)
    )
    return p.reshape(num_chunks * chunk, model.H, model.W)[:n]


def _loss_and_grad(params, w_B, x_BxHxW, eps_BxZ, vae_cfg):
    """The weighted summed loss of a batch and its gradient, over micro-batches when configured."""
    Z, B, mb = vae_cfg.latent_dim, vae_cfg.batch_size, vae_cfg.micro_batch_size

    def loss_fn(p, w, x, eps):
        return jnp.sum(w * model.per_image_loss(p, x, eps, Z))

    grad_fn = jax.value_and_grad(loss_fn)
    if not mb or mb >= B:
        return grad_fn(params, w_B, x_BxHxW, eps_BxZ)

    def micro(total, batch):
        return jax.tree.map(jnp.add, total, grad_fn(params, *batch)), None

    zero = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
    batches = jax.tree.map(lambda a: a.reshape(B // mb, mb, *a.shape[1:]), (w_B, x_BxHxW, eps_BxZ))
    return jax.lax.scan(micro, zero, batches)[0]


def train(key, data: Data, vae_cfg, sampler=None, num_model: int = 0, temperature: float = 1.0):
    """A fresh VAE trained on ``data``: ``(params, loss_E)``, ``loss_E`` the mean per-image loss of
    each epoch. ``sampler``/``num_model``: fresh samples per batch (module docstring), decoded from
    z ~ N(0, temperature^2 I)."""
    Z, B, E = vae_cfg.latent_dim, vae_cfg.batch_size, vae_cfg.epochs
    N = data.x.shape[0]
    steps = math.ceil(N / B)
    k_init, k_epochs = jax.random.split(key)
    params = model.init_params(k_init, Z)
    opt = optimizer(vae_cfg)
    filled = jnp.maximum(data.weight.sum(), 1.0)

    def epoch(carry, e):
        k_perm, k_steps = jax.random.split(jax.random.fold_in(k_epochs, e))
        # Filled slots in random order, empty ones last; then padded to whole batches.
        u = jax.random.uniform(k_perm, (N,))
        order = jnp.argsort(jnp.where(data.weight > 0, u, 2.0))
        order = jnp.pad(order, (0, steps * B - N)).reshape(steps, B)
        valid = (jnp.arange(steps * B) < N).reshape(steps, B)

        def step(carry, inputs):
            params, opt_state = carry
            b, idx, ok = inputs
            k_z, k_eps = jax.random.split(jax.random.fold_in(k_steps, b))
            w = data.weight[idx] * ok
            x = to_unit(data.x[idx])
            if sampler is not None:
                z = jax.random.normal(k_z, (B, Z))
                if temperature != 1.0:
                    z = z * temperature
                fresh = model.decode(sampler, z, Z)
                x = jnp.where((idx < num_model)[:, None, None], fresh, x)
            eps = jax.random.normal(k_eps, (B, Z))

            loss, grads = _loss_and_grad(params, w, x, eps, vae_cfg)
            updates, new_opt_state = opt.update(grads, opt_state, params)
            new = (optax.apply_updates(params, updates), new_opt_state)
            keep = w.sum() > 0
            carry = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, carry)
            return carry, loss

        carry, loss_steps = jax.lax.scan(step, carry, (jnp.arange(steps), order, valid))
        return carry, loss_steps.sum() / filled

    (params, _), loss_E = jax.lax.scan(epoch, (params, opt.init(params)), jnp.arange(E))
    return params, loss_E


# ---------------------------------------------------------------------------------------------
# A small MLP digit classifier trained once on the real pool: the class balance of each
# generation's samples under it is the tail measure (digits that become rare, then vanish).


class Classifier(NamedTuple):
    params: dict
    heldout_accuracy: jax.Array  # on the held-out part of the real pool


def classifier_logits(params, x_NxHxW):
    h = x_NxHxW.reshape(x_NxHxW.shape[0], -1)
    h = jax.nn.relu(h @ params["w1"] + params["b1"][None, :])
    return h @ params["w2"] + params["b2"][None, :]


def train_classifier(key, images_NxHxW, labels_N, vae_cfg) -> Classifier:
    """Adam on cross-entropy over a random ``1 - classifier_heldout`` share of the real pool."""
    N = images_NxHxW.shape[0]
    D, Hd, B = model.H * model.W, vae_cfg.classifier_hidden, vae_cfg.classifier_batch_size
    n_held = max(1, round(vae_cfg.classifier_heldout * N))
    k_split, k_w1, k_w2, k_epochs = jax.random.split(key, 4)
    perm = jax.random.permutation(k_split, N)
    held, tr = perm[:n_held], perm[n_held:]
    params = {
        "w1": jax.random.normal(k_w1, (D, Hd)) * jnp.sqrt(2.0 / D),
        "b1": jnp.zeros((Hd,)),
        "w2": jax.random.normal(k_w2, (Hd, NUM_CLASSES)) * jnp.sqrt(1.0 / Hd),
        "b2": jnp.zeros((NUM_CLASSES,)),
    }
    opt = optax.adam(vae_cfg.classifier_learning_rate)
    steps = tr.shape[0] // B  # the remainder differs every epoch, so every image is used

    def epoch(carry, e):
        order = jax.random.permutation(jax.random.fold_in(k_epochs, e), tr)[: steps * B]

        def step(carry, idx):
            params, opt_state = carry

            def loss_fn(p):
                logits = classifier_logits(p, to_unit(images_NxHxW[idx]))
                return optax.softmax_cross_entropy_with_integer_labels(logits, labels_N[idx]).mean()

            grads = jax.grad(loss_fn)(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        return jax.lax.scan(step, carry, order.reshape(steps, B))[0], None

    (params, _), _ = jax.lax.scan(
        epoch, (params, opt.init(params)), jnp.arange(vae_cfg.classifier_epochs)
    )
    pred = jnp.argmax(classifier_logits(params, to_unit(images_NxHxW[held])), axis=-1)
    return Classifier(params, jnp.mean(pred == labels_N[held]))
