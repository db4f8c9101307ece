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
from collapse_jax.families.lm import opt

# Prefix of OPTForCausalLM state dicts; bare OPTModel checkpoints ("decoder.…") lack it.
_PREFIX = "model."
_HEAD = "lm_head.weight"
_SAFETENSORS = "model.safetensors"
_SAFETENSORS_INDEX = "model.safetensors.index.json"
_TORCH_BIN = "pytorch_model.bin"
_TORCH_BIN_INDEX = "pytorch_model.bin.index.json"


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


def _path(keys) -> tuple[str, ...]:
    return tuple(k.key for k in keys)


def _param_shapes(config: opt.OPTConfig):
    """``init_params``'s tree of ShapeDtypeStructs and its ``{path: shape}``."""
    tree = jax.eval_shape(lambda: opt.init_params(jax.random.key(0), config))
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return tree, {_path(path): tuple(leaf.shape) for path, leaf in flat}


def _first_extra(a, b) -> str | None:
    """The first of ``a - b`` (paths joined by '/'), with how many more; None when empty."""
    extra = sorted("/".join(k) if isinstance(k, tuple) else k for k in set(a) - set(b))
    if not extra:
        return None
    return extra[0] + (f" (+{len(extra) - 1} more)" if extra[1:] else "")


def params_from_state_dict(
    state_dict: Mapping[str, np.ndarray], config: opt.OPTConfig, source: str = "state_dict"
) -> opt.Params:
    """Our float32 params from an HF OPT state dict of NumPy arrays; raises ``DataError``."""
    sd = {k.removeprefix(_PREFIX): v for k, v in state_dict.items()}
    head = sd.pop(_HEAD, None)
    table = key_table(config)
    tree, shapes = _param_shapes(config)
    expected = {hf for hf, _, _ in table}
    if (k := _first_extra(expected, sd)) is not None:
        raise errors.DataError(f"{source}: missing key {k}")
    if (k := _first_extra(sd, expected)) is not None:
        raise errors.DataError(f"{source}: unexpected key {k} for this OPTConfig")
    values = {}
    for hf, path, transpose in table:
        value = np.asarray(sd[hf], dtype=np.float32)
        value = value.T if transpose else value
        want = shapes[path]
        if value.shape != want:
            got = value.T.shape if transpose else value.shape
            hf_want = want[::-1] if transpose else want
            raise errors.DataError(f"{source}: key {hf}: expected shape {hf_want}, got {got}")
        values[path] = value
    if set(shapes) != set(values):  # the table must cover init_params exactly
        raise AssertionError("convert.key_table and opt.init_params disagree")
    embedding = values[("decoder", "embed_tokens", "embedding")]
    if head is not None and not np.array_equal(np.asarray(head, np.float32), embedding):
        raise errors.DataError(f"{source}: key {_HEAD}: expected the tied token embedding")
    # Mapping over init_params' own tree keeps its exact structure (empty non-affine norms too).
    return jax.tree_util.tree_map_with_path(
        lambda path, _: jax.numpy.asarray(values[_path(path)]), tree
    )


def state_dict_from_params(params: opt.Params, config: opt.OPTConfig) -> dict[str, np.ndarray]:
    """HF ``OPTForCausalLM`` state dict (``model.``-prefixed, tied head omitted as HF saves it)."""
    flat = {_path(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    table = key_table(config)
    _, shapes = _param_shapes(config)
    if (k := _first_extra(shapes, flat)) is not None:
        raise errors.ConfigError(f"params: missing {k}")
    if (k := _first_extra(flat, shapes)) is not None:
        raise errors.ConfigError(f"params: unexpected {k} for this OPTConfig")
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


def _read_index(directory: Path, index_name: str, load_shard) -> dict[str, np.ndarray]:
    index = json.loads((directory / index_name).read_text())
    state_dict = {}
    for shard in sorted(set(index["weight_map"].values())):
        state_dict.update(load_shard(directory / shard))
    return state_dict


def _load_torch(file: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as e:
        raise errors.DataError(
            f"{file}: reading a .bin checkpoint needs torch (not installed)"
        ) from e
    state_dict = torch.load(file, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() for k, v in state_dict.items()}


def _load_safetensors(file: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(file))


def _read_state_dict(directory: Path) -> dict[str, np.ndarray]:
    """The checkpoint's arrays; safetensors preferred, sharded checkpoints merged."""
    if (directory / _SAFETENSORS).exists():
        return _load_safetensors(directory / _SAFETENSORS)
    if (directory / _SAFETENSORS_INDEX).exists():
        return _read_index(directory, _SAFETENSORS_INDEX, _load_safetensors)
    if (directory / _TORCH_BIN).exists():
        return _load_torch(directory / _TORCH_BIN)
    if (directory / _TORCH_BIN_INDEX).exists():
        return _read_index(directory, _TORCH_BIN_INDEX, _load_torch)
    raise errors.DataError(
        f"{directory}: expected {_SAFETENSORS}, {_TORCH_BIN} or a sharded index of either"
    )


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A local checkpoint directory, or a hub id (e.g. ``facebook/opt-125m``) downloaded once."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        # Hub OPT repos also hold TF and Flax weights: fetch safetensors, else the torch .bin.
        local = Path(
            snapshot_download(str(name_or_path), allow_patterns=["config.json", "*.safetensors*"])
        )
        if not any(local.glob("*.safetensors")):
            local = Path(
                snapshot_download(
                    str(name_or_path), allow_patterns=["config.json", "pytorch_model*.bin*"]
                )
            )
    except Exception as e:  # offline, unknown repo, gated: all end the same way for the user
        raise errors.DataError(
            f"{name_or_path}: not a local directory and the hub download failed "
            f"({type(e).__name__}); pass a local directory with config.json and model.safetensors"
        ) from e
    return local


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
