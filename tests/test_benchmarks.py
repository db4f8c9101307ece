"""The benchmarks stay runnable: shared timing helpers, the scripts' imports, accelerator --tiny."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(ROOT / "benchmarks"))

import _common  # noqa: E402  (from benchmarks/, put on the path above)
import accelerator  # noqa: E402
import run_all  # noqa: E402


def test_interleave_warms_up_and_alternates():
    calls = []
    sides = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    t = _common.interleave(sides, rounds=3)
    # One untimed warm-up each, then rounds in alternating order.
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert {k: len(v) for k, v in t.items()} == {"a": 3, "b": 3}
    r = _common.ratio([4.0, 6.0, 9.0], [1.0, 2.0, 3.0])
    assert r == _common.Spread(3.0, 3.0, 4.0, (4.0, 3.0, 3.0))
    assert str(_common.spread([1.0, 2.0, 30.0])) == "2 [1-30]"


def test_op_profile_sums_the_programs_ops():
    import jax
    import jax.numpy as jnp

    f = jax.jit(lambda x: jnp.concatenate([jnp.sin(x), x @ x]))
    x = jnp.ones((64, 64))
    f(x).block_until_ready()
    text = _common.op_profile(lambda: f(x).block_until_ready(), calls=2)
    try:
        import xprof  # noqa: F401
    except ImportError:
        assert text.startswith("(pip install xprof")
        return
    assert "| all ops |" in text and "concatenate" in text, text


def test_readme_block_is_replaced_in_place():
    readme = f"intro\n{run_all.BEGIN}\nold table\n{run_all.END}\nafter\n"
    assert (
        run_all.replace_table(readme, "new")
        == f"intro\n{run_all.BEGIN}\nnew\n{run_all.END}\nafter\n"
    )
    with pytest.raises(SystemExit, match="benchmarks:begin"):
        run_all.replace_table("no markers", "new")


def _row(work, ours, ref):
    return _common.Row(
        work,
        "cmd",
        _common.Cell(_common.spread(ours), suffix=" s"),
        _common.Cell(_common.spread(ref), "ref ", " s"),
        _common.Cell(_common.ratio(ref, ours), suffix="x"),
    )


def test_runs_pool_every_round_and_keep_each_runs_median():
    run1 = [_row("a", [1.0, 1.0, 2.0], [2.0, 3.0, 2.0]), _row("b", [1.0], [10.0])]
    run2 = [_row("a", [2.0, 2.0, 2.0], [2.0, 2.0, 3.0]), _row("b", [2.0], [10.0])]
    # Through JSON and back, as --runs does between processes.
    run2 = _common.from_json(json.loads(json.dumps(_common.to_json(run2))))
    a, b = _common.pool([run1, run2])
    # Ratios per round: run1 2, 3, 1; run2 1, 1, 1.5 -> pooled median 1.25 of all six.
    assert a.ratio.spread[:3] == (1.25, 1.0, 3.0) and a.runs == (2.0, 1.0)
    assert a.ours.spread.values == (1.0, 1.0, 2.0, 2.0, 2.0, 2.0)
    assert str(a.reference).startswith("ref 2 [2-3] s")
    assert b.runs == (10.0, 5.0)
    table = _common.table([a, b])
    assert "each run's median" in table and "| 2, 1 |" in table, table
    with pytest.raises(ValueError, match="different rows"):
        _common.pool([run1, run1[:1]])


def test_against_says_which_ratios_land_outside_the_earlier_spread():
    earlier = [_row("a", [1.0, 1.0], [2.0, 3.0]), _row("b", [1.0], [10.0])]  # a: [2-3], b: [10]
    now = [_row("a", [1.0], [2.5]), _row("b", [1.0], [12.0]), _row("new", [1.0], [1.0])]
    text, outside = run_all.against(now, earlier)
    assert outside == 1
    assert (
        "| a | 2.5 [2-3]x | 2.5x | yes |" in text and "| b | 10 [10-10]x | 12x | **no** |" in text
    )
    assert "new" not in text


def test_a_saved_run_prints_its_table_and_bad_files_get_one_line(tmp_path, capsys):
    runs = [[_row("a", [1.0], [2.0])], [_row("a", [1.0], [3.0])]]
    record = {"machine": "m", "date": "d", "flags": " --runs=2", "seconds": 5.0}
    path = tmp_path / "run.json"
    path.write_text(json.dumps({**record, "runs": [_common.to_json(r) for r in runs]}))
    run_all.main([f"--table={path}"])
    out = capsys.readouterr().out
    assert out.startswith("Measured d by `python benchmarks/run_all.py --runs=2` in 5 s on: m.")
    assert "| a | `cmd` | 1 [1-1] s | ref 2.5 [2-3] s | 2.5 [2-3]x | 2, 3 |" in out, out
    path.write_text("{}")
    with pytest.raises(SystemExit):
        run_all.main([f"--table={path}"])
    assert "error: --table: expected a run_all.py --json file" in capsys.readouterr().err


def test_scripts_run_from_the_root_with_nothing_set():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "benchmarks/gmm_vs_sklearn.py", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]


def _check_table(text, expected_rows):
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == expected_rows, text
    assert "nan" not in text and "inf " not in text


def test_accelerator_tiny_cheap_sections(tmp_path):
    out = tmp_path / "accelerator.md"
    text = accelerator.main(["--tiny", "--only=gaussian,opt", f"--out={out}"])
    assert out.read_text() == text
    _check_table(text, 3)


@pytest.mark.slow
def test_accelerator_tiny_every_section():
    _check_table(accelerator.main(["--tiny"]), 6)
