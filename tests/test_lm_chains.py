"""The GPT-2 and Llama-architecture chains through the same LM host family: each smoke variant
runs two generations, resumes byte-identically after a kill at each sub-step, and the
pre-training-from-scratch fit (``lm.fit_from=scratch``) really starts every generation afresh."""

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from collapse_jax import chain, experiments, rng
from collapse_jax import metrics as metrics_lib
from collapse_jax.data import fetch
from collapse_jax.families.lm import family as lm
from collapse_jax.families.lm import finetune, nn
from tests.test_pipeline import Killed, _counted, _kill, assert_same_run

EXPERIMENTS = ("gpt2_wikitext", "llama_tinystories")


def _config(name: str, variant: str = "smoke"):
    return experiments.get(name).config_module().get_config(variant)


# The Llama chain in the default suite; GPT-2's (the OPT pipeline's pre-LN layout, whose logits
# tests/test_lm_architectures.py checks against transformers) in CI's slow leg.
@pytest.fixture(
    scope="module",
    params=[pytest.param("gpt2_wikitext", marks=pytest.mark.slow), "llama_tinystories"],
    ids=list(EXPERIMENTS),
)
def runs(request, tmp_path_factory):
    """``(name, gen0, straight)``: one- and two-generation smoke runs of an experiment."""
    root = fetch.data_root()
    if root is None or not (root / "wikitext-2").is_dir():
        pytest.skip("$COLLAPSE_JAX_DATA/wikitext-2 is absent (the smoke variants read it)")
    name = request.param
    cfg = _config(name)
    cfg.num_generations = 1
    gen0 = tmp_path_factory.mktemp(f"{name}_gen0")
    chain.run(cfg, gen0)
    straight = tmp_path_factory.mktemp(f"{name}_straight")
    chain.run(_config(name), straight)
    return name, gen0, straight


def test_two_generations_of_each_architecture(runs):
    name, _, straight = runs
    saved = json.loads((straight / "config.json").read_text())
    assert (
        saved["lm"]["architecture"] == {"gpt2_wikitext": "gpt2", "llama_tinystories": "llama"}[name]
    )
    lines = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in lines] == [0, 1]
    for r in lines:
        assert np.isfinite(r["test_perplexity"][0]) and r["test_perplexity"][0] > 1
    # Only the base-model (fine-tuning) chain pre-trains a shared base.
    assert (straight / "checkpoints/base").is_dir() == (name == "gpt2_wikitext")


def test_pretraining_from_scratch_starts_each_generation_from_its_own_random_weights(
    runs, monkeypatch, tmp_path
):
    name, _, _ = runs
    if name != "llama_tinystories":
        pytest.skip("the fine-tuning chain starts from its base")
    cfg = _config(name)
    starts = []

    def recording(key, params, *a, **k):
        starts.append(jax.tree.map(np.asarray, params))
        return finetune_fn(key, params, *a, **k)

    finetune_fn = finetune.finetune
    monkeypatch.setattr(finetune, "finetune", recording)
    truth = lm.reference(cfg, tmp_path, lambda name, template, make: make()[0])
    data = lm.original_data(None, truth, cfg)
    pool = _pool(data)
    fit_keys = [jax.random.key(1), jax.random.key(1), jax.random.key(2)]
    for k in fit_keys:
        lm.fit(k, truth.base_params, pool, truth, cfg)
    a, same, other = starts
    # Fresh weights from the fit key (not the previous state): equal keys, equal starts.
    jax.tree.map(np.testing.assert_array_equal, a, same)
    assert not np.array_equal(
        a["model"]["embed_tokens"]["embedding"], other["model"]["embed_tokens"]["embedding"]
    )
    want = nn.init_params(jax.random.fold_in(fit_keys[0], rng.SCRATCH_INIT), truth.config)
    jax.tree.map(np.testing.assert_array_equal, a, jax.tree.map(np.asarray, want))


def _pool(x_NxL):
    from collapse_jax import family

    return family.Data(x=np.asarray(x_NxL), weight=np.ones(len(x_NxL), np.float32))


# Where generation 1 is killed (tests/test_pipeline.py runs every sub-step on the OPT chain;
# here the fit, whose rerun re-derives the base or the fresh weights, in the default suite).
KILLS = ("sample", "fit", "metrics", "record")


@pytest.mark.parametrize(
    "where", [w if w == "fit" else pytest.param(w, marks=pytest.mark.slow) for w in KILLS]
)
def test_resume_after_a_kill_is_byte_identical(runs, where, tmp_path, monkeypatch):
    name, gen0, straight = runs
    workdir = tmp_path / "run"
    shutil.copytree(gen0, workdir)
    if where == "record":
        monkeypatch.setattr(metrics_lib.Recorder, "write", _kill)
    else:
        monkeypatch.setattr(lm, "FAMILY", dataclasses.replace(lm.FAMILY, **{where: _kill}))
    with pytest.raises(Killed):
        chain.run(_config(name), workdir)
    monkeypatch.undo()
    calls = {"finetune": 0}
    monkeypatch.setattr(finetune, "finetune", _counted(finetune.finetune, calls, "finetune"))
    chain.run(_config(name), workdir)
    assert calls["finetune"] == (1 if where in ("sample", "fit") else 0)
    assert_same_run(workdir, straight)


def test_open_run_exports_a_generation_that_transformers_loads(runs, tmp_path):
    """Generation 1, restored by ``open_run`` (the LM's ``SavedModels`` built for the run's
    architecture) and exported as an HF directory, gives our logits in transformers'
    ``AutoModelForCausalLM``; sampling it is deterministic given the key."""
    torch = pytest.importorskip("torch")
    import transformers

    import collapse_jax

    _, _, straight = runs
    run = collapse_jax.open_run(straight)
    params = run.model(1, seed=0)
    config = run.saved_models.config
    assert config.architecture == run.config.lm.architecture
    hf_dir = run.export(1, 0, tmp_path / "hf")
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    assert model.config.model_type == config.architecture
    ids_1xL = np.arange(3, 19, dtype=np.int32)[None]
    with torch.no_grad():
        want = model(input_ids=torch.tensor(ids_1xL, dtype=torch.long)).logits.numpy()
    got, _ = jax.jit(nn.forward, static_argnames="config")(params, config, ids_1xL)
    # The float32 summation-order bound of tests/test_lm_architectures.py.
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-5)
    new_NxT = run.sample(1, 3, 0, jax.random.key(0))
    assert new_NxT.shape == (3, run.config.generate.max_new_tokens)
    np.testing.assert_array_equal(new_NxT, run.sample(1, 3, 0, jax.random.key(0)))
