"""GPT-2 and the Llama architecture against transformers' PyTorch models loaded from HF
directories, their KV caches against their own full forward, and their HF import/export.

Every model is tiny and random, saved by transformers (``save_pretrained``) and read back by
``convert.load_pretrained``: the directory path users take, config.json included.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import transformers

from collapse_jax import errors
from collapse_jax.families.lm import architectures, convert, gpt2, llama, nn
from tests.lm_parity import cached_and_full, forked_and_full, ids_and_left_padded_mask
from tests.lm_parity import forward as _forward

# Float32 parity bound, as tests/test_opt.py: the two implementations differ in summation order
# only (<= 6e-8 measured on these logits of magnitude ~1); a semantic slip moves them by far more,
# given weights large enough (init std 0.2) that attention shapes the logits. Measured once by
# breaking the port: rotate_half's halves swapped 0.11-0.74 (every Llama case), query head h
# reading key/value head h % K instead of h // (H / K) 2.0 (every case with 1 < K < H), GPT-2's
# attn.c_proj Conv1D weight transposed on import 0.96 (all of them transposed: a one-line shape
# error at load).
ATOL = 1e-5
INIT_STD = 0.2

TINY_GPT2 = dict(vocab_size=97, n_positions=40, n_embd=32, n_layer=2, n_head=4, n_inner=48)
TINY_LLAMA = dict(
    vocab_size=97,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=40,
    pad_token_id=1,
    bos_token_id=2,
    eos_token_id=2,
)
NO_DROPOUT = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)

GPT2_VARIANTS = {
    "default": dict(),
    # GPT-2 medium+ and Mistral-style scaling: 1 / (layer + 1) on the scores.
    "inverse_layer_scale": dict(scale_attn_by_inverse_layer_idx=True, activation_function="gelu"),
}
LLAMA_VARIANTS = {
    # Query heads per key/value head: 1 (plain multi-head), 2, 4 (multi-query).
    "mha_untied": dict(num_key_value_heads=4, tie_word_embeddings=False),
    "gqa2_tied": dict(num_key_value_heads=2, tie_word_embeddings=True),
    "mqa_bias": dict(num_key_value_heads=1, attention_bias=True, mlp_bias=True),
    # Every rope type transformers computes from the config alone (longrope needs per-dimension
    # factor lists; not supported here).
    "rope_linear": dict(
        num_key_value_heads=2, rope_parameters=dict(rope_type="linear", factor=2.0)
    ),
    "rope_dynamic": dict(
        num_key_value_heads=2, rope_parameters=dict(rope_type="dynamic", factor=2.0)
    ),
    "rope_llama3": dict(
        num_key_value_heads=2,
        rope_parameters=dict(
            rope_type="llama3",
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=16,
            rope_theta=500.0,
        ),
    ),
    "rope_yarn": dict(
        num_key_value_heads=2,
        rope_parameters=dict(
            rope_type="yarn", factor=4.0, original_max_position_embeddings=10, rope_theta=500.0
        ),
    ),
}


def hf_model(kind: str, fields: dict, seed: int = 0, noise: float = 0.5):
    """A random tiny transformers model (eager attention, biases and norms randomised so that a
    swapped bias or norm shows)."""
    torch = pytest.importorskip("torch")
    if kind == "gpt2":
        config = transformers.GPT2Config(
            **TINY_GPT2, **NO_DROPOUT, initializer_range=INIT_STD, **fields
        )
        cls = transformers.GPT2LMHeadModel
    else:
        config = transformers.LlamaConfig(**TINY_LLAMA, initializer_range=INIT_STD, **fields)
        cls = transformers.LlamaForCausalLM
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = cls(config).eval()
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith("bias") or "norm" in name or ".ln_" in name:
                tensor.normal_(0.0, noise)
    return model


def load_through_directory(model, path):
    """transformers' save, our load: ``(config, params)``."""
    model.save_pretrained(path)
    return convert.load_pretrained(path)


def hf_logits(model, ids_BxL, mask_BxL):
    """transformers' logits with ``generate``'s positions (``cumsum(mask) - 1``, 0 on padding):
    a plain forward would number left-padded rows from their padding."""
    import torch

    positions_BxL = np.where(mask_BxL == 1, np.cumsum(mask_BxL, axis=1) - 1, 0)
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(ids_BxL),
            attention_mask=torch.tensor(mask_BxL),
            position_ids=torch.tensor(positions_BxL),
        )
    return out.logits.numpy()


@pytest.mark.parametrize(
    "kind, variant",
    [("gpt2", v) for v in GPT2_VARIANTS] + [("llama", v) for v in LLAMA_VARIANTS],
)
def test_logits_match_transformers_from_an_hf_directory(kind, variant, tmp_path):
    fields = (GPT2_VARIANTS if kind == "gpt2" else LLAMA_VARIANTS)[variant]
    model = hf_model(kind, fields)
    config, params = load_through_directory(model, tmp_path)
    assert config.architecture == kind
    if kind == "llama":
        assert config.num_kv_heads == model.config.num_key_value_heads
        assert ("lm_head" in params) != model.config.tie_word_embeddings
    ids_BxL, mask_BxL = ids_and_left_padded_mask(4, 11, model.config.vocab_size)
    want = hf_logits(model, ids_BxL, mask_BxL)
    got, cache = _forward(params, config=config, input_ids_BxL=ids_BxL, attention_mask_BxT=mask_BxL)
    assert cache is None and got.dtype == jnp.float32
    # Padded positions too: both sides attend uniformly from a fully masked row.
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_cached_prefill_and_steps_equal_full_forward(kind):
    config = gpt2.tiny_config(**NO_DROPOUT) if kind == "gpt2" else llama.tiny_config()
    params = nn.init_params(jax.random.key(1), config)
    b, prompt, new, slots = 3, 5, 4, 12
    cached, full, cache = cached_and_full(params, config, b, prompt, new, slots)
    assert int(cache.index) == prompt + new
    assert cache.key[0].shape == (b, config.num_kv_heads, slots, config.head_dim)
    np.testing.assert_allclose(cached, full, atol=ATOL)


def test_forked_cache_with_grouped_heads_equals_full_forward():
    # Beam search's prompt sharing through grouped-query attention: 3 prompts forked into 2
    # rows each, every row feeding its own 2 tokens, must equal the uncached forward.
    config = llama.tiny_config(num_key_value_heads=1)
    params = nn.init_params(jax.random.key(2), config)
    got, want, _ = forked_and_full(params, config, p=3, rows=2)
    np.testing.assert_allclose(got, want, atol=ATOL)


@pytest.mark.parametrize(
    "config",
    [gpt2.tiny_config(), llama.tiny_config(), llama.tiny_config(tie_word_embeddings=True)],
    ids=["gpt2", "llama_untied", "llama_tied"],
)
def test_export_then_import_is_exact_and_loads_in_transformers(config, tmp_path):
    params = nn.init_params(jax.random.key(0), config)
    convert.save_pretrained(params, config, tmp_path / "ours")
    loaded_config, loaded = convert.load_pretrained(tmp_path / "ours")
    assert loaded_config == config
    for x, y in zip(jax.tree.leaves(loaded), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert jax.tree.structure(loaded) == jax.tree.structure(params)
    torch = pytest.importorskip("torch")
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert (
        type(model).__name__
        == {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}[config.architecture]
    )
    ids_BxL = np.arange(3, 27).reshape(2, 12)
    with torch.no_grad():
        want = model(input_ids=torch.tensor(ids_BxL)).logits.numpy()
    got, _ = _forward(params, config, ids_BxL)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=ATOL)
    # transformers' own save of that model (its naming, a tied head dropped) reads back exactly.
    model.save_pretrained(tmp_path / "theirs")
    _, theirs = convert.load_pretrained(tmp_path / "theirs")
    for x, y in zip(jax.tree.leaves(theirs), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_bare_gpt2_checkpoint_with_buffers_loads(tmp_path):
    # The hub's gpt2 stores a bare GPT2Model (no "transformer." prefix) with causal-mask
    # buffers; both must be understood, an unknown key still refused.
    config = gpt2.tiny_config()
    sd = convert.state_dict_from_params(nn.init_params(jax.random.key(5), config), config)
    bare = {k.removeprefix("transformer."): v for k, v in sd.items()}
    bare["h.0.attn.bias"] = np.tril(np.ones((1, 1, 40, 40), np.float32))
    bare["h.0.attn.masked_bias"] = np.asarray(-1e4, np.float32)
    params = convert.params_from_state_dict(bare, config)
    np.testing.assert_array_equal(
        params["transformer"]["h"]["0"]["attn"]["c_attn"]["kernel"],
        sd["transformer.h.0.attn.c_attn.weight"],
    )
    with pytest.raises(errors.DataError, match=r"unexpected key h\.0\.attn\.c_attn\.scale"):
        convert.params_from_state_dict({**bare, "h.0.attn.c_attn.scale": np.zeros(3)}, config)
    with pytest.raises(
        errors.DataError, match=r"missing key model\.layers\.1\.mlp\.up_proj\.weight"
    ):
        lconfig = llama.tiny_config()
        lsd = convert.state_dict_from_params(nn.init_params(jax.random.key(6), lconfig), lconfig)
        del lsd["model.layers.1.mlp.up_proj.weight"]
        convert.params_from_state_dict(lsd, lconfig)


def test_configs_read_hub_forms_and_round_trip():
    # A transformers 4 config.json (SmolLM2's form): rope_theta beside a null rope_scaling.
    smol = {
        "model_type": "llama",
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "max_position_embeddings": 8192,
        "rope_theta": 100000,
        "rope_scaling": None,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
        "vocab_size": 49152,
        "bos_token_id": 0,
        "eos_token_id": 0,
    }
    config = architectures.config_from_hf(smol)
    assert config == llama.LlamaConfig()  # the defaults are SmolLM2-135M's shape
    shapes = jax.eval_shape(lambda: nn.init_params(jax.random.key(0), config))
    assert nn.param_count(shapes) == 134_515_008
    assert (
        nn.param_count(jax.eval_shape(lambda: nn.init_params(jax.random.key(0), gpt2.GPT2Config())))
        == 124_439_808
    )
    old = {**smol, "rope_scaling": {"type": "linear", "factor": 2.0}}
    assert dict(architectures.config_from_hf(old).rope_scaling) == {
        "rope_type": "linear",
        "factor": 2.0,
    }
    for c in (
        llama.tiny_config(rope_scaling=(("factor", 2.0), ("rope_type", "linear"))),
        gpt2.tiny_config(),
    ):
        assert architectures.config_from_hf(json.loads(json.dumps(c.to_hf_dict()))) == c
        hf = transformers.AutoConfig.for_model(**c.to_hf_dict())
        assert architectures.config_from_hf(hf) == c
    with pytest.raises(errors.DataError, match="model_type"):
        architectures.config_from_hf({"model_type": "bert"})
    with pytest.raises(errors.ConfigError, match="rope"):
        llama.tiny_config(rope_scaling=(("rope_type", "longrope"),))
    with pytest.raises(errors.ConfigError, match="num_key_value_heads"):
        llama.tiny_config(num_key_value_heads=3)
