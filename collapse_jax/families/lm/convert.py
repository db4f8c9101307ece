"""Hugging Face checkpoints of OPT, GPT-2 and Llama <-> our params (the trees in ``opt.py``,
``gpt2.py``, ``llama.py``).

The key table of each architecture is explicit and both directions assert that the key sets
match exactly and every shape agrees: transformers v4's Flax converter only warned on
mismatches, which let a half-loaded model run silently. Torch ``Linear`` weights are (out, in)
and are transposed; GPT-2's ``Conv1D`` weights are stored (in, out), the Flax layout, and are not.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import numpy as np

from collapse_jax import errors
from collapse_jax.families.lm import architectures, nn

_HEAD = "lm_head.weight"
_SAFETENSORS = "model.safetensors"
_SAFETENSORS_INDEX = "model.safetensors.index.json"
_TORCH_BIN = "pytorch_model.bin"
_TORCH_BIN_INDEX = "pytorch_model.bin.index.json"

Table = list[tuple[str, tuple[str, ...], bool]]


def _opt_table(config) -> Table:
    table: Table = []

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


def _gpt2_table(config) -> Table:
    t = ("transformer",)
    table: Table = [
        ("wte.weight", (*t, "wte", "embedding"), False),
        ("wpe.weight", (*t, "wpe", "embedding"), False),
        ("ln_f.weight", (*t, "ln_f", "scale"), False),
        ("ln_f.bias", (*t, "ln_f", "bias"), False),
    ]
    for i in range(config.n_layer):
        ours = (*t, "h", str(i))
        for ln in ("ln_1", "ln_2"):
            table.append((f"h.{i}.{ln}.weight", (*ours, ln, "scale"), False))
            table.append((f"h.{i}.{ln}.bias", (*ours, ln, "bias"), False))
        for block, conv in (
            ("attn", "c_attn"),
            ("attn", "c_proj"),
            ("mlp", "c_fc"),
            ("mlp", "c_proj"),
        ):
            # Conv1D: (in, out) already, as our kernels.
            table.append((f"h.{i}.{block}.{conv}.weight", (*ours, block, conv, "kernel"), False))
            table.append((f"h.{i}.{block}.{conv}.bias", (*ours, block, conv, "bias"), False))
    return table


def _llama_table(config) -> Table:
    m = ("model",)
    table: Table = [
        ("model.embed_tokens.weight", (*m, "embed_tokens", "embedding"), False),
        ("model.norm.weight", (*m, "norm", "scale"), False),
    ]
    if not config.tie_word_embeddings:
        table.append((_HEAD, ("lm_head", "kernel"), True))
    for i in range(config.num_hidden_layers):
        hf, ours = f"model.layers.{i}", (*m, "layers", str(i))
        for norm in ("input_layernorm", "post_attention_layernorm"):
            table.append((f"{hf}.{norm}.weight", (*ours, norm, "scale"), False))
        groups = (
            ("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj"), config.attention_bias),
            ("mlp", ("gate_proj", "up_proj", "down_proj"), config.mlp_bias),
        )
        for block, projs, bias in groups:
            for proj in projs:
                table.append((f"{hf}.{block}.{proj}.weight", (*ours, block, proj, "kernel"), True))
                if bias:
                    table.append((f"{hf}.{block}.{proj}.bias", (*ours, block, proj, "bias"), False))
    return table


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one architecture's HF state dicts are named.

    ``table(config)``: ``(hf_key, our_path, transpose)`` for every parameter, HF keys without
    ``prefix``; ``prefix``: what ``save_pretrained`` writes before them and loading strips when
    present (bare ``OPTModel``/``GPT2Model`` checkpoints lack it); ``buffers``: non-parameter keys
    old checkpoints carry (ignored); ``tied``: our path of the table a tied ``lm_head.weight``
    must equal.
    """

    table: Callable[..., Table]
    prefix: str
    buffers: Callable[[str], bool]
    tied: Callable[..., tuple[str, ...] | None]


LAYOUTS = {
    "opt": Layout(
        _opt_table,
        "model.",
        lambda k: False,
        lambda c: ("decoder", "embed_tokens", "embedding"),
    ),
    # The hub's gpt2 checkpoint is a bare GPT2Model (wte.weight, h.0...) with the causal-mask
    # buffers attn.bias / attn.masked_bias, which transformers also ignores on load.
    "gpt2": Layout(
        _gpt2_table,
        "transformer.",
        lambda k: k.endswith((".attn.bias", ".attn.masked_bias")),
        lambda c: ("transformer", "wte", "embedding"),
    ),
    "llama": Layout(
        _llama_table,
        "",
        lambda k: k.endswith("rotary_emb.inv_freq"),
        lambda c: ("model", "embed_tokens", "embedding") if c.tie_word_embeddings else None,
    ),
}


def key_table(config) -> Table:
    """``(hf_key, our_path, transpose)`` for every parameter (HF keys without the layout's
    prefix)."""
    return LAYOUTS[config.architecture].table(config)


def _path(keys) -> tuple[str, ...]:
    return tuple(k.key for k in keys)


def _param_shapes(config):
    """``init_params``'s tree of ShapeDtypeStructs and its ``{path: shape}``."""
    tree = jax.eval_shape(lambda: nn.init_params(jax.random.key(0), config))
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return tree, {_path(path): tuple(leaf.shape) for path, leaf in flat}


def _first_extra(a, b) -> str | None:
    """The first of ``a - b`` (paths joined by '/'), with how many more; None when empty."""
    extra = sorted("/".join(k) if isinstance(k, tuple) else k for k in set(a) - set(b))
    if not extra:
        return None
    return extra[0] + (f" (+{len(extra) - 1} more)" if extra[1:] else "")


def params_from_state_dict(
    state_dict: Mapping[str, np.ndarray], config, source: str = "state_dict"
) -> nn.Params:
    """Our float32 params from an HF state dict of NumPy arrays; raises ``DataError``."""
    layout = LAYOUTS[config.architecture]
    table = key_table(config)
    expected = {hf for hf, _, _ in table}
    tied = layout.tied(config)
    sd = {}
    for k, v in state_dict.items():
        if layout.buffers(k):
            continue
        if layout.prefix and k.startswith(layout.prefix):
            k = k.removeprefix(layout.prefix)
        sd[k] = v
    head = sd.pop(_HEAD, None) if tied is not None else None
    tree, shapes = _param_shapes(config)
    name = type(config).__name__
    if (k := _first_extra(expected, sd)) is not None:
        raise errors.DataError(f"{source}: missing key {k}")
    if (k := _first_extra(sd, expected)) is not None:
        raise errors.DataError(f"{source}: unexpected key {k} for this {name}")
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
        raise AssertionError(f"convert.key_table and the {name} module disagree")
    if head is not None and not np.array_equal(np.asarray(head, np.float32), values[tied]):
        raise errors.DataError(f"{source}: key {_HEAD}: expected the tied token embedding")
    # Mapping over init_params' own tree keeps its exact structure (empty non-affine norms too).
    return jax.tree_util.tree_map_with_path(
        lambda path, _: jax.numpy.asarray(values[_path(path)]), tree
    )


def state_dict_from_params(params: nn.Params, config) -> dict[str, np.ndarray]:
    """The HF ``*ForCausalLM`` state dict (prefixed keys, a tied head omitted as HF saves it)."""
    layout = LAYOUTS[config.architecture]
    flat = {_path(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    table = key_table(config)
    _, shapes = _param_shapes(config)
    name = type(config).__name__
    if (k := _first_extra(shapes, flat)) is not None:
        raise errors.ConfigError(f"params: missing {k}")
    if (k := _first_extra(flat, shapes)) is not None:
        raise errors.ConfigError(f"params: unexpected {k} for this {name}")
    out = {}
    for hf, path, transpose in table:
        value = np.asarray(jax.device_get(flat[path]), dtype=np.float32)
        if value.shape != shapes[path]:
            raise errors.ConfigError(
                f"params: {'/'.join(path)}: expected shape {shapes[path]}, got {value.shape}"
            )
        out[layout.prefix + hf] = np.ascontiguousarray(value.T if transpose else value)
    return out


def save_pretrained(params: nn.Params, config, directory: str | os.PathLike):
    """Write ``config.json`` and ``model.safetensors`` that transformers'
    ``AutoModelForCausalLM.from_pretrained`` loads (``OPTForCausalLM``, ``GPT2LMHeadModel``,
    ``LlamaForCausalLM``)."""
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

        # Hub repos may also hold TF and Flax weights: fetch safetensors, else the torch .bin.
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


def load_pretrained(name_or_path: str | os.PathLike, dtype: str = "float32"):
    """``(config, params)`` from an HF checkpoint directory or hub id; its ``config.json``'s
    ``model_type`` (opt, gpt2, llama) picks the architecture."""
    directory = resolve(name_or_path)
    config_file = directory / "config.json"
    if not config_file.exists():
        raise errors.DataError(f"{config_file}: expected an HF config.json")
    config = architectures.config_from_hf(
        json.loads(config_file.read_text()), dtype=dtype, source=str(config_file)
    )
    params = params_from_state_dict(_read_state_dict(directory), config, source=str(directory))
    return config, params
