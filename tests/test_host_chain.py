"""The chain's host path on a toy host family (a Gaussian refitted in NumPy): keys per seed,
the mixing plan, retention, the non-finite guard and resume, in a second each."""

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from collapse_jax import chain, errors, mixing
from collapse_jax import family as family_lib
from collapse_jax import metrics as metrics_lib
from configs import common

M = 40  # samples per generation


def _make_truth():
    calls["truth_made"] += 1
    return {"loc": np.zeros((), np.float32), "scale": np.ones((), np.float32)}, {"made": "once"}


def _reference(cfg, workdir: Path, once):
    # A run-level state made once and restored after (as the LM's scratch base model).
    return once(
        "truth", {"loc": np.zeros((), np.float32), "scale": np.zeros((), np.float32)}, _make_truth
    )


def _original_data(key, truth, cfg):
    # D_0 is negative and model samples positive below: the sign tells a sample's source.
    x = -np.abs(np.asarray(jax.random.normal(key, (M,)), np.float32))
    return x * truth["scale"] + truth["loc"]


def _init(truth, cfg):
    return {"mean": np.zeros((), np.float32), "std": np.zeros((), np.float32)}


def _fit(key, state, data, truth, cfg):
    calls["fit"] += 1
    x = np.asarray(data.x)[np.asarray(data.weight) > 0]
    seen["num_real"].append(int((x < 0).sum()))
    state = {"mean": np.asarray(x.mean(), np.float32), "std": np.asarray(x.std(), np.float32)}
    return family_lib.Fitted(state, {"n": x.size}, {"num_real": seen["num_real"][-1]})


def _sample(key, state, n, truth, cfg):
    calls["sample"] += 1
    return np.abs(np.asarray(jax.random.normal(key, (n,)), np.float32)) * state["std"] + 1e-3


def _metrics(key, state, data, origin, cfg):
    m = {"mean": state["mean"], "std": state["std"], "std0": origin.state0["std"]}
    return family_lib.Measured(m, np.asarray(data.x), {"u": float(jax.random.uniform(key))})


TOY = family_lib.HostFamily(
    name="toy",
    validate=lambda cfg: None,
    reference=_reference,
    original_data=_original_data,
    init=_init,
    fit=_fit,
    sample=_sample,
    metrics=_metrics,
    notes="notes.jsonl",
)
calls: dict = {}
seen: dict = {}


@pytest.fixture(autouse=True)
def _counters():
    calls.update(truth_made=0, fit=0, sample=0)
    seen.update(num_real=[])


def _config(**kw):
    cfg = common.base("toy")
    cfg.num_seeds, cfg.num_generations = 2, 5
    cfg.checkpoint.max_to_keep, cfg.checkpoint.keep_generations = 2, [1]
    cfg.update_from_flattened_dict(kw)  # dotted keys: "mixing.regime"
    return cfg


def _run(fam, cfg, workdir) -> list[dict]:
    chain.run_host(fam, cfg, chain.Workdir(workdir).prepare(cfg))
    return [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_seeds_keep_their_stream_whatever_the_number_of_seeds(tmp_path):
    two = _run(TOY, _config(), tmp_path / "two")
    three = _run(TOY, _config(num_seeds=3), tmp_path / "three")
    assert [r["generation"] for r in two] == list(range(5))
    for a, b in zip(two, three, strict=True):
        for k in ("mean", "std", "std0"):
            assert a[k] == b[k][:2], k
        assert len(set(b["mean"])) == 3  # seeds differ
    # The reference is made once per workdir: a rerun of a complete run restores it.
    assert calls["truth_made"] == 2
    assert _run(TOY, _config(), tmp_path / "two") == two
    assert calls["truth_made"] == 2


def test_the_mixing_plan_makes_each_generations_dataset(tmp_path):
    _run(TOY, _config(**{"mixing.regime": "keep_real", "mixing.gamma": 0.25}), tmp_path)
    # Generation 0 fits D_0; every later one round(gamma * M) original samples and the rest from
    # the model (2 seeds, one fit each per generation).
    assert seen["num_real"] == [M, M] + [M // 4] * 8
    assert calls["sample"] == 8
    pools = [np.load(tmp_path / f"arrays/gen_{g}_seed_0.npy") for g in range(5)]
    assert all(p.shape == (M,) for p in pools)


def test_retention_keeps_generation_0_the_kept_ones_and_the_latest(tmp_path):
    _run(TOY, _config(), tmp_path)
    steps = {
        d: sorted(int(p.name) for p in (tmp_path / "checkpoints/seed_1" / d).iterdir())
        for d in ("data", "model")
    }
    assert steps == {"data": [1, 3, 4], "model": [0, 1, 3, 4]}
    notes = (tmp_path / "notes.jsonl").read_text().splitlines()
    assert [json.loads(x)["seed"] for x in notes] == [0, 1] * 5


def test_a_non_finite_metric_stops_the_run_naming_generation_and_seed(tmp_path):
    def metrics(key, state, data, origin, cfg):
        out = _metrics(key, state, data, origin, cfg)
        bad = calls["fit"] == 7  # fits go seed after seed: generation 3 of seed 0
        return out._replace(metrics={**out.metrics, "std": np.nan if bad else state["std"]})

    with pytest.raises(FloatingPointError, match=r"std at generation 3 for seed index\(es\) 0"):
        _run(dataclasses.replace(TOY, metrics=metrics), _config(), tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["generation"] for x in lines] == [0, 1, 2]


def test_regimes_the_host_path_cannot_run_are_one_error_line(tmp_path):
    plan = mixing.plan(_config(**{"mixing.regime": "fresh"}).mixing, M, 5)
    with pytest.raises(errors.ConfigError, match=r"mixing\.regime=fresh"):
        chain.check_family(TOY, plan)
    cfg = _config(**{"mixing.curation.score": "oracle"})
    with pytest.raises(errors.ConfigError, match=r"mixing\.curation\.score=oracle"):
        chain.check_family(TOY, mixing.plan(cfg.mixing, M, 5))


class Killed(Exception):
    pass


@pytest.mark.parametrize(
    "where",
    ["fit", *(pytest.param(w, marks=pytest.mark.slow) for w in ("sample", "metrics", "record"))],
)
def test_resume_after_a_kill_is_byte_identical(where, tmp_path, monkeypatch):
    cfg = _config(**{"mixing.regime": "keep_real", "mixing.gamma": 0.25})
    _run(TOY, cfg, tmp_path / "straight")

    def kill_after_six_fits(fn):
        def wrapped(*a, **k):
            if calls["fit"] >= 6:  # fits go seed after seed: generations 0..2 of both seeds
                raise Killed
            return fn(*a, **k)

        return wrapped

    if where == "record":
        write = kill_after_six_fits(metrics_lib.Recorder.write)
        monkeypatch.setattr(metrics_lib.Recorder, "write", write)
        fam = TOY
    else:
        fam = dataclasses.replace(TOY, **{where: kill_after_six_fits(getattr(TOY, where))})
    calls.update(fit=0, sample=0)
    with pytest.raises(Killed):
        _run(fam, cfg, tmp_path / "killed")
    monkeypatch.undo()
    calls.update(fit=0, sample=0)
    _run(TOY, cfg, tmp_path / "killed")
    # (samples, fits) of the rerun: a saved pool is not sampled again, a saved model not refitted.
    assert (calls["sample"], calls["fit"]) == {
        "sample": (4, 4),  # killed sampling generation 3 of seed 0: nothing of it saved
        "fit": (3, 4),  # killed fitting generation 3 of seed 0: its pool is saved
        "metrics": (4, 4),  # killed in generation 2's metrics of seed 1: its fitted model is saved
        "record": (4, 4),  # killed recording generation 2: both models are saved
    }[where]
    names = ["metrics.jsonl", "notes.jsonl"]
    names += sorted(p.name for p in (tmp_path / "straight/arrays").iterdir())
    for name in names:
        path = name if name.endswith("jsonl") else f"arrays/{name}"
        got, want = (tmp_path / d / path for d in ("killed", "straight"))
        assert got.read_bytes() == want.read_bytes(), name


def test_a_model_checkpoint_holding_its_metrics_still_resumes(tmp_path, monkeypatch):
    """Runs saved before ``measured/G.json`` existed (format 1) kept the metrics in the model's
    metadata."""
    from collapse_jax.checkpoint import Checkpointer

    cfg = _config()
    _run(TOY, cfg, tmp_path / "straight")

    def dying_write(self, *a, **k):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(metrics_lib.Recorder, "write", dying_write)
        with pytest.raises(Killed):
            _run(TOY, cfg, tmp_path / "old")
    # Generation 0 of every seed fitted and measured, nothing recorded: rewrite it the old way.
    for s in range(cfg.num_seeds):
        seed_dir = tmp_path / "old" / "checkpoints" / f"seed_{s}"
        measured = seed_dir / "measured" / "0.json"
        with Checkpointer(seed_dir / "model", keep_steps=[0]) as ckpt:
            state, meta = ckpt.restore(0, _init(None, cfg))
            ckpt.delete(0)
            ckpt.save(0, state, {**meta, **json.loads(measured.read_text())})
        measured.unlink()
    config = tmp_path / "old" / "config.json"  # format 1: config.json had no format_version
    config.write_text(
        json.dumps(
            {k: v for k, v in json.loads(config.read_text()).items() if k != "format_version"}
        )
    )
    calls.update(fit=0, sample=0, metrics=0)

    def counted_metrics(*a, **k):
        calls["metrics"] += 1
        return _metrics(*a, **k)

    _run(dataclasses.replace(TOY, metrics=counted_metrics), cfg, tmp_path / "old")
    later = cfg.num_seeds * (cfg.num_generations - 1)
    assert calls["fit"] == calls["metrics"] == later  # generation 0 neither refitted nor measured
    for name in ("metrics.jsonl", "notes.jsonl"):
        want = (tmp_path / "straight" / name).read_bytes()
        assert (tmp_path / "old" / name).read_bytes() == want, name


def test_a_corrupt_record_line_is_one_error_line(tmp_path):
    _run(TOY, _config(), tmp_path)
    notes = tmp_path / "notes.jsonl"
    notes.write_text("not json\n" + notes.read_text())
    with pytest.raises(errors.CheckpointError, match=r"notes\.jsonl: line 1 is not a metrics line"):
        _run(TOY, _config(), tmp_path)
