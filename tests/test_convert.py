"""HF checkpoint import/export: exact round trips and loud, one-line failures."""

import json

import jax
import numpy as np
import pytest
import transformers

from collapse_jax import errors
from collapse_jax.families.lm import convert, opt


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize(
    "variant",
    [dict(), dict(do_layer_norm_before=False, word_embed_proj_dim=24), dict(enable_bias=False)],
)
def test_export_then_import_is_exact(tmp_path, variant):
    config = opt.tiny_config(**variant)
    params = opt.init_params(jax.random.key(0), config)
    convert.save_pretrained(params, config, tmp_path)
    loaded_config, loaded = convert.load_pretrained(tmp_path)
    assert loaded_config == config
    _assert_trees_equal(loaded, params)


def test_export_loads_in_transformers_and_back(tmp_path):
    torch = pytest.importorskip("torch")
    config = opt.tiny_config(do_layer_norm_before=False, word_embed_proj_dim=24)
    params = opt.init_params(jax.random.key(1), config)
    convert.save_pretrained(params, config, tmp_path / "ours")
    model = transformers.OPTForCausalLM.from_pretrained(tmp_path / "ours").eval()
    assert model.lm_head.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    ids_BxL = np.arange(3, 27).reshape(2, 12)
    with torch.no_grad():
        want = model(input_ids=torch.tensor(ids_BxL)).logits.numpy()
    got, _ = jax.jit(opt.forward, static_argnames="config")(params, config, ids_BxL)
    # Same float32 summation-order bound as tests/test_opt.py.
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-5)

    # transformers' own save (its key naming, tied head dropped) imports back to the same params.
    model.save_pretrained(tmp_path / "theirs")
    loaded_config, loaded = convert.load_pretrained(tmp_path / "theirs")
    assert loaded_config == config
    _assert_trees_equal(loaded, params)


def test_torch_bin_without_model_prefix(tmp_path):
    torch = pytest.importorskip("torch")
    config = opt.tiny_config()
    params = opt.init_params(jax.random.key(2), config)
    state_dict = convert.state_dict_from_params(params, config)
    # Old checkpoints: bare OPTModel keys, an explicit (tied) lm_head, float16 storage.
    bare = {k.removeprefix("model."): torch.tensor(v) for k, v in state_dict.items()}
    bare["lm_head.weight"] = bare["decoder.embed_tokens.weight"].clone()
    torch.save(bare, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(config.to_hf_dict()))
    _, loaded = convert.load_pretrained(tmp_path)
    _assert_trees_equal(loaded, params)


def _state_dict(config):
    return convert.state_dict_from_params(opt.init_params(jax.random.key(3), config), config)


def _raises_one_line(match, fn):
    with pytest.raises(errors.DataError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


def test_bad_keys_and_shapes_fail_loudly():
    config = opt.tiny_config()
    good = _state_dict(config)
    convert.params_from_state_dict(good, config)

    missing = dict(good)
    del missing["model.decoder.layers.1.fc2.bias"]
    _raises_one_line(
        "missing key decoder.layers.1.fc2.bias",
        lambda: convert.params_from_state_dict(missing, config),
    )

    extra = {**good, "model.decoder.layers.2.fc1.weight": np.zeros((48, 32), np.float32)}
    _raises_one_line(
        "unexpected key decoder.layers.2.fc1.weight",
        lambda: convert.params_from_state_dict(extra, config),
    )

    bad = {**good, "model.decoder.layers.0.fc1.weight": np.zeros((32, 48), np.float32)}
    _raises_one_line(
        r"key decoder.layers.0.fc1.weight: expected shape \(48, 32\), got \(32, 48\)",
        lambda: convert.params_from_state_dict(bad, config),
    )

    untied = {**good, "lm_head.weight": np.ones((97, 32), np.float32)}
    _raises_one_line("lm_head.weight", lambda: convert.params_from_state_dict(untied, config))

    # A post-LN checkpoint has no decoder.final_layer_norm: loading it as pre-LN names the key.
    post = _state_dict(opt.tiny_config(do_layer_norm_before=False))
    _raises_one_line(
        "missing key decoder.final_layer_norm", lambda: convert.params_from_state_dict(post, config)
    )


def test_export_rejects_params_of_another_config():
    params = opt.init_params(jax.random.key(4), opt.tiny_config())
    with pytest.raises(errors.ConfigError, match="expected shape"):
        convert.state_dict_from_params(params, opt.tiny_config(ffn_dim=64))
    with pytest.raises(errors.ConfigError, match="missing decoder/project_in"):
        convert.state_dict_from_params(params, opt.tiny_config(word_embed_proj_dim=24))


def test_missing_files_and_offline_hub(tmp_path, monkeypatch):
    _raises_one_line("config.json", lambda: convert.load_pretrained(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(opt.tiny_config().to_hf_dict()))
    _raises_one_line("expected model.safetensors", lambda: convert.load_pretrained(tmp_path))

    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    # Never touch the network in tests: the hub call is replaced by an offline failure.
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    _raises_one_line(
        "facebook/opt-125m: not a local directory and the hub download failed",
        lambda: convert.load_pretrained("facebook/opt-125m"),
    )
