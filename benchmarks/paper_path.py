"""The paper's OPT path end to end and offline, its time per block per stage, and the full cost.

    python benchmarks/paper_path.py --workdir=/tmp/paper_path              # OPT-125m's shape
    python benchmarks/paper_path.py --workdir=/tmp/paper_tiny --model=tiny  # same path, tiny width
    python benchmarks/paper_path.py --memory      # XLA's memory analysis of one fine-tuning step
    python benchmarks/paper_path.py --quick       # --memory at the tiny width (seconds; no run)

1. Builds an OPT with random weights, transformers' ``OPTConfig`` defaults for facebook/opt-125m
   (12 layers, hidden 768, 12 heads, ffn 3072, vocab 50272, 2048 positions) or a tiny one, and
   saves it as an HF directory (``config.json``, ``model.safetensors`` and a byte-level BPE
   tokenizer trained on the training text: no hub is reachable, so OPT's own tokenizer is not).
2. Finds WikiText-2 with every split the paper reads. ``$COLLAPSE_JAX_DATA`` (``../shared/data``)
   holds only the valid and test splits of the tokenized release, so a stand-in folder is laid
   out: train = valid.txt, valid and test = the two halves of test.txt. A folder that holds all
   three splits (the raw release) is used as it is.
3. Runs ``python -m launch.run --config=configs/opt_wikitext.py:paper`` on it with only these
   overrides: ``lm.source`` and ``tokenizer.source`` (the model directory; the paper takes both
   from ``facebook/opt-125m``), ``data.max_train_blocks`` and ``data.max_eval_blocks`` (128: the
   paper's batch of 128 needs that many training blocks), ``num_generations=2``, ``num_seeds=1``.
   Everything else is the paper's: 5 epochs, batch 128, AdamW, 5-way beam search of exactly 64
   new tokens, per-block perplexity, tail metrics, checkpoints. The first run is interrupted
   (KeyboardInterrupt, as Ctrl-C) right after generation 1's test metrics; the rerun resumes from
   generation 1's saved synthetic data and finishes.
4. Times every call of the library functions each stage runs (wrapped in the launched process,
   ``jax.block_until_ready`` on their results, nested calls subtracted from their caller) and
   prints seconds per 64-token block per stage: warm (calls after the first of their stage in a
   process) and cold (the first, which compiles). From the warm times it projects the full
   paper experiment: every WikiText-2 training block, generations 0..9, 5 seeds, both regimes.

Timing records go to ``DIR/stage_times.jsonl``, the summary to ``DIR/paper_path.json``.

``--memory`` only lowers and compiles one fine-tuning step of the paper's config (batch 128 x 64
tokens, AdamW, state donated) from abstract shapes and prints XLA's memory analysis: 2026-12-07,
jax 0.10.2, 2-core AMD EPYC: at OPT-125m's shape (125.2M parameters) the step's arguments, i.e. the state it
keeps (parameters 0.47 GiB, AdamW's two moments, the step, 128 training blocks), are 1.40 GiB;
its outputs (1.40 GiB) all reuse the donated arguments' buffers, so the state is 1.40 GiB, not
twice that; its temporaries are 11.31 GiB (the (8192, 50272) float32 logits, their softmax and
gradient, 12 layers of activations); peak about 12.7 GiB.

Measured on the 2-core Xeon with 23 GB of memory:
  tiny (shared by several busy processes, load average 11-16): both runs 8.5 min of wall time but
    1 CPU-minute, every stage timed, the rerun resumed (no beam search of the data, one
    fine-tuning), metrics.jsonl complete with 2 generations.
  opt-125m (2026-11-30, mostly idle): both runs 25.6 min of wall time (1150 s, interrupted after
    generation 1's test metrics; 384 s, resumed from generation 1's saved synthetic data: no beam
    search of the data; generation 1's fine-tuning redone, as the model was then saved with its
    metrics: it is now saved before them), exit 0, metrics.jsonl complete with 2
    generations. Warm seconds per block: fine-tuning 0.339 per epoch, validation 0.135, beam
    search 1.34, data perplexity 0.108, test perplexity + tail 0.097. A fine-tuning step at the
    paper's batch of 128 x 64 tokens then needed 11.5 GiB of XLA temporaries besides 1.4 GiB of
    parameters and AdamW state (``--memory``, above; 11.31 GiB of temporaries on 2026-12-07 on a
    2-core AMD EPYC, same jax): an earlier attempt on the machine shared with six other jobs was
    killed for memory.
  Both runs above used one batch per step (what ``--micro-batches=1`` runs today); the default
  ``--micro-batches=4`` (the same update in four slices) has not been timed on this path yet.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common  # first: puts the repository root on sys.path

BLOCK = 64  # the paper's block size (data.block_size), tokens
LOG_ENV = "PAPER_PATH_LOG"
INTERRUPT_ENV = "PAPER_PATH_INTERRUPT"  # "STAGE:N": KeyboardInterrupt after the N-th call

MODELS = {
    # transformers' OPTConfig() defaults are facebook/opt-125m's shape.
    "opt-125m": {},
    "tiny": dict(
        vocab_size=1024,
        hidden_size=32,
        num_hidden_layers=2,
        ffn_dim=64,
        num_attention_heads=2,
        word_embed_proj_dim=32,
        max_position_embeddings=256,
    ),
}
TOKENIZER_VOCAB = {"opt-125m": 8192, "tiny": 1024}

# The paper's data, in 64-token blocks of OPT's tokenizer with one </s> per non-empty line
# (our data.skip_empty_lines): wikitext-2-raw-v1 has about 2.37M GPT-2 tokens in train (HF
# run_clm: 2318 blocks of 1024), 246k in validation (240 blocks) and 280k in test, and
# 23.8k / 2.5k / 2.9k non-empty lines. Estimates (the hub is not reachable here), within ~2%.
PAPER_BLOCKS = {"train": 37_470, "valid": 3_880, "test": 4_420}
PAPER = dict(seeds=5, generations=10, example_prompts=64)
# regime: (fine-tuning epochs, share of the M training blocks that is beam-searched)
PAPER_REGIMES = {"5ep": (5, 1.0), "10ep_keep10": (10, 0.9)}

STAGE_ORDER = (
    "tokenize",
    "fine-tune (train steps)",
    "validation",
    "generation: synthetic data",
    "generation: example",
    "data perplexity",
    "test perplexity + tail metrics",
    "tail reference",
)


# ------------------------------------------------------------------------------ the run's side


def _rows(args) -> int | None:
    """Rows of the first 2-D array argument (the blocks or prompts a call works on)."""
    import numpy as np

    for a in args:
        if hasattr(a, "shape") and len(a.shape) == 2 and np.issubdtype(a.dtype, np.integer):
            return int(a.shape[0])
    return None


def _stage_specs():
    """``(function name, stage(parent, args, kwargs), rows(args, kwargs, out))`` per wrapped
    function; a function is wrapped in every module that holds it, under any name (``tail.X``:
    only the ``X`` of module ``tail``)."""

    def finetune_rows(a, k, out):
        ft = a[5] if len(a) > 5 else k["ft_cfg"]
        return _rows(a) * ft.num_epochs

    def ppl_stage(parent, a, k):
        return "validation" if parent == "fine-tune (train steps)" else "data perplexity"

    def ppl_rows(a, k, out):
        n, bs = _rows(a), a[3] if len(a) > 3 else k["batch_size"]
        return math.ceil(n / bs) * bs  # padded to whole batches: the work done

    def beam_stage(parent, a, k):
        mask = a[3] if len(a) > 3 else k.get("prompt_mask_BxL")
        return "generation: example" if mask is not None else "generation: synthetic data"

    return (
        ("token_stream", lambda p, a, k: "tokenize", lambda a, k, out: len(out) / BLOCK),
        ("finetune", lambda p, a, k: "fine-tune (train steps)", finetune_rows),
        ("block_losses", ppl_stage, ppl_rows),
        ("beam_search", beam_stage, lambda a, k, out: _rows(a)),
        (
            "model_metrics",
            lambda p, a, k: "test perplexity + tail metrics",
            lambda a, k, o: _rows(a),
        ),
        ("tail.reference", lambda p, a, k: "tail reference", lambda a, k, out: None),
    )


def install_timers(log_path: Path, interrupt: str = "") -> None:
    """Wrap the stage functions in every loaded ``collapse_jax`` module (call before running)."""
    import importlib
    import pkgutil

    import jax

    import collapse_jax.families.lm as lm_pkg

    for info in pkgutil.walk_packages(lm_pkg.__path__, lm_pkg.__name__ + "."):
        importlib.import_module(info.name)
    importlib.import_module("collapse_jax.data.wikitext")

    stop_stage, _, stop_n = interrupt.rpartition(":")
    stack: list[dict] = []
    counts: dict[str, int] = {}
    log = log_path.open("a")

    def write(row):
        log.write(json.dumps(row) + "\n")
        log.flush()

    def wrap(fn, stage_of, rows_of):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            parent = stack[-1]["stage"] if stack else None
            frame = {"stage": stage_of(parent, args, kwargs), "child": 0.0}
            # Work dispatched before this call (a train step's update of the params it reads)
            # belongs to the caller: wait for it before the clock starts.
            jax.block_until_ready((args, kwargs))
            stack.append(frame)
            t0 = time.perf_counter()
            try:
                out = jax.block_until_ready(fn(*args, **kwargs))
            finally:
                stack.pop()
            seconds = time.perf_counter() - t0
            if stack:
                stack[-1]["child"] += seconds
            stage = frame["stage"]
            counts[stage] = counts.get(stage, 0) + 1
            write(
                {
                    "pid": os.getpid(),
                    "stage": stage,
                    "call": counts[stage],
                    "blocks": rows_of(args, kwargs, out),
                    "seconds": seconds - frame["child"],
                }
            )
            if stage == stop_stage and counts[stage] == int(stop_n):
                write({"pid": os.getpid(), "event": "interrupted", "after": interrupt})
                raise KeyboardInterrupt(f"paper_path: interrupted after {interrupt}")
            return out

        timed.__wrapped_by_paper_path__ = True
        return timed

    modules = [m for name, m in sys.modules.items() if name.startswith("collapse_jax") and m]
    for spec, stage_of, rows_of in _stage_specs():
        # "module.attr" names a function of one module only (a name other modules also use).
        owner, _, name = spec.rpartition(".")
        originals = {
            id(getattr(m, name)): getattr(m, name)
            for m in modules
            if (not owner or m.__name__.endswith("." + owner))
            and callable(getattr(m, name, None))
            and not hasattr(getattr(m, name), "__wrapped_by_paper_path__")
        }
        for fn in originals.values():
            wrapped = wrap(fn, stage_of, rows_of)
            for m in modules:
                for attr, value in list(vars(m).items()):
                    if value is fn:
                        setattr(m, attr, wrapped)
    write({"pid": os.getpid(), "event": "start", "time": time.time()})


def _launch(argv: list[str]) -> None:
    """In the launched process: wrap the stages, then ``python -m launch.run ARGV``."""
    import runpy

    install_timers(Path(os.environ[LOG_ENV]), os.environ.get(INTERRUPT_ENV, ""))
    sys.argv = ["launch.run", *argv]
    runpy.run_module("launch.run", run_name="__main__", alter_sys=True)


# ---------------------------------------------------------------------------- the driver's side


def split_lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def standin_data(workdir: Path) -> Path:
    """A ``$COLLAPSE_JAX_DATA`` folder with WikiText-2's train, valid and test splits."""
    from collapse_jax.data import fetch

    have = os.environ.get(fetch.DATA_ENV, str(_common.ROOT.parent / "shared" / "data"))
    if fetch._wikitext_in(Path(have), ("test", "train", "valid")) is not None:
        return Path(have)
    src = fetch._wikitext_in(Path(have), ("test", "valid"))
    if src is None:
        raise SystemExit(f"no WikiText-2 valid and test splits under {have} ($COLLAPSE_JAX_DATA)")
    out = workdir / "data"
    folder = out / ("wikitext-2-raw" if src.kind == "raw" else "wikitext-2")
    name = "wiki.{}.raw" if src.kind == "raw" else "{}.txt"
    folder.mkdir(parents=True, exist_ok=True)
    test = split_lines(src.read("test"))
    half = len(test) // 2
    parts = {
        "train": src.read("valid"),
        "valid": "".join(test[:half]),
        "test": "".join(test[half:]),
    }
    for split, text in parts.items():
        (folder / name.format(split)).write_text(text)
    return out


def build_model(model: str, model_dir: Path, data_root: Path) -> dict:
    """The random OPT and a trained tokenizer as one HF directory; returns its config dict."""
    import jax

    from collapse_jax.data import fetch
    from collapse_jax.families.lm import convert, opt
    from collapse_jax.families.lm import tokenizer as tokenizer_lib

    train = fetch._wikitext_in(data_root, ("train",)).read("train")
    lines = [x if x.strip() else "" for x in split_lines(train)]
    cache = Path(os.path.expanduser("~/.cache/collapse_jax/tokenizers"))
    tok_dir = tokenizer_lib.trained_dir(lines, TOKENIZER_VOCAB[model], cache)
    config = opt.OPTConfig(**MODELS[model])
    if model_dir.joinpath("config.json").exists():
        return json.loads(model_dir.joinpath("config.json").read_text())
    convert.save_pretrained(opt.init_params(jax.random.key(0), config), config, model_dir)
    for f in tok_dir.iterdir():
        shutil.copy(f, model_dir / f.name)
    return config.to_hf_dict()


def launch_flags(run_dir: Path, model_dir: Path, blocks: int, micro_batches: int = 1) -> list[str]:
    """The launcher's flags; ``micro_batches`` > 1 adds ``finetune.micro_batches`` (the same
    update in that many slices of the batch: what bounds the step's memory)."""
    flags = [
        "--config=configs/opt_wikitext.py:paper",
        f"--workdir={run_dir}",
        f"--config.lm.source={model_dir}",
        f"--config.tokenizer.source={model_dir}",
        f"--config.data.max_train_blocks={blocks}",
        f"--config.data.max_eval_blocks={blocks}",
        "--config.num_generations=2",
        "--config.num_seeds=1",
    ]
    if micro_batches > 1:
        flags.append(f"--config.finetune.micro_batches={micro_batches}")
    return flags


def run_launcher(flags: list[str], log: Path, data_root: Path, interrupt: str = "") -> tuple:
    """``(exit code, wall seconds)`` of one launched run, its stage records appended to ``log``."""
    env = dict(os.environ, **{LOG_ENV: str(log), INTERRUPT_ENV: interrupt})
    env["COLLAPSE_JAX_DATA"] = str(data_root)
    env["PYTHONPATH"] = os.pathsep.join([str(_common.ROOT), env.get("PYTHONPATH", "")])
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "_launch", *flags], cwd=_common.ROOT, env=env, check=False
    )
    return proc.returncode, time.perf_counter() - t0


def summarize(records: list[dict]) -> dict:
    """Per stage: calls, blocks, seconds, and seconds per block warm / cold."""
    first_seen: set = set()
    out: dict[str, dict] = {}
    for r in records:
        if "stage" not in r:
            continue
        s = out.setdefault(
            r["stage"], {"calls": 0, "blocks": 0.0, "seconds": 0.0, "warm": [], "cold": []}
        )
        s["calls"] += 1
        s["seconds"] += r["seconds"]
        if r["blocks"]:
            s["blocks"] += r["blocks"]
            per = r["seconds"] / r["blocks"]
            cold = (r["pid"], r["stage"]) not in first_seen
            s["cold" if cold else "warm"].append(per)
        first_seen.add((r["pid"], r["stage"]))
    for s in out.values():
        s["s_per_block_warm"] = statistics.median(s["warm"]) if s["warm"] else None
        s["s_per_block_cold"] = statistics.median(s["cold"]) if s["cold"] else None
        s["s_per_block"] = s["s_per_block_warm"] or s["s_per_block_cold"]
    return out


def project(per_block: dict[str, float], blocks=PAPER_BLOCKS, paper=PAPER) -> dict[str, float]:
    """Seconds of the paper's experiment per regime, from seconds per block per stage."""
    m, v, t = blocks["train"], blocks["valid"], blocks["test"]
    beam = per_block["generation: synthetic data"]
    out = {}
    for regime, (epochs, model_share) in PAPER_REGIMES.items():
        one_generation = (
            epochs * m * per_block["fine-tune (train steps)"]
            + (epochs + 1) * v * per_block["validation"]
            + m * per_block["data perplexity"]
            + t * per_block["test perplexity + tail metrics"]
            + paper["example_prompts"] * beam
        )
        generations = paper["generations"] * one_generation + (paper["generations"] - 1) * (
            model_share * m * beam
        )
        out[regime] = (m + v + t) * per_block["tokenize"] + paper["seeds"] * generations
    return out


def forward_flops_per_token(hf: dict, context: int) -> float:
    """Matmul FLOPs of one token's forward pass at ``context`` keys (multiply-add = 2 FLOPs):
    the q/k/v/out and fc1/fc2 kernels, the tied LM head, and the two attention products."""
    d, f, n = hf["hidden_size"], hf["ffn_dim"], hf["num_hidden_layers"]
    macs = (
        n * (4 * d * d + 2 * d * f + 2 * context * d) + hf["word_embed_proj_dim"] * hf["vocab_size"]
    )
    return 2.0 * macs


def paper_flops(hf: dict, blocks=PAPER_BLOCKS, paper=PAPER) -> dict[str, float]:
    """FLOPs of the paper's experiment per regime: training 3x the forward, beam search a prefill
    of the 64-token prompt and 5 beams x 64 one-token steps at up to 128 keys."""
    m, v, t = blocks["train"], blocks["valid"], blocks["test"]
    fwd = forward_flops_per_token(hf, BLOCK) * BLOCK  # one block
    beam = fwd + 5 * BLOCK * forward_flops_per_token(hf, 3 * BLOCK // 2)  # one prompt
    out = {}
    for regime, (epochs, model_share) in PAPER_REGIMES.items():
        one_generation = (3 * epochs * m + (epochs + 1) * v + m + t) * fwd
        one_generation += paper["example_prompts"] * beam
        synthetic = (paper["generations"] - 1) * model_share * m * beam
        out[regime] = paper["seeds"] * (paper["generations"] * one_generation + synthetic)
    return out


def step_memory(model: str = "opt-125m", batch: int = 128, blocks: int = 128) -> dict:
    """XLA's memory analysis of one fine-tuning step of the paper's config at ``model``'s shape
    (``finetune.make_train_step``, batch ``batch`` x 64 tokens, ``blocks`` training blocks on the
    device), lowered from abstract shapes (nothing allocated): bytes of the arguments (the
    parameters, AdamW's two moments, the step, the training blocks), of the outputs, of the outputs
    aliased to donated arguments, and of the temporaries. The state the step keeps is the
    arguments; a step holds arguments + temporaries + unaliased outputs at its peak."""
    import jax
    import jax.numpy as jnp

    from collapse_jax.families.lm import finetune, opt
    from configs import opt_wikitext

    cfg = opt_wikitext.get_config("paper")
    config = opt.OPTConfig(**MODELS[model])
    optimizer = finetune.make_optimizer(cfg.finetune, steps_per_epoch=1)
    step = finetune.make_train_step(config, optimizer)
    params = jax.eval_shape(lambda: opt.init_params(jax.random.key(0), config))
    state = finetune.TrainState(
        params, jax.eval_shape(optimizer.init, params), jax.ShapeDtypeStruct((), jnp.int32)
    )
    train = jax.ShapeDtypeStruct((blocks, BLOCK), jnp.int32)
    index = jax.ShapeDtypeStruct((batch,), jnp.int32)
    key = jax.eval_shape(lambda: jax.random.key(0))
    m = step.lower(state, train, index, key).compile().memory_analysis()
    leaves = jax.tree.leaves(params)
    out = {
        "model": model,
        "batch": batch,
        "params": sum(math.prod(x.shape) for x in leaves),
        "param_bytes": sum(math.prod(x.shape) * x.dtype.itemsize for x in leaves),
        "argument_bytes": m.argument_size_in_bytes,
        "output_bytes": m.output_size_in_bytes,
        "alias_bytes": m.alias_size_in_bytes,
        "temp_bytes": m.temp_size_in_bytes,
    }
    out["peak_bytes"] = out["argument_bytes"] + out["temp_bytes"]
    out["peak_bytes"] += out["output_bytes"] - out["alias_bytes"]
    return out


def print_memory(mem: dict) -> None:
    gib = 2.0**30
    print(
        f"fine-tuning step, {mem['model']} shape ({mem['params'] / 1e6:.1f}M parameters), batch "
        f"{mem['batch']} x {BLOCK} tokens, XLA memory analysis: arguments "
        f"{mem['argument_bytes'] / gib:.2f} GiB (parameters {mem['param_bytes'] / gib:.2f} GiB, "
        f"AdamW's two moments, the step and the training blocks), temporaries "
        f"{mem['temp_bytes'] / gib:.2f} GiB, outputs {mem['output_bytes'] / gib:.2f} GiB of which "
        f"{mem['alias_bytes'] / gib:.2f} GiB reuse the donated state; peak about "
        f"{mem['peak_bytes'] / gib:.2f} GiB"
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, help="the run's folder (required to run)")
    parser.add_argument("--model", choices=sorted(MODELS), default="opt-125m")
    parser.add_argument("--blocks", type=int, default=128, help="train and eval blocks (>= 128)")
    parser.add_argument(
        "--micro-batches",
        type=int,
        default=4,
        help="finetune.micro_batches: the batch of 128 as this many slices inside the step, the "
        "same update with a smaller step (XLA's memory analysis per option: "
        "benchmarks/lm_memory.py); 1: the config's default",
    )
    parser.add_argument(
        "--interrupt",
        default="test perplexity + tail metrics:2",
        help="STAGE:N: the first run stops after the N-th call of STAGE ('' runs it through); "
        "a second run resumes it (or, when it finished, finds nothing left to do)",
    )
    parser.add_argument(
        "--memory", action="store_true", help="XLA's memory analysis of one step, no run"
    )
    parser.add_argument("--quick", action="store_true", help="--memory --model=tiny")
    args = parser.parse_args(argv)
    if args.quick:
        args.memory, args.model = True, "tiny"
    if args.memory:
        print(_common.machine(), flush=True)
        mem = step_memory(args.model)
        print_memory(mem)
        return mem
    if args.workdir is None:
        parser.error("--workdir: expected a folder for the run, got none")
    workdir = args.workdir.expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    print(_common.machine(), flush=True)
    data_root = standin_data(workdir)
    model_dir = workdir / f"model-{args.model}"
    hf = build_model(args.model, model_dir, data_root)
    run_dir, log = workdir / "run", workdir / "stage_times.jsonl"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    log.unlink(missing_ok=True)
    flags = launch_flags(run_dir, model_dir, args.blocks, args.micro_batches)
    print("python -m launch.run " + " ".join(flags), flush=True)

    runs = []
    for interrupt in (args.interrupt, ""):
        code, wall = run_launcher(flags, log, data_root, interrupt)
        runs.append({"interrupted_after": interrupt, "exit_code": code, "wall_seconds": wall})
    records = [json.loads(x) for x in log.read_text().splitlines()]
    pids = list(dict.fromkeys(r["pid"] for r in records))
    calls_per_run = [
        {s: sum(r.get("stage") == s and r["pid"] == p for r in records) for s in STAGE_ORDER}
        for p in pids
    ]
    stages = summarize(records)
    metrics_lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    summary = {
        "machine": _common.machine(),
        "model": args.model,
        "command": "python -m launch.run " + " ".join(flags),
        "runs": runs,
        "calls_per_run": calls_per_run,
        "generations_done": len(metrics_lines),
        "stages": stages,
    }
    print()
    print(f"runs: {runs}")
    print(f"generations in metrics.jsonl: {len(metrics_lines)}")
    print("\n| stage | calls | blocks | seconds | s/block warm | s/block cold (first call) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in STAGE_ORDER:
        s = stages.get(name)
        if s is None:
            continue

        def f(x):
            return "-" if x is None else f"{x:.4g}"

        print(
            f"| {name} | {s['calls']} | {s['blocks']:.0f} | {s['seconds']:.1f} | "
            f"{f(s['s_per_block_warm'])} | {f(s['s_per_block_cold'])} |"
        )
    total_wall = sum(r["wall_seconds"] for r in runs)
    print(f"| all (process wall, both runs) | | | {total_wall:.1f} | | |")
    flops = paper_flops(hf)
    summary["paper_flops"] = flops
    print(
        f"\nThe paper's experiment at this model's shape: {sum(flops.values()):.3g} FLOPs "
        + ", ".join(f"{k} {v:.3g}" for k, v in flops.items())
        + f"; {sum(flops.values()) / 1e14 / 3600:.1f} hours per 100 TFLOP/s sustained"
    )
    missing = [s for s in STAGE_ORDER if s not in stages or stages[s]["s_per_block"] is None]
    missing = [s for s in missing if s != "tail reference"]
    if not missing:
        per_block = {s: stages[s]["s_per_block"] for s in STAGE_ORDER if s != "tail reference"}
        proj = project(per_block)
        summary["projection_seconds"] = proj
        print(
            f"\nProjection of the paper's experiment ({PAPER_BLOCKS['train']:,} training blocks "
            f"(estimated), {PAPER['generations']} generations, {PAPER['seeds']} seeds) at these "
            "warm per-block times, one process on this machine:"
        )
        for regime, seconds in proj.items():
            print(f"  {regime}: {seconds / 3600:,.0f} hours ({seconds / 86400:,.1f} days)")
        print(f"  both regimes: {sum(proj.values()) / 3600:,.0f} hours")
    else:
        summary["missing_stages"] = missing
        print(f"\nno projection: no per-block time for {missing}")
    (workdir / "paper_path.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_launch":
        _launch(sys.argv[2:])
    else:
        main()
