r"""Every benchmark in its accelerator form, one command, one markdown table (about 8 minutes).

  python benchmarks/accelerator.py [--out=accelerator.md] [--only=gaussian,gmm,vae,opt,beam]
  python benchmarks/accelerator.py --tiny     # the same code at toy sizes on CPU, in seconds

Sections (on one GPU; PyTorch on the same device where it is the reference):
  gaussian  the Gaussian chain at 10^4 and 10^5 seeds x 1000 generations, M = 100, both samplers
            (seed-generations per second; ``statistics`` draws the fit's statistics directly).
  gmm       the paper's GMM chain (``configs/gmm.py:paper``: 100 seeds, 2-D, 2 components) at
            M = 1000 and 10000: milliseconds per generation of all seeds.
  vae       VAE training at S = 1, 8, 64 seeds vmapped, against PyTorch seed after seed on the same
            device (images per second, both warmed up).
  opt       an OPT-125m-shape training step in bfloat16 (random weights, B x 64-token blocks):
            tokens/s and MFU (6 N + 12 layers L d flops per token over the device's dense bf16 peak).
  beam      OPT-125m-shape beam search (5 beams, 64 + exactly 64 tokens) against transformers'
            ``generate`` on the same device.
Every timing is the median [min-max] of interleaved rounds after a warm-up (``_common.py``).
"""

import argparse
import time
from pathlib import Path

import _common  # first: puts the repository root on sys.path
import jax
import jax.numpy as jnp
import numpy as np

from collapse_jax import chain, compile_cache, experiments, rng
from configs import gaussian as gaussian_config
from configs import gmm as gmm_config

# Dense bfloat16 peak, flop/s, by device kind (vendor data sheets, without sparsity).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10G": 70e12}


def _chain_call(cfg, fam_name):
    """A blocking call of generations 1.. of ``cfg`` from a fixed generation 0."""
    fam = experiments.family(fam_name)
    with jax.default_matmul_precision(cfg.matmul_precision):
        steps = chain.build(cfg, fam)
        truth = fam.reference(cfg)
        keys_S = rng.seed_keys(cfg.seed, cfg.num_seeds)
        carry0 = jax.block_until_ready(steps.first(keys_S, truth)[0])
    gens = jnp.arange(1, cfg.num_generations, dtype=jnp.int32)

    def once():
        carry = jax.tree.map(jnp.copy, carry0)  # the chunk donates its carry
        with jax.default_matmul_precision(cfg.matmul_precision):
            jax.block_until_ready(steps.chunk(keys_S, truth, carry, gens)[1])

    return once


def gaussian(tiny, rounds):
    out = []
    for seeds in (64,) if tiny else (10_000, 100_000):
        sides = {}
        for sampler in ("samples", "statistics"):
            cfg = gaussian_config.get_config("paper")
            cfg.num_seeds, cfg.samples_per_generation = seeds, 100
            cfg.num_generations = 20 if tiny else 1000
            cfg.gaussian.sampler, cfg.enable_x64 = sampler, jax.config.jax_enable_x64
            sides[sampler] = _chain_call(cfg, "gaussian")
        t = _common.interleave(sides, rounds)
        work = seeds * (cfg.num_generations - 1)
        for sampler in sides:
            out.append(
                _common.Row(
                    f"Gaussian chain, {seeds} seeds x {cfg.num_generations} generations, M=100, "
                    f"sampler={sampler}, seed-generations/s",
                    "python benchmarks/accelerator.py --only=gaussian",
                    str(_common.rate(work, t[sampler])),
                    "",
                    f"statistics vs samples {_common.ratio(t['samples'], t['statistics'])}x"
                    if sampler == "statistics"
                    else "",
                )
            )
    return out


def gmm(tiny, rounds):
    out = []
    for m in (100,) if tiny else (1000, 10_000):
        cfg = gmm_config.get_config("paper")
        cfg.samples_per_generation, cfg.gmm.record_params = m, False
        cfg.num_generations = 3 if tiny else 21
        if tiny:
            cfg.num_seeds = 4
        t = _common.interleave({"ours": _chain_call(cfg, "gmm")}, rounds)
        per_gen = [1e3 * v / (cfg.num_generations - 1) for v in t["ours"]]
        out.append(
            _common.Row(
                f"GMM-EM chain (paper setting), {cfg.num_seeds} seeds, M={m}, ms per generation",
                "python benchmarks/accelerator.py --only=gmm",
                str(_common.spread(per_gen)),
                "",
                "",
            )
        )
    return out


def vae(tiny, rounds):
    import torch
    import vae_vs_torch

    device = "cuda" if torch.cuda.is_available() and not tiny else "cpu"
    v = vae_vs_torch.config(32 if tiny else 256).vae
    images = 64 if tiny else 2048
    x = vae_vs_torch.images(images)
    out = []
    for s in (1,) if tiny else (1, 8, 64):
        sides = {
            "jax": vae_vs_torch.jax_side(s, x, v),
            "torch": vae_vs_torch.torch_side(s, x, v, device),
        }
        t = _common.interleave(sides, rounds)
        out.append(
            _common.Row(
                f"VAE training, S={s}, {images} images x 1 epoch, batch {v.batch_size}, images/s",
                "python benchmarks/accelerator.py --only=vae",
                str(_common.rate(s * images, t["jax"])),
                f"PyTorch ({device}) {_common.rate(s * images, t['torch'])}",
                f"{_common.ratio(t['torch'], t['jax'])}x",
            )
        )
    return out


def opt(tiny, rounds):
    import opt_vs_torch

    from collapse_jax.families.lm import opt as opt_lib

    shape = opt_vs_torch.SETUPS["small"]["config"] if tiny else {}
    dtype = "float32" if tiny else "bfloat16"
    config = opt_lib.OPTConfig(**shape, dtype=dtype)
    b, length = (2, 16) if tiny else (64, 64)
    params = opt_lib.init_params(jax.random.key(0), config)
    ids_BxL = np.random.default_rng(0).integers(3, config.vocab_size, (b, length)).astype(np.int32)
    _, train = opt_vs_torch._jax_side(config, params, ids_BxL)
    t = _common.interleave({"train": train}, rounds)
    tokens_s = _common.rate(b * length, t["train"])
    n = opt_lib.param_count(params)
    flops_per_token = 6 * n + 12 * config.num_hidden_layers * length * config.hidden_size
    kind = jax.devices()[0].device_kind
    peak = next((v for k, v in PEAK_BF16.items() if k in kind), None)
    mfu = (
        f"MFU {flops_per_token * tokens_s.median / peak:.1%}" if peak else "MFU n/a (peak unknown)"
    )
    return [
        _common.Row(
            f"OPT training step, {n / 1e6:.0f}M params, B={b} L={length}, {dtype}, tokens/s",
            "python benchmarks/accelerator.py --only=opt",
            str(tokens_s),
            kind,
            mfu,
        )
    ]


def beam(tiny, rounds):
    import beam_vs_torch
    import torch

    device = "cuda" if torch.cuda.is_available() and not tiny else "cpu"
    name, batch = ("small", 1) if tiny else ("opt-125m", 32)
    if tiny:
        beam_vs_torch.NEW_TOKENS = 4
    r = beam_vs_torch.run(name, rounds, torch_device=device, batch=batch)
    return [
        _common.Row(
            f"beam search, OPT {name} ({r['params_m']:.0f}M), {batch} prompts, "
            f"{beam_vs_torch.NUM_BEAMS} beams, {beam_vs_torch.NEW_TOKENS} new tokens, "
            f"new tokens/s; same tokens {r['same_tokens']:.0%}",
            "python benchmarks/accelerator.py --only=beam",
            str(r["ours_tok_s"]),
            f"transformers `generate` ({device}) {r['theirs_tok_s']}",
            f"{r['ratio']}x",
        )
    ]


SECTIONS = {"gaussian": gaussian, "gmm": gmm, "vae": vae, "opt": opt, "beam": beam}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="toy sizes on CPU (what the tests run)")
    p.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 3; tiny 1)")
    p.add_argument("--out", default=None, help="also write the markdown here")
    a = p.parse_args(argv)
    rounds = a.rounds or (1 if a.tiny else 3)
    compile_cache.enable()
    names = [n for n in a.only.split(",") if n]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        p.error(f"--only: unknown sections {unknown}; expected some of {sorted(SECTIONS)}")
    rows, took = [], []
    for name in names:
        start = time.perf_counter()
        rows += SECTIONS[name](a.tiny, rounds)
        took.append(f"{name} {time.perf_counter() - start:.0f} s")
    text = (
        f"{time.strftime('%Y-%m-%d')}; {_common.machine()}\n\n{_common.table(rows)}\n\n"
        f"wall time per section (compile included): {', '.join(took)}\n"
    )
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return text


if __name__ == "__main__":
    import sys

    if "--tiny" in sys.argv:
        jax.config.update("jax_platforms", "cpu")
    main()
