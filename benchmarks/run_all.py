r"""Regenerate the benchmark table of docs/performance.md from several runs of every CPU benchmark.

  python benchmarks/run_all.py [--runs=1] [--quick] [--only=gaussian,gmm,vae,opt,beam]
                               [--json=PATH] [--against=PATH] [--docs]
  python benchmarks/run_all.py --table=PATH [--docs]

Each benchmark warms both sides up, interleaves rounds and reports median [min-max]
(``_common.py``). ``--runs=N`` runs every benchmark N times, each time in a fresh process (run
after run, so a change in the machine's load falls on different runs), and pools them: each cell
is the median [min-max] over every round of every run, and the last column gives each run's
median ratio. ``--json`` keeps every round's numbers; ``--against`` compares this run's median
ratios with the spreads of an earlier ``--json`` and says which land inside them (the README's
reproduction check); ``--table`` prints an earlier ``--json``'s table and runs nothing (the
committed table is ``--table=benchmarks/results/cpu-DATE.json --docs``). ``--quick`` runs every
benchmark at its quick size (minutes, for checking the script, not for quoting). ``--docs``
replaces the table between the ``<!-- benchmarks:begin -->`` and ``<!-- benchmarks:end -->``
lines of docs/performance.md; otherwise the markdown is printed. Quote a ratio only from an idle machine,
and only where a second run lands inside the first's spread.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # first: puts the repository root on sys.path

BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
NAMES = ("gaussian", "gmm", "vae", "opt", "beam")


def collect(names, quick: bool) -> list[_common.Row]:
    import beam_vs_torch
    import gaussian_vs_numpy
    import gmm_vs_sklearn
    import opt_vs_torch
    import vae_vs_torch

    modules = dict(
        gaussian=gaussian_vs_numpy,
        gmm=gmm_vs_sklearn,
        vae=vae_vs_torch,
        opt=opt_vs_torch,
        beam=beam_vs_torch,
    )
    rows = []
    for name in names:
        rows += modules[name].rows(quick=quick)
    return rows


def collect_runs(names, quick: bool, runs: int) -> list[list[_common.Row]]:
    """``runs`` runs of the benchmarks, each benchmark in a fresh process."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            rows = []
            for name in names:
                path = Path(tmp) / f"{i}-{name}.json"
                cmd = [sys.executable, __file__, f"--only={name}", f"--child_json={path}"]
                subprocess.run(cmd + (["--quick"] if quick else []), check=True)
                rows += _common.from_json(json.loads(path.read_text()))
            out.append(rows)
    return out


def against(rows: list[_common.Row], earlier: list[_common.Row]) -> tuple[str, int]:
    """Markdown: each row's median ratio now against the earlier run's spread; and how many land
    outside it."""
    by_work = {r.work: r for r in earlier}
    lines = [
        "| work | earlier: median [min-max] | now: median | inside |",
        "| --- | ---: | ---: | --- |",
    ]
    outside = 0
    for r in rows:
        old = by_work.get(r.work)
        if old is None or not isinstance(old.ratio, _common.Cell):
            continue
        now, was = r.ratio.spread.median, old.ratio.spread
        inside = was.low <= now <= was.high
        outside += not inside
        lines.append(
            f"| {r.work} | {old.ratio} | {_common._g(now)}x | {'yes' if inside else '**no**'} |"
        )
    return "\n".join(lines), outside


def replace_table(doc: str, block: str) -> str:
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"docs/performance.md: no {BEGIN} ... {END} block to replace")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def load(path: str) -> dict:
    """A ``--json`` record, its runs as rows."""
    record = json.loads(Path(path).read_text())
    missing = {"machine", "date", "flags", "seconds", "runs"} - set(record)
    if missing:
        raise KeyError(f"no {', '.join(sorted(missing))}")
    record["runs"] = [_common.from_json(r) for r in record["runs"]]
    return record


def block(record: dict) -> str:
    """The table's block: what ran, for how long, on what machine, and the pooled table."""
    return (
        f"Measured {record['date']} by `python benchmarks/run_all.py{record['flags']}` in "
        f"{record['seconds']:.0f} s on: {record['machine']}.\n\n"
        f"{_common.table(_common.pool(record['runs']))}"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1, help="runs, each in fresh processes, pooled")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default=",".join(NAMES))
    p.add_argument("--json", help="write every run's rounds here")
    p.add_argument("--against", help="an earlier --json: do this run's ratios land in its spreads?")
    p.add_argument(
        "--table", help="an earlier --json: print (--docs: write) its table, run nothing"
    )
    p.add_argument(
        "--docs", action="store_true", help="rewrite docs/performance.md's table in place"
    )
    p.add_argument("--child_json", help=argparse.SUPPRESS)  # one run of --only, for --runs
    a = p.parse_args(argv)
    names = [n for n in a.only.split(",") if n]
    if set(names) - set(NAMES):
        p.error(f"--only: expected some of {NAMES}, got {names}")
    if a.runs < 1:
        p.error(f"--runs: expected at least 1, got {a.runs}")
    saved = {}
    for flag in ("against", "table"):
        if getattr(a, flag):
            try:
                saved[flag] = load(getattr(a, flag))
            except (OSError, ValueError, KeyError, TypeError) as e:
                p.error(f"--{flag}: expected a run_all.py --json file, {getattr(a, flag)}: {e}")
    if a.child_json:
        rows = collect(names, a.quick)
        Path(a.child_json).write_text(json.dumps(_common.to_json(rows)))
        return
    if a.table:
        record = saved["table"]
    else:
        flags = "".join(
            f" {f}"
            for f, on in (
                (f"--only={a.only}", tuple(names) != NAMES),
                (f"--runs={a.runs}", a.runs > 1),
                ("--quick", a.quick),
            )
            if on
        )
        # The machine line is read before the runs, so its load says whether the machine was idle.
        record = {"machine": _common.machine(), "date": time.strftime("%Y-%m-%d"), "flags": flags}
        start = time.perf_counter()
        runs = collect_runs(names, a.quick, a.runs) if a.runs > 1 else [collect(names, a.quick)]
        record["seconds"] = time.perf_counter() - start
        if a.json:
            Path(a.json).write_text(
                json.dumps({**record, "runs": [_common.to_json(r) for r in runs]}, indent=1)
            )
        record["runs"] = runs
    text = block(record)
    if a.docs:
        path = _common.ROOT / "docs" / "performance.md"
        path.write_text(replace_table(path.read_text(), text))
        print(f"wrote {path}")
    print(text)
    if "against" in saved:
        earlier = _common.pool(saved["against"]["runs"])
        text, outside = against(_common.pool(record["runs"]), earlier)
        print(f"\nAgainst {a.against}: {outside} of the ratios outside the earlier spread.\n")
        print(text)


if __name__ == "__main__":
    main()
