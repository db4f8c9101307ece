"""What the LM parity tests of every architecture share (tests/test_opt.py,
tests/test_lm_architectures.py): left-padded inputs, and the cached decoding paths (prefill then
one token a step; a prompt forked into rows as beam search does) run beside one uncached forward
of the same tokens, so a test compares the logits of the real tokens."""

import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax.families.lm import nn

forward = jax.jit(nn.forward, static_argnames="config")


def ids_and_left_padded_mask(batch, length, vocab, seed=0):
    ids_BxL = np.random.default_rng(seed).integers(3, vocab, (batch, length))
    mask_BxL = np.ones((batch, length), np.int64)
    mask_BxL[1, :3] = 0  # left padding of different lengths, one row all but one token
    mask_BxL[2, : length - 1] = 0
    ids_BxL[mask_BxL == 0] = 1
    return ids_BxL, mask_BxL


def cached_and_full(params, config, b=3, prompt=5, new=4, slots=12):
    """``(cached, full, cache)``: the logits of the real tokens of ``b`` left-padded rows, from a
    cache of ``slots`` filled by a prefill of ``prompt`` tokens then ``new`` single-token steps,
    and from one uncached forward."""
    ids_BxL, mask_BxL = ids_and_left_padded_mask(b, prompt + new, config.vocab_size, seed=1)
    mask_BxL[:, prompt:] = 1
    mask_BxL[2, prompt - 1] = 1
    full_BxLxV, _ = forward(params, config, ids_BxL, mask_BxL)
    positions_BxL = nn.default_position_ids(jnp.asarray(mask_BxL))
    cache = nn.init_cache(config, b, slots)
    mask_BxT = np.zeros((b, slots), np.int64)
    pieces, start = [], 0
    for stop in [prompt, *range(prompt + 1, prompt + new + 1)]:
        mask_BxT[:, start:stop] = mask_BxL[:, start:stop]
        logits, cache = forward(
            params,
            config=config,
            input_ids_BxL=ids_BxL[:, start:stop],
            attention_mask_BxT=mask_BxT,
            position_ids_BxL=positions_BxL[:, start:stop],
            cache=cache,
        )
        pieces.append(logits)
        start = stop
    real = mask_BxL == 1
    cached_BxLxV = np.asarray(jnp.concatenate(pieces, axis=1))
    return cached_BxLxV[real], np.asarray(full_BxLxV)[real], cache


def forked_and_full(params, config, p=3, rows=2, prompt=5, new=2):
    """``(forked, full, cache)``: the last token's logits of ``p`` left-padded prompts forked into
    ``rows`` rows each (``KVCache.fork``), every row then feeding its own ``new`` tokens, and of
    one uncached forward of each row's whole sequence."""
    ids_PxL, mask_PxL = ids_and_left_padded_mask(p, prompt, config.vocab_size, seed=2)
    new_RxN = np.random.default_rng(3).integers(3, config.vocab_size, (p * rows, new))
    positions_PxL = nn.default_position_ids(jnp.asarray(mask_PxL))
    _, cache = forward(
        params,
        config=config,
        input_ids_BxL=ids_PxL,
        attention_mask_BxT=mask_PxL,
        position_ids_BxL=positions_PxL,
        cache=nn.init_cache(config, p, prompt),
    )
    cache = cache.fork(rows, new)
    assert cache.prefix_length == prompt and cache.max_length == new
    mask_RxT = np.concatenate([np.repeat(mask_PxL, rows, 0), np.zeros((p * rows, new))], 1)
    first_R = np.repeat(np.asarray(positions_PxL)[:, -1], rows) + 1
    for s in range(new):
        mask_RxT[:, prompt + s] = 1
        logits_Rx1xV, cache = forward(
            params,
            config=config,
            input_ids_BxL=new_RxN[:, s : s + 1],
            attention_mask_BxT=mask_RxT,
            position_ids_BxL=(first_R + s)[:, None],
            cache=cache,
        )
    full_ids = np.concatenate([np.repeat(ids_PxL, rows, 0), new_RxN], 1)
    full_mask = np.concatenate([np.repeat(mask_PxL, rows, 0), np.ones_like(new_RxN)], 1)
    want_RxLxV, _ = forward(params, config, full_ids, full_mask)
    return np.asarray(logits_Rx1xV[:, 0]), np.asarray(want_RxLxV[:, -1]), cache
