"""Bad input to launch.run, launch.sweep and launch.report: one ``error:`` line, exit code 2, no
traceback, and an existing run's files untouched."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from collapse_jax import chain
from configs import gaussian

ROOT = Path(__file__).resolve().parents[1]
# absl's log lines (I1207 14:35:21.369444 ... file.py:849] ...): logging, not an error message.
LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ ")


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
    """A finished smoke run and a snapshot of every file it holds (bytes and mtime)."""
    workdir = chain.run(gaussian.get_config("smoke"), tmp_path_factory.mktemp("run"))
    return workdir, _snapshot(workdir)


def _snapshot(workdir: Path) -> dict:
    return {
        str(p.relative_to(workdir)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(workdir.rglob("*"))
        if p.is_file()
    }


CASES = {
    "unknown_field": (
        "run",
        ["--config=configs/gaussian.py:smoke", "--config.estimatr=mle"],
        "error: --config.estimatr: the config has no field 'estimatr'",
    ),
    "unknown_nested_field": (
        "run",
        ["--config=configs/gaussian.py:smoke", "--config.gaussian.estimatr=mle"],
        "error: --config.gaussian.estimatr: the config has no field 'estimatr'; "
        "did you mean estimator?",
    ),
    "missing_config_file": (
        "run",
        ["--config=configs/nope.py"],
        "error: --config=configs/nope.py: no such config file 'configs/nope.py'",
    ),
    "unknown_variant": (
        "run",
        ["--config=configs/gaussian.py:huge"],
        "error: --config=configs/gaussian.py:huge: variant: expected one of "
        "('paper', 'cpu', 'smoke') or KEY=VALUE with KEY in ('variant', 'sweep'), got 'huge'",
    ),
    "unknown_argument_value": (
        "run",
        ["--config=configs/gmm.py:variant=cpu,truth=sep"],
        "error: --config=configs/gmm.py:variant=cpu,truth=sep: truth: expected one of "
        "('blob', 'separated'), got 'sep'",
    ),
    "unknown_argument_key": (
        "run",
        ["--config=configs/opt_wikitext.py:variant=cpu,decodr=greedy"],
        "error: --config=configs/opt_wikitext.py:variant=cpu,decodr=greedy: config argument: "
        "expected a key of ('variant', 'regime', 'decoder'), got 'decodr'",
    ),
    "wrong_type": (
        "run",
        ["--config=configs/gaussian.py:smoke", "--config.num_seeds=two"],
        "error: flag --config.num_seeds=two: invalid literal for int()",
    ),
    "sweep_unknown_variant": (
        "sweep",
        ["--config=configs/gmm.py:huge"],
        "error: --config=configs/gmm.py:huge: variant: expected one of",
    ),
    "sweep_unknown_field": (
        "sweep",
        ["--config=configs/gaussian.py:smoke", "--config.gaussian.estimatr=mle"],
        "error: --config.gaussian.estimatr: the config has no field 'estimatr'",
    ),
    "report_unknown_flag": ("report", ["--config.num_seeds=3"], "error: Unknown command line flag"),
}


# One case of each launcher's parsing in the default suite (each case is a subprocess), every case
# in CI's slow leg.
DEFAULT_CASES = ("unknown_nested_field", "missing_config_file", "sweep_unknown_field")


@pytest.mark.parametrize(
    "case",
    [c if c in DEFAULT_CASES else pytest.param(c, marks=pytest.mark.slow) for c in CASES],
)
def test_bad_input_is_one_error_line_and_changes_nothing(case, existing_run):
    workdir, before = existing_run
    launcher, args, expected = CASES[case]
    r = subprocess.run(
        [sys.executable, "-m", f"launch.{launcher}", *args, f"--workdir={workdir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr[-2000:]  # no traceback, no library thread's either
    assert lines[0].startswith(expected), lines[0]
    assert r.stdout == ""
    assert _snapshot(workdir) == before


def test_report_of_a_directory_that_is_no_run(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "launch.report", f"--workdir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path}")


def test_a_run_that_fails_on_its_data_closes_what_it_opened(tmp_path, shared_data):
    """The error comes after the run opened its checkpoint manager and metrics writer: they are
    closed before the interpreter exits, so no library thread prints a traceback after it."""
    del shared_data
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch.run",
            "--config=configs/vae.py:smoke",
            f"--workdir={tmp_path / 'run'}",
            "--config.vae.data_dir=/nonexistent/mnist",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not LOG_LINE.match(ln)]
    assert len(lines) == 1 and lines[0].startswith("error: vae.data_dir=/nonexistent/mnist")
