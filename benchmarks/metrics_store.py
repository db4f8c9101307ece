r"""What recording costs: ``chain.run`` (store + metrics.jsonl + checkpoints) against ``chain.simulate``.

  python benchmarks/metrics_store.py                        # gaussian cpu, 1,000 and 10,000 seeds
  python benchmarks/metrics_store.py --seeds=1000 --rounds=5 --profile
  python benchmarks/metrics_store.py --seeds=1000 --parts     # where run's extra time goes
  python benchmarks/metrics_store.py --quick                  # gaussian smoke, 8 seeds, 1 round

One process. Each program is compiled by an untimed first call (XLA's persistent cache then
serves the timed calls' compile, so both sides still trace and lower their two programs, as a
fresh ``launch.run`` does). Then ``--rounds`` rounds each time one ``simulate`` and one ``run``,
in alternating order; the table gives the medians and the median of the per-round ratios, which
is what survives a machine shared with other work (say so when you quote the numbers).

``--parts`` then times ``run`` with parts of its host work taken away (the metric records, the
checkpoint saves, both: a no-op in their place), interleaved with ``simulate`` in the same way, and
the CPU time of the run's checkpoint saves alone (its carry saved as many times, Orbax as
``chain.run`` uses it, nothing else running).

Before timing, the untimed run's stored arrays are checked bit for bit against ``simulate``'s.
``run`` is timed at the config's ``metrics.per_seed_max_seeds`` (100: per-seed jsonl lines up to
100 seeds, seed statistics above) and, where that writes per-seed lines, also with the threshold at
0 (``run, summary lines``). Bytes per value = the chunk files under ``DIR/metrics/per_seed`` over
generations x seeds x metric values (4 = float32 uncompressed); metrics.jsonl is the text record.
Both sides are the same chain in the config's dtype (float32 unless ``enable_x64``) on XLA's
default threads (one per core); ``run`` adds host threads for its background saves and records.
"""

import argparse
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import _common  # first: puts the repository root on sys.path


def _bytes(path: Path) -> int:
    """Chunk files only: each array's zarr.json adds about 0.6 KB whatever the run's size."""
    return sum(p.stat().st_size for p in path.rglob("c/**/*") if p.is_file())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1000,10000", help="comma-separated seed counts")
    parser.add_argument("--variant", default="cpu", help="configs/gaussian.py variant")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; medians count")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one more run at the last seed count"
    )
    parser.add_argument(
        "--parts", action="store_true", help="time run without records / saves (last seed count)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="gaussian smoke, 8 seeds, 1 round (checks the script)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.variant, args.rounds = "8", "smoke", 1

    import jax
    import numpy as np
    from absl import logging

    from collapse_jax import chain
    from collapse_jax import metrics as metrics_lib
    from configs import gaussian

    logging.set_verbosity(logging.WARNING)
    cache = tempfile.mkdtemp(prefix="metrics_store_jit_")
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    t_start, load_start = time.perf_counter(), os.getloadavg()[0]

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
            n_metrics = len(sim)
            variants = [("run", cfg.metrics.per_seed_max_seeds)]
            # else "run" already writes summary lines (--quick: one variant is enough)
            if S <= cfg.metrics.per_seed_max_seeds and not args.quick:
                variants.append(("run, summary lines", 0))
            for label, threshold in variants:
                c = cfg.copy_and_resolve_references()
                c.metrics.per_seed_max_seeds = threshold
                d = Path(tmp) / f"{S}_{threshold}"
                chain.run(c, d / "0")  # compiles
                got = metrics_lib.read_metrics(d / "0")
                same = sorted(got) == sorted(sim) and all(
                    got[k].dtype == sim[k].dtype and np.array_equal(got[k], sim[k]) for k in sim
                )
                if not same:
                    raise SystemExit(f"{S} seeds {label}: stored arrays differ from simulate")
                sim_s, run_s = [], []
                for i in range(1, args.rounds + 1):
                    pair = [
                        lambda: once(chain.simulate, cfg),
                        lambda: once(chain.run, c, d / str(i)),
                    ]
                    t = [f() for f in (pair if i % 2 else pair[::-1])]
                    sim_s.append(t[0] if i % 2 else t[1])
                    run_s.append(t[1] if i % 2 else t[0])
                ratio = statistics.median(r / s for r, s in zip(run_s, sim_s, strict=True))
                sim_m, run_m = statistics.median(sim_s), statistics.median(run_s)
                d = d / "1"
                store = _bytes(d / "metrics" / "per_seed")
                jsonl = (d / "metrics.jsonl").stat().st_size
                rows.append((S, label, sim_m, run_m, ratio, store / values, jsonl / 1e6))
                print(
                    f"{S} seeds {label}: simulate {sim_m:.2f} s, run {run_m:.2f} s, median ratio "
                    f"{ratio:.2f}x (rounds: "
                    + ", ".join(f"{s:.2f}/{r:.2f}" for s, r in zip(sim_s, run_s, strict=True))
                    + f"), {store / values:.3f} bytes/value, metrics.jsonl {jsonl / 1e6:.2f} MB,"
                    " store == simulate bit for bit",
                    flush=True,
                )
            del sim
        if args.parts:
            _parts(c, cfg, Path(tmp) / "parts", args.rounds, once)
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            chain.run(c, Path(tmp) / "profile")
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
            print(out.getvalue())
    print(
        f"\ngaussian:{args.variant} ({n_metrics} scalar metrics per seed and generation, "
        f"{cfg.num_generations} generations, M = {cfg.samples_per_generation}, checkpoint every "
        f"{cfg.checkpoint.every_generations} and at {list(cfg.checkpoint.keep_generations)}), "
        f"{'float64' if cfg.enable_x64 else 'float32'}, XLA's default threads on "
        f"{os.cpu_count()} CPUs, load average {load_start:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end, jax {jax.__version__}, "
        f"{args.rounds} rounds, {time.perf_counter() - t_start:.0f} s in all\n"
    )
    print(
        "| seeds | run | simulate (s) | run (s) | run / simulate | store bytes per value "
        "| metrics.jsonl (MB) |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for S, label, sim_m, run_m, ratio, b, mb in rows:
        print(
            f"| {S:,} | {label} | {sim_m:.2f} | {run_m:.2f} | {ratio:.2f}x | {b:.3f} | {mb:.2f} |"
        )


def _parts(cfg_run, cfg_sim, tmp: Path, rounds: int, once) -> None:
    """run with its records and/or checkpoint saves replaced by no-ops, against simulate."""
    import jax

    from collapse_jax import chain
    from collapse_jax import checkpoint as checkpoint_lib
    from collapse_jax import metrics as metrics_lib

    real = metrics_lib.Recorder._record, checkpoint_lib.Checkpointer._save
    skip = lambda self, *a, **k: None  # noqa: E731
    variants = {
        "simulate": (None, None),
        "run": real,
        "run, no records": (skip, real[1]),
        "run, no saves": (real[0], skip),
        "run, neither": (skip, skip),
    }
    times = {k: [] for k in variants}
    n = 0
    for i in range(rounds):
        for name in variants if i % 2 == 0 else reversed(list(variants)):
            rec, save = variants[name]
            if rec is None:
                times[name].append(once(chain.simulate, cfg_sim))
                continue
            metrics_lib.Recorder._record, checkpoint_lib.Checkpointer._save = rec, save
            try:
                n += 1
                times[name].append(once(chain.run, cfg_run, tmp / str(n)))
            finally:
                metrics_lib.Recorder._record, checkpoint_lib.Checkpointer._save = real
    sim = statistics.median(times["simulate"])
    print(f"\nparts ({rounds} rounds, interleaved; medians):")
    for name, t in times.items():
        print(
            f"  {name}: {statistics.median(t):.2f} s ({statistics.median(t) / sim:.2f}x simulate)"
        )
    # The saves alone: the run's carry, saved as often as the run saves it.
    carry, _ = _common.chain_fn(cfg_run)(*_common.chain_inputs(cfg_run))
    ck = cfg_run.checkpoint
    ends = [
        0,
        *chain.chunk_ends(0, cfg_run.num_generations, ck.every_generations, ck.keep_generations),
    ]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with checkpoint_lib.Checkpointer(
        tmp / "saves",
        cfg_run.checkpoint.max_to_keep,
        keep_steps=cfg_run.checkpoint.keep_generations,
    ) as ckpt:
        for g in ends:
            ckpt.save(g, carry, {"generation": g})
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    leaves = len(jax.tree.leaves(carry))
    print(
        f"  {len(ends)} checkpoint saves of the carry ({leaves} arrays) alone: {cpu:.2f} CPU-s, "
        f"{wall:.2f} s wall ({1000 * cpu / len(ends):.0f} ms of CPU per save)"
    )


if __name__ == "__main__":
    main()
