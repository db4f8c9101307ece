"""One OPT fine-tuning run on WikiText-2 (generation 0 of the paper's LLM experiment).

    python -m launch.run --config=configs/opt_finetune.py:cpu --workdir=/tmp/opt_ft

Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):
  variant  paper (default) | cpu | smoke

variant=paper  facebook/opt-125m on wikitext-2-raw-v1 with the paper's hyper-parameters (5
  epochs, batch 128, AdamW lr 2e-5, weight decay 0.01, cosine to 1e-6). Needs the HF hub for the
  weights (or its cache) and an accelerator; WikiText-2 raw is found or fetched by
  ``collapse_jax.data.fetch``. Not timed yet. Expected (the paper's Fig. 1 generation 0): test
  perplexity from ~115 (zero-shot) to ~34.
variant=cpu  a 2-layer OPT (hidden 128) trained from scratch on WikiText-2's valid split with a
  byte-level BPE (8192 tokens) trained on the same text, a tenth of it held out for validation,
  tested on the test split. Expected: test perplexity falls from thousands at initialisation to
  well below the add-one unigram baseline of the training tokens on the same targets (both in
  the run's summary.json).

  Measured 2026-12-07 with ``python -m launch.run --config=configs/opt_finetune.py:cpu
  --workdir=/tmp/opt_ft`` on the shared 2-core AMD EPYC dev machine (loaded: load average 16-26
  during the run, started with ``nice -n 15``; no XLA compile cache): 43 min wall, 8.5 CPU-minutes
  (user + system); test perplexity 8436 at initialisation, 220 after 4 epochs (the best on
  validation, the last), against 839 for the unigram baseline (summary.json).
variant=smoke  a tiny model on a few hundred blocks of the same files: seconds; what the tests
  run.

The recursive chain (configs/opt_wikitext.py) reuses the fields under cfg.lm, cfg.data,
cfg.tokenizer and cfg.finetune.
"""

import ml_collections

from configs import common


def lm_fields() -> ml_collections.ConfigDict:
    lm = ml_collections.ConfigDict()
    # "hub:NAME" (downloaded once), a local HF checkpoint directory, or "scratch" (lm.scratch).
    lm.source = "hub:facebook/opt-125m"
    # opt | gpt2 | llama: the scratch model's architecture; a checkpoint's config.json model_type
    # must agree ("auto": whatever the checkpoint is).
    lm.architecture = "opt"
    lm.dtype = "float32"  # compute dtype; "bfloat16" on accelerators (parameters stay float32)
    # A randomly initialised model of lm.architecture; its vocabulary is the tokenizer's.
    lm.scratch = ml_collections.ConfigDict()
    lm.scratch.hidden_size = 128
    lm.scratch.num_hidden_layers = 2
    lm.scratch.ffn_dim = 512
    lm.scratch.num_attention_heads = 4
    lm.scratch.max_position_embeddings = 128  # >= the 64-token blocks plus 64 generated tokens
    lm.scratch.dropout = 0.1  # opt, gpt2 (llama has no residual dropout)
    lm.scratch.attention_dropout = 0.0
    lm.scratch.num_key_value_heads = 4  # llama only: grouped-query attention when fewer than heads
    lm.scratch.rope_theta = 10000.0  # llama only
    lm.scratch.tie_word_embeddings = True  # llama only (opt and gpt2 always tie)
    return lm


def data_fields() -> ml_collections.ConfigDict:
    data = ml_collections.ConfigDict()
    # "wikitext-2": found or fetched (collapse_jax/data/fetch.py), raw where possible, the run's
    # data_source.json says which; a directory: only that folder; "hf:wikitext-2-raw-v1": the
    # Hugging Face `datasets` package (not a dependency).
    data.source = "wikitext-2"
    data.block_size = 64
    data.train_split = "train"  # train | valid | test
    data.valid_split = "valid"  # ignored when valid_holdout_fraction > 0
    data.test_split = "test"
    # > 0: validate on this fraction of the training blocks (their tail) instead of valid_split.
    data.valid_holdout_fraction = 0.0
    # HF run_clm keeps empty rows (each a lone </s>); we drop them.
    data.skip_empty_lines = True
    data.max_train_blocks = 0  # 0 keeps all; > 0 truncates (smoke runs)
    data.max_eval_blocks = 0  # the same for validation and test
    # data.source=tinystories only (collapse_jax/data/tinystories.py): a folder holding
    # TinyStories-{train,valid}.txt ("" looks in $COLLAPSE_JAX_DATA/tinystories, the cache, then
    # downloads), and a cap on the stories read from each file (0: all).
    data.tinystories_dir = ""
    data.max_stories = 0
    return data


def tokenizer_fields() -> ml_collections.ConfigDict:
    tok = ml_collections.ConfigDict()
    # "hub:NAME", a local HF tokenizer directory, or "train_bpe" (trained on the training text).
    tok.source = "hub:facebook/opt-125m"
    tok.vocab_size = 8192  # train_bpe only
    tok.cache_dir = "~/.cache/collapse_jax/tokenizers"  # train_bpe only; keyed by the text's hash
    return tok


def use_offline_data(cfg) -> None:
    """The scratch OPT on WikiText-2's valid split with a BPE trained on it (cpu and smoke)."""
    cfg.lm.source = "scratch"
    # The valid and test splits are what the offline copy (../shared/data) holds; the same
    # splits of a downloaded raw release give the same run shape.
    cfg.data.train_split = "valid"
    cfg.data.valid_split = ""
    cfg.data.valid_holdout_fraction = 0.1
    cfg.tokenizer.source = "train_bpe"


def use_smoke_model(cfg) -> None:
    """The tiny scratch model and vocabulary of the smoke variants (seconds on a CPU)."""
    cfg.lm.scratch.hidden_size = 32
    cfg.lm.scratch.ffn_dim = 64
    cfg.lm.scratch.num_attention_heads = 2
    cfg.tokenizer.vocab_size = 1024


def finetune_fields() -> ml_collections.ConfigDict:
    ft = ml_collections.ConfigDict()
    ft.num_epochs = 5
    ft.batch_size = 128
    ft.learning_rate = 2e-5
    ft.final_learning_rate = 1e-6
    ft.schedule_period = "epoch"  # cosine to final_learning_rate every epoch | once over the "run"
    ft.weight_decay = 0.01
    ft.adam_b1 = 0.9
    ft.adam_b2 = 0.999
    ft.adam_eps = 1e-8
    ft.grad_clip_norm = 1.0  # HF Trainer's default max_grad_norm; 0 turns clipping off
    ft.eval_every_steps = 0  # 0: validate after each epoch only
    ft.eval_batch_size = 128
    # Data-parallel devices for the batch (0: all; batch_size must be a multiple); fsdp also
    # splits parameters and optimiser state over them (for models larger than one device).
    ft.num_devices = 1
    ft.fsdp = False
    # Memory (collapse_jax/families/lm/finetune.py): a batch as this many equal micro-batches
    # inside one step (the same update); each layer rematerialised with this
    # jax.checkpoint_policies name ("none": keep every activation); a bfloat16 compute copy of the
    # float32 master parameters (with lm.dtype=bfloat16).
    ft.micro_batches = 1
    ft.remat_policy = "none"
    ft.param_dtype = "float32"
    return ft


ARGS = common.ARGS


def get_config(arg=None):
    a = common.parse_arg(arg, ARGS)
    v = a.variant
    cfg = common.base("opt_finetune", a)
    cfg.lm = lm_fields()
    cfg.data = data_fields()
    cfg.tokenizer = tokenizer_fields()
    cfg.finetune = finetune_fields()
    # The statistical families want "highest"; an LM fine-tune on a GPU wants TF32 speed.
    cfg.matmul_precision = "default"

    if v in ("cpu", "smoke"):
        use_offline_data(cfg)
        # From scratch, not fine-tuning: a pre-training learning rate and small batches.
        cfg.finetune.learning_rate = 2e-3
        cfg.finetune.final_learning_rate = 1e-4
        cfg.finetune.schedule_period = "run"
        cfg.finetune.batch_size = 32
    if v == "cpu":
        cfg.finetune.num_epochs = 4
    if v == "smoke":
        use_smoke_model(cfg)
        cfg.data.max_train_blocks = 256
        cfg.data.max_eval_blocks = 64
        cfg.finetune.num_epochs = 2
        cfg.finetune.batch_size = 32
        cfg.finetune.eval_batch_size = 32
    return cfg
