"""Every experiment's config file and every combination of its arguments builds and validates;
every field overrides from the command line; legacy names still build the old runs' configs; config
docstrings list their arguments in one format and date every number they measured; the table's
entries resolve; the launcher's errors are one line."""

import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from collapse_jax import chain, experiments
from collapse_jax.errors import DataError
from collapse_jax.family import Family, HostFamily, SingleRun
from configs import common

ROOT = Path(__file__).resolve().parents[1]
MODULES = {
    name: e.config_module()
    for name, e in experiments.EXPERIMENTS.items()
    if e.config_path.is_file()  # a missing file fails test_every_experiment_resolves instead
}
# A config without ARGS fails test_every_config_declares_its_arguments (not the collection).
CASES = [
    (name, arg)
    for name, mod in MODULES.items()
    for arg in common.every_arg(getattr(mod, "ARGS", common.ARGS))
]
IDS = [f"{n}:{a}" for n, a in CASES]
LEGACY = [(name, old) for name, mod in MODULES.items() for old in getattr(mod, "LEGACY", {})]


@pytest.mark.parametrize("name,arg", CASES, ids=IDS)
def test_every_config_variant_builds(name, arg):
    """Each argument, and each run of its sweep (``launch.sweep``), passes validation."""
    from launch import sweep

    cfg = MODULES[name].get_config(arg)
    assert cfg.experiment == name
    # cfg.variant rebuilds the same config (chain.workdir._variant_default relies on it).
    assert cfg.variant == arg and MODULES[name].get_config(cfg.variant) == cfg
    fam = experiments.family(name)
    for _, _, run_cfg in sweep.expand(cfg, "/unused"):
        fam.validate(run_cfg)
        if isinstance(fam, Family):
            chain.validate(run_cfg)
    if arg == "smoke" and isinstance(fam, Family):
        # Trace the whole generation step without running it: shapes are static in the config.
        cfg.num_seeds = 2
        steps = chain.build(cfg, fam)
        try:
            truth = fam.reference(cfg)
        except DataError as e:  # the VAE's MNIST pool lives in ../shared/data
            pytest.skip(f"{name}:{arg} needs data: {e}")
        keys = jax.random.split(jax.random.key(0), 2)
        _, metrics = jax.eval_shape(steps.first, keys, truth)
        assert metrics and all(v.shape[0] == 2 for v in jax.tree.leaves(metrics))


def _leaves(node, prefix=""):
    """``(dotted path, value)`` of every leaf; an empty ``ConfigDict`` is a leaf too."""
    for k, v in node.items():
        if isinstance(v, ml_collections.ConfigDict) and len(v):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _holds_list(v) -> bool:
    return isinstance(v, list) or (isinstance(v, tuple) and any(map(_holds_list, v)))


def _flag_text(v) -> str:
    """``v`` as a user types it after ``--config.FIELD=``. absl parses by the field's type:
    bool ``True``/``False``; int and float by ``repr`` (``1e-05`` is a float); a str is taken
    verbatim (commas, spaces, ``''``); a tuple through ``ast.literal_eval``, so ``repr`` (nested
    tuples, strings with commas, ``()``, ``(1,)``); an empty ``ConfigDict`` as ``{}``. A None or
    list field has no parser at all: a config must not hold one."""
    if isinstance(v, ml_collections.ConfigDict):
        return "{}"
    return v if isinstance(v, str) else repr(v)


def _typed(cfg) -> list:
    """Every leaf with its type, so that a tuple that came back a list (or 1 as 1.0) differs."""
    return [
        (p, type(v).__name__, v.to_dict() if hasattr(v, "to_dict") else v) for p, v in _leaves(cfg)
    ]


@pytest.mark.parametrize("name,arg", CASES, ids=IDS)
def test_every_field_overrides_from_the_command_line(name, arg):
    """``--config=FILE:ARG --config.FIELD=VALUE`` for every leaf field at once, each set to its
    own value, parses (ml_collections refuses a list or None field) and gives the same config."""
    cfg = MODULES[name].get_config(arg)
    leaves = list(_leaves(cfg))
    lists = [p for p, v in leaves if _holds_list(v)]
    assert not lists, f"{name}:{arg}: list fields cannot be overridden, make them tuples: {lists}"
    argv = [
        "prog",
        f"--config={experiments.get(name).config_path}:{arg}",
        *(f"--config.{p}={_flag_text(v)}" for p, v in leaves),
    ]
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=fv, lock_config=True, sys_argv=argv)
    fv(argv)
    assert set(config_flags.get_override_values(fv["config"])) == {p for p, _ in leaves}
    assert _typed(fv.config) == _typed(cfg)


def test_a_list_field_cannot_be_overridden():
    """Why no config may hold a list: ml_collections has no parser for one, while a tuple parses."""
    cfg = ml_collections.ConfigDict({"kept_tuple": (0, 1), "kept_list": [0, 1]})
    assert [p for p, v in _leaves(cfg) if _holds_list(v)] == ["kept_list"]
    for field in ("kept_tuple", "kept_list"):
        argv = ["prog", f"--config.{field}=(0,10)"]

        def parse(argv=argv):
            fv = flags.FlagValues()
            config = cfg.copy_and_resolve_references()
            config_flags.DEFINE_config_dict("config", config, flag_values=fv, sys_argv=argv)
            fv(argv)
            return fv.config

        if field == "kept_tuple":
            assert parse().kept_tuple == (0, 10)
        else:
            with pytest.raises(flags.Error, match="not supported for overriding"):
                parse()


@pytest.mark.parametrize("name,old", LEGACY, ids=[f"{n}:{o}" for n, o in LEGACY])
def test_legacy_names_build_their_canonical_config(name, old):
    """A name of the version before the KEY=VALUE grammar builds what its argument builds, and
    keeps the ``variant`` that version wrote (so its runs' config.json still matches)."""
    mod = MODULES[name]
    legacy, new = mod.get_config(old), mod.get_config(mod.LEGACY[old])
    assert legacy.variant in (old, common.parse_arg(old, mod.ARGS, mod.LEGACY).variant)
    legacy.variant = new.variant
    assert _typed(legacy) == _typed(new)


def test_a_run_under_a_legacy_name_resumes_under_its_new_spelling(tmp_path):
    """The workdir's compatibility check treats ``variant`` as a label: the config.json a legacy
    name wrote matches the new spelling's config (and a field that differs still refuses)."""
    from collapse_jax.chain.workdir import Workdir
    from collapse_jax.errors import CheckpointError

    mod = MODULES["gaussian"]
    old, new = mod.get_config("regimes_smoke"), mod.get_config(mod.LEGACY["regimes_smoke"])
    assert old.variant != new.variant
    Workdir(tmp_path).prepare(old)
    Workdir(tmp_path).prepare(new)  # no CheckpointError
    other = mod.get_config(mod.LEGACY["regimes_smoke"])
    other.num_seeds += 1
    with pytest.raises(CheckpointError, match="num_seeds"):
        Workdir(tmp_path).prepare(other)


@pytest.mark.parametrize(
    "arg,message",
    [
        (
            "huge",
            "variant: expected one of ('paper', 'cpu', 'smoke') or KEY=VALUE with KEY in "
            "('variant', 'truth'), got 'huge'",
        ),
        ("variant=cpu,truth=sep", "truth: expected one of ('blob', 'separated'), got 'sep'"),
        ("turth=separated", "config argument: expected a key of ('variant', 'truth'), got 'turth'"),
        ("cpu,variant=smoke", "variant: expected once, got 'cpu' and 'smoke'"),
        ("cpu,", "config argument: expected KEY=VALUE,... (no empty part), got 'cpu,'"),
        ("=cpu", "config argument: expected KEY=VALUE,... (no empty part), got '=cpu'"),
    ],
)
def test_bad_argument_is_one_line_naming_the_allowed_values(arg, message):
    with pytest.raises(ValueError) as e:
        MODULES["gmm"].get_config(arg)
    assert str(e.value) == message


def test_argument_grammar():
    keys = MODULES["gmm"].ARGS
    a = common.parse_arg(" cpu , truth=separated ", keys)
    assert (a.variant, a.truth, a.name, a.legacy) == (
        "cpu",
        "separated",
        "variant=cpu,truth=separated",
        False,
    )
    assert common.parse_arg("truth=blob,variant=smoke", keys).name == "smoke"
    assert common.parse_arg(None, keys).name == common.parse_arg("", keys).name == "paper"
    assert common.parse_arg("truth=separated", keys).name == "variant=paper,truth=separated"
    assert len(common.every_arg(MODULES["opt_wikitext"].ARGS)) == 3 * 2 * 6


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_config_declares_its_arguments(name):
    """``ARGS`` (key -> values, ``variant`` first) and ``get_config`` through ``common.parse_arg``."""
    mod = MODULES[name]
    assert hasattr(mod, "ARGS"), f"configs/{name}.py: declare ARGS (configs/common.py's docstring)"
    assert next(iter(mod.ARGS)) == "variant" and mod.ARGS["variant"] == common.VARIANTS
    assert all(isinstance(v, tuple) and v for v in mod.ARGS.values()), mod.ARGS
    with pytest.raises(ValueError, match=r"^variant: expected one of \('paper', 'cpu', 'smoke'\)"):
        mod.get_config("no_such_variant")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_docstring_lists_the_arguments(name):
    """Every config's docstring holds the same block listing its keys and values."""
    block = common.arguments_doc(getattr(MODULES[name], "ARGS", common.ARGS))
    assert block in MODULES[name].__doc__, f"configs/{name}.py's docstring lacks:\n{block}"


# The rule for numbers in config docstrings (issue 26): the docstring is split into paragraphs at
# blank lines. A paragraph states a measurement when it holds a runtime (a number and a unit of
# time: ms, s, min, minute(s), second(s), h, hour(s), also as CPU-minutes; or a worded one: "a
# minute", "two hours", "a few seconds", "tens of minutes"), a ratio (a number followed by
# ``x``, as ``1.15x``), a percentage, or the word "measured". Such a paragraph must name the date
# ("measured YYYY-MM-DD" or "measured ... YYYY-MM-DD") and hold the command that measured it, in
# double backticks, starting with ``python``. Write standard errors out ("s.e." reads as
# seconds), and parameters as fractions (``gamma = 0.1``), not percentages.
_MEASURED = re.compile(
    r"\d(?:[\d.,]*\d)?\s*(?:CPU-)?(?:ms|s|min|minutes?|seconds?|h|hours?)\b"
    r"|\b(?:an?|one|two|few|several|tens of)\s+(?:minutes?|seconds?|hours?)\b"
    r"|\d(?:\.\d+)?x\b|\d\s*%|\bmeasured\b",
    re.IGNORECASE,
)
_DATED = re.compile(r"\bmeasured\b[^.]*?\b20\d\d-\d\d-\d\d\b", re.IGNORECASE | re.DOTALL)
_COMMAND = re.compile(r"``python [^`]+``")


def undated_measurements(doc: str) -> list[str]:
    """The paragraphs of ``doc`` that state a measurement without a date and a command."""
    paragraphs = re.split(r"\n\s*\n", doc)
    return [
        p.strip()
        for p in paragraphs
        if _MEASURED.search(p) and not (_DATED.search(p) and _COMMAND.search(p))
    ]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_docstring_numbers_name_a_date_and_a_command(name):
    bad = undated_measurements(MODULES[name].__doc__)
    assert not bad, f"configs/{name}.py: measurements without a date and a command: {bad}"


def test_docstring_rule_catches_undated_numbers():
    assert undated_measurements("cpu  about 20 s on 2 cores.")
    assert undated_measurements("Measured: 1.15x faster.")
    assert undated_measurements("cpu  3.4 CPU-minutes")
    assert undated_measurements("cpu  about a minute on 2 CPU cores")
    assert not undated_measurements("smoke  8 seeds: seconds; what the tests run.")
    assert undated_measurements("T = 32: 45.3 (1.7 s.e.), measured 2026-11-30")
    assert undated_measurements("keeps 10% of the blocks, measured 2026-12-07.")
    assert not undated_measurements(
        "cpu  20 s (measured 2026-12-07 with ``python -m launch.run --config=c.py:cpu``).\n\n"
        "smoke  2 seeds, M = 20."
    )


@pytest.mark.parametrize("name", sorted(experiments.EXPERIMENTS))
def test_every_experiment_resolves(name):
    """The table's entry: its config file exists, its family imports, its plots draw."""
    e = experiments.get(name)
    assert e.name == name
    assert e.config_path.is_file(), e.config_path
    assert isinstance(e.family(), Family | HostFamily | SingleRun)
    if e.plots_module is not None:
        plots = e.plots()
        assert callable(plots.figures) and callable(plots.summary), e.plots_module


def test_every_config_file_is_in_the_table():
    files = {p.name for p in (ROOT / "configs").glob("*.py")} - {"__init__.py", "common.py"}
    assert files == {e.config for e in experiments.EXPERIMENTS.values()}


def _launch(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "launch.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_launcher_bad_value_is_one_clear_line(tmp_path):
    r = _launch(
        "--config=configs/gaussian.py:smoke", f"--workdir={tmp_path}", "--config.num_seeds=0"
    )
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last == "error: num_seeds: expected a positive integer, got 0"
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_sweep_values_and_kept_generations_override(tmp_path):
    """The issue's two commands: a sweep's values and the kept generations from the command line."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch.sweep",
            "--config=configs/gmm.py:variant=cpu,truth=blob",
            f"--workdir={tmp_path}",
            "--config.sweep.samples_per_generation=(500,1000,2000)",
            "--config.checkpoint.keep_generations=(0,10)",
            "--dry_run",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert [ln.split("--config.samples_per_generation=")[1].split()[0] for ln in lines] == [
        "500",
        "1000",
        "2000",
    ]
    assert all("'--config.checkpoint.keep_generations=(0,10)'" in ln for ln in lines)


def _listed(v):
    if isinstance(v, dict):
        return {k: _listed(x) for k, x in v.items()}
    return [_listed(x) for x in v] if isinstance(v, tuple | list) else v


@pytest.mark.parametrize("arg", ["smoke", "separated_smoke", "variant=smoke,truth=separated"])
def test_a_run_whose_config_json_holds_lists_resumes(tmp_path, arg):
    """config.json of a run started when the configs held lists (JSON has no tuples either) is
    the same config as today's tuples: Workdir.prepare does not refuse the workdir."""
    cfg = MODULES["gmm"].get_config(arg)
    old = _listed(cfg.to_dict())
    assert old["gmm"]["truth_means"] == [list(m) for m in cfg.gmm.truth_means]
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert chain.Workdir(tmp_path).prepare(cfg, write=False).path == tmp_path
