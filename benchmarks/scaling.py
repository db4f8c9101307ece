r"""Throughput of the GMM chain against the number of devices its seeds are sharded over.

  python benchmarks/scaling.py                                   # CPU: 1, 2, 4, 8 forced devices
  python benchmarks/scaling.py --devices=1,2,4,8 --num_seeds=64 --num_generations=20
  python benchmarks/scaling.py --platform=gpu --devices=1,2,4,8  # real GPUs (as many as exist)

Each device count runs in its own process (XLA fixes the CPU device count at start-up), with the
seeds split over a ``"seeds"`` mesh exactly as ``launch.run --config.num_devices=N`` does. The
timed call is the chain's scanned chunk of generations after a compile-and-warm-up call, so
compile time is reported apart. Throughput = seeds x generations / second.

On a CPU, forced host devices share the same cores: XLA already spreads one device's vmapped
work over the cores, so expect flat (or slightly worse) scaling there; the table is a check that
sharding costs nothing, and the real speed-up shows on several GPUs or TPU cores.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args) -> None:
    if args.platform == "cpu":
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.child}"
        os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, str(ROOT))
    import jax
    import numpy as np

    from collapse_jax import chain, experiments, sharding
    from configs import gaussian, gmm

    cfg = (gmm if args.family == "gmm" else gaussian).get_config(args.variant)
    cfg.num_seeds, cfg.num_generations = args.num_seeds, args.num_generations + 1
    cfg.num_devices = args.child
    if cfg.num_devices > jax.device_count():
        print(json.dumps({"devices": args.child, "error": "not enough devices"}))
        return
    fam = experiments.family(cfg.experiment)
    mesh = sharding.seed_mesh(cfg)
    gens = np.arange(1, cfg.num_generations, dtype=np.int32)
    with chain._precision(cfg):
        steps = chain.build(cfg, fam, mesh)
        truth, keys_S = chain._inputs(cfg, fam, mesh)
        t0 = time.perf_counter()
        carry, _ = steps.first(keys_S, truth)
        _, m = steps.chunk(keys_S, truth, carry, gens)
        jax.block_until_ready(m)
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            carry, _ = steps.first(keys_S, truth)
            jax.block_until_ready(carry)
            t0 = time.perf_counter()
            _, m = steps.chunk(keys_S, truth, carry, gens)
            jax.block_until_ready(m)
            times.append(time.perf_counter() - t0)
    best = min(times)
    print(
        json.dumps(
            {
                "devices": args.child,
                "device_kind": jax.devices()[0].device_kind,
                "compile_and_first_s": compile_s,
                "chunk_s": best,
                "seed_generations_per_s": cfg.num_seeds * len(gens) / best,
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", default="1,2,4,8", help="device counts to try")
    p.add_argument("--family", default="gmm", choices=("gmm", "gaussian"))
    p.add_argument("--variant", default="smoke", help="config variant the sizes start from")
    p.add_argument("--num_seeds", type=int, default=32, help="a multiple of every device count")
    p.add_argument("--num_generations", type=int, default=20, help="generations timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--platform", default="cpu", choices=("cpu", "gpu", "tpu"))
    p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    rows = []
    for n in [int(x) for x in args.devices.split(",")]:
        cmd = [sys.executable, __file__, f"--child={n}"] + [
            a for a in sys.argv[1:] if not a.startswith("--devices")
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800)
        line = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode or not line:
            print(f"devices={n}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[-1]))
    print(
        f"\n{args.family}:{args.variant}, {args.num_seeds} seeds, {args.num_generations} "
        f"generations timed, platform {args.platform}"
    )
    print("| devices | device kind | compile+first (s) | chunk (s) | seed-gen/s | vs 1 device |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    base = next((r["seed_generations_per_s"] for r in rows if r.get("devices") == 1), None)
    for r in rows:
        if "error" in r:
            print(f"| {r['devices']} | {r['error']} | | | | |")
            continue
        rate = r["seed_generations_per_s"]
        ratio = f"{rate / base:.2f}x" if base else "-"
        print(
            f"| {r['devices']} | {r['device_kind']} | {r['compile_and_first_s']:.1f} | "
            f"{r['chunk_s']:.3f} | {rate:,.0f} | {ratio} |"
        )


if __name__ == "__main__":
    main()
