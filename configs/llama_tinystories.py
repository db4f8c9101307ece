"""Pre-training from scratch in every generation (Gerstgrasser et al. 2024, "Is model collapse
inevitable?"; Kazdan et al. 2025): Llama-architecture LMs on TinyStories, replace vs accumulate.

    python -m launch.run --config=configs/llama_tinystories.py:cpu --workdir=/tmp/llama_replace
    python -m launch.run --config=configs/llama_tinystories.py:cpu,regime=accumulate \\
        --workdir=/tmp/llama_accumulate

Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):
  variant  paper (default) | cpu | smoke
  regime   replace (default) | accumulate

Every generation trains a fresh model from random initialisation (``lm.fit_from=scratch``) on
its pool: ``replace`` fits only the previous model's samples, ``accumulate`` every dataset so
far (D_0, then each generation's samples; ``mixing.regime``). Samples continue original training
blocks by exactly ``data.block_size`` tokens, drawn at temperature 1 (``generate.strategy=sample``);
the new tokens form one block. Gerstgrasser et al. report test loss rising over iterations under
replace and staying close to the first model's under accumulate.

variant=paper  TinyStories (fetched and checked by ``collapse_jax.data.fetch``, tokenized once
  into the data cache) with a byte-level BPE of 32000 tokens trained on its training text; the
  model is the shape of llama2.c's ``stories15M`` (dim 288, 6 layers, 6 heads, SwiGLU 768, 256
  positions), the smallest TinyStories Llama (42M, 110M: ``--config.lm.scratch.*``). D_0: the
  first 2^18 training blocks of 64 tokens (our choice of scale, not the papers'), 1 epoch per
  generation, AdamW 5e-4 cosine to 5e-5, batch 128; 10 generations, 3 seeds. Needs an
  accelerator. Not timed yet.
variant=cpu  the offline WikiText-2 stand-in (``valid.txt`` to train, ``test.txt`` to test, a BPE
  of 8192 tokens) and a 2-layer Llama (hidden 128, 4 query heads over 2 key/value heads, SwiGLU
  384, rope theta 1e4, tied head); D_0 = 2048 blocks, 3 epochs per generation, 5 generations. Not
  timed yet; whether it shows the published effect is open (docs/lm_architectures.md).
variant=smoke  a tiny Llama (2 query heads over 1 key/value head) on 32 blocks, 2 generations:
  seconds (what the tests run).
"""

from configs import common, opt_finetune, opt_wikitext

ARGS = {"variant": common.VARIANTS, "regime": ("replace", "accumulate")}
LEGACY = {}


def get_config(arg=None):
    a = common.parse_arg(arg, ARGS, LEGACY)
    variant = a.variant
    # Everything the recursive LM chain reads (tail metrics, diversity, the example prompt, the
    # generate and finetune sections) comes from the OPT experiment's config; below what differs.
    cfg = opt_wikitext.get_config(variant)
    cfg.experiment = "llama_tinystories"
    cfg.variant = a.name
    cfg.lm_regime = f"scratch_{a.regime}"  # a label for reports; mixing.regime is what runs
    cfg.lm_decoder = "sampling"
    cfg.lm.fit_from = "scratch"
    cfg.lm.source = "scratch"
    cfg.lm.architecture = "llama"
    cfg.lm.scratch.dropout = 0.0
    cfg.lm.scratch.attention_dropout = 0.0
    cfg.lm.scratch.tie_word_embeddings = True
    cfg.lm.scratch.rope_theta = 10000.0
    # Gerstgrasser et al. sample at temperature 1, no penalty; exactly block_size new tokens.
    cfg.generate.update(opt_wikitext.DECODERS["sampling"])
    cfg.generate.repetition_penalty = 1.0
    cfg.generate.suppress_tokens = ()
    # Each generation's training from random weights: a pre-training schedule (once per run).
    cfg.finetune.schedule_period = "run"
    cfg.finetune.weight_decay = 0.1
    cfg.mixing.regime = a.regime

    if variant == "paper":
        cfg.data.source = "tinystories"
        cfg.data.train_split = "train"
        cfg.data.test_split = "valid"
        cfg.data.valid_split = ""
        cfg.data.valid_holdout_fraction = 0.01
        cfg.data.max_train_blocks = 2**18
        cfg.data.max_eval_blocks = 8192
        cfg.tokenizer.source = "train_bpe"
        cfg.tokenizer.vocab_size = 32000
        s = cfg.lm.scratch
        s.hidden_size, s.num_hidden_layers, s.num_attention_heads = 288, 6, 6
        s.num_key_value_heads, s.ffn_dim, s.max_position_embeddings = 6, 768, 256
        cfg.finetune.num_epochs = 1
        cfg.finetune.learning_rate = 5e-4
        cfg.finetune.final_learning_rate = 5e-5
        cfg.finetune.batch_size = 128
        cfg.num_seeds = 3
        cfg.num_generations = 10
        cfg.generate.batch_size = 512
    else:
        opt_finetune.use_offline_data(cfg)
        cfg.lm.source = "scratch"
        cfg.lm.scratch.num_key_value_heads = 2
        cfg.finetune.learning_rate = 2e-3
        cfg.finetune.final_learning_rate = 1e-4
        cfg.finetune.batch_size = 32
        cfg.finetune.eval_batch_size = 64
    if variant == "cpu":
        cfg.lm.scratch.ffn_dim = 384
        cfg.data.max_train_blocks = 2048
        cfg.data.max_eval_blocks = 256
        cfg.finetune.num_epochs = 3
        cfg.num_generations = 5
        cfg.generate.batch_size = 256
    if variant == "smoke":
        opt_finetune.use_smoke_model(cfg)
        cfg.lm.scratch.num_key_value_heads = 1
    cfg.checkpoint.keep_generations = tuple(sorted({0, 1, cfg.num_generations - 1}))
    return cfg
