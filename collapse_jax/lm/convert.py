"""Hugging Face OPT checkpoints <-> our params (see the tree in ``opt.py``).

The key table is explicit and both directions assert that the key sets match exactly and
every shape agrees: transformers v4's Flax converter only warned on mismatches, which let a
half-loaded model run silently. Torch ``Linear`` weights are (out, in) and are transposed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np

from collapse_jax import errors
from collapse_jax.lm import opt

# Prefix of OPTForCausalLM state dicts; bare OPTModel checkpoints ("decoder.…") lack it.
_PREFIX = "model."
_HEAD = "lm_head.weight"
_SAFETENSORS = "model.safetensors"
_SAFETENSORS_INDEX = "model.safetensors.index.json"
_TORCH_BIN = "pytorch_model.bin"


def key_table(config: opt.OPTConfig) -> list[tuple[str, tuple[str, ...], bool]]:
    """``(hf_key, our_path, transpose)`` for every parameter (HF keys without ``model.``)."""
    table: list[tuple[str, tuple[str, ...], bool]] = []

    def linear(hf: str, ours: tuple[str, ...], bias: bool):
        table.append((f"{hf}.weight", (*ours, "kernel"), True))
        if bias:
            table.append((f"{hf}.bias", (*ours, "bias"), False))

    def layer_norm(hf: str, ours: tuple[str, ...]):
        if config.layer_norm_elementwise_affine:
            table.append((f"{hf}.weight", (*ours, "scale"), False))
            table.append((f"{hf}.bias", (*ours, "bias"), False))

    table.append(("decoder.embed_tokens.weight", ("decoder", "embed_tokens", "embedding"), False))
    table.append(
        ("decoder.embed_positions.weight", ("decoder", "embed_positions", "embedding"), False)
    )
    if config.has_projections:
        linear("decoder.project_in", ("decoder", "project_in"), bias=False)
        linear("decoder.project_out", ("decoder", "project_out"), bias=False)
    if config.has_final_layer_norm:
        layer_norm("decoder.final_layer_norm", ("decoder", "final_layer_norm"))
    bias = config.enable_bias
    for i in range(config.num_hidden_layers):
        hf, ours = f"decoder.layers.{i}", ("decoder", "layers", str(i))
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            linear(f"{hf}.self_attn.{proj}", (*ours, "self_attn", proj), bias)
        layer_norm(f"{hf}.self_attn_layer_norm", (*ours, "self_attn_layer_norm"))
        linear(f"{hf}.fc1", (*ours, "fc1"), bias)
        linear(f"{hf}.fc2", (*ours, "fc2"), bias)
        layer_norm(f"{hf}.final_layer_norm", (*ours, "final_layer_norm"))
    return table


def _param_shapes(config: opt.OPTConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
    tree = jax.eval_shape(lambda: opt.init_params(jax.random.key(0), config))
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def _first_extra(a, b) -> str | None:
    extra = sorted(set(a) - set(b))
    return (
        None if not extra else f"{extra[0]}" + (f" (+{len(extra) - 1} more)" if extra[1:] else "")
    )


def params_from_state_dict(
    state_dict: Mapping[str, np.ndarray], config: opt.OPTConfig, source: str = "state_dict"
) -> opt.Params:
    """Our float32 params from an HF OPT state dict of NumPy arrays; raises ``DataError``."""
    sd = {k.removeprefix(_PREFIX): v for k, v in state_dict.items()}
    head = sd.pop(_HEAD, None)
    table = key_table(config)
    shapes = _param_shapes(config)
    expected = {hf for hf, _, _ in table}
    if (k := _first_extra(expected, sd)) is not None:
        raise errors.DataError(f"{source}: missing key {_PREFIX}{k}")
    if (k := _first_extra(sd, expected)) is not None:
        raise errors.DataError(f"{source}: unexpected key {k} for this OPTConfig")
    params: dict = {}
    for hf, path, transpose in table:
        value = np.asarray(sd[hf], dtype=np.float32)
        value = value.T if transpose else value
        want = shapes[path]
        if value.shape != want:
            got = value.T.shape if transpose else value.shape
            hf_want = want[::-1] if transpose else want
            raise errors.DataError(
                f"{source}: key {_PREFIX}{hf}: expected shape {hf_want}, got {got}"
            )
        node = params
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = np.ascontiguousarray(value)
    if set(shapes) != {path for _, path, _ in table}:  # the table must cover init_params exactly
        raise AssertionError("convert.key_table and opt.init_params disagree")
    if head is not None and not np.array_equal(
        np.asarray(head, np.float32), params["decoder"]["embed_tokens"]["embedding"]
    ):
        raise errors.DataError(f"{source}: key {_HEAD}: expected the tied token embedding")
    return jax.tree.map(jax.numpy.asarray, params)


def state_dict_from_params(params: opt.Params, config: opt.OPTConfig) -> dict[str, np.ndarray]:
    """HF ``OPTForCausalLM`` state dict (``model.``-prefixed, tied head omitted as HF saves it)."""
    flat = {
        tuple(k.key for k in path): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    table = key_table(config)
    shapes = _param_shapes(config)
    if (k := _first_extra(shapes, flat)) is not None:
        raise errors.ConfigError(f"params: missing {'/'.join(k)}")
    if (k := _first_extra(flat, shapes)) is not None:
        raise errors.ConfigError(f"params: unexpected {'/'.join(k)} for this OPTConfig")
    out = {}
    for hf, path, transpose in table:
        value = np.asarray(jax.device_get(flat[path]), dtype=np.float32)
        if value.shape != shapes[path]:
            raise errors.ConfigError(
                f"params: {'/'.join(path)}: expected shape {shapes[path]}, got {value.shape}"
            )
        out[_PREFIX + hf] = np.ascontiguousarray(value.T if transpose else value)
    return out


def save_pretrained(params: opt.Params, config: opt.OPTConfig, directory: str | os.PathLike):
    """Write ``config.json`` and ``model.safetensors`` that ``OPTForCausalLM.from_pretrained``
    loads."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state_dict = state_dict_from_params(params, config)
    (directory / "config.json").write_text(json.dumps(config.to_hf_dict(), indent=2) + "\n")
    save_file(state_dict, str(directory / _SAFETENSORS), metadata={"format": "pt"})
    return directory


def _read_state_dict(directory: Path) -> dict[str, np.ndarray]:
    if (directory / _SAFETENSORS).exists():
        from safetensors.numpy import load_file

        return load_file(str(directory / _SAFETENSORS))
    if (directory / _SAFETENSORS_INDEX).exists():
        from safetensors.numpy import load_file

        index = json.loads((directory / _SAFETENSORS_INDEX).read_text())
        state_dict = {}
        for shard in sorted(set(index["weight_map"].values())):
            state_dict.update(load_file(str(directory / shard)))
        return state_dict
    if (directory / _TORCH_BIN).exists():
        try:
            import torch
        except ImportError as e:
            raise errors.DataError(
                f"{directory / _TORCH_BIN}: reading a .bin checkpoint needs torch (not installed)"
            ) from e
        sd = torch.load(directory / _TORCH_BIN, map_location="cpu", weights_only=True)
        return {k: v.float().numpy() for k, v in sd.items()}
    raise errors.DataError(
        f"{directory}: expected {_SAFETENSORS}, {_SAFETENSORS_INDEX} or {_TORCH_BIN}"
    )


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A local checkpoint directory, or a hub id (e.g. ``facebook/opt-125m``) downloaded once."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(
            str(name_or_path),
            allow_patterns=["config.json", "*.safetensors", "*.safetensors.index.json", "*.bin"],
        )
    except Exception as e:  # offline, unknown repo, gated: all end the same way for the user
        raise errors.DataError(
            f"{name_or_path}: not a local directory and the hub download failed "
            f"({type(e).__name__}); pass a local directory with config.json and model.safetensors"
        ) from e
    return Path(local)


def load_pretrained(
    name_or_path: str | os.PathLike, dtype: str = "float32"
) -> tuple[opt.OPTConfig, opt.Params]:
    """``(config, params)`` from an HF OPT checkpoint directory or hub id."""
    directory = resolve(name_or_path)
    config_file = directory / "config.json"
    if not config_file.exists():
        raise errors.DataError(f"{config_file}: expected an HF OPT config.json")
    config = opt.OPTConfig.from_hf(json.loads(config_file.read_text()), dtype=dtype)
    params = params_from_state_dict(_read_state_dict(directory), config, source=str(directory))
    return config, params
