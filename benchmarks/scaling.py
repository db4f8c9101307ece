r"""Throughput of the GMM chain against the number of devices its seeds are sharded over.

  python benchmarks/scaling.py                                   # CPU: 1, 2, 4, 8 forced devices
  python benchmarks/scaling.py --devices=1,2,4,8 --num_seeds=64 --num_generations=20
  python benchmarks/scaling.py --platform=gpu --devices=1,2,4,8  # real GPUs (as many as exist)
  python benchmarks/scaling.py --quick        # gaussian smoke, 1 and 2 devices, 4 seeds (seconds)

Each device count runs in its own process (XLA fixes the CPU device count at start-up), with the
seeds split over a ``"seeds"`` mesh exactly as ``launch.run --config.num_devices=N`` does. The
timed call is the whole chain (generation 0 and ``--num_generations`` more, through the programs ``chain.run``
executes: ``_common.chain_fn``) after a compile-and-warm-up call, so compile time is reported apart.
Throughput = seeds x generations / second. The chain runs in JAX's default float32 (the table
names it) on XLA's default threads (one per core, shared by the forced devices).

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
    import _common  # puts the repository root on sys.path
    import jax

    from collapse_jax import compile_cache, sharding
    from configs import gaussian, gmm

    compile_cache.enable()

    cfg = (gmm if args.family == "gmm" else gaussian).get_config(args.variant)
    cfg.num_seeds, cfg.num_generations = args.num_seeds, args.num_generations + 1
    cfg.enable_x64 = jax.config.jax_enable_x64
    cfg.num_devices = args.child
    if cfg.num_devices > jax.device_count():
        print(json.dumps({"devices": args.child, "error": "not enough devices"}))
        return
    mesh = sharding.seed_mesh(cfg)
    fn = _common.chain_fn(cfg, mesh=mesh)
    keys_S, truth = _common.chain_inputs(cfg, mesh=mesh)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(keys_S, truth))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(keys_S, truth))
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(
        json.dumps(
            {
                "devices": args.child,
                "device_kind": jax.devices()[0].device_kind,
                "compile_and_first_s": compile_s,
                "chain_s": best,
                "seed_generations_per_s": cfg.num_seeds * cfg.num_generations / best,
                "dtype": _common.jax_side().dtype,
            }
        )
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", default="1,2,4,8", help="device counts to try")
    p.add_argument("--family", default="gmm", choices=("gmm", "gaussian"))
    p.add_argument("--variant", default="smoke", help="config variant the sizes start from")
    p.add_argument("--num_seeds", type=int, default=32, help="a multiple of every device count")
    p.add_argument("--num_generations", type=int, default=20, help="generations timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--platform", default="cpu", choices=("cpu", "gpu", "tpu"))
    p.add_argument(
        "--quick", action="store_true", help="gaussian smoke, devices 1,2, 4 seeds, 2 generations"
    )
    p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.devices, args.family, args.variant = "1,2", "gaussian", "smoke"
        args.num_seeds, args.num_generations, args.repeats = 4, 2, 1
    if args.child:
        child(args)
        return
    rows = []
    for n in [int(x) for x in args.devices.split(",")]:
        cmd = [sys.executable, __file__, f"--child={n}", f"--family={args.family}"]
        cmd += [f"--variant={args.variant}", f"--num_seeds={args.num_seeds}"]
        cmd += [f"--num_generations={args.num_generations}", f"--repeats={args.repeats}"]
        cmd += [f"--platform={args.platform}"]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800)
        line = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode or not line:
            print(f"devices={n}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[-1]))
    print(
        f"\n{args.family}:{args.variant}, {args.num_seeds} seeds, {args.num_generations} "
        f"generations after generation 0 timed, platform {args.platform}, "
        f"{rows[0]['dtype'] if rows else '?'}, XLA's default threads ({os.cpu_count()} cores)"
    )
    print("| devices | device kind | compile+first (s) | chain (s) | seed-gen/s | vs 1 device |")
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
            f"{r['chain_s']:.3f} | {rate:,.0f} | {ratio} |"
        )


if __name__ == "__main__":
    main()
