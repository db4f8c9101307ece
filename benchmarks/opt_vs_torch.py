"""Throughput of the JAX LM ports against transformers' PyTorch models, same process.

    python benchmarks/opt_vs_torch.py                 # every setup below
    python benchmarks/opt_vs_torch.py --only=small    # one of them
    python benchmarks/opt_vs_torch.py --only=gpt2-124m  # GPT2LMHeadModel at GPT-2 124M's shape
    python benchmarks/opt_vs_torch.py --only=smollm2-135m  # LlamaForCausalLM, SmolLM2-135M's shape
    python benchmarks/opt_vs_torch.py --dtype=bfloat16  # bf16 compute on both sides
    python benchmarks/opt_vs_torch.py --quick         # small shape, B=2 L=16, 1 round

Setups: ``small``, a from-scratch OPT of hidden 256, 4 layers, 4 heads, ffn 1024, an 8192-token
vocabulary (twice the width and depth of the scratch model ``configs/opt_finetune.py:cpu``
trains: hidden 128, 2 layers), B=16 x 64 tokens; ``opt-125m``, facebook/opt-125m's shape with the
paper's 64-token blocks and a CPU-sized batch of 4; ``gpt2-124m`` and ``smollm2-135m`` at the
same blocks and batch; ``small-gpt2`` and ``small-llama``, the small setup's sizes in those two
architectures.

OPT setups run against ``OPTForCausalLM``, GPT-2 setups against ``GPT2LMHeadModel``, Llama
setups (SmolLM2's shape) against ``LlamaForCausalLM``; the GPT-2 and Llama setups also time
generation: greedy decoding of ``new_tokens`` tokens after the batch as prompts (ours:
``decode.greedy``, one compiled loop; theirs: ``generate(do_sample=False, num_beams=1)`` with
``min_new_tokens`` so neither stops early).

Both sides run the same config, batch and sequence length from the same weights (converted
with collapse_jax.families.lm.convert), in the same process, with float32 parameters and the
compute dtype of ``--dtype``: float32, or bfloat16 (ours: ``OPTConfig.dtype``, parameters cast
at use; softmax, layer-norm statistics and logits in float32; PyTorch: ``torch.autocast`` to bfloat16 on
the forward and loss, its own choice of float32 ops). Tasks:
  forward:  logits of a batch (torch under no_grad, ours jitted);
  training: one AdamW step on the next-token loss with dropout on (torch: loss.backward() and
            optimizer.step(); ours: one jitted optax step with the state donated).
Torch gets 2 threads (``--torch-threads``), the number of cores of the reference CPU machine;
XLA runs one thread per core; each row names both sides' dtype and threads.
On a machine loaded by other processes torch's OpenMP pool degrades far more than XLA's (busy
waiting on descheduled threads): compare with --torch-threads=1 there before trusting a ratio.
The two sides alternate round by round so that load from other processes hits both alike;
the table reports the median round. Tokens/s counts B * L input tokens per call.
"""

from __future__ import annotations

import argparse

import _common  # first: puts the repository root on sys.path
import jax
import jax.numpy as jnp
import numpy as np
import optax

from collapse_jax import compile_cache
from collapse_jax.families.lm import convert, decode, gpt2, llama, nn, opt, perplexity

ARCHS = {"opt": opt.OPTConfig, "gpt2": gpt2.GPT2Config, "llama": llama.LlamaConfig}

SETUPS = {
    # A from-scratch CPU model, twice the width and depth of configs/opt_finetune.py:cpu's.
    "small": dict(
        config=dict(
            vocab_size=8192,
            hidden_size=256,
            num_hidden_layers=4,
            ffn_dim=1024,
            num_attention_heads=4,
            max_position_embeddings=512,
            word_embed_proj_dim=256,
        ),
        batch=16,
        length=64,
    ),
    # facebook/opt-125m's shape with the paper's 64-token blocks and a CPU-sized batch.
    "opt-125m": dict(config=dict(), batch=4, length=64),
    # GPT-2 124M and SmolLM2-135M (GPT2Config() and LlamaConfig()'s defaults here), the same
    # blocks and batch, plus greedy generation of 32 tokens.
    "gpt2-124m": dict(arch="gpt2", config=dict(), batch=4, length=64, new_tokens=32),
    "smollm2-135m": dict(arch="llama", config=dict(), batch=4, length=64, new_tokens=32),
    # The small setup's sizes in the other two architectures.
    "small-gpt2": dict(
        arch="gpt2",
        config=dict(
            vocab_size=8192, n_embd=256, n_layer=4, n_inner=1024, n_head=4, n_positions=512
        ),
        batch=16,
        length=64,
        new_tokens=16,
    ),
    "small-llama": dict(
        arch="llama",
        config=dict(
            vocab_size=8192,
            hidden_size=256,
            num_hidden_layers=4,
            intermediate_size=1024,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=64,
            max_position_embeddings=512,
        ),
        batch=16,
        length=64,
        new_tokens=16,
    ),
}
_TORCH_CLASSES = {"opt": "OPTForCausalLM", "gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}


def _repeat(fn, steps: int):
    def run():
        for _ in range(steps):
            fn()

    return run


def _jax_side(config, params, ids_BxL, new_tokens=0):
    forward = jax.jit(lambda p, x: nn.forward(p, config, x)[0])

    def loss_fn(p, x_BxL, key):
        # The fine-tuning loss itself (finetune.make_train_step), not a copy of it.
        nll_BxT = perplexity.token_losses(p, config, x_BxL, deterministic=False, dropout_key=key)
        return nll_BxT.mean()

    tx = optax.adamw(2e-5, weight_decay=0.01)

    def train_step(state, x_BxL, key):
        p, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(p, x_BxL, key)
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), loss

    train_step = jax.jit(train_step, donate_argnums=0)
    # The step donates its state: train a copy so `params` stays valid for the forward.
    state = [(jax.tree.map(jnp.copy, params), tx.init(params))]
    key = jax.random.key(0)
    x = jnp.asarray(ids_BxL)

    def run_forward():
        forward(params, x).block_until_ready()

    def run_train():
        state[0], loss = train_step(state[0], x, key)
        loss.block_until_ready()

    def run_generate():
        out = decode.greedy(
            decode.causal_lm(config),
            params,
            x,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
        )
        out.tokens_BxN.block_until_ready()

    return run_forward, run_train, run_generate


def _torch_side(config, params, ids_BxL, device="cpu", new_tokens=0):
    """PyTorch's forward, training step and greedy generation; under ``torch.autocast`` to
    bfloat16 when ``config.dtype`` is bfloat16 (float32 parameters and AdamW state, as ours)."""
    import contextlib

    import torch
    import transformers

    hf_config = transformers.AutoConfig.for_model(**config.to_hf_dict())
    hf_config._attn_implementation = "eager"
    model = getattr(transformers, _TORCH_CLASSES[config.architecture])(hf_config)
    state_dict = convert.state_dict_from_params(params, config)
    state_dict = {k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    # Only a tied lm_head may be missing (it is the token embedding).
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
    x = torch.from_numpy(np.asarray(ids_BxL, np.int64)).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    device_type = "cuda" if device.startswith("cuda") else "cpu"

    def compute():
        if config.dtype == "bfloat16":
            return torch.autocast(device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def run_forward():
        model.eval()
        with torch.no_grad(), compute():
            model(input_ids=x).logits  # noqa: B018
        sync()

    def run_train():
        model.train()
        with compute():
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()

    def run_generate():
        model.eval()
        with torch.no_grad(), compute():
            model.generate(
                input_ids=x,
                attention_mask=torch.ones_like(x),
                do_sample=False,
                num_beams=1,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=config.eos_token_id,
            )
        sync()

    return run_forward, run_train, run_generate


def bench(name: str, dtype: str, rounds: int, steps: int, shape=None) -> list[tuple]:
    """``shape``: ``(B, L)`` instead of the setup's."""
    setup = SETUPS[name]
    config = ARCHS[setup.get("arch", "opt")](**setup["config"], dtype=dtype)
    b, l = shape or (setup["batch"], setup["length"])
    n = setup.get("new_tokens", 0)
    params = nn.init_params(jax.random.key(0), config)
    ids_BxL = np.random.default_rng(0).integers(3, config.vocab_size, (b, l)).astype(np.int32)
    tasks = ("forward", "train", "generate")
    ours = dict(zip(tasks, _jax_side(config, params, ids_BxL, n), strict=True))
    theirs = dict(zip(tasks, _torch_side(config, params, ids_BxL, new_tokens=n), strict=True))
    rows = []
    for task in tasks if n else tasks[:2]:
        sides = {"ours": _repeat(ours[task], steps), "theirs": _repeat(theirs[task], steps)}
        t = _common.interleave(sides, rounds)
        # Generation counts the new tokens of every row; the others every input token.
        tok = (b * n if task == "generate" else b * l) * steps
        rows.append(
            (
                name,
                f"B={b} L={l}",
                task,
                _common.rate(tok, t["ours"]),
                _common.rate(tok, t["theirs"]),
                _common.ratio(t["theirs"], t["ours"]),
            )
        )
    return rows


# What --quick and accelerator.py --tiny run: the small shape at a toy batch (one compile each).
QUICK_SHAPE = (2, 16)


def rows(only=None, dtype="float32", rounds=5, steps=3, quick=False, torch_threads=2):
    import torch

    shape = None
    if quick:
        only, rounds, steps, shape = "small", 1, 1, QUICK_SHAPE
    torch.set_num_threads(torch_threads)
    compute = "float32" if dtype == "float32" else "bfloat16 compute, float32 parameters"
    ours_side = _common.jax_side()._replace(dtype=compute)
    theirs_side = _common.torch_side(
        compute if dtype == "float32" else "bfloat16 autocast, float32 parameters"
    )
    out = []
    for name in [only] if only else list(SETUPS):
        arch = {"opt": "OPT", "gpt2": "GPT-2", "llama": "Llama"}[SETUPS[name].get("arch", "opt")]
        for setup, shape_s, task, a, b, r in bench(name, dtype, rounds, steps, shape):
            cmd = f"python benchmarks/opt_vs_torch.py --only={setup}"
            cmd += f" --dtype={dtype}" if dtype != "float32" else ""
            cmd += " --quick" if quick else ""
            out.append(
                _common.Row(
                    f"{arch} {task} tokens/s, {setup} shape, {shape_s}, {dtype}",
                    cmd,
                    _common.Cell(a),
                    _common.Cell(b, "transformers "),
                    _common.Cell(r, suffix="x"),
                    ours_side=ours_side,
                    reference_side=theirs_side,
                )
            )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted(SETUPS), default=None)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="calls per timed round")
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help=f"small setup at B, L = {QUICK_SHAPE}, 1 round"
    )
    args = parser.parse_args(argv)
    compile_cache.enable()
    print(_common.machine())
    out = rows(args.only, args.dtype, args.rounds, args.steps, args.quick, args.torch_threads)
    print(_common.table(out))


if __name__ == "__main__":
    main()
