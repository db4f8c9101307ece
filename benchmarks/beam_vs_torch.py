"""Beam search throughput: ours (one compiled lax.while_loop) against transformers' generate.

    python benchmarks/beam_vs_torch.py                  # small config and the OPT-125m shape
    python benchmarks/beam_vs_torch.py --only=small     # one of them
    python benchmarks/beam_vs_torch.py --rounds=3
    python benchmarks/beam_vs_torch.py --quick          # small config, 1 prompt, 4 new tokens

The paper's decoding setting on both sides, same random weights (converted with
collapse_jax.families.lm.convert), same prompts, in one process: 5 beams, exactly 64 new tokens
(min_new_tokens = max_new_tokens = 64), 64-token prompts, float32 on both sides. Torch gets 2
threads (the reference CPU machine's cores); XLA uses one thread per core (each row names both).
The sides alternate round by round so that load from other processes hits both alike; the table
reports the median round. New tokens/s counts B * 64 tokens of the best hypothesis per call. Our
first call (trace and compile, then one search) is timed apart and printed under the table;
transformers' first call is an untimed warm-up.
"""

from __future__ import annotations

import argparse
import time

import _common  # first: puts the repository root on sys.path
import jax
import numpy as np

from collapse_jax import compile_cache
from collapse_jax.families.lm import convert, decode, opt, opt_cache

SETUPS = {
    # The scratch OPT the `cpu` variant of configs/opt_wikitext.py fine-tunes and decodes with.
    "small": dict(
        config=opt.tiny_config(
            vocab_size=8192, hidden_size=128, ffn_dim=512, max_position_embeddings=128
        ),
        batch=8,
    ),
    # facebook/opt-125m's shape (random weights) with a CPU-sized batch of prompts.
    "opt-125m": dict(config=opt.OPTConfig(), batch=2),
}
PROMPT_LENGTH = 64
NEW_TOKENS = 64
NUM_BEAMS = 5


def run(
    name: str,
    rounds: int,
    torch_device: str = "cpu",
    batch: int | None = None,
    new_tokens: int = NEW_TOKENS,
) -> dict:
    """Both sides on ``batch`` prompts (default: the setup's), ``new_tokens`` each; PyTorch's model
    and inputs on ``torch_device`` (``cuda`` synchronised before a call returns)."""
    import torch
    import transformers

    setup = SETUPS[name]
    hf_config = transformers.OPTConfig(**{**setup["config"].to_hf_dict(), "dropout": 0.0})
    torch.manual_seed(0)
    model = transformers.OPTForCausalLM(hf_config).eval()
    config = opt.OPTConfig.from_hf(hf_config)
    state_dict = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    params = convert.params_from_state_dict(state_dict, config)
    model.to(torch_device)
    B = setup["batch"] if batch is None else batch
    ids_BxL = np.random.default_rng(0).integers(3, config.vocab_size, (B, PROMPT_LENGTH))
    ids_BxL[:, 0] = config.bos_token_id
    mask_BxL = np.ones_like(ids_BxL)
    kw = dict(num_beams=NUM_BEAMS, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    lm = opt_cache.opt_model(config)
    ids_t = torch.tensor(ids_BxL, device=torch_device)
    mask_t = torch.tensor(mask_BxL, device=torch_device)
    cuda = torch_device.startswith("cuda")

    def ours():
        out = decode.beam_search(lm, params, ids_BxL, mask_BxL, **kw)
        return np.asarray(jax.block_until_ready(out.tokens_BxN))

    def theirs():
        with torch.no_grad():
            out = model.generate(input_ids=ids_t, attention_mask=mask_t, do_sample=False, **kw)
        if cuda:
            torch.cuda.synchronize()
        return out[:, PROMPT_LENGTH:].cpu().numpy()

    start = time.perf_counter()
    ours_tokens = ours()
    compile_s = time.perf_counter() - start
    theirs_tokens = theirs()
    t = _common.interleave({"ours": ours, "theirs": theirs}, rounds)
    return dict(
        name=name,
        params_m=opt.param_count(params) / 1e6,
        batch=B,
        new_tokens=new_tokens,
        compile_s=compile_s,
        ours_tok_s=_common.rate(B * new_tokens, t["ours"]),
        theirs_tok_s=_common.rate(B * new_tokens, t["theirs"]),
        ratio=_common.ratio(t["theirs"], t["ours"]),
        # random weights give near-flat distributions, so float-noise ties can split the beams
        same_tokens=float(np.mean(ours_tokens == theirs_tokens)),
        ours_side=_common.jax_side(),
        theirs_side=_common.torch_side("float32", torch_device),
    )


def rows(only=None, rounds=3, quick=False, compile_times=None):
    """Rows of every setup (``only``: one); ``compile_times``, a list, gets one line per setup
    with our first call's seconds."""
    import torch

    torch.set_num_threads(2)
    batch, new_tokens = None, NEW_TOKENS
    if quick:
        only, rounds, batch, new_tokens = "small", 1, 1, 4
    out = []
    for name in [only] if only else list(SETUPS):
        r = run(name, rounds, batch=batch, new_tokens=new_tokens)
        out.append(
            _common.Row(
                f"beam search, {NUM_BEAMS} beams, {PROMPT_LENGTH}-token prompts + exactly "
                f"{r['new_tokens']} new tokens, {r['batch']} prompts, OPT {name} "
                f"({r['params_m']:.0f}M), new tokens/s; same tokens {r['same_tokens']:.0%}",
                f"python benchmarks/beam_vs_torch.py --only={name}" + (" --quick" if quick else ""),
                _common.Cell(r["ours_tok_s"]),
                _common.Cell(r["theirs_tok_s"], "transformers `generate` "),
                _common.Cell(r["ratio"], suffix="x"),
                ours_side=r["ours_side"],
                reference_side=r["theirs_side"],
            )
        )
        if compile_times is not None:
            compile_times.append(
                f"OPT {name}: our first call (trace + compile + one search) {r['compile_s']:.1f} s"
            )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SETUPS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="small setup, 1 prompt, 4 new tokens, 1 round"
    )
    args = parser.parse_args(argv)
    compile_cache.enable()
    print(_common.machine())
    compile_times = []
    print(_common.table(rows(args.only, args.rounds, args.quick, compile_times)))
    print("\n".join(compile_times))


if __name__ == "__main__":
    main()
