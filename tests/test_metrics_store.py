"""The metrics store: every seed on disk bit for bit, resume after a kill, lazy reads, jsonl lines."""

import json
import shutil
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorstore as ts

from collapse_jax import chain, experiments, family, plots
from collapse_jax import metrics as metrics_lib
from collapse_jax.checkpoint import Checkpointer
from collapse_jax.errors import CheckpointError, ConfigError
from configs import common


def _fit(key, state, data, cfg):
    del key
    w = data.weight
    n = w.sum()
    mean = (w * data.x).sum() / n
    var = (w * (data.x - mean) ** 2).sum() / (n - 1)
    return {"mean": mean, "var": var, "count": state["count"] + 1}


def _metrics(state, data, origin, cfg):
    # Generation g has count g + 1: the metric turns non-finite from generation nan_from on.
    bad = jnp.where(state["count"] > cfg.toy.nan_from, jnp.nan, 0.0)
    return {
        "mean": state["mean"],
        "var": state["var"] + bad,
        "count": state["count"],
        "pair": jnp.stack([state["mean"], state["var"]]),
    }


TOY = family.Family(
    name="toy_store",
    validate=lambda cfg: None,
    reference=lambda cfg: jnp.float32(2.0),
    original_data=lambda key, truth, cfg: truth * jax.random.normal(key, (8,)),
    init=lambda key, cfg, data0: {"mean": 0.0, "var": 1.0, "count": jnp.int32(0)},
    fit=_fit,
    sample=lambda key, state, n, cfg: (
        state["mean"] + jnp.sqrt(state["var"]) * jax.random.normal(key, (n,))
    ),
    metrics=_metrics,
)


@pytest.fixture(autouse=True)
def _register(monkeypatch):
    monkeypatch.setitem(
        experiments.EXPERIMENTS, "toy_store", SimpleNamespace(name="toy_store", family=lambda: TOY)
    )


def toy_config(**kw) -> ml_collections.ConfigDict:
    cfg = common.base("toy_store")
    cfg.num_seeds = 5
    cfg.num_generations = 9
    cfg.samples_per_generation = 8
    cfg.checkpoint.every_generations = 3
    cfg.metrics.seeds_per_chunk = 2
    cfg.toy = ml_collections.ConfigDict({"nan_from": 1000})
    cfg.log_every_seconds = 0.0
    cfg.update_from_flattened_dict(kw)  # dotted keys: "mixing.regime"
    return cfg


def _old_format_lines(generations, metrics_GxS):
    """metrics.jsonl lines as the writer before the store wrote them (the format to keep)."""

    def strings(a):
        a = np.asarray(a)
        if a.dtype.kind == "f":
            flat = list(map("{:.9g}".format, a.ravel().tolist()))
        else:
            flat = list(map(str, a.astype(np.int64).ravel().tolist()))
        return np.array(flat, dtype=object).reshape(a.shape).tolist()

    def nest(x):
        if isinstance(x, str):
            return x
        if x and isinstance(x[0], str):
            return "[" + ",".join(x) + "]"
        return "[" + ",".join(nest(y) for y in x) + "]"

    names = sorted(metrics_GxS)
    cols = [strings(metrics_GxS[k]) for k in names]
    out = []
    for i, g in enumerate(generations):
        parts = [f'"generation": {int(g)}']
        parts += [f'"{k}": {nest(c[i])}' for k, c in zip(names, cols, strict=True)]
        out.append("{" + ", ".join(parts) + "}\n")
    return out


def test_format_lines_is_byte_identical_to_the_previous_writer():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 6)) * 10.0 ** rng.uniform(-40, 38, (4, 6))).astype(np.float32)
    x[0, :5] = [np.inf, -np.inf, np.nan, -0.0, 1e-45]
    m = {
        "x": x,
        "i": rng.integers(-(2**31), 2**31 - 1, (4, 6)).astype(np.int32),
        "b": rng.random((4, 6)) < 0.5,
        "kxd": rng.standard_normal((4, 6, 2, 3)).astype(np.float32),
        "empty": np.zeros((4, 6, 0), np.float32),
    }
    assert metrics_lib.format_lines([3, 4, 5, 6], m) == _old_format_lines([3, 4, 5, 6], m)
    one = {"a": np.array([[1.5, -0.0]], np.float32), "b": np.array([[3, 4]], np.int32)}
    assert metrics_lib.format_lines([7], one) == ['{"generation": 7, "a": [1.5,-0], "b": [3,4]}\n']


@pytest.mark.parametrize("n", [1, 2, 3, 8, 9, 100, 1001])
def test_seed_statistics_are_numpys_bit_for_bit(n):
    """The sort-based statistics equal np.mean / np.quantile of the float64 values exactly."""
    rng = np.random.default_rng(n)
    scale = 10.0 ** rng.uniform(-30, 30, (4, n, 3))
    x = (rng.standard_normal((4, n, 3)) * scale).astype(np.float32)
    qs = (0.0, 0.05, 0.1, 0.25, 0.75, 0.9, 0.95, 1.0, 1 / 3, 0.123456789)
    m = {"f": x, "i": (x * 1e-25).astype(np.int32), "b": x > 0, "g": x[..., 0]}
    got = metrics_lib.summarize(m, qs)
    for k, v in m.items():
        y = v.astype(np.float64)
        want = np.quantile(y, [0.5, *qs], axis=1)
        for j in range(len(qs) + 1):
            np.testing.assert_array_equal(got[k][:, j + 1], want[j], strict=True, err_msg=k)
        # The mean of each value's seeds, as plots.seed_stats takes it from a[..., i].
        for idx in np.ndindex(*v.shape[2:]):
            sel = (slice(None), slice(None), *idx)
            want_mean = np.asarray(v[sel], float).mean(axis=1)
            np.testing.assert_array_equal(got[k][(slice(None), 0, *idx)], want_mean, strict=True)
    x[1, 0, 2] = np.nan
    assert np.isnan(metrics_lib.summarize({"f": x}, qs)["f"][1, :, 2]).all()


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """One uninterrupted run and what ``chain.simulate`` returns for it (shared: compiled once)."""
    mp = pytest.MonkeyPatch()
    mp.setitem(
        experiments.EXPERIMENTS, "toy_store", SimpleNamespace(name="toy_store", family=lambda: TOY)
    )
    cfg = toy_config()
    workdir = chain.run(cfg, tmp_path_factory.mktemp("full"))
    sim = chain.simulate(cfg)
    yield workdir, sim
    mp.undo()


def _state(workdir):
    return (
        metrics_lib.read_metrics(workdir),
        metrics_lib.read_summary(workdir),
        (workdir / "metrics.jsonl").read_bytes(),
    )


def test_store_equals_simulate_and_jsonl_keeps_todays_format(full):
    workdir, sim = full
    got = metrics_lib.read_metrics(workdir)
    assert sorted(got) == sorted(sim)
    for k in sim:
        assert got[k].dtype == sim[k].dtype and got[k].shape == sim[k].shape, k
        np.testing.assert_array_equal(got[k], sim[k], strict=True)
    lines = _old_format_lines(range(9), sim)
    assert (workdir / "metrics.jsonl").read_text() == "".join(lines)
    summ = metrics_lib.read_summary(workdir)
    v = sim["var"].astype(np.float64)
    np.testing.assert_array_equal(summ["var"]["mean"], v.mean(axis=1))
    np.testing.assert_array_equal(summ["var"]["median"], np.median(v, axis=1))
    np.testing.assert_array_equal(
        summ["pair"]["q0.9"], np.quantile(sim["pair"].astype(float), 0.9, axis=1)
    )
    # Selections read what they name.
    part = metrics_lib.read_metrics(workdir, names=["pair"], generations=[2, 5], seeds=[4, 0])
    np.testing.assert_array_equal(part["pair"], sim["pair"][[2, 5]][:, [4, 0]])


def _kill_store_ahead(workdir):
    # Killed after the store took generations 7..8, before checkpoint 8 committed.
    shutil.rmtree(workdir / "checkpoints" / "8")


def _kill_mid_chunk_write(workdir):
    # Killed while tensorstore wrote a chunk past checkpoint 3: a chunk file is only ever
    # replaced by rename, so what can be left is a partial lock file (here also a torn copy of a
    # shard that holds only generations past the checkpoint, as a harsher case).
    for step in ("6", "8"):
        shutil.rmtree(workdir / "checkpoints" / step)
    shard = workdir / "metrics" / "per_seed" / "var" / "c" / "2" / "0"
    (shard.parent / "0.__lock").write_bytes(shard.read_bytes()[:7])
    shard.write_bytes(shard.read_bytes()[:7])


def _kill_before_lines(workdir):
    # Checkpoint 8 committed, the background writer had not finished generations 4..8: the
    # jsonl holds 0..3 and half a line, the seed statistics 0..5 (the file of rows 6..8 absent).
    path = workdir / "metrics.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:4]) + lines[4][:20])
    progress = workdir / "metrics" / "progress.json"
    progress.write_text(json.dumps({"per_seed": 9, "summary": 6}))
    for d in (workdir / "metrics" / "summary").glob("*/c/2"):
        shutil.rmtree(d)


def _kill_before_the_first_kept_checkpoint(workdir):
    # No checkpoint committed (3, 6, 8 are all that retention keeps), store and lines ahead.
    for step in ("3", "6", "8"):
        shutil.rmtree(workdir / "checkpoints" / step)
    (workdir / "metrics.jsonl").write_bytes(b"")


@pytest.mark.parametrize(
    "kill",
    [
        _kill_store_ahead,
        _kill_mid_chunk_write,
        _kill_before_lines,
        _kill_before_the_first_kept_checkpoint,
    ],
)
def test_resume_after_a_kill_is_identical(full, tmp_path, kill):
    workdir, _ = full
    crashed = tmp_path / "crashed"
    shutil.copytree(workdir, crashed)
    kill(crashed)
    chain.run(toy_config(), crashed)
    want, got = _state(workdir), _state(crashed)
    assert got[2] == want[2]
    for k in want[0]:
        np.testing.assert_array_equal(got[0][k], want[0][k], strict=True)
    assert want[1].keys() == got[1].keys()
    for k in want[1]:
        for s in want[1][k]:
            np.testing.assert_array_equal(got[1][k][s], want[1][k][s], strict=True)


class Killed(Exception):
    """Stands for SIGKILL: raised inside the writer thread or the run loop at a chosen moment."""


def _kill_at(monkeypatch, target, name, call, partial=None):
    """Make the ``call``-th call (from 1) of ``target.name`` die: after ``partial(*args)`` if
    given (a half-done write), else before doing anything."""
    real = getattr(target, name)
    calls = []

    def dying(*args, **kw):
        calls.append(args)
        if len(calls) == call:
            if partial is not None:
                partial(real, *args, **kw)
            raise Killed(f"{name} call {call}")
        return real(*args, **kw)

    monkeypatch.setattr(target, name, dying)


def _first_array_only(real, self, kind, generations, arrays):
    real(self, kind, generations, dict([next(iter(arrays.items()))]))


def _half_the_text(real, self, lines):
    text = "".join(lines)
    real(self, [text[: len(text) // 2]])


# Every moment of the toy run's record: chunks end at 0, 3, 6, 8 (checkpoint every 3); each chunk
# writes per_seed/ then summary/ (MetricsStore.write calls 2k+1, 2k+2), appends its lines, then
# commits progress.json (set_progress call k+2; call 1 starts the run). Checkpoint c is saved
# while the writer may still hold c's chunk. Last: the checkpoint resume must pick, the newest
# whose chunk was committed (None: start afresh).
KILLS = [
    ("MetricsStore", "write", 1, None, None),
    ("MetricsStore", "write", 2, _first_array_only, None),
    ("MetricsStore", "write", 3, _first_array_only, 0),
    ("MetricsStore", "write", 5, _first_array_only, 3),
    ("MetricsStore", "write", 6, None, 3),
    ("MetricsStore", "write", 7, _first_array_only, 6),
    ("MetricsStore", "write", 8, _first_array_only, 6),
    ("MetricsWriter", "append", 2, _half_the_text, 0),
    ("MetricsWriter", "append", 4, _half_the_text, 6),
    ("MetricsStore", "set_progress", 3, None, 0),
    ("MetricsStore", "set_progress", 4, None, 3),
    ("Recorder", "_record", 4, None, 6),  # checkpoint 8 committed, its metrics never written
    ("Checkpointer", "save", 3, None, 3),  # chunk 4..6 recorded, its checkpoint not saved
    ("Checkpointer", "_save", 3, None, 3),  # the same, dying in the background save thread
]


# With one checkpoint kept, each waits for its metrics (else a kill would cost the whole run).
ONE_KEPT = [k for k in KILLS if k[1:3] in (("write", 5), ("_record", 4))]


# Large carries are donated and saved between spans, not in the background: the same moments.
SAVED_BETWEEN_SPANS = [k for k in KILLS if k[1:3] in (("write", 5), ("save", 3), ("_save", 3))]


@pytest.mark.parametrize(
    "target,name,call,partial,resumes_at,max_to_keep,overlap",
    [(*k, 3, True) for k in KILLS]
    + [(*k, 1, True) for k in ONE_KEPT]
    + [(*k, 3, False) for k in SAVED_BETWEEN_SPANS],
)
def test_resume_after_a_kill_in_the_writer_is_identical(
    full, tmp_path, monkeypatch, target, name, call, partial, resumes_at, max_to_keep, overlap
):
    workdir, _ = full
    cfg = toy_config(**{"checkpoint.max_to_keep": max_to_keep})
    owner = Checkpointer if target == "Checkpointer" else getattr(metrics_lib, target)
    if not overlap:
        monkeypatch.setattr(chain.step, "DONATE_ABOVE_BYTES", 0)
    with monkeypatch.context() as m:
        _kill_at(m, owner, name, call, partial)
        with pytest.raises(Killed):
            chain.run(cfg, tmp_path)
    resumed = []
    real_resume = metrics_lib.Recorder.resume
    monkeypatch.setattr(
        metrics_lib.Recorder, "resume", lambda self, g: resumed.append(g) or real_resume(self, g)
    )
    chain.run(cfg, tmp_path)
    assert resumed == [resumes_at]
    want, got = _state(workdir), _state(tmp_path)
    assert got[2] == want[2]
    for k in want[0]:
        np.testing.assert_array_equal(got[0][k], want[0][k], strict=True)
    assert want[1].keys() == got[1].keys()
    for k in want[1]:
        for st in want[1][k]:
            np.testing.assert_array_equal(got[1][k][st], want[1][k][st], strict=True)


def test_checkpoints_without_a_store_are_refused(full, tmp_path):
    workdir, _ = full
    old = tmp_path / "old"
    shutil.copytree(workdir, old)
    shutil.rmtree(old / "metrics")  # a run of a version before the store
    with pytest.raises(CheckpointError, match=r"metrics: missing, but .* reach generation 8"):
        chain.run(toy_config(), old)
    assert (old / "checkpoints" / "8").exists()


def test_extending_a_run_grows_the_store(full, tmp_path):
    workdir, sim = full
    chain.run(toy_config(num_generations=4), tmp_path)
    assert metrics_lib.read_metrics(tmp_path)["var"].shape == (4, 5)
    chain.run(toy_config(), tmp_path)
    np.testing.assert_array_equal(metrics_lib.read_metrics(tmp_path)["var"], sim["var"])
    assert (tmp_path / "metrics.jsonl").read_bytes() == (workdir / "metrics.jsonl").read_bytes()


def test_above_the_threshold_lines_hold_seed_statistics(full, tmp_path):
    _, sim = full
    cfg = toy_config(**{"metrics.per_seed_max_seeds": 4})
    chain.run(cfg, tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == list(range(9))
    stats = metrics_lib.stat_names(cfg.metrics.quantiles)
    assert list(rows[0]["var"]) == list(stats)
    for k in sim:
        x = sim[k].astype(np.float64)
        want = {"mean": x.mean(axis=1), "median": np.median(x, axis=1)}
        want |= {f"q{q:g}": np.quantile(x, q, axis=1) for q in cfg.metrics.quantiles}
        for s in stats:
            got = np.array([r[k][s] for r in rows])
            # Printed to 9 significant digits: off by at most half a unit in the 9th.
            np.testing.assert_allclose(got, want[s], rtol=5e-9, atol=1e-44, err_msg=f"{k} {s}")
    np.testing.assert_array_equal(metrics_lib.read_metrics(tmp_path)["var"], sim["var"])


def test_nonfinite_guard_writes_the_finite_generations_first(tmp_path):
    cfg = toy_config(**{"toy.nan_from": 5})  # generation 5 (count 6) is the first bad one
    with pytest.raises(FloatingPointError, match=r"var at generation 5 for seed index\(es\) 0"):
        chain.run(cfg, tmp_path)
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["generation"] for r in rows] == [0, 1, 2, 3, 4]
    assert metrics_lib.read_metrics(tmp_path)["var"].shape == (5, 5)
    assert np.isfinite(metrics_lib.read_metrics(tmp_path)["var"]).all()


def _bytes_read():
    for m in ts.experimental_collect_matching_metrics("/tensorstore/kvstore/file/bytes_read"):
        return m["values"][0]["value"]
    return 0


def test_one_seed_of_ten_thousand_reads_only_its_chunks(tmp_path):
    S, G, every, per_chunk = 10_000, 20, 5, 256
    cfg = common.base("any")
    cfg.num_seeds, cfg.num_generations = S, G
    cfg.checkpoint.every_generations = every
    cfg.metrics.seeds_per_chunk = per_chunk
    x = np.random.default_rng(0).standard_normal((G, S)).astype(np.float32)
    with metrics_lib.Recorder(tmp_path, cfg) as rec:
        rec.write([0], {"x": x[:1]})
        for g0 in range(1, G, every):
            rec.write(np.arange(g0, min(g0 + every, G)), {"x": x[g0 : g0 + every]})
    shard = tmp_path / "metrics" / "per_seed" / "x" / "c" / "1" / "0"
    assert shard.stat().st_size < 1.005 * every * S * 4  # ~4 bytes per seed-generation
    before = _bytes_read()
    got = metrics_lib.read_metrics(tmp_path, seeds=[1234])["x"]
    read = _bytes_read() - before
    np.testing.assert_array_equal(got[:, 0], x[:, 1234])
    # The array's metadata, then per interval its shard index and one inner chunk (every x 250
    # seeds: 40 chunks evened out), not the other 9,750 seeds.
    meta = (shard.parents[2] / "zarr.json").stat().st_size
    index = 16 * 40 + 4
    chunks = (G // every) * every * 250 * 4
    assert chunks <= read <= meta + (G // every) * index + chunks, read
    assert read < G * S * 4 / 20


def test_plots_draw_seed_bands_from_the_summary_alone(full, monkeypatch):
    workdir, sim = full
    run = plots.load_run(workdir)
    assert isinstance(run.metrics["var"], metrics_lib.MetricArray)
    np.testing.assert_array_equal(run.generations, np.arange(9))
    np.testing.assert_array_equal(np.asarray(run.metrics["pair"][..., 1]), sim["pair"][..., 1])
    np.testing.assert_array_equal(run.metrics["var"][-1], sim["var"][-1])
    want = plots.seed_stats(sim["pair"][..., 1])

    def no_full_read(self, *a, **k):
        raise AssertionError("seed_band read every seed")

    monkeypatch.setattr(metrics_lib.MetricArray, "read", no_full_read)
    got = plots.seed_stats(run.metrics["pair"][..., 1])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(np.stack(got[1]), np.stack(want[1]))
    np.testing.assert_array_equal(got[2], want[2])
    np.testing.assert_array_equal(run.metrics["var"].mean(axis=1), sim["var"].mean(1, float))


def test_metric_arrays_read_whole_only_when_asked(full, monkeypatch):
    workdir, sim = full
    a = metrics_lib.open_metrics(workdir)["pair"]
    assert (a.shape, a.dtype, a.ndim, a.size, len(a)) == ((9, 5, 2), np.float32, 3, 90, 9)
    np.testing.assert_array_equal(a.read(), sim["pair"], strict=True)
    np.testing.assert_array_equal(np.asarray(a), sim["pair"], strict=True)
    np.testing.assert_array_equal(a / 2, sim["pair"] / 2, strict=True)  # NumPy's operators

    def no_full_read(self, *a, **k):
        raise AssertionError("an attribute read every seed")

    monkeypatch.setattr(metrics_lib.MetricArray, "read", no_full_read)
    for name in ("sum", "min", "astype", "T", "reshape", "tolist"):
        with pytest.raises(AttributeError, match=r"np\.asarray\(a\)\.\w+ or a\.read\(\)"):
            getattr(a, name)
    with pytest.raises(AttributeError, match=r"'no_such_thing'$"):
        a.no_such_thing  # noqa: B018
    assert not hasattr(a, "__array_interface__")
    np.testing.assert_array_equal(a[2, 3], sim["pair"][2, 3], strict=True)  # indexing reads rows


@pytest.mark.parametrize(
    "field,value",
    [
        ("metrics.per_seed_max_seeds", -1),
        ("metrics.seeds_per_chunk", 0),
        ("metrics.quantiles", (0.1, 1.5)),
        ("metrics.quantiles", (0.1, 0.1)),
    ],
)
def test_bad_metrics_fields(field, value):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        chain.validate(toy_config(**{field: value}))
