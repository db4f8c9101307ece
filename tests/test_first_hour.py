"""What a new user meets in the first hour: Ctrl-C, library notices, mistyped flags, sweeps of two
fields (naming, reporting, comparing), launch.regimes on other sweeps, help texts, examples."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collapse_jax import chain
from collapse_jax.errors import ConfigError
from configs import gaussian

ROOT = Path(__file__).resolve().parents[1]
LOG_LINE = re.compile(r"^[IWEF]\d{4} ")  # absl's log lines (progress, "done")


def _launch(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def _not_logging(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not LOG_LINE.match(ln)]


# A smoke chain that saves every generation: slow enough (one checkpoint per generation) to be
# caught mid-run, small enough to finish in seconds.
GENERATIONS = 60
RUN = [
    "launch.run",
    "--config=configs/gaussian.py:smoke",
    f"--config.num_generations={GENERATIONS}",
    "--config.checkpoint.every_generations=1",
    # One checkpoint kept: each save waits for the metrics before it, so the records (and the
    # progress the test watches) keep up with the loop instead of lagging in the background.
    "--config.checkpoint.max_to_keep=1",
]


def _checkpointed(workdir: Path) -> int:
    """The newest committed checkpoint (Orbax renames a step's folder to its number when done)."""
    steps = [int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit()]
    return max(steps, default=-1)


def _recorded(workdir: Path) -> int:
    try:
        return json.loads((workdir / "metrics" / "progress.json").read_text())["per_seed"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_ctrl_c_is_one_line_and_the_rerun_resumes_byte_identically(tmp_path):
    straight = _launch(*RUN, f"--workdir={tmp_path / 'straight'}")
    assert straight.returncode == 0, straight.stderr[-2000:]
    # A normal run's output holds no notice that is not the user's business.
    assert "Unable to initialize backend" not in straight.stderr
    assert _not_logging(straight.stderr) == []

    workdir = tmp_path / "stopped"
    # A test run in the background has SIGINT ignored, which a child inherits (and Python then
    # installs no KeyboardInterrupt handler): caught here while the run starts, it is the default
    # in the child, as under a user's shell. (A preexec_fn would fork a multithreaded process.)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", *RUN, f"--workdir={workdir}"],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, before)
    deadline = time.monotonic() + 240
    # Stopped once a checkpoint after generation 0 is committed with its metrics recorded: the
    # rerun then resumes from it rather than starting over.
    while (
        not 1 <= _checkpointed(workdir) < _recorded(workdir)
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    # Frozen first, so that a loaded machine cannot let the run finish before the interrupt lands:
    # SIGINT is delivered (as KeyboardInterrupt at the next Python instruction) once it goes on.
    proc.send_signal(signal.SIGSTOP)
    assert proc.poll() is None and _recorded(workdir) < GENERATIONS, "finished before the stop"
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGCONT)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()  # a run that hangs after Ctrl-C fails here, and is not left behind
        raise
    done = _recorded(workdir)
    assert 1 <= done < GENERATIONS, "the interrupt did not land mid-run"
    assert proc.returncode == 130
    assert _not_logging(stderr) == [
        f"interrupted after generation {done - 1}; rerun the same command to resume"
    ]

    resumed = _launch(*RUN, f"--workdir={workdir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stderr
    assert (workdir / "metrics.jsonl").read_bytes() == (
        tmp_path / "straight" / "metrics.jsonl"
    ).read_bytes()


def test_sweep_ctrl_c_names_the_run_and_its_generation(tmp_path, monkeypatch, capsys):
    from launch import cli, sweep

    runs = sweep.expand(gaussian.get_config("regimes_smoke"), tmp_path)[:2]
    chain.run(runs[0][2], runs[0][0])

    def stopped(cfg, workdir, overwrite=False):
        raise KeyboardInterrupt

    def exit_now(code):
        raise SystemExit(code)

    monkeypatch.setattr(chain, "run", stopped)
    monkeypatch.setattr(cli, "exit_now", exit_now)  # the real one ends the process at once
    with pytest.raises(SystemExit) as e:
        sweep.run_all(runs, overwrite=False)
    assert e.value.code == cli.INTERRUPTED
    # The first run (finished) is interrupted on its way back in: its last generation is known.
    assert capsys.readouterr().err.splitlines() == [
        f"interrupted in run 1 of 2 ({runs[0][0]}) after generation 5; rerun the same command to "
        "resume"
    ]


def test_no_pytorch_notice_in_an_lm_launch():
    # Importing the launchers keeps transformers' "PyTorch was not found" advice away.
    code = "import launch.run; import transformers; print('imported')"
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "TRANSFORMERS_NO_ADVISORY_WARNINGS"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "PyTorch was not found" not in r.stderr
    assert "Unable to initialize backend" not in r.stderr


@pytest.mark.parametrize(
    "launcher,flag,hint",
    [
        ("run", "--num_seeds=10", "did you mean --config.num_seeds=10?"),
        ("sweep", "--estimator=mle", "did you mean --config.gaussian.estimator=mle?"),
    ],
)
def test_a_config_field_given_as_a_flag_gets_a_hint(launcher, flag, hint, tmp_path):
    r = _launch(
        f"launch.{launcher}", "--config=configs/gaussian.py:smoke", flag, f"--workdir={tmp_path}"
    )
    assert r.returncode == 2
    name = flag[2:].split("=")[0]
    assert r.stderr.strip().splitlines() == [f"error: Unknown command line flag '{name}'; {hint}"]


def test_launcher_docstrings_survive_absl_help():
    # absl's --help substitutes the program path for every single % of the module docstring.
    import ast

    for name in ("run", "sweep", "report", "compare", "regimes"):
        # Read, not imported: two launchers in one process define their flags twice.
        doc = ast.get_docstring(ast.parse((ROOT / "launch" / f"{name}.py").read_text()))
        assert doc.count("%") == 2 * doc.count("%%"), name


# Sweeps of two fields: named with "+", reported and compared by folder, glob or list.


@pytest.fixture(scope="module")
def two_field_sweep(tmp_path_factory):
    """A 2 x 2 sweep (regime x M) of short smoke chains, run as launch.sweep runs them."""
    from launch import sweep

    cfg = gaussian.get_config("smoke")
    cfg.num_generations = 4
    cfg.unlock()
    cfg.sweep.mixing = {"regime": ("replace", "accumulate")}
    cfg.sweep.samples_per_generation = (19, 20)
    cfg.lock()
    root = tmp_path_factory.mktemp("sweep2")
    runs = sweep.expand(cfg, root)
    sweep.run_all(runs, overwrite=False)
    return root, runs


def test_two_field_runs_are_named_with_plus(two_field_sweep):
    _, runs = two_field_sweep
    assert [d.name for d, _, _ in runs] == [
        "mixing.regime=replace+samples_per_generation=19",
        "mixing.regime=replace+samples_per_generation=20",
        "mixing.regime=accumulate+samples_per_generation=19",
        "mixing.regime=accumulate+samples_per_generation=20",
    ]


def test_an_old_comma_named_sweep_resumes_in_place(two_field_sweep, tmp_path):
    import shutil

    from launch import sweep

    _, runs = two_field_sweep
    old = tmp_path / "mixing.regime=replace,samples_per_generation=19"
    shutil.copytree(runs[0][0], old)
    assert sweep.run_dir(tmp_path, runs[0][1]) == old
    assert sweep.run_dir(tmp_path, runs[1][1]).name == runs[1][0].name  # no old folder: new name


def test_compare_reads_a_sweep_folder_a_glob_and_old_comma_names(two_field_sweep, tmp_path):
    import shutil

    from launch import compare

    root, runs = two_field_sweep
    dirs = [d for d, _, _ in runs]
    assert compare.expand(str(root)) == sorted(dirs)
    assert compare.expand(f"{root}/*samples_per_generation=19") == sorted(
        d for d in dirs if d.name.endswith("=19")
    )
    assert compare.expand(f"{dirs[0]},{dirs[1]}") == dirs[:2]
    old = [tmp_path / "a=1,b=2", tmp_path / "a=1,b=3"]
    for src, dst in zip(dirs, old, strict=False):
        shutil.copytree(src, dst)
    assert compare.expand(f"{old[0]},{old[1]}") == old

    out = tmp_path / "figure.png"
    r = _launch(
        "launch.compare",
        f"--workdirs={root}/*samples_per_generation=19",
        "--metric=variance",
        f"--out={out}",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == f"wrote {out}" and out.read_bytes()[:4] == b"\x89PNG"


def test_a_sweeps_runs_come_in_the_order_of_their_values(tmp_path):
    from collapse_jax.plots import sweep

    names = [
        "mixing.regime=accumulate+samples_per_generation=32",
        "mixing.regime=accumulate+samples_per_generation=100",
        "mixing.regime=replace+samples_per_generation=32",
        "mixing.regime=replace+samples_per_generation=1e3",
        "tol=0.05",
        "tol=0.1",
        "x=a,y=2",  # an older sweep's name: read as text
    ]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    assert [d.name for d in sweep.run_dirs(tmp_path)] == names


def test_report_of_a_sweep_folder_is_the_sweeps_report(two_field_sweep):
    root, runs = two_field_sweep
    r = _launch("launch.report", f"--workdir={root}")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = (root / "summary.md").read_text()
    for d, _, _ in runs:
        assert f"[{d.name}]({d.name}/summary.md)" in summary
        assert (d / "figures" / "variance.png").is_file()  # each run's own report
        assert f"({d.name}/figures/variance.png)" in summary
    assert "![compare_variance](figures/compare_variance.png)" in summary
    assert (root / "figures" / "compare_variance.png").is_file()
    # One row per run in the final-metrics table, with the swept values.
    rows = [ln for ln in summary.splitlines() if ln.startswith("| [")]
    assert len(rows) == 4 and all(" | replace | " in r or " | accumulate | " in r for r in rows)


def test_regimes_on_another_sweep_says_what_it_needs(two_field_sweep, tmp_path):
    from collapse_jax.plots import regimes

    root, runs = two_field_sweep
    with pytest.raises(ConfigError, match=r"differ only in their mixing fields; these also "):
        regimes.figure(root, "variance")
    one_m = tmp_path / "one_m"
    one_m.mkdir()
    for d, point, _ in runs:
        if point["samples_per_generation"] == 19:
            (one_m / d.name).symlink_to(d)
    with pytest.raises(ConfigError, match=r"has no metric 'varaince'; it has \[.*'variance'"):
        regimes.figure(one_m, "varaince")
    only_m = tmp_path / "only_m"
    only_m.mkdir()
    for d, point, _ in runs:
        if point["mixing.regime"] == "replace":
            (only_m / d.name).symlink_to(d)
    r = _launch("launch.regimes", f"--workdir={only_m}")
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {only_m}: not a regime sweep: ")
    assert "samples_per_generation" in line and "launch.report" in line


def test_decoder_field_of_another_strategy_says_why_first():
    from collapse_jax import errors, experiments
    from collapse_jax.families.lm import decode

    cfg = experiments.get("opt_wikitext").config_module().get_config("smoke")
    assert cfg.generate.strategy == "beam"
    cfg.generate.top_k = 50
    with pytest.raises(errors.ConfigError) as e:
        decode.validate(cfg)
    assert str(e.value).startswith(
        "generate.top_k: only sampling uses it, and generate.strategy is 'beam': expected 0 (off)"
    )
    cfg.generate.strategy = "sample"
    decode.validate(cfg)  # the same value is fine for sampling
    cfg.generate.top_k = -1
    with pytest.raises(errors.ConfigError, match=r"generate\.top_k: expected an integer >= 0"):
        decode.validate(cfg)
