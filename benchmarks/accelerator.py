r"""Every benchmark in its accelerator form, one command, one markdown table (about 8 minutes).

  python benchmarks/accelerator.py [--out=accelerator.md] [--only=gaussian,gmm,vae,opt,beam]
  python benchmarks/accelerator.py --tiny     # every section at toy sizes on CPU (the tests)

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
import numpy as np

from collapse_jax import compile_cache

# Dense bfloat16 peak, flop/s, by device kind (vendor data sheets, without sparsity).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10G": 70e12}


def gaussian(tiny, rounds):
    import gaussian_vs_numpy

    out = []
    gens = 20 if tiny else 1000
    for seeds in (100,) if tiny else (10_000, 100_000):
        # What gaussian_vs_numpy.py times (estimator mle), so --tiny shares its --quick programs.
        sides = {s: gaussian_vs_numpy.ours(seeds, gens, 100, s) for s in ("samples", "statistics")}
        t = _common.interleave(sides, rounds)
        work = seeds * gens
        for sampler in sides:
            out.append(
                _common.Row(
                    f"Gaussian chain, {seeds} seeds x {gens} generations, M=100, "
                    f"sampler={sampler}, seed-generations/s",
                    "python benchmarks/accelerator.py --only=gaussian",
                    str(_common.rate(work, t[sampler])),
                    "",
                    f"statistics vs samples {_common.ratio(t['samples'], t['statistics'])}x"
                    if sampler == "statistics"
                    else "",
                    ours_side=_common.jax_side(),
                )
            )
    return out


def gmm(tiny, rounds):
    import gmm_vs_sklearn

    out = []
    for m in (100,) if tiny else (1000, 10_000):
        # The paper's 100 seeds; tiny: what gmm_vs_sklearn.py --quick runs (its programs).
        seeds, generations = (2, 1) if tiny else (100, 20)
        once, _ = gmm_vs_sklearn.ours(seeds, m, generations)
        t = _common.interleave({"ours": once}, rounds)
        per_gen = [1e3 * v / (generations + 1) for v in t["ours"]]
        out.append(
            _common.Row(
                f"GMM-EM chain (paper setting), {seeds} seeds, M={m}, 1 + {generations} "
                "generations, ms per generation of all seeds",
                "python benchmarks/accelerator.py --only=gmm",
                str(_common.spread(per_gen)),
                "",
                "",
                ours_side=_common.jax_side(),
            )
        )
    return out


def _torch_device(tiny: bool) -> str:
    import torch

    return "cuda" if torch.cuda.is_available() and not tiny else "cpu"


def vae(tiny, rounds):
    import vae_vs_torch

    device = _torch_device(tiny)
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
                ours_side=_common.jax_side(),
                reference_side=_common.torch_side("float32", device),
            )
        )
    return out


def opt(tiny, rounds):
    import opt_vs_torch

    from collapse_jax.families.lm import opt as opt_lib

    shape = opt_vs_torch.SETUPS["small"]["config"] if tiny else {}
    dtype = "float32" if tiny else "bfloat16"
    config = opt_lib.OPTConfig(**shape, dtype=dtype)
    b, length = opt_vs_torch.QUICK_SHAPE if tiny else (64, 64)
    params = opt_lib.init_params(jax.random.key(0), config)
    ids_BxL = np.random.default_rng(0).integers(3, config.vocab_size, (b, length)).astype(np.int32)
    train = opt_vs_torch._jax_side(config, params, ids_BxL)[1]
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
            ours_side=_common.jax_side()._replace(
                dtype="float32" if tiny else "bfloat16 compute, float32 parameters"
            ),
        )
    ]


def beam(tiny, rounds):
    import beam_vs_torch

    device = _torch_device(tiny)
    name, batch, new_tokens = ("small", 1, 4) if tiny else ("opt-125m", 32, 64)
    r = beam_vs_torch.run(name, rounds, torch_device=device, batch=batch, new_tokens=new_tokens)
    return [
        _common.Row(
            f"beam search, OPT {name} ({r['params_m']:.0f}M), {r['batch']} prompts, "
            f"{beam_vs_torch.NUM_BEAMS} beams, {r['new_tokens']} new tokens, "
            f"new tokens/s; same tokens {r['same_tokens']:.0%}; our first call "
            f"{r['compile_s']:.1f} s",
            "python benchmarks/accelerator.py --only=beam",
            str(r["ours_tok_s"]),
            f"transformers `generate` ({device}) {r['theirs_tok_s']}",
            f"{r['ratio']}x",
            ours_side=r["ours_side"],
            reference_side=r["theirs_side"],
        )
    ]


SECTIONS = {"gaussian": gaussian, "gmm": gmm, "vae": vae, "opt": opt, "beam": beam}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--tiny", "--quick", action="store_true", help="toy sizes on CPU (what the tests run)"
    )
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

    if "--tiny" in sys.argv or "--quick" in sys.argv:
        jax.config.update("jax_platforms", "cpu")
    main()
