"""Every decoder on GPT-2 and on the Llama architecture, token for token against transformers'
``generate`` with the same settings (tests/test_decode.py does the same for OPT).

Sampling compares under the same randomness: ``torch.multinomial`` is replaced, for the
duration of ``generate``, by the draw our sampler makes at that row and step
(``jax.random.categorical`` with the row's key folded with the step) from transformers' own
warped probabilities. Equal tokens then mean equal processors, warpers and models, step by step.
"""

import jax
import numpy as np
import pytest
import transformers

from collapse_jax.families.lm import convert, decode

torch = pytest.importorskip("torch")

# Peaked next-token distributions (init std 0.3) keep score gaps far above the 1e-6 float noise
# between the two implementations, so argmax and beam ranks cannot flip on rounding.
MODELS = {
    "gpt2": lambda: transformers.GPT2Config(
        vocab_size=61,
        n_positions=40,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_inner=48,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        initializer_range=0.3,
        bos_token_id=2,
        eos_token_id=2,
    ),
    "llama": lambda: transformers.LlamaConfig(
        vocab_size=61,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=40,
        initializer_range=0.3,
        tie_word_embeddings=False,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
    ),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def tiny_lm(request, tmp_path_factory):
    """(transformers model, our config, our params) of one architecture, via an HF directory."""
    hf_config = MODELS[request.param]()
    hf_config._attn_implementation = "eager"
    torch.manual_seed(0)
    cls = transformers.GPT2LMHeadModel if request.param == "gpt2" else transformers.LlamaForCausalLM
    model = cls(hf_config).eval()
    with torch.no_grad():
        model.get_input_embeddings().weight[hf_config.eos_token_id] *= 3.0  # EOS common
    path = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(path)
    config, params = convert.load_pretrained(path)
    return model, config, params


def _prompts(batch, length, vocab, seed, pad_lengths=None):
    ids = np.random.default_rng(seed).integers(3, vocab, (batch, length))
    mask = np.ones_like(ids)
    for row, n in enumerate(pad_lengths or []):
        mask[row, :n] = 0
        ids[row, :n] = 1
    return ids, mask


def _hf_generate(model, prompts_BxL, mask_BxL, max_new_tokens, **kw):
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor(prompts_BxL),
            attention_mask=torch.tensor(mask_BxL),
            max_new_tokens=max_new_tokens,
            return_dict_in_generate=True,
            output_scores=True,
            pad_token_id=model.config.pad_token_id or model.config.eos_token_id,
            **kw,
        )
    new = out.sequences[:, prompts_BxL.shape[1] :].numpy()
    pad = model.config.pad_token_id or model.config.eos_token_id
    width = ((0, 0), (0, max_new_tokens - new.shape[1]))
    return np.pad(new, width, constant_values=pad), out


BEAM_CASES = {
    # The paper's setting (exactly N new tokens, EOS blocked) with left padding and a ban.
    "paper_exact_length_suppressed": dict(
        num_beams=4, max_new_tokens=6, min_new_tokens=6, suppress_tokens=(5, 7)
    ),
    "defaults": dict(num_beams=3, max_new_tokens=8),
    "repetition_penalty": dict(num_beams=3, max_new_tokens=8, repetition_penalty=2.0),
}
FAST = ("paper_exact_length_suppressed",)


@pytest.mark.parametrize(
    "case", [c if c in FAST else pytest.param(c, marks=pytest.mark.slow) for c in BEAM_CASES]
)
def test_beam_search_matches_generate(tiny_lm, case):
    model, config, params = tiny_lm
    kw = dict(BEAM_CASES[case])
    padding = None if "repetition_penalty" in kw else [0, 2, 4]
    prompts, mask = _prompts(3, 7, config.vocab_size, seed=len(case), pad_lengths=padding)
    hf_kw = {**kw, "suppress_tokens": list(kw.get("suppress_tokens", ())) or None}
    want, hf = _hf_generate(model, prompts, mask, do_sample=False, **hf_kw)
    ours = decode.beam_search(decode.causal_lm(config), params, prompts, mask, **kw)
    np.testing.assert_array_equal(np.asarray(ours.tokens_BxN), want)
    # float32 log-prob sums over <= 8 tokens from logits agreeing to 1e-5
    np.testing.assert_allclose(ours.scores_B, hf.sequences_scores.numpy(), rtol=0, atol=1e-4)
    if "suppress_tokens" in kw:
        assert not np.isin(want, kw["suppress_tokens"]).any()


@pytest.mark.parametrize(
    "kw",
    [
        dict(repetition_penalty=1.7, no_repeat_ngram_size=3),
        pytest.param(dict(suppress_tokens=(4,)), marks=pytest.mark.slow),
    ],
)
def test_greedy_matches_generate(tiny_lm, kw):
    model, config, params = tiny_lm
    padding = None if "repetition_penalty" in kw else [0, 1, 3]
    prompts, mask = _prompts(3, 6, config.vocab_size, seed=7, pad_lengths=padding)
    hf_kw = (
        {**kw, "suppress_tokens": list(kw["suppress_tokens"])} if "suppress_tokens" in kw else kw
    )
    want, _ = _hf_generate(model, prompts, mask, 10, do_sample=False, num_beams=1, **hf_kw)
    ours = decode.greedy(decode.causal_lm(config), params, prompts, mask, max_new_tokens=10, **kw)
    np.testing.assert_array_equal(np.asarray(ours.tokens_BxN), want)


class SharedDraws:
    """``torch.multinomial`` replaced by our sampler's draw for (row, step) from the given
    probabilities; counts the steps."""

    def __init__(self, key, rows: int):
        self.keys_B = decode.row_keys(key, 0, rows)
        self.step = 0

    def __call__(self, probs_BxV, num_samples):
        assert num_samples == 1
        with np.errstate(divide="ignore"):  # banned tokens: probability 0, log -inf
            logp = np.log(probs_BxV.double().numpy()).astype(np.float32)
        step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(self.keys_B, self.step)
        tokens = jax.vmap(jax.random.categorical)(step_keys, logp)
        self.step += 1
        return torch.tensor(np.asarray(tokens), dtype=torch.long)[:, None]


SAMPLE_CASES = {
    "temperature_top_k_top_p_suppressed": dict(
        temperature=0.8, top_k=10, top_p=0.9, suppress_tokens=(3, 4)
    ),
    "pure": dict(temperature=1.0, top_k=0, top_p=1.0),
    "min_new_tokens": dict(temperature=1.3, top_k=0, top_p=1.0, min_new_tokens=8),
}


@pytest.mark.parametrize(
    "case",
    [
        c if c == "temperature_top_k_top_p_suppressed" else pytest.param(c, marks=pytest.mark.slow)
        for c in SAMPLE_CASES
    ],
)
def test_sampling_matches_generate_under_shared_draws(tiny_lm, case, monkeypatch):
    model, config, params = tiny_lm
    kw = SAMPLE_CASES[case]
    prompts, mask = _prompts(4, 6, config.vocab_size, seed=3, pad_lengths=[0, 2, 0, 5])
    key = jax.random.key(11)
    draws = SharedDraws(key, prompts.shape[0])
    monkeypatch.setattr(torch, "multinomial", draws)
    hf_kw = {**kw}
    if "suppress_tokens" in kw:
        hf_kw["suppress_tokens"] = list(kw["suppress_tokens"])
    want, _ = _hf_generate(model, prompts, mask, 8, do_sample=True, num_beams=1, **hf_kw)
    monkeypatch.undo()
    assert draws.step >= 2
    ours = decode.sample(
        decode.causal_lm(config), params, prompts, mask, key=key, max_new_tokens=8, **kw
    )
    np.testing.assert_array_equal(np.asarray(ours.tokens_BxN), want)
    # Not a degenerate comparison: different keys give different continuations.
    other = decode.sample(
        decode.causal_lm(config),
        params,
        prompts,
        mask,
        key=jax.random.key(12),
        max_new_tokens=8,
        **kw,
    )
    assert not np.array_equal(np.asarray(other.tokens_BxN), want)
