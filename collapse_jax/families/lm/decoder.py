"""What OPT, GPT-2 and the Llama architecture share above ``nn.py``'s blocks: the config adapter
(checks, the names the rest of the package reads, reading and writing HF ``config.json`` dicts)
and the decoder stack's forward (slots, embeddings, the layers, the final transform)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from flax import nnx

from collapse_jax import errors
from collapse_jax.families.lm import nn


class HFConfig:
    """A mixin of the frozen config dataclasses: transformers' fields plus the compute ``dtype``.

    A subclass names its ``architecture`` (HF's ``model_type``), ``hf_class`` (the
    ``architectures`` entry of its ``config.json``), ``activation_field`` (the field naming the
    activation), and ``nullable`` (fields whose HF null is a value, not "use the default")."""

    architecture: ClassVar[str]
    hf_class: ClassVar[str]
    activation_field: ClassVar[str] = "activation_function"
    nullable: ClassVar[tuple[str, ...]] = ()

    def check_names(self):
        """The activation and the compute dtype are ones this package has."""
        name = self.activation_field
        errors.require(
            getattr(self, name) in nn.ACTIVATIONS,
            f"{self.architecture}.{name}",
            f"one of {sorted(nn.ACTIVATIONS)}",
            getattr(self, name),
        )
        errors.require(
            self.dtype in nn.DTYPES,
            f"{self.architecture}.dtype",
            f"one of {sorted(nn.DTYPES)}",
            self.dtype,
        )

    @property
    def compute_dtype(self):
        return nn.DTYPES[self.dtype]

    @property
    def max_positions(self) -> int:
        return self.max_position_embeddings

    @classmethod
    def hf_dict(cls, hf_config) -> dict:
        """A copy of a transformers config (object or ``config.json`` dict) of this ``model_type``
        (a dict without one is taken as this architecture's)."""
        d = dict(hf_config if isinstance(hf_config, dict) else hf_config.to_dict())
        kind = cls.architecture
        errors.require(
            d.get("model_type", kind) == kind, "config.model_type", f"'{kind}'", d.get("model_type")
        )
        return d

    @classmethod
    def read_fields(cls, d: dict, skip: tuple[str, ...] = ()) -> dict:
        """The dataclass fields of ``cls`` (but ``dtype`` and ``skip``) from an HF dict; a missing
        or null one takes the default unless ``nullable`` (eos and bos lists, legal in HF, keep
        their first id)."""
        defaults = cls()
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name == "dtype" or f.name in skip:
                continue
            value = d.get(f.name, getattr(defaults, f.name))
            if value is None and f.name not in cls.nullable:
                value = getattr(defaults, f.name)
            if f.name in ("eos_token_id", "bos_token_id") and isinstance(value, list):
                value = value[0]
            kw[f.name] = value
        return kw

    def hf_extra(self, d: dict) -> dict:
        """What ``config.json`` holds besides the fields (``d``: the fields, to rename in place)."""
        return {}

    def to_hf_dict(self) -> dict[str, Any]:
        """A ``config.json`` dict that transformers' config class of this architecture accepts."""
        d = dataclasses.asdict(self)
        del d["dtype"]
        extra = self.hf_extra(d)
        d.update(model_type=self.architecture, architectures=[self.hf_class], **extra)
        d.update(dtype="float32")
        return d


class CausalLM(nnx.Module):
    """A decoder-only LM's forward: ``embed``, the ``layers``, then ``final``; ``logits`` is the
    head. Subclasses hold ``config`` and the HF-named submodules."""

    def embed(self, input_ids_BxL, position_ids_BxL, dtype, dropout_key, deterministic):
        """``(x_BxLxD, the layers' dropout key, what every layer reads besides)``."""
        raise NotImplementedError

    def layers(self) -> nnx.Dict:
        raise NotImplementedError

    def final(self, x_BxLxD, dtype):
        raise NotImplementedError

    def __call__(
        self,
        input_ids_BxL,
        attention_mask_BxT=None,
        position_ids_BxL=None,
        cache=None,
        *,
        deterministic=True,
        dropout_key=None,
        remat_policy="none",
    ):
        """The decoder output before the LM head, (B, L, D), and the cache."""
        dtype = self.config.compute_dtype
        _, position_ids_BxL, index, mask = nn.slots(
            self.config, input_ids_BxL, attention_mask_BxT, position_ids_BxL, cache
        )
        x, layers_key, extra = self.embed(
            input_ids_BxL, position_ids_BxL, dtype, dropout_key, deterministic
        )
        x, new_cache = nn.run_layers(
            self.layers(),
            x,
            mask,
            cache,
            index,
            key=layers_key,
            deterministic=deterministic,
            remat_policy=remat_policy,
            extra=extra,
        )
        return self.final(x, dtype), new_cache
