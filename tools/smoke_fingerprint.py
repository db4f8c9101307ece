r"""Fingerprints of every smoke run: sha256 of what a run records, to check a refactor changes
no number.

    python tools/smoke_fingerprint.py --out=/tmp/before.json [--groups=gaussian,lm]
    python tools/smoke_fingerprint.py --compare /tmp/before.json /tmp/after.json

``tools/smoke_fingerprint_baseline.json`` holds the fingerprints of commit bb840c6 (before the
chain package) made with the pinned set (Python 3.11, jax 0.10.2, constraints.txt) on a CPU:
another JAX version or backend compiles other float roundings, so compare within one set.

Each group runs in a process of its own (``enable_x64`` and the forced device count are
per-process): every ``smoke`` variant of every config (every point of its sweep), plus extra
points that reach the code paths the variants do not (curation, weights, kept and fresh data,
``seed_batch``, a sharded mesh, the LM's curation and regimes). A run's fingerprint is the sha256
of ``metrics.jsonl``, of every array of ``metrics/`` (dtype, shape and bytes of its recorded
rows), of ``arrays/*.npy`` and of the family's own files (notes, references; their wall times
left out), keyed by path.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# group -> (experiment, forced CPU devices, extra points: (name, variant, {field: value}))
GAUSS_EXTRA = [
    ("curate_oracle_top", "smoke", {"mixing.curation.score": "oracle"}),
    (
        "curate_initial_resample",
        "smoke",
        {"mixing.curation.score": "initial", "mixing.curation.rule": "resample"},
    ),
    ("curate_current_top", "smoke", {"mixing.curation.score": "current"}),
    ("keep_real", "smoke", {"mixing.regime": "keep_real", "mixing.gamma": 0.25}),
    (
        "custom",
        "smoke",
        {"mixing.regime": "custom", "mixing.alpha": 0.5, "mixing.beta": 0.25, "mixing.gamma": 0.25},
    ),
    (
        "weights",
        "smoke",
        {"mixing.regime": "keep_real", "mixing.gamma": 0.5, "mixing.real_weight": 2.0},
    ),
    (
        "subsample_weights",
        "smoke",
        {"mixing.regime": "accumulate_subsample", "mixing.synthetic_weight": 0.5},
    ),
    ("seed_batch", "smoke", {"seed_batch": 3}),
    ("every3_keep", "smoke", {"checkpoint.every_generations": 3}),
]
GROUPS = {
    "gaussian": ("gaussian", 1, GAUSS_EXTRA),
    # Extra points only: the variants ran in group gaussian.
    "gaussian_sharded": ("gaussian", 4, [("sharded", "smoke", {"num_devices": 4})]),
    "discrete": (
        "discrete",
        1,
        [
            ("curate_current_top", "smoke", {"mixing.curation.score": "current"}),
            ("keep_real", "smoke", {"mixing.regime": "keep_real", "mixing.gamma": 0.2}),
        ],
    ),
    "gmm": (
        "gmm",
        1,
        [("curate_initial_top", "smoke", {"mixing.curation.score": "initial"})],
    ),
    "linear_regression": (
        "linear_regression",
        1,
        [("keep_real", "smoke", {"mixing.regime": "keep_real", "mixing.gamma": 0.25})],
    ),
    "kde": ("kde", 1, [("fresh", "smoke", {"mixing.regime": "fresh"})]),
    "vae": (
        "vae",
        1,
        [("keep_real", "smoke", {"mixing.regime": "keep_real", "mixing.gamma": 0.25})],
    ),
    "lm": (
        "opt_wikitext",
        1,
        [
            ("curate_current", "smoke", {"mixing.curation.score": "current", "num_seeds": 2}),
            (
                "curate_initial_resample",
                "smoke",
                {"mixing.curation.score": "initial", "mixing.curation.rule": "resample"},
            ),
            ("accumulate", "smoke", {"mixing.regime": "accumulate"}),
            ("fresh", "smoke", {"mixing.regime": "fresh", "num_generations": 3}),
        ],
    ),
    "lm_finetune": ("opt_finetune", 1, []),
}


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _drop_seconds(obj):
    if isinstance(obj, dict):
        return {k: _drop_seconds(v) for k, v in obj.items() if not k.endswith("seconds")}
    if isinstance(obj, list):
        return [_drop_seconds(v) for v in obj]
    return obj


def _without_timings(path: Path) -> bytes:
    """The file's bytes; a JSON(L) file of the family's own (not metrics.jsonl) without its wall
    times (``*seconds`` keys: the single fine-tuning's log and summary)."""
    data = path.read_bytes()
    if path.name == "metrics.jsonl" or path.suffix not in (".json", ".jsonl"):
        return data
    if path.suffix == ".json":
        return json.dumps(_drop_seconds(json.loads(data)), sort_keys=True).encode()
    lines = [json.loads(x) for x in data.decode().splitlines() if x]
    return "\n".join(json.dumps(_drop_seconds(x), sort_keys=True) for x in lines).encode()


def fingerprint(workdir: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of everything a run records (checkpoints and config aside)."""
    import numpy as np
    import tensorstore as ts

    out = {}
    skip = {"checkpoints", "config.json", "data_source.json", "figures"}
    for p in sorted(workdir.rglob("*")):
        rel = p.relative_to(workdir)
        if not p.is_file() or rel.parts[0] in skip or p.name.endswith(".tmp"):
            continue
        if rel.parts[0] == "metrics":
            if p.name != "zarr.json" or len(rel.parts) != 4:
                continue  # arrays are read below, by value; progress.json is checked by value
            spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(p.parent)}}
            a = ts.open(spec, open=True).result().read().result()
            kind = rel.parts[1]
            n = json.loads((workdir / "metrics" / "progress.json").read_text())[kind]
            a = np.ascontiguousarray(a[:n])
            out[str(rel.parent)] = _sha(f"{a.dtype}{a.shape}".encode() + a.tobytes())
            continue
        out[str(rel)] = _sha(_without_timings(p))
    progress = workdir / "metrics" / "progress.json"
    if progress.exists():
        out["metrics/progress.json"] = _sha(
            json.dumps(json.loads(progress.read_text()), sort_keys=True).encode()
        )
    return out


def _points(experiment: str, extra, variants: bool):
    from collapse_jax import experiments
    from launch import sweep

    mod = experiments.get(experiment).config_module()
    for v in getattr(mod, "VARIANTS", ("paper", "cpu", "smoke")):
        if "smoke" not in v or not variants:
            continue
        for run_dir, _, cfg in sweep.expand(mod.get_config(v), Path(v)):
            yield str(run_dir), cfg
    for name, v, fields in extra:
        cfg = mod.get_config(v)
        with cfg.unlocked():
            cfg.update_from_flattened_dict(fields)
        yield f"{v}+{name}", cfg


def run_group(group: str) -> dict:
    import jax

    from collapse_jax import chain

    experiment, devices, extra = GROUPS[group]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, cfg) in enumerate(_points(experiment, extra, devices == 1)):
            jax.config.update("jax_enable_x64", cfg.enable_x64)
            workdir = chain.run(cfg, Path(tmp) / str(i))
            out[f"{group}/{name}"] = fingerprint(Path(workdir))
            print(f"{group}/{name}: {len(out[f'{group}/{name}'])} files", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--groups", default=",".join(GROUPS))
    ap.add_argument("--group", help=argparse.SUPPRESS)
    ap.add_argument("--compare", nargs=2)
    a = ap.parse_args()
    if a.compare:
        before, after = (json.loads(Path(p).read_text()) for p in a.compare)
        bad = 0
        for run in sorted(set(before) | set(after)):
            b, n = before.get(run), after.get(run)
            if b is None or n is None:
                print(f"{run}: only in {'after' if b is None else 'before'}")
                continue
            for f in sorted(set(b) | set(n)):
                if b.get(f) != n.get(f):
                    bad += 1
                    print(f"{run}: {f} differs ({b.get(f, '-')[:12]} -> {n.get(f, '-')[:12]})")
        common = set(before) & set(after)
        print(f"{len(common)} runs compared, {bad} files differ")
        sys.exit(1 if bad else 0)
    if a.group:
        print(json.dumps(run_group(a.group)))
        return
    result = {}
    for group in a.groups.split(","):
        _, devices, _ = GROUPS[group]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        if devices > 1:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        proc = subprocess.run(
            [sys.executable, __file__, f"--group={group}"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            check=True,
        )
        result.update(json.loads(proc.stdout.decode().strip().splitlines()[-1]))
        if a.out:
            Path(a.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    if not a.out:
        print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
