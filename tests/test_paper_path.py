"""The paper's OPT path offline (benchmarks/paper_path.py): the run itself is slow; its pieces not."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _paper_path():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("paper_path", ROOT / "benchmarks/paper_path.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


pp = _paper_path()


def test_only_model_blocks_generations_and_seeds_are_overridden():
    flags = pp.launch_flags(Path("/r"), Path("/m"), 128)
    assert flags[0] == "--config=configs/opt_wikitext.py:paper"
    overridden = {f.split("=")[0].removeprefix("--config.") for f in flags[2:]}
    assert overridden == {
        "lm.source",
        "tokenizer.source",
        "data.max_train_blocks",
        "data.max_eval_blocks",
        "num_generations",
        "num_seeds",
    }
    # The memory option the benchmark runs with by default: the same update, a smaller step.
    flags = pp.launch_flags(Path("/r"), Path("/m"), 128, micro_batches=4)
    assert flags[-1] == "--config.finetune.micro_batches=4"


def test_standin_data_has_every_split_the_paper_reads(shared_data, tmp_path, monkeypatch):
    from collapse_jax.data import fetch

    monkeypatch.setenv(fetch.DATA_ENV, str(shared_data))
    root = pp.standin_data(tmp_path)
    found = fetch._wikitext_in(root, ("test", "train", "valid"))
    assert found is not None
    test = (shared_data / "wikitext-2" / "test.txt").read_text()
    # valid and test are disjoint halves of the real test split; train is the real valid split.
    assert found.read("valid") + found.read("test") == test
    assert found.read("train") == (shared_data / "wikitext-2" / "valid.txt").read_text()


def test_summary_separates_the_compiling_first_call():
    records = [
        {"pid": 1, "stage": "validation", "blocks": 128, "seconds": 12.8},  # compiles
        {"pid": 1, "stage": "validation", "blocks": 128, "seconds": 1.28},
        {"pid": 1, "stage": "validation", "blocks": 128, "seconds": 2.56},
        {"pid": 2, "stage": "validation", "blocks": 128, "seconds": 6.4},  # a new process
        {"pid": 1, "event": "interrupted"},
    ]
    s = pp.summarize(records)["validation"]
    assert s["calls"] == 4 and s["blocks"] == 512
    assert s["s_per_block_cold"] == pytest.approx((0.1 + 0.05) / 2)
    assert s["s_per_block_warm"] == pytest.approx((0.01 + 0.02) / 2)


def test_projection_counts_the_paper_work():
    per_block = dict.fromkeys(
        [
            "tokenize",
            "fine-tune (train steps)",
            "validation",
            "generation: synthetic data",
            "data perplexity",
            "test perplexity + tail metrics",
        ],
        0.0,
    )
    blocks = {"train": 1000, "valid": 100, "test": 50}
    paper = {"seeds": 5, "generations": 10, "example_prompts": 64}
    # Each stage alone at 1 s per block: the projection is then a count of block visits.
    counts = {}
    for stage in per_block:
        counts[stage] = pp.project(per_block | {stage: 1.0}, blocks, paper)
    assert counts["tokenize"]["5ep"] == 1150
    # 10 generations x 5 epochs x 1000 blocks x 5 seeds; 10 epochs in the keep-10% regime.
    assert counts["fine-tune (train steps)"] == {"5ep": 250_000, "10ep_keep10": 500_000}
    assert counts["validation"] == {"5ep": 5 * 10 * 6 * 100, "10ep_keep10": 5 * 10 * 11 * 100}
    # Generations 1..9 continue every block (90% of them with 10% real data kept), plus the
    # example prompts of every generation.
    assert counts["generation: synthetic data"] == {
        "5ep": 5 * (9 * 1000 + 10 * 64),
        "10ep_keep10": pytest.approx(5 * (9 * 900 + 10 * 64)),
    }
    assert counts["data perplexity"]["5ep"] == 5 * 10 * 1000
    assert counts["test perplexity + tail metrics"]["5ep"] == 5 * 10 * 50


def test_flops_per_token_count_every_matmul_weight_once():
    import jax

    from collapse_jax.families.lm import opt

    config = opt.OPTConfig()  # OPT-125m
    params = jax.eval_shape(lambda: opt.init_params(jax.random.key(0), config))
    # Every 2-D kernel is one multiply-add per token; the tied head is the token embedding;
    # the position table is a lookup.
    kernels = sum(
        x.size for path, x in jax.tree_util.tree_leaves_with_path(params) if "kernel" in str(path)
    )
    head = config.vocab_size * config.word_embed_proj_dim
    attention = 2 * 64 * config.hidden_size * config.num_hidden_layers
    flops = pp.forward_flops_per_token(config.to_hf_dict(), context=64)
    assert flops == 2 * (kernels + head + attention)
    assert 2.4e8 < flops < 2.6e8  # ~2 x 125M parameters


def _run(tmp_path, model):
    from collapse_jax.data import fetch

    if fetch._wikitext_in(Path(fetch.os.environ.get(fetch.DATA_ENV, "")), ("valid",)) is None:
        pytest.skip("no WikiText-2 under $COLLAPSE_JAX_DATA")
    summary = pp.main([f"--workdir={tmp_path}", f"--model={model}"])
    first, second = summary["runs"]
    assert first["exit_code"] != 0 and second["exit_code"] == 0, summary["runs"]
    assert summary["generations_done"] == 2
    # The first run stopped in generation 1's metrics, after its fine-tuned model was saved: the
    # rerun searched no beams for the data and fine-tuned nothing, it measured generation 1.
    first_calls, resumed_calls = summary["calls_per_run"]
    assert first_calls["fine-tune (train steps)"] == 2
    assert first_calls["generation: synthetic data"] == 2  # 128 prompts in batches of 64
    assert resumed_calls["generation: synthetic data"] == 0
    assert resumed_calls["fine-tune (train steps)"] == 0
    assert resumed_calls["test perplexity + tail metrics"] == 1
    stages = summary["stages"]
    for name in pp.STAGE_ORDER[:-1]:
        assert stages[name]["s_per_block"] > 0, name
    assert set(summary["projection_seconds"]) == set(pp.PAPER_REGIMES)
    saved = json.loads((tmp_path / "paper_path.json").read_text())
    assert saved["generations_done"] == 2
    return summary


@pytest.mark.slow
def test_paper_path_tiny_width_runs_resumes_and_times_every_stage(tmp_path):
    """The paper's variant at tiny width (about a CPU-minute, mostly compiling)."""
    _run(tmp_path, "tiny")
