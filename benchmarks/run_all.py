r"""Regenerate the README's benchmark table from one run of every CPU benchmark.

  python benchmarks/run_all.py [--quick] [--only=gaussian,gmm,vae,opt,beam] [--readme]

Each benchmark warms both sides up, interleaves rounds and reports median [min-max]
(``_common.py``). ``--quick`` runs every benchmark at its quick size (minutes, for checking the
script, not for quoting). ``--readme`` replaces the table between the ``<!-- benchmarks:begin -->``
and ``<!-- benchmarks:end -->`` lines of README.md; otherwise the markdown is printed. Quote a
ratio only from an idle machine, and only where a second run lands inside the first's spread.
"""

import argparse
import time

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


def replace_table(readme: str, block: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md: no {BEGIN} ... {END} block to replace")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}\n{END}{tail}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default=",".join(NAMES))
    p.add_argument("--readme", action="store_true", help="rewrite README.md's table in place")
    a = p.parse_args()
    names = [n for n in a.only.split(",") if n]
    if set(names) - set(NAMES):
        p.error(f"--only: expected some of {NAMES}, got {names}")
    start = time.perf_counter()
    rows = collect(names, a.quick)
    block = (
        f"Measured {time.strftime('%Y-%m-%d')} by `python benchmarks/run_all.py"
        f"{' --quick' if a.quick else ''}` in {time.perf_counter() - start:.0f} s on: "
        f"{_common.machine()}.\n\n{_common.table(rows)}"
    )
    if a.readme:
        path = _common.ROOT / "README.md"
        path.write_text(replace_table(path.read_text(), block))
        print(f"wrote {path}")
    print(block)


if __name__ == "__main__":
    main()
