"""The OPT port against transformers' PyTorch OPTForCausalLM, and the KV cache against itself."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import transformers

from collapse_jax import errors
from collapse_jax.families.lm import convert, opt
from tests.lm_parity import cached_and_full, forked_and_full, ids_and_left_padded_mask

# Float32 parity bound: the two implementations differ only in summation order, which moves
# logits of magnitude ~1 by a few ulp per layer (~1e-7); 1e-5 leaves two orders of margin while
# any real semantic slip (position offset, q scaling order, layer-norm placement) is >= 1e-3.
ATOL = 1e-5

# Every structural switch the published OPT checkpoints use (125m: pre-LN; 350m: post-LN with
# project_in/out), plus the non-affine/bias-free variants transformers supports.
VARIANTS = {
    "pre_ln": dict(do_layer_norm_before=True),
    "post_ln": dict(do_layer_norm_before=False),
    "pre_ln_proj": dict(do_layer_norm_before=True, word_embed_proj_dim=24),
    "post_ln_proj": dict(do_layer_norm_before=False, word_embed_proj_dim=24),
    "no_bias_no_affine": dict(enable_bias=False, layer_norm_elementwise_affine=False),
}
# Checkpoints fine-tuned before transformers 4.20.1 drop the decoder's final layer norm.
HF_ONLY_VARIANTS = {"removed_final_norm": dict(_remove_final_layer_norm=True)}


@pytest.mark.parametrize("variant", sorted(VARIANTS) + sorted(HF_ONLY_VARIANTS))
def test_logits_match_transformers(variant):
    torch = pytest.importorskip("torch")
    switches = {**VARIANTS, **HF_ONLY_VARIANTS}[variant]
    hf_config = transformers.OPTConfig(**opt.TINY_FIELDS, **switches, dropout=0.0)
    # Eager attention adds finfo.min to masked scores, exactly what opt.py does, so even the
    # fully padded rows (uniform attention) agree.
    hf_config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.OPTForCausalLM(hf_config).eval()
    # HF initialises biases and layer norms to 0/1: randomise them so a swapped bias shows.
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if name.endswith("bias") or "layer_norm" in name:
                tensor.normal_(0.0, 0.5)
    config = opt.OPTConfig.from_hf(hf_config)
    assert config.has_final_layer_norm == (
        variant in ("pre_ln", "pre_ln_proj", "no_bias_no_affine")
    )
    state_dict = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    params = convert.params_from_state_dict(state_dict, config)

    ids_BxL, mask_BxL = ids_and_left_padded_mask(4, 11, opt.TINY_FIELDS["vocab_size"])
    with torch.no_grad():
        want = model(input_ids=torch.tensor(ids_BxL), attention_mask=torch.tensor(mask_BxL))
    got, cache = jax.jit(opt.forward, static_argnames="config")(
        params, config=config, input_ids_BxL=ids_BxL, attention_mask_BxT=mask_BxL
    )
    assert cache is None
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), want.logits.numpy(), rtol=0, atol=ATOL)


@pytest.mark.parametrize("do_layer_norm_before", [True, False])
def test_cached_prefill_and_steps_equal_full_forward(do_layer_norm_before):
    config = opt.tiny_config(do_layer_norm_before=do_layer_norm_before)
    params = opt.init_params(jax.random.key(1), config)
    cached, full, cache = cached_and_full(params, config, prompt=5, new=4)
    assert int(cache.index) == 5 + 4
    np.testing.assert_allclose(cached, full, atol=ATOL)


def test_forked_cache_shares_the_prompt_and_equals_full_forward():
    # Three left-padded prompts forked into 2 rows each (beam search's prompt sharing); every row
    # then feeds its own 2 tokens. Each row must equal the uncached forward of its sequence.
    config = opt.tiny_config()
    params = opt.init_params(jax.random.key(2), config)
    got, want, cache = forked_and_full(params, config, p=3, rows=2)
    np.testing.assert_allclose(got, want, atol=ATOL)
    # Reordering rows moves only the own slots; the prompt stays shared.
    gathered = cache.gather(jnp.array([5, 0, 0, 1, 2, 3]))
    assert gathered.prefix_key[0] is cache.prefix_key[0]
    np.testing.assert_array_equal(gathered.key[0][1], cache.key[0][0])


def test_cache_gather_reorders_rows():
    config = opt.tiny_config()
    cache = opt.init_cache(config, 3, 4)
    cache = cache.replace(key=tuple(k + jnp.arange(3.0)[:, None, None, None] for k in cache.key))
    gathered = cache.gather(jnp.array([2, 2, 0]))
    np.testing.assert_array_equal(np.asarray(gathered.key[1][:, 0, 0, 0]), [2.0, 2.0, 0.0])
    assert gathered.index.shape == ()


def test_dropout_only_in_training():
    config = opt.tiny_config(dropout=0.1, attention_dropout=0.1)
    params = opt.init_params(jax.random.key(2), config)
    ids_BxL = np.arange(3, 19).reshape(2, 8)
    eval_a, _ = opt.forward(params, config, ids_BxL, dropout_key=jax.random.key(0))
    eval_b, _ = opt.forward(params, config, ids_BxL)
    np.testing.assert_array_equal(np.asarray(eval_a), np.asarray(eval_b))
    train = lambda k: opt.forward(params, config, ids_BxL, deterministic=False, dropout_key=k)[0]  # noqa: E731
    train_a, train_b = train(jax.random.key(0)), train(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(train_a), np.asarray(train_b))
    assert not np.allclose(np.asarray(train_a), np.asarray(eval_a))
    assert not np.allclose(np.asarray(train_a), np.asarray(train(jax.random.key(1))))
    with pytest.raises(errors.ConfigError, match="dropout_key"):
        opt.forward(params, config, ids_BxL, deterministic=False)


def test_bfloat16_compute_tracks_float32():
    config = opt.tiny_config()
    params = opt.init_params(jax.random.key(3), config)
    ids_BxL = np.arange(3, 27).reshape(2, 12)
    f32, _ = opt.forward(params, config, ids_BxL)
    bf16, _ = opt.forward(params, opt.OPTConfig(**{**vars(config), "dtype": "bfloat16"}), ids_BxL)
    assert bf16.dtype == jnp.float32
    # bf16 keeps 8 mantissa bits (relative rounding 2^-9 ~ 2e-3 per op); through ~10 rounded
    # ops per layer the error is a few percent of the activation scale at most.
    scale = float(jnp.abs(f32).max())
    assert float(jnp.abs(bf16 - f32).max()) < 0.05 * scale


def test_opt_125m_shape_and_param_count():
    config = opt.OPTConfig()
    shapes = jax.eval_shape(lambda: opt.init_params(jax.random.key(0), config))
    assert opt.param_count(shapes) == 125_239_296
    assert shapes["decoder"]["embed_positions"]["embedding"].shape == (2050, 768)
    assert "project_in" not in shapes["decoder"]
    logits = jax.eval_shape(
        lambda p: opt.forward(p, config, jnp.zeros((2, 64), jnp.int32))[0], shapes
    )
    assert logits.shape == (2, 64, 50272)
    assert logits.dtype == jnp.float32


def test_config_round_trips_through_hf():
    configs = [opt.tiny_config(**v) for v in VARIANTS.values()]
    configs.append(opt.tiny_config(remove_final_layer_norm=True, dropout=0.0))
    for config in configs:
        hf_config = transformers.OPTConfig(**config.to_hf_dict())
        assert opt.OPTConfig.from_hf(hf_config) == config
        assert opt.OPTConfig.from_hf(config.to_hf_dict()) == config
    with pytest.raises(errors.ConfigError, match="hidden_size"):
        opt.OPTConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(errors.ConfigError, match="tie_word_embeddings"):
        opt.OPTConfig.from_hf({**opt.OPTConfig().to_hf_dict(), "tie_word_embeddings": False})
