"""Beam search, greedy and sampling against transformers' generate, brute force, and themselves."""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from collapse_jax import errors
from collapse_jax.families.lm import decode, opt

# ----------------------------------------------------------------------------- a toy model


@dataclasses.dataclass(frozen=True)
class ToyLM:
    """A cached LM whose next-token logits depend on the whole masked prefix and the position.

    Context at slot q: sum over real slots k <= q of emb[token_k] * decay**(q - k); logits are
    tanh(context) @ out + pos[position]. Small enough to enumerate every continuation.
    """

    vocab_size: int = 4
    max_positions: int = 16
    eos_token_id: int = 2
    pad_token_id: int = 1
    decay: float = 0.6

    def init_params(self, key, scale=3.0, dim=8, eos_bias=0.0):
        k1, k2, k3 = jax.random.split(key, 3)
        V = self.vocab_size
        return {
            "emb": jax.random.normal(k1, (V, dim)),
            "out": scale * jax.random.normal(k2, (dim, V)),
            "pos": jax.random.normal(k3, (self.max_positions + 1, V))
            .at[:, self.eos_token_id]
            .add(eos_bias),
        }

    def init_cache(self, batch_size, max_length):
        return {
            "tokens": jnp.zeros((batch_size, max_length), jnp.int32),
            "index": jnp.zeros((), jnp.int32),
        }

    def next_logits(self, params, input_ids_BxL, attention_mask_BxT, position_ids_BxL, cache):
        logits_BxLxV, cache = self.all_logits(
            params, input_ids_BxL, attention_mask_BxT, position_ids_BxL, cache
        )
        return logits_BxLxV[:, -1], cache

    def all_logits(self, params, input_ids_BxL, attention_mask_BxT, position_ids_BxL, cache):
        L = input_ids_BxL.shape[1]
        index = cache["index"]
        tokens_BxT = jax.lax.dynamic_update_slice(
            cache["tokens"], input_ids_BxL.astype(jnp.int32), (0, index)
        )
        T = tokens_BxT.shape[1]
        dist_LxT = (index + jnp.arange(L))[:, None] - jnp.arange(T)[None]
        weight_LxT = jnp.where(dist_LxT >= 0, self.decay ** jnp.maximum(dist_LxT, 0), 0.0)
        weight_BxLxT = weight_LxT[None] * (attention_mask_BxT[:, None, :] != 0)
        context_BxLxD = jnp.einsum("blt,btd->bld", weight_BxLxT, params["emb"][tokens_BxT])
        logits = jnp.tanh(context_BxLxD) @ params["out"] + params["pos"][position_ids_BxL + 1]
        return logits.astype(jnp.float32), {"tokens": tokens_BxT, "index": index + L}


def _toy_logprobs(model, params, prompt, continuation):
    """log_softmax at each new position for prompt + continuation (no padding), float64."""
    ids = np.asarray([list(prompt) + list(continuation)], np.int32)
    cache = model.init_cache(1, ids.shape[1])
    positions = np.arange(ids.shape[1])[None]
    logits, _ = model.all_logits(params, ids, np.ones_like(ids), positions, cache)
    logits = np.asarray(logits[0], np.float64)
    logp = logits - special.logsumexp(logits, axis=-1, keepdims=True)
    return logp[len(prompt) - 1 : len(prompt) - 1 + len(continuation)]


def _brute_force(model, params, prompt, T, min_new, lp, rep):
    """Best continuation by enumerating every sequence of at most T tokens (EOS ends one)."""
    V, eos = model.vocab_size, model.eos_token_id
    best, best_score = None, -np.inf
    for n in range(1, T + 1):
        for seq in itertools.product(range(V), repeat=n):
            if eos in seq[:-1] or (n < T and seq[-1] != eos) or (eos in seq and n <= min_new):
                continue
            logp = _toy_logprobs(model, params, prompt, seq)
            score = 0.0
            for i, tok in enumerate(seq):
                seen = set(prompt) | set(seq[:i])
                lp_i = logp[i, tok]
                # HF's repetition penalty on log-probs: they are negative, so multiply
                score += lp_i * rep if tok in seen else lp_i
            score /= n**lp
            if score > best_score:
                best, best_score = seq, score
    return best, best_score


@pytest.mark.parametrize(
    "min_new, lp, rep, early_stopping",
    [
        (3, 1.0, 1.0, False),
        pytest.param(0, 2.0, 1.5, True, marks=pytest.mark.slow),
        pytest.param(0, 1.0, 1.0, "never", marks=pytest.mark.slow),
        pytest.param(0, -0.5, 1.0, False, marks=pytest.mark.slow),
    ],
)
def test_beam_search_finds_brute_force_best(min_new, lp, rep, early_stopping):
    # With W >= V**T every real partial sequence stays a beam and every finished one ranks in the
    # top W, so beam search is exhaustive and must return the brute-force argmax.
    model = ToyLM()
    params = model.init_params(jax.random.key(1))
    prompt, T = [3, 0, 3], 3
    W = model.vocab_size**T
    out = decode.beam_search(
        model,
        params,
        np.asarray([prompt]),
        num_beams=W,
        max_new_tokens=T,
        min_new_tokens=min_new,
        length_penalty=lp,
        early_stopping=early_stopping,
        repetition_penalty=rep,
    )
    best, best_score = _brute_force(model, params, prompt, T, min_new, lp, rep)
    n = int(out.lengths_B[0])
    assert tuple(np.asarray(out.tokens_BxN[0, :n])) == best
    # float32 accumulation of three log-probs of magnitude < 20: 1e-4 is ~100 ulp
    np.testing.assert_allclose(float(out.scores_B[0]), best_score, rtol=0, atol=1e-4)
    assert np.all(np.asarray(out.tokens_BxN[0, n:]) == model.pad_token_id)


def test_debug_loop_equals_compiled_loop():
    model = ToyLM(vocab_size=11, max_positions=24)
    params = model.init_params(jax.random.key(2), scale=1.5)
    prompts = np.asarray([[1, 1, 5, 7], [3, 4, 9, 2], [1, 6, 6, 8]])
    mask = (np.arange(4)[None] >= np.asarray([[2], [0], [1]])).astype(np.int32)
    kw = dict(num_beams=3, max_new_tokens=7, repetition_penalty=1.3, no_repeat_ngram_size=2)
    fast = decode.beam_search(model, params, prompts, mask, **kw)
    slow = decode.beam_search(model, params, prompts, mask, debug=True, **kw)
    np.testing.assert_array_equal(fast.beam_tokens_BxWxN, slow.beam_tokens_BxWxN)
    np.testing.assert_array_equal(fast.beam_lengths_BxW, slow.beam_lengths_BxW)
    # jit may fuse log_softmax differently from op-by-op dispatch: a few ulp
    np.testing.assert_allclose(fast.beam_scores_BxW, slow.beam_scores_BxW, rtol=1e-5)


def test_left_padding_does_not_change_a_prompt_result():
    # Padding is neither context nor "a token already seen" (repetition penalty, n-gram ban), so
    # a prompt decodes identically alone and left-padded in a batch with a longer one.
    model = ToyLM(vocab_size=11, max_positions=24)
    params = model.init_params(jax.random.key(2), scale=1.5)
    kw = dict(num_beams=3, max_new_tokens=7, repetition_penalty=1.3, no_repeat_ngram_size=2)
    alone = decode.beam_search(model, params, np.asarray([[5, 7, 1]]), **kw)
    padded = decode.beam_search(
        model,
        params,
        np.asarray([[1, 1, 5, 7, 1], [3, 4, 9, 2, 1]]),
        np.asarray([[0, 0, 1, 1, 1], [1] * 5]),
        **kw,
    )
    np.testing.assert_array_equal(alone.beam_tokens_BxWxN[0], padded.beam_tokens_BxWxN[0])
    np.testing.assert_allclose(alone.beam_scores_BxW[0], padded.beam_scores_BxW[0], rtol=1e-5)


@pytest.mark.slow
def test_sample_debug_loop_equals_compiled_loop():
    model = ToyLM(vocab_size=11, max_positions=24)
    params = model.init_params(jax.random.key(2), scale=1.5)
    prompts = np.asarray([[1, 1, 5, 7], [3, 4, 9, 2], [1, 6, 6, 8]])
    mask = (np.arange(4)[None] >= np.asarray([[2], [0], [1]])).astype(np.int32)
    key = jax.random.key(3)
    kw = dict(max_new_tokens=7, temperature=0.7, top_k=5, top_p=0.9)
    fast = decode.sample(model, params, prompts, mask, key=key, **kw)
    slow = decode.sample(model, params, prompts, mask, key=key, debug=True, **kw)
    np.testing.assert_array_equal(fast.tokens_BxN, slow.tokens_BxN)
    np.testing.assert_array_equal(fast.lengths_B, slow.lengths_B)


@pytest.mark.slow
def test_one_beam_equals_greedy():
    # One beam with early_stopping=True stops at its first EOS, exactly like greedy; without
    # a repetition penalty (greedy penalises logits, beam search log-probs, as transformers).
    model = ToyLM(vocab_size=9, max_positions=24)
    params = model.init_params(jax.random.key(4), scale=2.0, eos_bias=2.5)
    prompts = np.asarray([[3, 4, 5], [6, 7, 8], [0, 3, 0], [5, 5, 4]])
    beam = decode.beam_search(
        model, params, prompts, num_beams=1, max_new_tokens=10, early_stopping=True
    )
    greedy = decode.greedy(model, params, prompts, max_new_tokens=10)
    assert np.any(np.asarray(greedy.lengths_B) < 10), "no EOS: the test would be weaker"
    np.testing.assert_array_equal(beam.tokens_BxN, greedy.tokens_BxN)
    np.testing.assert_array_equal(beam.lengths_B, greedy.lengths_B)


@pytest.mark.parametrize(
    "shape, k, levels",
    [
        ((8, 40960), 10, 3),  # beam search's 5 x 8192 candidates; many exact ties
        ((8, 40960), 10, 10**6),  # nearly distinct
        ((2, 3, 50272), 7, 2),  # OPT-125m's vocabulary: padded tail, extra leading axis
        ((4, 37), 3, 2),  # too small to chunk: plain lax.top_k
    ],
)
def test_chunked_top_k_equals_lax_top_k_ties_included(shape, k, levels):
    x = np.random.default_rng(sum(shape)).integers(0, levels, shape).astype(np.float32)
    x[..., 0, :5] = -np.inf  # banned tokens (-inf from the logits processors)
    x[..., 1, -3:] = levels  # the maximum at the very end of a row
    want_values, want_idx = jax.lax.top_k(x, k)
    got_values, got_idx = jax.jit(decode.top_k, static_argnums=1)(x, k)
    np.testing.assert_array_equal(got_values, want_values)
    np.testing.assert_array_equal(got_idx, want_idx)


def test_too_long_raises_config_error():
    model = ToyLM(max_positions=16)
    params = model.init_params(jax.random.key(0))
    with pytest.raises(errors.ConfigError, match="max_new_tokens"):
        decode.beam_search(model, params, np.zeros((1, 10)), num_beams=2, max_new_tokens=7)
    with pytest.raises(errors.ConfigError, match="max_new_tokens"):
        decode.sample(model, params, np.zeros((1, 10)), key=jax.random.key(0), max_new_tokens=7)
    with pytest.raises(errors.ConfigError, match="prompt_mask_BxL"):
        decode.greedy(model, params, np.zeros((1, 3)), np.asarray([[1, 1, 0]]), max_new_tokens=2)


def test_warpers_match_transformers():
    torch = pytest.importorskip("torch")
    from transformers.generation import logits_process as lp

    logits_RxV = np.random.default_rng(0).normal(size=(6, 50)).astype(np.float32) * 3
    # One setting with all three warpers (each setting is a compile); top_p=0.6 after top_k=7
    # and temperature 1.3 removes tokens inside the top 7, so every branch is exercised.
    for temperature, top_k, top_p in [(1.3, 7, 0.6)]:
        s = decode.Settings(max_new_tokens=1, temperature=temperature, top_k=top_k, top_p=top_p)
        got = np.asarray(jax.jit(decode.warp, static_argnames="s")(jnp.asarray(logits_RxV), s))
        want = torch.tensor(logits_RxV)
        if temperature != 1.0:
            want = lp.TemperatureLogitsWarper(temperature)(None, want)
        if top_k:
            want = lp.TopKLogitsWarper(top_k)(None, want)
        if top_p < 1.0:
            want = lp.TopPLogitsWarper(top_p)(None, want)
        want = want.numpy()
        assert np.any(np.isfinite(got).sum(-1) < top_k)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=1e-6)


@pytest.mark.slow
def test_sample_frequencies_follow_warped_distribution():
    model = ToyLM(vocab_size=6, max_positions=8)
    params = model.init_params(jax.random.key(5), scale=1.0)
    n = 4000
    prompts = np.tile(np.asarray([[3, 0, 4]]), (n, 1))
    kw = dict(temperature=0.8, top_k=4, top_p=0.95)
    out = decode.sample(model, params, prompts, key=jax.random.key(6), max_new_tokens=1, **kw)
    logits, _ = model.next_logits(
        params, prompts[:1], np.ones((1, 3)), np.arange(3)[None], model.init_cache(1, 3)
    )
    s = decode.Settings(max_new_tokens=1, greedy=False, **kw)
    probs = np.asarray(jax.nn.softmax(decode.warp(logits, s)), np.float64)[0]
    counts = np.bincount(np.asarray(out.tokens_BxN[:, 0]), minlength=model.vocab_size)
    assert np.all(counts[probs == 0] == 0)
    keep = probs > 0
    # Pearson chi-square on n draws; p < 1e-3 would reject a correct sampler once in 1000 runs.
    p = stats.chisquare(counts[keep], n * probs[keep] / probs[keep].sum()).pvalue
    assert p > 1e-3


# ----------------------------------------------------------------------------- transformers parity

TINY = dict(
    vocab_size=61,
    hidden_size=32,
    num_hidden_layers=2,
    ffn_dim=48,
    num_attention_heads=4,
    max_position_embeddings=40,
)


@pytest.fixture(scope="module")
def tiny_opt():
    torch = pytest.importorskip("torch")
    import transformers

    from collapse_jax.families.lm import convert

    hf_config = transformers.OPTConfig(**TINY, dropout=0.0, init_std=0.3)
    hf_config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.OPTForCausalLM(hf_config).eval()
    with torch.no_grad():
        # Peaked next-token distributions (init_std 0.3) keep score gaps far above the 1e-6
        # float noise between the two implementations; a larger EOS row makes EOS common.
        emb = model.model.decoder.embed_tokens.weight
        emb[hf_config.eos_token_id] *= 3.0
    config = opt.OPTConfig.from_hf(hf_config)
    state_dict = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    params = convert.params_from_state_dict(state_dict, config)
    return model, config, params


def _hf_generate(model, prompts_BxL, mask_BxL, max_new_tokens, **kw):
    import torch

    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor(prompts_BxL),
            attention_mask=torch.tensor(mask_BxL),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            return_dict_in_generate=True,
            output_scores=True,
            **kw,
        )
    new = out.sequences[:, prompts_BxL.shape[1] :].numpy()
    width = ((0, 0), (0, max_new_tokens - new.shape[1]))
    return np.pad(new, width, constant_values=model.config.pad_token_id), out


def _prompts(batch, length, vocab, seed, pad_lengths=None):
    ids = np.random.default_rng(seed).integers(3, vocab, (batch, length))
    ids[:, 0] = 2  # OPT prompts start with </s>
    mask = np.ones_like(ids)
    for row, n in enumerate(pad_lengths or []):
        mask[row, :n] = 0
        ids[row, :n] = 1
        ids[row, n] = 2
    return ids, mask


BEAM_CASES = {
    "defaults": dict(num_beams=3, max_new_tokens=8),
    "paper_exact_length": dict(num_beams=5, max_new_tokens=6, min_new_tokens=6),
    "repetition_penalty": dict(num_beams=4, max_new_tokens=8, repetition_penalty=2.0),
    "length_penalty": dict(num_beams=3, max_new_tokens=9, min_new_tokens=2, length_penalty=0.3),
    "early_stopping": dict(num_beams=3, max_new_tokens=8, early_stopping=True, length_penalty=2.0),
    "never": dict(num_beams=3, max_new_tokens=8, early_stopping="never", length_penalty=-1.0),
    "no_repeat_ngram": dict(num_beams=3, max_new_tokens=9, no_repeat_ngram_size=2),
}
# Each case compiles its own loop (~5-10 s on the shared 2-core CPU): two in the default suite
# (the paper's exact-length setting with left padding, the ablation's repetition penalty).
FAST_CASES = ("paper_exact_length", "repetition_penalty")


@pytest.mark.parametrize(
    "case",
    [c if c in FAST_CASES else pytest.param(c, marks=pytest.mark.slow) for c in sorted(BEAM_CASES)],
)
def test_beam_search_matches_transformers(tiny_opt, case):
    model, config, params = tiny_opt
    kw = BEAM_CASES[case]
    # Left padding only where both sides count the same tokens (see decode's docstring).
    padding = None if "repetition_penalty" in kw or "no_repeat_ngram_size" in kw else [0, 2, 4]
    prompts, mask = _prompts(3, 7, config.vocab_size, seed=len(case), pad_lengths=padding)
    want, hf = _hf_generate(model, prompts, mask, **kw)
    ours = decode.beam_search(decode.opt_model(config), params, prompts, mask, **kw)
    np.testing.assert_array_equal(np.asarray(ours.tokens_BxN), want)
    # float32 log-prob sums over <= 9 tokens from logits agreeing to 1e-5
    np.testing.assert_allclose(ours.scores_B, hf.sequences_scores.numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "kw",
    [
        dict(repetition_penalty=1.7, no_repeat_ngram_size=3),
        pytest.param({}, marks=pytest.mark.slow),
    ],
)
def test_greedy_matches_transformers(tiny_opt, kw):
    model, config, params = tiny_opt
    prompts, mask = _prompts(
        3, 6, config.vocab_size, seed=7, pad_lengths=[0, 1, 3] if not kw else None
    )
    want, _ = _hf_generate(model, prompts, mask, 10, num_beams=1, **kw)
    ours = decode.greedy(decode.opt_model(config), params, prompts, mask, max_new_tokens=10, **kw)
    np.testing.assert_array_equal(np.asarray(ours.tokens_BxN), want)
