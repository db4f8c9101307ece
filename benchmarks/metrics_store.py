r"""What recording costs: ``chain.run`` (store + metrics.jsonl + checkpoints) against ``chain.simulate``.

  python benchmarks/metrics_store.py                        # gaussian cpu, 1,000 and 10,000 seeds
  python benchmarks/metrics_store.py --seeds=1000 --variant=smoke

One process; each program is compiled by an untimed first call (XLA's persistent cache then
serves the timed calls' compile), so the times are the chain plus what it writes. Each time is
the fastest of ``--repeats`` calls, simulate and run interleaved, which is what survives a
machine shared with other work (say so when you quote the numbers). ``run`` is
timed at the config's ``metrics.per_seed_max_seeds`` (100: per-seed jsonl lines up to 100
seeds) and, as ``run, summary lines``, with the threshold at 0 (seed statistics only), which
separates the store from the text. Bytes per value = ``DIR/metrics/per_seed`` on disk over
generations x seeds x metric values.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _bytes(path: Path) -> int:
    """Chunk files only: each array's zarr.json adds about 0.6 KB whatever the run's size."""
    return sum(p.stat().st_size for p in path.rglob("c/**/*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1000,10000", help="comma-separated seed counts")
    parser.add_argument("--variant", default="cpu", help="configs/gaussian.py variant")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls; the fastest counts")
    args = parser.parse_args()

    import jax
    from absl import logging

    from collapse_jax import chain
    from configs import gaussian

    logging.set_verbosity(logging.WARNING)
    cache = tempfile.mkdtemp(prefix="metrics_store_jit_")
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

    def once(fn, *a) -> float:
        t0 = time.perf_counter()
        fn(*a)
        return time.perf_counter() - t0

    rows = []
    with tempfile.TemporaryDirectory(prefix="metrics_store_") as tmp:
        for S in (int(s) for s in args.seeds.split(",")):
            cfg = gaussian.get_config(args.variant)
            cfg.num_seeds, cfg.log_every_seconds = S, 1e9
            sim = chain.simulate(cfg)  # compiles
            values = sum(v[0].size for v in sim.values()) * cfg.num_generations
            del sim
            variants = [("run", cfg.metrics.per_seed_max_seeds)]
            if S <= cfg.metrics.per_seed_max_seeds:  # else "run" already writes summary lines
                variants.append(("run, summary lines", 0))
            for label, threshold in variants:
                c = cfg.copy_and_resolve_references()
                c.metrics.per_seed_max_seeds = threshold
                d = Path(tmp) / f"{S}_{threshold}"
                chain.run(c, d / "0")  # compiles
                sim_s, run_s = [], []
                for i in range(1, args.repeats + 1):
                    sim_s.append(once(chain.simulate, cfg))
                    run_s.append(once(chain.run, c, d / str(i)))
                sim_s, run_s = min(sim_s), min(run_s)
                d = d / "1"
                store = _bytes(d / "metrics" / "per_seed")
                jsonl = (d / "metrics.jsonl").stat().st_size
                rows.append((S, label, sim_s, run_s, store / values, jsonl / 1e6))
                print(
                    f"{S} seeds {label}: simulate {sim_s:.2f} s, run {run_s:.2f} s "
                    f"({run_s / sim_s:.2f}x), {store / values:.3f} bytes/value, "
                    f"metrics.jsonl {jsonl / 1e6:.1f} MB",
                    flush=True,
                )
    print(f"\ngaussian:{args.variant}, {os.cpu_count()} CPUs, jax {jax.__version__}\n")
    print(
        "| seeds | run | simulate (s) | run (s) | run / simulate | store bytes per value "
        "| metrics.jsonl (MB) |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for S, label, sim_s, run_s, b, mb in rows:
        print(
            f"| {S:,} | {label} | {sim_s:.2f} | {run_s:.2f} | {run_s / sim_s:.2f}x | {b:.3f} "
            f"| {mb:.1f} |"
        )


if __name__ == "__main__":
    main()
