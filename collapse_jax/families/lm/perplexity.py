"""Perplexity of token blocks: of a whole split, and of every block on its own.

A block of L tokens has L - 1 prediction targets (the first token has no context), as HF's causal
LM loss. The per-block value is ``exp(mean token loss of that block)`` and does not depend on the
batch it was scored in: the authors' code averaged the loss per batch, which blurs the paper's
per-sequence perplexity histograms (Fig. 4). Every block has the same number of targets, so the
split perplexity ``exp(token-weighted mean loss)`` is the exponential of the mean per-block loss.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from collapse_jax.families.lm import nn


def token_losses(
    params,
    config,
    blocks_BxL: jax.Array,
    *,
    deterministic=True,
    dropout_key=None,
    remat_policy: str = "none",
) -> jax.Array:
    """Next-token negative log-likelihoods ``loss_Bx(L-1)`` in float32 (any architecture's
    config; ``remat_policy``: ``nn.REMAT_POLICIES``, rematerialising each layer for training)."""
    model = nn.bind(params, config)
    hidden_BxLxW, _ = model(
        blocks_BxL,
        deterministic=deterministic,
        dropout_key=dropout_key,
        remat_policy=remat_policy,
    )
    # The last position predicts nothing: dropping it before the LM head saves 1/L of the head
    # and a copy of the (B, L, V) logits (and its padded gradient) that slicing them would make.
    logits_BxTxV = model.logits(hidden_BxLxW[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, blocks_BxL[:, 1:])


@functools.partial(jax.jit, static_argnames="config")
def _block_losses_B(params, config, blocks_BxL: jax.Array) -> jax.Array:
    return token_losses(params, config, blocks_BxL).mean(axis=-1)


def padded_batches(x_NxL, batch_size: int):
    """Yield ``(batch_BxL, real)`` covering ``x_NxL`` in order, every batch ``batch_size`` rows.

    The last batch is padded with copies of row 0 so one compiled shape serves all of them; the
    caller keeps the first ``real`` rows of each result.
    """
    x_NxL = np.asarray(x_NxL)
    n = x_NxL.shape[0]
    for start in range(0, n, batch_size):
        batch = x_NxL[start : start + batch_size]
        real = batch.shape[0]
        if real < batch_size:
            pad = np.broadcast_to(x_NxL[:1], (batch_size - real, *x_NxL.shape[1:]))
            batch = np.concatenate([batch, pad])
        yield batch, real


def block_losses(params, config, blocks_NxL, batch_size: int) -> np.ndarray:
    """Mean token loss of every block, ``loss_N`` (float64 on the host).

    One compiled shape (``padded_batches``), so each block's value is computed alone and is the
    same for any ``batch_size``.
    """
    blocks_NxL = np.asarray(blocks_NxL, np.int32)
    if blocks_NxL.shape[0] == 0:
        return np.zeros((0,), np.float64)
    # Dispatch every batch before reading any back, so the device never waits on the host.
    losses = [
        (_block_losses_B(params, config, jnp.asarray(batch)), real)
        for batch, real in padded_batches(blocks_NxL, batch_size)
    ]
    return np.concatenate([np.asarray(l)[:real] for l, real in jax.device_get(losses)]).astype(
        np.float64
    )


def sequence_perplexities(params, config, blocks_NxL, batch_size: int) -> np.ndarray:
    """``exp`` of each block's mean token loss: ``ppl_N``."""
    return np.exp(block_losses(params, config, blocks_NxL, batch_size))


def split_perplexity(params, config, blocks_NxL, batch_size: int) -> float:
    """Perplexity of a split: ``exp`` of the mean loss over all its target tokens."""
    return float(np.exp(block_losses(params, config, blocks_NxL, batch_size).mean()))


def unigram_perplexity(train_blocks_NxL, eval_blocks_MxL, vocab_size: int) -> float:
    """Perplexity of the add-one smoothed unigram of the training tokens on the eval targets.

    The baseline a language model must beat; scored on the same L - 1 targets per block.
    """
    counts_V = np.bincount(np.asarray(train_blocks_NxL).ravel(), minlength=vocab_size) + 1.0
    log_p_V = np.log(counts_V) - np.log(counts_V.sum())
    targets = np.asarray(eval_blocks_MxL)[:, 1:].ravel()
    return float(np.exp(-log_p_V[targets].mean()))
