"""The optional TensorBoard sink: the seed statistics read back from the event files, each
generation once after a kill and a resume; off by default; a clear error without the extra."""

import json
import shutil

import numpy as np
import pytest

from collapse_jax import chain
from collapse_jax import metrics as metrics_lib
from collapse_jax.errors import ConfigError
from collapse_jax.metrics import tensorboard
from configs import common, gaussian

G, S, EVERY = 10, 5, 3
CHUNKS = [np.arange(0, 1), *(np.arange(g, min(g + EVERY, G)) for g in range(1, G, EVERY))]


def _config(on=True):
    cfg = common.base("any")
    cfg.num_seeds, cfg.num_generations = S, G
    cfg.checkpoint.every_generations = EVERY
    cfg.metrics.seeds_per_chunk = 2
    cfg.metrics.tensorboard = on
    return cfg


def _metrics():
    rng = np.random.default_rng(0)
    return {
        "x": (rng.standard_normal((G, S)) * 10.0 ** rng.uniform(-5, 5, (G, 1))).astype(np.float32),
        "count": rng.integers(0, 100, (G, S)).astype(np.int32),
        "pair": rng.standard_normal((G, S, 2)).astype(np.float32),  # not a scalar: no tags
    }


def _scalars(workdir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar event as TensorBoard loads it (orphaned events purged, nothing sampled)."""
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea.EventAccumulator(
        str(workdir / "metrics" / tensorboard.SUBDIR), size_guidance={ea.SCALARS: 0}
    )
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def _assert_one_event_per_generation(workdir, quantiles):
    got = _scalars(workdir)
    summary = metrics_lib.read_summary(workdir)
    stats = metrics_lib.stat_names(quantiles)
    assert sorted(got) == sorted(f"{k}/{s}" for k in ("count", "x") for s in stats)
    for k in ("count", "x"):
        for s in stats:
            steps, values = zip(*got[f"{k}/{s}"], strict=True)
            assert list(steps) == list(range(G)), (k, s, steps)
            # simple_value is a float32: the float64 statistic rounded once.
            want = summary[k][s].astype(np.float32)
            np.testing.assert_array_equal(np.float32(values), want, err_msg=f"{k}/{s}")


def _record(workdir, cfg, m, chunks):
    with metrics_lib.Recorder(workdir, cfg) as rec:
        for gens in chunks:
            rec.write(gens, {k: v[gens] for k, v in m.items()})


def test_off_by_default_writes_no_events(tmp_path):
    assert common.base("any").metrics.tensorboard is False
    _record(tmp_path, _config(on=False), _metrics(), CHUNKS)
    assert not (tmp_path / "metrics" / tensorboard.SUBDIR).exists()


def test_events_hold_the_seed_statistics(tmp_path):
    pytest.importorskip("tensorboardX")
    cfg = _config()
    _record(tmp_path, cfg, _metrics(), CHUNKS)
    _assert_one_event_per_generation(tmp_path, cfg.metrics.quantiles)


class Killed(Exception):
    pass


def _commit_dies_at(monkeypatch, end):
    """The commit of the chunk ending before generation ``end`` dies after its events are out."""
    real = metrics_lib.MetricsStore.set_progress

    def dying(self, **n):
        if n.get("per_seed") == end:
            raise Killed(end)
        return real(self, **n)

    monkeypatch.setattr(metrics_lib.MetricsStore, "set_progress", dying)


def _lose_summary_after(workdir, n):
    # The summary and lines of generations >= n lost, every seed kept (as a kill in the writer
    # can leave them: tests/test_metrics_store.py, _kill_before_lines).
    p = workdir / "metrics" / "progress.json"
    p.write_text(json.dumps({"per_seed": json.loads(p.read_text())["per_seed"], "summary": n}))


@pytest.mark.parametrize(
    "kill,resume_at",
    [
        ("commit", 3),  # events of 4..6 written, their commit lost: resume at checkpoint 3
        ("summary", 6),  # summary and lines of 4..6 lost, checkpoint 6: rebuilt from per_seed
        ("events", 6),  # the event files deleted: every generation written again
        ("before_first_checkpoint", None),  # events of 0..3 written, no checkpoint: start afresh
    ],
)
def test_resume_shows_each_generation_once(tmp_path, monkeypatch, kill, resume_at):
    pytest.importorskip("tensorboardX")
    cfg, m = _config(), _metrics()
    if kill == "commit":
        with monkeypatch.context() as mp:
            _commit_dies_at(mp, 7)
            with pytest.raises(Killed):
                _record(tmp_path, cfg, m, CHUNKS)
    else:
        _record(tmp_path, cfg, m, CHUNKS[:3])
        if kill == "summary":
            _lose_summary_after(tmp_path, 4)
        elif kill == "events":
            shutil.rmtree(tmp_path / "metrics" / tensorboard.SUBDIR)
    # What chain.run does on resume: truncate to the checkpoint, rebuild, go on.
    with metrics_lib.Recorder(tmp_path, cfg) as rec:
        rec.resume(resume_at)
        for gens in CHUNKS:
            if resume_at is None or gens[0] > resume_at:
                rec.write(gens, {k: v[gens] for k, v in m.items()})
    _assert_one_event_per_generation(tmp_path, cfg.metrics.quantiles)


def test_chain_run_writes_events_and_resumes(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX")
    cfg = gaussian.get_config("smoke")
    cfg.num_generations, cfg.checkpoint.every_generations = G, EVERY
    cfg.metrics.tensorboard = True
    with monkeypatch.context() as mp:
        _commit_dies_at(mp, 7)
        with pytest.raises(Killed):
            chain.run(cfg, tmp_path)
    chain.run(cfg, tmp_path)
    got = _scalars(tmp_path)
    summary = metrics_lib.read_summary(tmp_path)
    assert got and all(t.split("/")[0] in summary for t in got)
    for t, events in got.items():
        k, s = t.split("/")
        assert [g for g, _ in events] == list(range(G)), t
        np.testing.assert_array_equal(
            np.float32([v for _, v in events]), summary[k][s].astype(np.float32), err_msg=t
        )


def test_missing_extra_is_one_config_error(monkeypatch):
    monkeypatch.setattr(tensorboard, "available", lambda: False)
    cfg = _config()
    with pytest.raises(ConfigError) as e:
        metrics_lib.validate(cfg)
    msg = str(e.value)
    assert msg.startswith("metrics.tensorboard: expected tensorboardX") and "\n" not in msg
    assert "collapse_jax[tensorboard]" in msg and msg.endswith("got True")
    metrics_lib.validate(_config(on=False))  # off: nothing needed
