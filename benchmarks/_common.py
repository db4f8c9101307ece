"""What every benchmark shares: the repository on ``sys.path``, fair timing, the machine it ran on.

Fair timing: each side is called once untimed (compile, kernel selection, caches), then the sides
alternate round by round (order reversed every other round, so a load change on a shared machine
hits both), and each side's median and spread (min-max over rounds) are reported. A ratio is the
median of the per-round ratios, with their min-max.

Like with like: every row names each side's ``Side`` (dtype, threads, device), and where the two
differ the row's work says why or a second row runs the other way. The chain itself is reached
through ``chain_fn`` only, so a change of the chain's API is one edit here.
"""

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: CPU model, cores, accelerator, library versions."""
    import jax

    versions = []
    for name in ("jax", "jaxlib", "numpy", "torch", "transformers", "scikit-learn"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    dev = jax.devices()[0]
    load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores{load}; {dev.platform} {dev.device_kind} "
        f"x{jax.device_count()}; python {platform.python_version()}; " + ", ".join(versions)
    )


class Spread(NamedTuple):
    median: float
    low: float
    high: float
    values: tuple[float, ...] = ()  # every round's value, so runs can be pooled (``pool``)

    def __str__(self) -> str:
        return f"{_g(self.median)} [{_g(self.low)}-{_g(self.high)}]"


def _g(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def spread(values) -> Spread:
    v = tuple(float(x) for x in values)
    return Spread(statistics.median(v), min(v), max(v), v)


class Cell(NamedTuple):
    """A timed table cell: ``prefix``, the spread, ``suffix`` (``NumPy 2.1 [2-2.2] s``)."""

    spread: Spread
    prefix: str = ""
    suffix: str = ""

    def __str__(self) -> str:
        return f"{self.prefix}{self.spread}{self.suffix}"


def interleave(sides: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each side (each ``fn`` must block until its work is done)."""
    for fn in sides.values():
        fn()  # warm-up, untimed
    times = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - t)
    return times


def ratio(slow: list[float], fast: list[float]) -> Spread:
    """Per-round ``slow / fast`` (how many times faster ``fast`` is)."""
    return spread(s / f for s, f in zip(slow, fast, strict=True))


def rate(work: float, seconds: list[float]) -> Spread:
    """Work per second per round (images/s, tokens/s)."""
    return spread(work / s for s in seconds)


class Side(NamedTuple):
    """What one side of a row computed in and on: ``Side("float32", "XLA, 2 cores")``."""

    dtype: str
    threads: str
    device: str = "cpu"

    def __str__(self) -> str:
        device = "" if self.device == "cpu" else f", {self.device}"
        return f"{self.dtype}, {self.threads}{device}"


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def jax_side() -> Side:
    """Our side: JAX's default float (x64 or not) on its default device. XLA:CPU runs its ops on
    a pool of one thread per core; on an accelerator the host threads do not matter."""
    import jax

    dtype = "float64" if jax.config.jax_enable_x64 else "float32"
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        n = cores()
        return Side(dtype, f"XLA, {n} core{'s' if n != 1 else ''}")
    return Side(dtype, "XLA", f"{dev.platform} {dev.device_kind}")


def torch_side(dtype: str, device: str = "cpu") -> Side:
    """PyTorch's side: ``torch.get_num_threads()`` intra-op threads (what the script set)."""
    import torch

    if device.startswith("cuda"):
        return Side(dtype, "PyTorch", f"cuda {torch.cuda.get_device_name(device)}")
    return Side(dtype, f"PyTorch, {torch.get_num_threads()} threads")


class Row(NamedTuple):
    """One line of the README's benchmark table; the timed cells keep their rounds' values."""

    work: str
    command: str
    ours: Cell | str
    reference: Cell | str
    ratio: Cell | str
    runs: tuple[float, ...] = ()  # each run's median ratio, once runs are pooled
    ours_side: Side | None = None
    reference_side: Side | None = None


HEADER = "| work | command | ours | reference | ours vs reference (median [min-max]) |"
SIDES = " dtype, threads: ours / reference |"


def table(rows: list[Row]) -> str:
    runs = any(r.runs for r in rows)
    sides = any(r.ours_side or r.reference_side for r in rows)
    header, rule = HEADER, "| --- | --- | ---: | ---: | ---: |"
    if sides:
        header, rule = header + SIDES, rule + " --- |"
    if runs:
        header = header.replace("(median [min-max])", "(median [min-max] over every round)")
        header, rule = header + " each run's median |", rule + " ---: |"
    lines = [header, rule]
    for r in rows:
        line = f"| {r.work} | `{r.command}` | {r.ours} | {r.reference} | {r.ratio} |"
        if sides:
            line += f" {r.ours_side or 'not recorded'} / {r.reference_side or 'not recorded'} |"
        if runs:
            line += " " + ", ".join(_g(x) for x in r.runs) + " |"
        lines.append(line)
    return "\n".join(lines)


def to_json(rows: list[Row]) -> list[dict]:
    """Rows as JSON-able dicts, timed cells with every round's value, each side's dtype, threads
    and device as a dict (``null`` for a side with none)."""

    def cell(c):
        if isinstance(c, Cell):
            return {"values": list(c.spread.values), "prefix": c.prefix, "suffix": c.suffix}
        return c

    def value(f, v):
        if f in ("ours", "reference", "ratio"):
            return cell(v)
        if f in ("ours_side", "reference_side"):
            return v._asdict() if v is not None else None
        return v

    return [{f: value(f, v) for f, v in r._asdict().items()} for r in rows]


def from_json(rows: list[dict]) -> list[Row]:
    """Rows of ``to_json``; files written before the sides were recorded read with none."""

    def cell(c):
        if isinstance(c, dict):
            return Cell(spread(c["values"]), c["prefix"], c["suffix"])
        return c

    def side(d):
        return Side(**d) if d else None

    return [
        Row(
            r["work"],
            r["command"],
            cell(r["ours"]),
            cell(r["reference"]),
            cell(r["ratio"]),
            tuple(r.get("runs", ())),
            side(r.get("ours_side")),
            side(r.get("reference_side")),
        )
        for r in rows
    ]


def pool(runs: list[list[Row]]) -> list[Row]:
    """One row per benchmark line from several runs of the same benchmarks: each timed cell's
    spread over every round of every run, and each run's median ratio in ``runs``."""
    first = runs[0]
    for other in runs[1:]:
        if [r.work for r in other] != [r.work for r in first]:
            raise ValueError("runs measured different rows; pool only runs of the same benchmarks")
    out = []
    for i, row in enumerate(first):
        same = [run[i] for run in runs]

        def merged(field):
            cells = [getattr(r, field) for r in same]
            if not all(isinstance(c, Cell) for c in cells):
                return cells[0]
            values = [v for c in cells for v in c.spread.values]
            return cells[0]._replace(spread=spread(values))

        medians = tuple(r.ratio.spread.median for r in same if isinstance(r.ratio, Cell))
        out.append(
            row._replace(
                ours=merged("ours"),
                reference=merged("reference"),
                ratio=merged("ratio"),
                runs=medians if len(runs) > 1 else (),
            )
        )
    return out


def chain_fn(cfg, fam=None, mesh=None):
    """The chain of ``cfg`` as one callable ``fn(keys_S, truth) -> (carry_S, metrics)``:
    generations 0 .. ``cfg.num_generations - 1`` of every seed through the programs ``chain.run``
    executes (``Program.begin``, then one ``span`` call per checkpoint interval: no saves, no
    records), under the config's matmul precision, metrics as ``{name: [G, S, ...]}`` on the
    device (``chain.simulate``'s layout); it does not block. Every benchmark reaches the chain
    through this function only, so that a change of the chain's API is one edit here
    (``chain_inputs`` gives ``keys_S, truth``)."""
    import jax
    import jax.numpy as jnp

    from collapse_jax import chain, experiments

    fam = fam or experiments.family(cfg.experiment)
    with jax.default_matmul_precision(cfg.matmul_precision):
        program = chain.build(cfg, fam, mesh)

    def fn(keys_S, truth):
        with jax.default_matmul_precision(cfg.matmul_precision):
            carry0_S, m0_S = program.begin(keys_S, truth)
            carry_S, parts = carry0_S, [jax.tree.map(lambda a: a[None], m0_S)]
            for gens, carry_S, m in program.spans(keys_S, truth, carry0_S):  # noqa: B007
                n = len(gens)
                parts.append(jax.tree.map(lambda r, n=n: r[:n], m))
            return carry_S, jax.tree.map(lambda *r: jnp.concatenate(r), *parts)

    return fn


def chain_inputs(cfg, fam=None, mesh=None):
    """``(keys_S, truth)`` of ``cfg``, placed on ``mesh`` when given (``chain.run``'s inputs)."""
    from collapse_jax import experiments
    from collapse_jax.chain import checks

    fam = fam or experiments.family(cfg.experiment)
    truth, keys_S = checks.inputs(cfg, fam, mesh)
    return keys_S, truth


def op_profile(fn: Callable[[], object], calls: int = 3, top: int = 12) -> str:
    """Where a jitted program's time goes on this backend: ``fn`` (warmed up, blocking) called
    ``calls`` times under ``jax.profiler``, its XLA ops' durations summed by kind (the HLO name
    without its ``.N`` suffix; ``ynn``/``xnn`` fusions are the dots XLA:CPU hands to YNNPACK /
    XNNPACK). Needs ``pip install xprof`` to read the trace; without it, says where the trace is
    (TensorBoard's profile plugin reads it too)."""
    import collections
    import gzip
    import json
    import re
    import tempfile

    import jax

    trace = tempfile.mkdtemp(prefix="op_profile_")
    with jax.profiler.trace(trace):
        for _ in range(calls):
            fn()
    try:
        from xprof.convert import raw_to_tool_data
    except ImportError:
        return f"(pip install xprof for the per-op table; the trace is in {trace})"
    files = [str(p) for p in Path(trace).rglob("*.xplane.pb")]
    data, _ = raw_to_tool_data.xspace_to_tool_data(files, "trace_viewer", {})
    try:
        data = gzip.decompress(data)
    except (OSError, TypeError):
        pass
    kinds: collections.Counter = collections.Counter()
    for e in json.loads(data)["traceEvents"]:
        name = e.get("name", "")
        # Runtime spans (executor, thread pool, Python) nest the ops; count the ops only.
        if e.get("ph") != "X" or name.startswith(("Thread", "Thunk", "Slinky", "$", "while")):
            continue
        kind = re.sub(r"\.\d+$", "", name)
        kinds["dot (" + kind[:3] + ")" if kind.startswith(("ynn", "xnn")) else kind] += e["dur"]
    total = sum(kinds.values())
    lines = ["| XLA op kind | ms per call | share |", "| --- | ---: | ---: |"]
    for kind, us in kinds.most_common(top):
        lines.append(f"| {kind} | {us / calls / 1e3:.1f} | {100 * us / total:.1f}% |")
    lines.append(f"| all ops | {total / calls / 1e3:.1f} | 100% |")
    return "\n".join(lines)
