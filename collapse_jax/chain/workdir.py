"""A run directory: every path in it, and the rules by which a config may resume it.

    DIR/config.json              the resolved config, written first, with ``format_version``
    DIR/metrics.jsonl            one line per generation (``metrics``)
    DIR/metrics/                 every seed's metrics as arrays (``metrics``)
    DIR/checkpoints/             Orbax, step = generation: the vmapped path's carry
    DIR/checkpoints/seed_{s}/    the host path: data/ (pools), model/ (fitted states),
                                 measured/{g}.json (metrics and note of generation g)
    DIR/checkpoints/{name}/      a host family's run-level states made once (``family.Once``)
    DIR/arrays/                  a host family's per-sample values, gen_{g}_seed_{s}.npy
    DIR/figures/, summary.md     ``launch.report``
    DIR/data_source.json         where the datasets came from (``data.fetch``)
    DIR/<family outputs>         files a family names in its ``outputs``

A workdir holding another config's run is refused, except where the difference is one a resume
allows: a field the code gained after the run started, at its default (the old behaviour); more
generations (unless an accumulating regime sized its buffer by them); another device count (seeds
give the same numbers on any). ``format_version`` in config.json says which layout wrote the run:
1 (no field: runs before it existed, whose host checkpoints may hold a generation's metrics in
the model's metadata) or 2 (this layout).
"""

import json
import os
import shutil
from pathlib import Path
from typing import Any

from collapse_jax import experiments, mixing
from collapse_jax import metrics as metrics_lib
from collapse_jax.errors import CheckpointError, ConfigError

FORMAT_VERSION = 2
FORMAT_KEY = "format_version"
MISSING = "<missing>"

# What --overwrite deletes of every run (a family names its own further outputs).
RUN_OUTPUTS = (
    "checkpoints",
    "metrics.jsonl",
    metrics_lib.STORE,
    "figures",
    "summary.md",
    "data_source.json",
)


class Workdir:
    """The paths of one run directory (made absolute)."""

    def __init__(self, path):
        self.path = Path(os.path.abspath(path))

    def __repr__(self):
        return f"Workdir({str(self.path)!r})"

    def __fspath__(self):
        return str(self.path)

    # -- paths ----------------------------------------------------------------------------------

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_lines(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def metrics_store(self) -> Path:
        return self.path / metrics_lib.STORE

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def arrays(self) -> Path:
        return self.path / "arrays"

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def summary(self) -> Path:
        return self.path / "summary.md"

    @property
    def data_source(self) -> Path:
        return self.path / "data_source.json"

    def seed(self, s: int) -> Path:
        """The host path's checkpoints of seed ``s``."""
        return self.checkpoints / f"seed_{s}"

    def seed_data(self, s: int) -> Path:
        return self.seed(s) / "data"

    def seed_model(self, s: int) -> Path:
        return self.seed(s) / "model"

    def measured(self, s: int, g: int) -> Path:
        return self.seed(s) / "measured" / f"{g}.json"

    def per_sample(self, g: int, s: int) -> Path:
        return self.arrays / f"gen_{g}_seed_{s}.npy"

    def once(self, name: str) -> Path:
        """A host family's run-level state ``name`` (``family.Once``)."""
        return self.checkpoints / name

    def output(self, name: str) -> Path:
        """A file or folder a family names in its ``outputs``."""
        return self.path / name

    # -- config.json ----------------------------------------------------------------------------

    def read_config(self) -> dict:
        """config.json as written (``CheckpointError`` if it is not JSON or from a newer
        layout)."""
        try:
            saved = json.loads(self.config.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(
                f"{self.config}: not valid JSON ({e}); move it away or pass --overwrite"
            ) from e
        version = saved.get(FORMAT_KEY, 1)
        if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise CheckpointError(
                f"{self.config}: format_version {version!r}, expected 1 .. {FORMAT_VERSION} "
                "(written by another version of collapse_jax)"
            )
        return saved

    def format_version(self) -> int:
        return self.read_config().get(FORMAT_KEY, 1)

    def saved_config(self) -> dict:
        """The run's config with the fields the code gained since at their defaults (what
        ``prepare`` accepts on resume), so that an older run opens under this version."""
        saved = _without_version(self.read_config())
        default = _variant_default(saved.get("experiment"), saved.get("variant"))
        return saved if default is None else _merged(default, saved)

    def prepare(self, cfg, overwrite: bool = False, write: bool = True, outputs=()) -> "Workdir":
        """Refuse the directory if it holds another config's run; write config.json.

        With ``overwrite`` the old run (config, metrics, checkpoints, figures and the family's
        ``outputs``) is deleted first: the only path that loses saved work, and only when asked.
        """
        new, version = config_dict(cfg), FORMAT_VERSION
        if self.config.exists():
            saved = self.read_config()
            diff = resume_diff(_without_version(saved), new, cfg)
            if diff and not overwrite:
                shown = "; ".join(diff[:4]) + ("; ..." if len(diff) > 4 else "")
                raise CheckpointError(
                    f"{self.path} holds a run of another config ({shown}); "
                    "use a new --workdir, or --overwrite to delete that run"
                )
            if diff and overwrite and write:
                for name in (*RUN_OUTPUTS, *outputs):
                    p = self.path / name
                    shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
            if not diff:  # a resume: the files already there keep the layout that wrote them
                version = saved.get(FORMAT_KEY, 1)
        if write:
            metrics_lib.write_json(self.config, {**new, FORMAT_KEY: version}, indent=2)
        return self


def config_dict(cfg) -> dict:
    return json.loads(cfg.to_json_best_effort(sort_keys=True))


def resume_diff(old: dict, new: dict, cfg) -> list[str]:
    """``"field: old -> new"`` of every difference that makes ``old`` another config's run."""
    diff = _diff(old, new)
    if any(o == MISSING for _, o, _ in diff):
        # A field the code gained after the run started, at its default, is the old behaviour:
        # the run resumes under the new version and its config.json gains the field.
        default = _variant_default(cfg.experiment, cfg.get("variant")) or {}
        diff = [d for d in diff if not (d[1] == MISSING and _lookup(default, d[0]) == d[2])]
    lines = [f"{k}: {o!r} -> {n!r}" for k, o, n in diff]
    # More generations extend the chain (a resume), except where an accumulating regime sizes
    # its buffer by num_generations.
    grows = old.get("num_generations", 0) <= new["num_generations"]
    if grows and not mixing.plan_for(cfg).accumulates:
        lines = [d for d in lines if not d.startswith("num_generations:")]
    # Seeds give the same results on any number of devices: a run may resume on another. The
    # variant is a label: a run started under an old spelling (a legacy compound name) resumes
    # under the new one when every field agrees.
    return [d for d in lines if not d.startswith(("num_devices:", "variant:"))]


def _without_version(saved: dict) -> dict:
    return {k: v for k, v in saved.items() if k != FORMAT_KEY}


def _diff(a: dict, b: dict, prefix="") -> list[tuple[str, Any, Any]]:
    """``(dotted path, value in a, value in b)`` of every leaf that differs."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, MISSING), b.get(k, MISSING)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append((f"{prefix}{k}", va, vb))
    return out


def _lookup(d: dict, path: str):
    for k in path.split("."):
        if not isinstance(d, dict) or k not in d:
            return MISSING
        d = d[k]
    return d


def _merged(default: dict, saved: dict) -> dict:
    out = dict(default)
    for k, v in saved.items():
        out[k] = (
            _merged(default[k], v)
            if isinstance(v, dict) and isinstance(default.get(k), dict)
            else v
        )
    return out


def _variant_default(experiment, variant) -> dict | None:
    """``config_dict`` of what ``experiment``'s config file builds for ``variant``; None when
    the experiment, its config file or the variant no longer exists (then every difference
    counts)."""
    try:
        module = experiments.get(experiment).config_module()
        return config_dict(module.get_config(variant))
    except (ConfigError, ValueError, KeyError, OSError, ImportError):
        return None
