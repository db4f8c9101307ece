"""The generic chain on a toy family: vmap == loop, seed streams, resume, workdir checks."""

import dataclasses
import json
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from collapse_jax import chain, experiments, family, mixing, rng
from collapse_jax.errors import CheckpointError, ConfigError
from configs import common


def _toy_fit(key, state, data, cfg):
    del key, state
    w = data.weight
    n = w.sum()
    mean = (w * data.x).sum() / n
    var = (w * (data.x - mean) ** 2).sum() / (n - 1)
    return {"mean": mean, "var": var, "fits": jnp.int32(1)}


def _toy_metrics(state, data, origin, cfg):
    bad = jnp.where(state["var"] < cfg.toy.nan_below_var, jnp.nan, 0.0)
    return {
        "mean": state["mean"],
        "var": state["var"] + bad,
        "n": data.weight.sum(),
        "mean0": origin.state0["mean"],
    }


TOY = family.Family(
    name="toy",
    validate=lambda cfg: None,
    reference=lambda cfg: jnp.float32(cfg.toy.sigma),
    original_data=lambda key, truth, cfg: (
        truth * jax.random.normal(key, (cfg.samples_per_generation,))
    ),
    init=lambda key, cfg, data0: {"mean": 0.0, "var": 1.0, "fits": jnp.int32(0)},
    fit=_toy_fit,
    sample=lambda key, state, n, cfg: (
        state["mean"] + jnp.sqrt(state["var"]) * jax.random.normal(key, (n,))
    ),
    metrics=_toy_metrics,
)


@pytest.fixture(autouse=True)
def _register(monkeypatch):
    monkeypatch.setitem(
        experiments.EXPERIMENTS, "toy", SimpleNamespace(name="toy", family=lambda: TOY)
    )


def toy_config(**kw) -> ml_collections.ConfigDict:
    cfg = common.base("toy")
    cfg.num_seeds = 3
    cfg.num_generations = 6
    cfg.samples_per_generation = 8
    cfg.checkpoint.every_generations = 2
    cfg.toy = ml_collections.ConfigDict({"sigma": 2.0, "nan_below_var": -1.0})
    cfg.log_every_seconds = 0.0
    cfg.update_from_flattened_dict(kw)  # dotted keys: "mixing.regime"
    return cfg


def _loop_over_seeds(cfg):
    """The chain written as plain Python loops over seeds and generations (no vmap, no scan)."""
    plan = mixing.plan(cfg.mixing, cfg.samples_per_generation, cfg.num_generations)
    truth = TOY.reference(cfg)
    out = []
    for key in rng.seed_keys(cfg.seed, cfg.num_seeds):
        carry, m = chain.first_generation(TOY, plan, cfg, key, truth)
        rows = [m]
        for g in range(1, cfg.num_generations):
            carry, m = chain.next_generation(TOY, plan, cfg, key, truth, carry, jnp.int32(g))
            rows.append(m)
        out.append({k: np.array([r[k] for r in rows]) for k in rows[0]})
    return {k: np.stack([o[k] for o in out], axis=1) for k in out[0]}


@pytest.mark.parametrize("regime", ["replace", "accumulate", "accumulate_subsample", "keep_real"])
def test_vmapped_chain_equals_loop_over_seeds(regime):
    cfg = toy_config(**{"mixing.regime": regime})
    if regime == "keep_real":
        cfg.mixing.gamma = 0.25
    got = chain.simulate(cfg)
    want = _loop_over_seeds(cfg)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6, err_msg=k)
    assert got["mean"].shape == (cfg.num_generations, cfg.num_seeds)


def test_seed_batches_loop_over_vmapped_seeds_with_the_same_values(tmp_path):
    """``seed_batch``: 5 seeds as lax.map over batches of 2 (and a remainder of 1) give what the
    seeds give one by one and all vmapped; ``chain.run`` records ``simulate``'s bits."""
    cfg = toy_config(num_seeds=5, seed_batch=2)
    steps = chain.build(cfg)
    keys = rng.seed_keys(cfg.seed, cfg.num_seeds)
    jaxpr = str(jax.make_jaxpr(steps.first)(keys, TOY.reference(cfg)))
    assert "scan[" in jaxpr and "length=2" in jaxpr  # two batches looped, not one vmap
    got = chain.simulate(cfg)
    for want in (_loop_over_seeds(cfg), chain.simulate(toy_config(num_seeds=5))):
        assert set(got) == set(want)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6, err_msg=k)
    rows = [json.loads(x) for x in _read(chain.run(cfg, tmp_path / "run")).splitlines()]
    np.testing.assert_array_equal(np.array([r["var"] for r in rows], np.float32), got["var"])


def test_seed_batch_is_refused_with_sharded_seeds():
    with pytest.raises(ConfigError, match=r"seed_batch: expected 0 when the seeds are sharded"):
        chain.validate(toy_config(seed_batch=2, num_devices=2))


def test_accumulate_grows_the_pool():
    cfg = toy_config(**{"mixing.regime": "accumulate"})
    n = chain.simulate(cfg)["n"]
    m = cfg.samples_per_generation
    np.testing.assert_array_equal(n[:, 0], m * np.arange(1, cfg.num_generations + 1))
    sub = chain.simulate(toy_config(**{"mixing.regime": "accumulate_subsample"}))["n"]
    np.testing.assert_array_equal(sub, m)


def test_seed_stream_independent_of_seed_count():
    small = chain.simulate(toy_config(num_seeds=2))
    big = chain.simulate(toy_config(num_seeds=5))
    for k in small:
        np.testing.assert_array_equal(small[k], big[k][:, :2])
    other = chain.simulate(toy_config(num_seeds=2, seed=1))
    assert not np.array_equal(other["mean"], small["mean"])


def _read(workdir):
    return (workdir / "metrics.jsonl").read_bytes()


def test_run_writes_the_contract_and_resume_is_bitwise(tmp_path):
    cfg = toy_config()
    full = chain.run(cfg, tmp_path / "full")
    rows = [json.loads(x) for x in _read(full).splitlines()]
    assert [r["generation"] for r in rows] == list(range(cfg.num_generations))
    assert len(rows[0]["mean"]) == cfg.num_seeds
    assert json.loads((full / "config.json").read_text())["samples_per_generation"] == 8
    sim = chain.simulate(cfg)
    np.testing.assert_array_equal(np.array([r["var"] for r in rows], np.float32), sim["var"])

    # Stop after 3 generations (a checkpoint at 2 and one at the last generation, 2), then resume.
    part = chain.run(toy_config(num_generations=3), tmp_path / "part")
    assert [json.loads(x)["generation"] for x in _read(part).splitlines()] == [0, 1, 2]
    chain.run(cfg, tmp_path / "part")
    assert _read(part) == _read(full)


def test_resume_after_a_kill_mid_write(tmp_path):
    cfg = toy_config()
    full = chain.run(cfg, tmp_path / "full")
    crashed = chain.run(cfg, tmp_path / "crashed")
    # What a kill -9 can leave: the newest checkpoint never finished (Orbax only renames complete
    # ones) and metrics of later generations, the last line cut short.
    import shutil

    shutil.rmtree(crashed / "checkpoints" / "5")
    with open(crashed / "metrics.jsonl", "ab") as f:
        f.write(b'{"generation": 6, "mean": [0.1')
    chain.run(cfg, crashed)
    assert _read(crashed) == _read(full)


def test_other_config_in_workdir_is_refused(tmp_path):
    chain.run(toy_config(num_generations=2), tmp_path)
    with pytest.raises(CheckpointError, match=r"samples_per_generation: 8 -> 16"):
        chain.run(toy_config(num_generations=2, samples_per_generation=16), tmp_path)
    assert (tmp_path / "checkpoints" / "1").is_dir()  # nothing saved was lost
    chain.run(toy_config(num_generations=2, samples_per_generation=16), tmp_path, overwrite=True)
    assert len(json.loads(_read(tmp_path).splitlines()[0])["mean"]) == 3


def test_overwrite_deletes_the_family_outputs_and_nothing_else(tmp_path):
    chain.Workdir(tmp_path).prepare(toy_config(num_generations=2))
    for name in ("arrays/0.npy", "examples.jsonl", "checkpoints/0/x", "mine/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("old")
    other = toy_config(num_generations=2, samples_per_generation=16)
    chain.Workdir(tmp_path).prepare(other, overwrite=True, outputs=("arrays", "examples.jsonl"))
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["config.json", "mine/notes.txt"]


def test_nonfinite_metric_stops_naming_generation_and_seeds(tmp_path):
    cfg = toy_config(num_generations=12, **{"toy.nan_below_var": 1e9})
    with pytest.raises(
        FloatingPointError, match=r"var at generation 0 for seed index\(es\) 0, 1, 2"
    ):
        chain.run(cfg, tmp_path)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("num_seeds", 0, "num_seeds: expected a positive integer"),
        ("samples_per_generation", -5, "samples_per_generation"),
        ("mixing.regime", "resample", "mixing.regime: expected one of"),
        ("checkpoint.every_generations", 0, "checkpoint.every_generations"),
        ("checkpoint.keep_generations", [0, -1], r"checkpoint\.keep_generations: expected"),
        ("checkpoint.keep_generations", [3, 3], r"checkpoint\.keep_generations: expected"),
        ("seed_batch", -1, r"seed_batch: expected 0 \(all seeds\) or a positive integer"),
    ],
)
def test_bad_common_fields(field, value, match):
    with pytest.raises(ConfigError, match=match):
        chain.validate(toy_config(**{field: value}))


def test_mixing_weights_must_sum_to_one():
    cfg = toy_config(**{"mixing.regime": "custom", "mixing.alpha": 0.5, "mixing.beta": 0.4})
    with pytest.raises(ConfigError, match=r"alpha \+ mixing.beta \+ mixing.gamma: expected 1"):
        chain.validate(cfg)
    with pytest.raises(ConfigError, match=r"use mixing\.regime=custom"):
        chain.validate(toy_config(**{"mixing.gamma": 0.1}))


def test_custom_mixing_counts():
    cfg = toy_config(
        samples_per_generation=20,
        **{"mixing.regime": "custom", "mixing.alpha": 0.5, "mixing.beta": 0.3, "mixing.gamma": 0.2},
    )
    p = mixing.plan(cfg.mixing, 20, 6)
    assert (p.num_model, p.num_kept, p.num_original) == (10, 6, 4)
    assert chain.simulate(cfg)["n"].min() == 20


def test_chunk_ends():
    assert chain.chunk_ends(0, 6, 2) == [2, 4, 5]
    assert chain.chunk_ends(2, 6, 2) == [4, 5]
    assert chain.chunk_ends(0, 2, 10) == [1]
    # Kept generations are chunk ends too (so checkpoints), on or off the grid; beyond G ignored.
    assert chain.chunk_ends(0, 12, 5, keep=(0, 3, 5, 40)) == [3, 5, 10, 11]
    assert chain.chunk_ends(3, 12, 5, keep=(0, 3, 5, 40)) == [5, 10, 11]


def test_corrupt_metrics_file_is_one_clear_error(tmp_path):
    cfg = toy_config(num_generations=3)
    chain.run(cfg, tmp_path)
    lines = _read(tmp_path).splitlines(keepends=True)
    (tmp_path / "metrics.jsonl").write_bytes(lines[0] + b"garbage\n" + b"".join(lines[2:]))
    with pytest.raises(CheckpointError, match=r"metrics.jsonl: line 2 is not a metrics line"):
        chain.run(toy_config(num_generations=5), tmp_path)
    assert (tmp_path / "checkpoints" / "2").is_dir()


def test_bad_device_count_fails_before_anything_is_written(tmp_path):
    cfg = toy_config(num_devices=jax.device_count() + 1)
    with pytest.raises(ConfigError, match=r"num_devices: expected"):
        chain.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_field_added_since_the_run_started_resumes_at_its_default(tmp_path):
    """A run's config.json from before a field existed: at the field's default (the old
    behaviour) the run resumes and config.json gains the field; set otherwise it is refused."""
    from configs import gaussian

    cfg = gaussian.get_config("smoke")
    cfg.num_generations = 3
    chain.run(cfg, tmp_path)
    lines = _read(tmp_path)
    path = tmp_path / "config.json"
    old = json.loads(path.read_text())
    del old["gaussian"]["sampler"], old["metrics"]["quantiles"]  # as an older version wrote it
    path.write_text(json.dumps(old))
    from collapse_jax import runs

    view = runs.open_run(tmp_path)  # analysis opens it too, the new fields at their defaults
    assert view.config.gaussian.sampler == "samples" and "quantiles" in view.config.metrics
    assert view.model(2) is not None
    cfg.num_generations = 5  # extend the chain under the new version
    chain.run(cfg, tmp_path)
    assert _read(tmp_path).startswith(lines) and len(_read(tmp_path).splitlines()) == 5
    assert json.loads(path.read_text())["gaussian"]["sampler"] == "samples"
    path.write_text(json.dumps(old))
    cfg.gaussian.sampler = "statistics"  # not the default: another config
    with pytest.raises(CheckpointError, match=r"gaussian.sampler: '<missing>' -> 'statistics'"):
        chain.run(cfg, tmp_path)
    old["removed_field"] = 1  # a field the code no longer has is another config too
    path.write_text(json.dumps(old))
    cfg.gaussian.sampler = "samples"
    with pytest.raises(CheckpointError, match=r"removed_field: 1 -> '<missing>'"):
        chain.run(cfg, tmp_path)


def test_run_simulate_and_per_seed_execute_the_one_span_program(tmp_path, monkeypatch):
    """``chain.run`` and ``chain.simulate`` (what the regime tests call) run generation 0 and
    every span through the one pair of programs ``chain.build`` makes: the lowered text of every
    call is one program each, the same in both; ``simulate_per_seed`` calls the same ``span`` at
    one seed. Spans of 2, 2 and 1 generations (traced ``n``) are one program."""
    calls: dict[str, set] = {}
    Program = chain.step.Program
    real_span, real_build = Program.span, chain.step.build

    def span(self, keys_S, truth, carry_S, start, n):
        hlo = self.span_program(carry_S).lower(keys_S, truth, carry_S, start, n).as_text()
        calls.setdefault("span", set()).add(hlo)
        return real_span(self, keys_S, truth, carry_S, start, n)

    def build(cfg, fam=None, mesh=None):
        program = real_build(cfg, fam, mesh)
        first = program.first

        def spy_first(keys_S, truth):
            if not isinstance(keys_S, jax.core.Tracer):  # run's eval_shape of the carry
                calls.setdefault("first", set()).add(first.lower(keys_S, truth).as_text())
            return first(keys_S, truth)

        return dataclasses.replace(program, first=spy_first)

    monkeypatch.setattr(Program, "span", span)
    monkeypatch.setattr(chain.step, "build", build)
    cfg = toy_config()
    chain.run(cfg, tmp_path / "run")
    from_run, calls = calls, {}
    chain.simulate(cfg)
    assert {k: len(v) for k, v in from_run.items()} == {"first": 1, "span": 1}
    assert calls == from_run
    calls.clear()
    chain.simulate_per_seed(cfg)
    assert {k: len(v) for k, v in calls.items()} == {"first": 1, "span": 1}


def test_format_version_is_written_kept_on_resume_and_a_newer_one_refused(tmp_path):
    path = tmp_path / "config.json"
    chain.run(toy_config(num_generations=2), tmp_path)
    saved = json.loads(path.read_text())
    assert saved["format_version"] == chain.workdir.FORMAT_VERSION == 2
    del saved["format_version"]  # a run of format 1, from before the field
    path.write_text(json.dumps(saved))
    chain.run(toy_config(num_generations=3), tmp_path)  # resumes, and stays format 1
    assert json.loads(path.read_text())["format_version"] == 1
    assert chain.Workdir(tmp_path).format_version() == 1
    path.write_text(json.dumps({**saved, "format_version": 99}))
    with pytest.raises(
        CheckpointError, match=r"config\.json: format_version 99, expected 1 \.\. 2"
    ):
        chain.run(toy_config(num_generations=3), tmp_path)
    assert (tmp_path / "checkpoints" / "2").is_dir()  # nothing saved was lost


def test_saved_config_of_a_variant_or_experiment_that_is_gone_keeps_what_was_saved(tmp_path):
    """No defaults to merge (an experiment or variant the code no longer has): the saved config
    as it is."""
    wd = chain.Workdir(tmp_path)
    for saved in (
        {"experiment": "gaussian", "variant": "gone", "num_seeds": 3},
        {"experiment": "gone", "num_seeds": 3},
    ):
        wd.config.write_text(json.dumps({**saved, "format_version": 2}))
        assert wd.saved_config() == saved
