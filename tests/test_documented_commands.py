"""The launch commands the README, docs, config and launcher docstrings show work as written.

Every ``python -m launch.X ...`` shown is read (no run): its flags exist, its config and variant
load, its ``--config.FIELD`` overrides name fields, and a run folder it names under a sweep shown
before it (``DIR/FIELD=V+FIELD=V``) is one that sweep writes. One slow test then runs the
README's sweep, report and compare commands on a two-field sweep (shrunk by ``--config.``
overrides).
"""

import fnmatch
import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "configs").glob("*.py")),
    *sorted((ROOT / "launch").glob("*.py")),
]
COMMAND = re.compile(r"python -m launch\.(\w+)")
# Where a shown command ends: a code span, a table cell, a comment, a docstring literal.
END = re.compile(r"``|`|\s\|\s|\s#\s|\)$")
# Grammar placeholders (configs/NAME.py, --workdir=DIR, --workdirs=A,B): not files or fields.
PLACEHOLDER = re.compile(r"\b[A-Z]{1,}[A-Z_]*\b|<\w+>|^$")


def _flag_names(launcher: str) -> set[str]:
    """The flags ``launch/<launcher>.py`` defines, with the distributed ones run and sweep take."""
    pattern = re.compile(r"DEFINE_\w+\(\s*\"(\w+)\"")
    names = set(pattern.findall((ROOT / "launch" / f"{launcher}.py").read_text()))
    if launcher in ("run", "sweep"):
        names |= set(pattern.findall((ROOT / "collapse_jax" / "distributed.py").read_text()))
    return names


def shown_commands(text: str) -> list[tuple[str, list[str]]]:
    """``[(launcher, arguments)]`` of every command in ``text``, in order (``\\`` continuations
    joined; ``[optional]`` brackets and ``...`` dropped)."""
    text = text.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        for m in COMMAND.finditer(line):
            rest = line[m.end() :]
            end = END.search(rest)
            rest = rest[: end.start()] if end else rest
            nxt = COMMAND.search(rest)  # two commands on one line (", then python -m ...")
            rest = rest[: nxt.start()] if nxt else rest
            rest = rest.replace("[", " ").replace("]", " ").replace("...", " ")
            try:
                args = shlex.split(rest)
            except ValueError:  # an unbalanced quote: the command is wrapped onto the next line
                args = rest.split()
            out.append((m.group(1), [a for a in args if a.startswith("--")]))
    return out


def _flag(args: list[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")), None)


def _load_config(spec: str):
    path, _, arg = spec.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return module.get_config(arg) if arg else module.get_config()


def _has_field(cfg, dotted: str) -> bool:
    node = cfg
    for part in dotted.split("."):
        if not hasattr(node, "keys") or part not in node:
            return False
        node = node[part]
    return True


def _all_commands():
    return [(page, launcher, args) for page in PAGES for launcher, args in _commands_of(page)]


def _commands_of(page: Path):
    return shown_commands(page.read_text())


def test_the_command_reader_finds_wrapped_tabled_and_bracketed_commands():
    text = (
        "| Regimes | `python -m launch.sweep --config=configs/gaussian.py:regimes --workdir=DIR`, "
        "then `python -m launch.regimes --workdir=DIR` | 88 s |\n"
        "python -m launch.sweep --config=configs/NAME.py --workdir=DIR [--dry_run]\n"
        "  python -m launch.compare --workdirs='runs/x/*T=100' \\\n      --metric=test_error\n"
        'python -m launch.report --workdir="/tmp/a/b=1+c=2"   # one run\n'
    )
    assert shown_commands(text) == [
        ("sweep", ["--config=configs/gaussian.py:regimes", "--workdir=DIR"]),
        ("regimes", ["--workdir=DIR"]),
        ("sweep", ["--config=configs/NAME.py", "--workdir=DIR", "--dry_run"]),
        ("compare", ["--workdirs=runs/x/*T=100", "--metric=test_error"]),
        ("report", ["--workdir=/tmp/a/b=1+c=2"]),
    ]


def test_the_pages_show_sweep_report_and_compare_commands():
    # The reader is not silently finding nothing.
    launchers = {launcher for _, launcher, _ in _all_commands()}
    assert {"run", "sweep", "report", "compare", "regimes"} <= launchers


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shown_commands_use_existing_flags_configs_and_fields(page):
    problems = []
    for launcher, args in _commands_of(page):
        if not (ROOT / "launch" / f"{launcher}.py").is_file():
            problems.append(f"launch.{launcher}: no such launcher")
            continue
        known = _flag_names(launcher)
        for a in args:
            name = a[2:].split("=", 1)[0]
            if not name.startswith("config.") and name not in known:
                problems.append(f"launch.{launcher} {a}: no flag {name!r}")
        spec = _flag(args, "config")
        if spec is None or PLACEHOLDER.search(spec):
            continue
        try:
            cfg = _load_config(spec)
        except Exception as e:
            problems.append(f"launch.{launcher} --config={spec}: {type(e).__name__}: {e}")
            continue
        for a in args:
            name = a[2:].split("=", 1)[0]
            if name.startswith("config.") and not PLACEHOLDER.search(name):
                if not _has_field(cfg, name.removeprefix("config.")):
                    problems.append(f"launch.{launcher} {a}: the config has no such field")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_shown_sweep_runs_are_the_folders_the_sweep_writes(page):
    """A ``--workdir``/``--workdirs`` under the folder of a sweep shown before it names (or
    matches, as a glob) a run of that sweep; run names never hold a ``,`` between fields
    (``launch.compare`` splits on it): the sweep writes ``FIELD=V+FIELD=V``."""
    from launch import sweep

    sweeps, problems = {}, []
    for launcher, args in _commands_of(page):
        if launcher == "sweep" and _flag(args, "workdir") and _flag(args, "config"):
            spec = _flag(args, "config")
            if not PLACEHOLDER.search(spec):
                root = Path(_flag(args, "workdir"))
                sweeps[root] = [d.name for d, _, _ in sweep.expand(_load_config(spec), root)]
            continue
        targets = [_flag(args, "workdir")]
        targets += (_flag(args, "workdirs") or "").split(",")
        for target in filter(None, targets):
            path = Path(target)
            if "=" in path.name and re.search(r"=[^=+]*,[^=]*=", path.name):
                problems.append(f"launch.{launcher} {target}: fields joined by ',' (not '+')")
            names = sweeps.get(path.parent)
            if names is not None and not fnmatch.filter(names, path.name):
                problems.append(
                    f"launch.{launcher} {target}: the sweep into {path.parent} writes {names}"
                )
    assert not problems, "\n".join(problems)


def _launch(*args):
    r = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, f"{shlex.join(args)}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.slow  # six launches, each importing jax: about a minute of CPU
def test_readme_sweep_report_and_compare_on_a_two_field_sweep(tmp_path):
    """The README's commands (its linear-regression sweep over regime x T, then report and
    compare as shown) on a shrunk sweep: 4 runs of 3 generations, 2 seeds. (The default suite
    runs the same launchers on a smaller sweep in tests/test_first_hour.py.)"""
    readme = (ROOT / "README.md").read_text()
    shown = {launcher: args for launcher, args in shown_commands(readme)}
    assert "--workdirs=A,B" in shown["compare"]  # the form run below

    root = tmp_path / "lr"
    shrink = ["--config.num_generations=3", "--config.num_seeds=2"]
    _launch(
        "launch.sweep", "--config=configs/linear_regression.py:cpu", f"--workdir={root}", *shrink
    )
    names = sorted(p.parent.name for p in root.glob("*/config.json"))
    assert names == [
        "mixing.regime=accumulate+samples_per_generation=100",
        "mixing.regime=accumulate+samples_per_generation=32",
        "mixing.regime=replace+samples_per_generation=100",
        "mixing.regime=replace+samples_per_generation=32",
    ]

    # launch.report --workdir=DIR on the sweep folder: the sweep's report.
    _launch("launch.report", f"--workdir={root}")
    summary = (root / "summary.md").read_text()
    assert all(f"[{n}]({n}/summary.md)" in summary for n in names)
    assert (root / "figures" / "compare_test_error.png").is_file()

    # launch.report --workdir=DIR on one run of it, named as the sweep named it.
    one = root / names[-1]
    _launch("launch.report", f"--workdir={one}")
    assert (one / "summary.md").is_file()

    # launch.compare --workdirs=A,B --metric=NAME with two "+"-named runs, then a glob.
    out = tmp_path / "ab.png"
    a, b = root / names[1], root / names[3]
    r = _launch("launch.compare", f"--workdirs={a},{b}", "--metric=test_error", f"--out={out}")
    assert r.stdout.strip() == f"wrote {out}" and out.read_bytes()[:4] == b"\x89PNG"
    r = _launch(
        "launch.compare", f"--workdirs={root}/*samples_per_generation=100", "--metric=test_mse"
    )
    path = Path(r.stdout.strip().removeprefix("wrote "))
    assert path == root / "figures" / "compare_test_mse.png" and path.is_file()
