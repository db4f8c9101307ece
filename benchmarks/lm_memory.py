"""Peak memory of one LM training step, by XLA's memory analysis, with the memory options.

    python benchmarks/lm_memory.py                      # the three shapes, batch 128 x 64 tokens
    python benchmarks/lm_memory.py --shapes=tiny --json=/tmp/m.json
    python benchmarks/lm_memory.py --quick              # tiny shape, two options

The step is the chain's own (``finetune.make_train_step``: AdamW with clipping, dropout on,
the state donated), lowered for abstract float32 parameters of each shape (random weights are
never made, nothing is downloaded) and compiled for this machine's backend;
``compiled.memory_analysis()`` then gives XLA's buffer assignment: ``temp`` (every
intermediate: activations kept for the backward pass, logits, gradients), ``arguments``
(parameters, AdamW's two moments, the training blocks) and ``outputs`` (the new state, aliased
to the donated arguments). The peak of a step is ``arguments + temp + outputs - aliased``.

Options (``finetune.Memory`` fields, and the compute dtype ``lm.dtype``):
  baseline          one batch, every activation kept, float32
  micro4            4 micro-batches of 32 in the step (a scan: one micro-batch's activations
                    and logits at a time)
  micro4_remat      and each layer rematerialised (``jax.checkpoint_policies.nothing_saveable``)
  micro8_remat      8 micro-batches of 16, rematerialised
  bf16_micro4       bfloat16 compute copy of the float32 master parameters, bfloat16 compute,
                    4 micro-batches

Shapes: OPT-125m (transformers' ``OPTConfig()``), GPT-2 124M (``GPT2Config()``), SmolLM2-135M
(30 layers, hidden 576, 9 heads over 3 key/value heads, vocabulary 49152; ``LlamaConfig()``'s
defaults here), and ``tiny`` for tests. Numbers are for the backend the script runs on (CPU
here): another backend assigns buffers differently.
"""

from __future__ import annotations

import argparse
import json
import time

import _common  # first: puts the repository root on sys.path
import jax
import jax.numpy as jnp

from collapse_jax.families.lm import finetune, gpt2, llama, nn, opt

GiB = 2**30

SHAPES = {
    "opt-125m": lambda dtype: opt.OPTConfig(dtype=dtype),
    "gpt2-124m": lambda dtype: gpt2.GPT2Config(dtype=dtype),
    "smollm2-135m": lambda dtype: llama.LlamaConfig(dtype=dtype),
    "tiny": lambda dtype: llama.tiny_config(vocab_size=512, dtype=dtype),
}
OPTIONS = {
    "baseline": ("float32", finetune.Memory(1, "none", "float32")),
    "micro4": ("float32", finetune.Memory(4, "none", "float32")),
    "micro4_remat": ("float32", finetune.Memory(4, "nothing_saveable", "float32")),
    "micro8_remat": ("float32", finetune.Memory(8, "nothing_saveable", "float32")),
    "bf16_micro4": ("bfloat16", finetune.Memory(4, "none", "bfloat16")),
}


def analyse(shape: str, option: str, batch: int = 128, block: int = 64) -> dict:
    """XLA's memory analysis of one compiled training step (bytes) and the compile seconds."""
    from configs import opt_finetune

    dtype, memory = OPTIONS[option]
    config = SHAPES[shape](dtype)
    ft = opt_finetune.finetune_fields()
    ft.batch_size = batch
    optimizer = finetune.make_optimizer(ft, steps_per_epoch=100)
    step = finetune.make_train_step(config, optimizer, memory=memory, jit=False)
    params = jax.eval_shape(lambda: nn.init_params(jax.random.key(0), config))
    state = jax.eval_shape(
        lambda p: finetune.TrainState(p, optimizer.init(p), jnp.zeros((), jnp.int32)), params
    )
    train = jax.ShapeDtypeStruct((batch, block), jnp.int32)
    index = jax.ShapeDtypeStruct((batch,), jnp.int32)
    key = jax.eval_shape(lambda: jax.random.key(0))
    t0 = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=0).lower(state, train, index, key).compile()
    seconds = time.perf_counter() - t0
    m = compiled.memory_analysis()
    out = {
        "shape": shape,
        "option": option,
        "batch": batch,
        "block": block,
        "params": nn.param_count(params),
        "temp_bytes": int(m.temp_size_in_bytes),
        "argument_bytes": int(m.argument_size_in_bytes),
        "output_bytes": int(m.output_size_in_bytes),
        "alias_bytes": int(m.alias_size_in_bytes),
        "compile_seconds": seconds,
    }
    out["peak_bytes"] = (
        out["argument_bytes"] + out["temp_bytes"] + out["output_bytes"] - out["alias_bytes"]
    )
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| shape | option | temp GiB | arguments GiB | peak GiB |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['option']} | {r['temp_bytes'] / GiB:.2f} | "
            f"{r['argument_bytes'] / GiB:.2f} | {r['peak_bytes'] / GiB:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="opt-125m,gpt2-124m,smollm2-135m")
    parser.add_argument("--options", default=",".join(OPTIONS))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--json", default="")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the tiny shape, baseline and micro4 (a check of the script)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.shapes, args.options = "tiny", "baseline,micro4"
    print(_common.machine(), flush=True)
    rows = []
    for shape in args.shapes.split(","):
        for option in args.options.split(","):
            rows.append(analyse(shape, option, args.batch, args.block))
            r = rows[-1]
            print(
                f"{shape} {option}: peak {r['peak_bytes'] / GiB:.2f} GiB "
                f"(temp {r['temp_bytes'] / GiB:.2f}), compiled in {r['compile_seconds']:.0f} s",
                flush=True,
            )
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": _common.machine(), "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
