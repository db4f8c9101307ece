"""The benchmarks stay runnable and honest: shared timing helpers, every script's ``--quick`` (tiny
sizes: each must run and print rows naming both sides' dtype and threads; speed is not tested),
``accelerator.py --tiny`` with every section, the chain helper every benchmark times."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(ROOT / "benchmarks"))

import _common  # noqa: E402  (from benchmarks/, put on the path above)
import accelerator  # noqa: E402
import beam_vs_torch  # noqa: E402
import gaussian_vs_numpy  # noqa: E402
import gmm_vs_sklearn  # noqa: E402
import metrics_store  # noqa: E402
import opt_vs_torch  # noqa: E402
import paper_path  # noqa: E402
import run_all  # noqa: E402
import scaling  # noqa: E402
import vae_vs_torch  # noqa: E402


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


def test_the_table_block_is_replaced_in_place():
    doc = f"intro\n{run_all.BEGIN}\nold table\n{run_all.END}\nafter\n"
    assert (
        run_all.replace_table(doc, "new") == f"intro\n{run_all.BEGIN}\nnew\n{run_all.END}\nafter\n"
    )
    with pytest.raises(SystemExit, match="benchmarks:begin"):
        run_all.replace_table("no markers", "new")
    # --docs writes into docs/performance.md: its markers are there.
    perf = (_common.ROOT / "docs" / "performance.md").read_text()
    assert perf.count(run_all.BEGIN) == 1 and perf.count(run_all.END) == 1


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


def test_rows_keep_both_sides_through_json_and_old_files_read_without():
    side = _common.Side("float32", "XLA, 2 cores")
    row = _row("a", [1.0], [2.0])._replace(
        ours_side=side, reference_side=_common.Side("float64", "NumPy, 1 thread")
    )
    data = json.loads(json.dumps(_common.to_json([row])))
    assert data[0]["ours_side"] == {"dtype": "float32", "threads": "XLA, 2 cores", "device": "cpu"}
    assert data[0]["reference_side"]["dtype"] == "float64"
    assert _common.from_json(data) == [row]
    table = _common.table([row])
    assert table.splitlines()[2].endswith("| float32, XLA, 2 cores / float64, NumPy, 1 thread |")
    # A file from before the sides were recorded reads; beside a new row the table says so.
    for key in ("ours_side", "reference_side"):
        del data[0][key]
    (old,) = _common.from_json(data)
    assert old.ours_side is None and old.reference_side is None
    assert _common.table([row, old]).endswith("| not recorded / not recorded |")


def test_chain_fn_runs_the_chain():
    # The one door of every benchmark to the chain: the same chain as chain.simulate, another
    # program (one XLA call), so equal to float32 rounding, not bit for bit.
    from collapse_jax import chain
    from configs import gaussian

    cfg = gaussian.get_config("smoke")
    cfg.num_generations = 5
    _, got = _common.chain_fn(cfg)(*_common.chain_inputs(cfg))
    want = chain.simulate(cfg)
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].shape == want[k].shape == (5, cfg.num_seeds), k
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-7, err_msg=k)


def _sided_rows(text, expected_rows):
    """The table's rows; each names a dtype and threads for both sides."""
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == expected_rows, text
    assert "nan" not in text and "inf " not in text
    for line in rows:
        sides = line.rstrip(" |").rsplit("|", 1)[-1]
        ours, _, theirs = sides.partition(" / ")
        for side in (ours, theirs):
            assert "float" in side and ("thread" in side or "core" in side), line
    return rows


def _main(module, argv, capsys):
    module.main(argv)
    return capsys.readouterr().out


def test_gaussian_quick(capsys):
    rows = _sided_rows(_main(gaussian_vs_numpy, ["--quick"], capsys), 4)
    assert sum("NumPy statistics" in r for r in rows) == 1
    assert sum("/ float32, NumPy" in r for r in rows) == 3  # and one float64 reference


@pytest.mark.slow
def test_gaussian_parts_quick(capsys):
    out = _main(gaussian_vs_numpy, ["--parts", "--quick"], capsys)
    assert (
        "sufficient.chi2" in out and "jax.random.gamma" in out and "ns per seed-generation" in out
    )


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_gmm_quick_has_default_threads_and_float64_rows(capsys):
    rows = _sided_rows(_main(gmm_vs_sklearn, ["--quick"], capsys), 3)
    assert "1 thread (threadpoolctl)" in rows[0] and "default threads (" in rows[1]
    assert "| float32, XLA" in rows[0] and "| float64, XLA" in rows[2]
    assert "ours float64" in rows[2] and rows[2].endswith(
        "/ float64, sklearn, 1 thread (threadpoolctl) |"
    )


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_vae_quick(capsys):
    pytest.importorskip("torch")
    _sided_rows(_main(vae_vs_torch, ["--quick"], capsys), 2)


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_opt_quick(capsys, dtype):
    pytest.importorskip("torch")
    rows = _sided_rows(_main(opt_vs_torch, ["--quick", f"--dtype={dtype}"], capsys), 2)
    if dtype == "bfloat16":  # PyTorch really computes in bfloat16, and says so
        assert all("/ bfloat16 autocast" in r for r in rows)


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_beam_quick(capsys):
    pytest.importorskip("torch")
    out = _main(beam_vs_torch, ["--quick"], capsys)
    _sided_rows(out, 1)
    assert "1 prompts" in out and "4 new tokens" in out and "our first call" in out


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_metrics_store_quick(capsys):
    out = _main(metrics_store, ["--quick"], capsys)
    assert "store == simulate bit for bit" in out and "float32, XLA's default threads" in out


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_scaling_quick(capsys):
    out = _main(scaling, ["--quick"], capsys)
    assert "float32, XLA's default threads" in out
    lines = [line for line in out.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert len(lines) == 2 and all("error" not in line for line in lines), out


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_paper_path_quick(capsys):
    mem = paper_path.main(["--quick"])
    assert mem["model"] == "tiny" and mem["temp_bytes"] > 0
    # The state is the arguments (parameters, two AdamW moments, the blocks); the donated step's
    # outputs reuse their buffers, bar a few KiB (the loss, scalars; 4.6 KiB at OPT-125m's shape).
    assert mem["argument_bytes"] > mem["param_bytes"] * 3
    assert mem["output_bytes"] - mem["alias_bytes"] < 64 * 1024
    assert "XLA memory analysis" in capsys.readouterr().out


def test_run_all_json_names_both_sides(tmp_path, monkeypatch):
    # What run_all writes for the rows the scripts return (their --quick runs are tested above).
    side = _common.Side("float32", "XLA, 2 cores")
    rows = [_row("a", [1.0], [2.0])._replace(ours_side=side, reference_side=side)]
    monkeypatch.setattr(gaussian_vs_numpy, "rows", lambda quick: rows)
    path = tmp_path / "run.json"
    run_all.main(["--quick", "--only=gaussian", f"--json={path}"])
    record = json.loads(path.read_text())
    assert record["flags"] == " --only=gaussian --quick"  # the command that reproduces it
    ((row,),) = record["runs"]
    assert row["ours_side"] == row["reference_side"] == side._asdict()


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
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


SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_has_quick(name, capsys):
    module = sys.modules.get(name) or __import__(name)
    with pytest.raises(SystemExit) as e:
        module.main(["--help"])
    assert e.value.code == 0
    assert "--quick" in capsys.readouterr().out


# The GPU run's code at toy sizes on CPU, every section, so none can rot unseen (the PyTorch ones
# where torch is installed: the pinned CI leg). Each section runs what the benchmark's --quick
# runs (the same programs: the compile cache serves them).


def _accelerator_rows(tmp_path, sections):
    out = tmp_path / "accelerator.md"
    text = accelerator.main(["--tiny", f"--only={sections}", f"--out={out}"])
    assert out.read_text() == text
    assert "nan" not in text and "inf " not in text
    return [line for line in text.splitlines() if line.startswith("| ") and "`" in line]


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_accelerator_tiny_jax_sections(tmp_path):
    rows = _accelerator_rows(tmp_path, "gaussian,gmm,opt")
    assert len(rows) == 4, rows
    assert all("| float32, XLA" in r for r in rows)


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_accelerator_tiny_torch_sections(tmp_path):
    pytest.importorskip("torch")
    rows = _accelerator_rows(tmp_path, "vae,beam")
    assert len(rows) == 2, rows
    assert rows[0].startswith("| VAE training") and rows[1].startswith("| beam search")
    assert "1 prompts" in rows[1] and "4 new tokens" in rows[1]
    assert all("| float32, XLA" in r and "/ float32, PyTorch, " in r for r in rows)
