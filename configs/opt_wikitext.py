"""The paper's recursive LLM experiment: OPT fine-tuned on WikiText-2, then on its own beam search.

    python -m launch.run --config=configs/opt_wikitext.py:cpu --workdir=/tmp/opt_cpu
    python -m launch.run --config=configs/opt_wikitext.py:cpu,regime=keep10 --workdir=/tmp/opt_keep10
    python -m launch.report --workdir=/tmp/opt_cpu

Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):
  variant  paper (default) | cpu | smoke
  regime   5ep (default) | keep10
  decoder  beam (default) | greedy | sampling | temp09 | topk50 | topp095
Legacy names, kept so that the runs they started resume: ``VARIANT[_REGIME][_DECODER]`` with
REGIME ``5ep``, ``keep10`` or ``10ep_keep10`` (``cpu_keep10``, ``paper_10ep_keep10``,
``cpu_sampling``, ``paper_keep10_topk50``, ...); as in that version, they store only the variant
in ``cfg.variant`` (the rest is in the labels ``lm_regime`` and ``lm_decoder``).

regime: Shumailov et al.'s two (Fig. 1 and Sec. 4); ``cfg.lm_regime`` labels it for the reports.
  5ep     fine-tune for ``finetune.num_epochs`` epochs on the previous model's beam search only
          (``mixing.regime=replace``); the paper's 5 epochs.
  keep10  twice the epochs, and a random tenth of the original blocks in every generation
          (``mixing.regime=keep_real``, ``gamma=0.1``; labelled ``10ep_keep10``); the paper's 10
          epochs.
Any other regime of the chain works through ``--config.mixing.*``.

decoder: one of GeorgeDrayson/model_collapse's six decoders (``DECODERS``): ``beam`` (the paper's
beam search with ``generate.num_beams`` beams, 5; 2 in smoke), ``greedy``, ``sampling``
(temperature 1), ``temp09``, ``topk50``, ``topp095``. Every decoder writes exactly
``generate.max_new_tokens`` new tokens; ``--config.generate.*`` sets any field directly.

variant=paper  ``facebook/opt-125m`` on ``wikitext-2-raw-v1`` (every training block), 5 seeds,
  generations 0..9, AdamW 2e-5 with per-epoch cosine to 1e-6, batch 128, 5-way beam search of
  exactly 64 new tokens. Needs the HF hub for the weights (or its cache) and an accelerator;
  WikiText-2 raw is found or fetched by ``collapse_jax.data.fetch`` (no ``datasets`` package).
  Not timed yet. Expected (the paper's Fig. 1): test perplexity ~34 at generation 0, rising over
  the generations; histograms of the generated data's perplexity under the generation-0 model
  shift left with a long right tail.
variant=cpu  the small scratch OPT of ``configs/opt_finetune.py:cpu`` (2 layers, hidden 128, an
  8192-token BPE trained on WikiText-2's ``valid`` split: the tokenized copy of
  ``$COLLAPSE_JAX_DATA``, else the fetched raw release), pre-trained once on all training blocks
  as the "pretrained" base (cached in the workdir; 8 epochs, the best on validation kept), then
  the pipeline on 384 blocks, 4 generations, 1 seed, with the paper's ablation repetition
  penalty 2.0 (without it this small model's beam search falls into a one-token loop in the
  first generation) and ``<unk>`` suppressed (``generate.suppress_tokens``; the tokenized
  stand-in replaced rare words by ``<unk>``, which the model learns to emit). Expected: test
  perplexity rises at generation 1; the training data scored by the generation-0 model moves to
  low perplexity and its diversity falls towards 0 as beam search collapses into loops
  (``= = = ...``, ``as well as well as ...``); with ``decoder=sampling`` the data's perplexity
  rises instead, generation after generation, with no repeated n-grams. A weak scratch model
  cannot reproduce the paper's Fig. 1 in full. XLA:CPU's kernels differ by instruction set and
  beam search turns a last-bit difference into other text, so the numbers differ between
  machines (the same machine repeats them; docs/lm.md has the numbers per machine).

  Measured 2026-11-30 by an earlier session (docs/lm.md) with ``python -m launch.run
  --config=configs/opt_wikitext.py:cpu --workdir=/tmp/opt_cpu`` on an idle 2-core Intel Xeon: 3 min
  58 s wall, most of it pre-training the base.
variant=smoke  a tiny model on 32 blocks, 2 generations, 1 seed: seconds; what the tests run.

M (``samples_per_generation`` in the other families) is the number of original training blocks;
``data.max_train_blocks`` caps it and ``samples_per_generation`` is not used here.
"""

import ml_collections

from collapse_jax.families.lm import tokenizer
from configs import common, opt_finetune

# The paper's Example 1 prompt (a WikiText-2 training passage).
EXAMPLE_PROMPT = (
    "some started before 1360 — was typically accomplished by a master mason and a small team of "
    "itinerant masons, supplemented by local parish labourers, according to Poyntz Wright. But "
    "other authors reject this model, suggesting instead that leading architects designed the "
    "parish church towers based on early examples of Perpendicular"
)


def generate_fields() -> ml_collections.ConfigDict:
    """Decoding of the synthetic blocks (``collapse_jax.families.lm.decode.continue_blocks``)."""
    gen = ml_collections.ConfigDict()
    gen.strategy = "beam"  # beam (the paper's) | greedy | sample
    gen.num_beams = 5  # beam only
    # The paper's "exactly 64 new tokens": min = max = data.block_size, EOS blocked until then.
    gen.max_new_tokens = 64
    gen.min_new_tokens = 64
    gen.length_penalty = 1.0  # beam only
    gen.early_stopping = False  # beam only
    gen.repetition_penalty = 1.0  # the paper's ablation: 2.0 (the authors' code hard-coded 3.0)
    gen.no_repeat_ngram_size = 0
    # Token ids never generated (transformers' suppress_tokens), in every strategy.
    gen.suppress_tokens = ()
    # sample only (transformers' warpers, applied in this order; 1.0 / 0 / 1.0 = off)
    gen.temperature = 1.0
    gen.top_k = 0
    gen.top_p = 1.0
    gen.batch_size = 64  # prompts per compiled call (times num_beams rows for beam)
    return gen


# GeorgeDrayson/model_collapse's six decoding settings (its config/decoding/*.yaml, all with
# exactly the block's new tokens). Their beam search sets early_stopping=True; with EOS blocked
# until the last step every hypothesis ends there, so it decodes exactly as the paper's False.
# A preset sets only these fields: the cpu variant keeps its repetition penalty 2.0 under every
# decoder (Drayson uses none: add --config.generate.repetition_penalty=1.0). ``beam`` is the
# default and changes nothing (the smoke variant keeps its 2 beams).
DECODERS = {
    "beam": dict(strategy="beam"),
    "greedy": dict(strategy="greedy"),
    "sampling": dict(strategy="sample", temperature=1.0, top_k=0, top_p=1.0),
    "temp09": dict(strategy="sample", temperature=0.9),
    "topk50": dict(strategy="sample", top_k=50),
    "topp095": dict(strategy="sample", top_p=0.95),
}
# regime: 5ep (pure replace, the paper's 5 epochs) | keep10 (10 epochs, a tenth of the original
# blocks kept; ``lm_regime`` labels it 10ep_keep10 as the paper's figure does).
ARGS = {"variant": common.VARIANTS, "regime": ("5ep", "keep10"), "decoder": tuple(DECODERS)}
_REGIME_LABELS = {"5ep": "5ep", "keep10": "10ep_keep10"}
# The names of the version before the KEY=VALUE grammar, VARIANT[_REGIME][_DECODER] (regime 5ep,
# keep10 or 10ep_keep10): commands that started old runs still resume them.
LEGACY = {
    f"{v}{r}{d}": common.canonical(
        dict(variant=v, regime="keep10" if "keep10" in r else "5ep", decoder=d[1:] or "beam"), ARGS
    )
    for v in common.VARIANTS
    for r in ("", "_5ep", "_keep10", "_10ep_keep10")
    for d in ("", *(f"_{k}" for k in DECODERS))
    if r or d
}


def tail_fields() -> ml_collections.ConfigDict:
    tail = ml_collections.ConfigDict()
    # Rare at level q: the least frequent token types (n-gram types) of the original training
    # blocks that together hold at most a fraction q of its tokens (n-grams); see families/lm/tail.py.
    tail.quantiles = (0.1, 0.25)
    tail.ngram_orders = (2, 3)  # rare n-grams scored on the test set (1 = tokens, always done)
    tail.distinct_orders = (1, 2, 3, 4)  # distinct-n share of each generation's training data
    return tail


def diversity_fields() -> ml_collections.ConfigDict:
    """Diversity of each generation's data (``collapse_jax.families.lm.diversity.metrics``)."""
    div = ml_collections.ConfigDict()
    div.rep_orders = (2, 3, 4)  # rep-n, and diversity = prod_n (1 - rep_n) (Drayson's n)
    div.self_bleu_order = 4
    # Hypotheses of self-BLEU: a fixed, evenly spaced sample of blocks (Drayson's 1000), each
    # scored against all other blocks; 0: every block.
    div.self_bleu_blocks = 1000
    return div


def get_config(arg=None):
    a = common.parse_arg(arg, ARGS, LEGACY)
    variant = a.variant
    cfg = common.base("opt_wikitext", a)
    if a.legacy:  # the legacy names stored only the variant here (and the rest in the labels)
        cfg.variant = variant
    cfg.lm_regime = _REGIME_LABELS[a.regime]  # a label for reports; the fields below are what run
    cfg.lm_decoder = a.decoder  # a label for reports; cfg.generate is what runs
    cfg.lm = opt_finetune.lm_fields()
    # base: every generation fine-tunes the base model (the paper); scratch: every generation
    # trains a fresh model from random weights (configs/llama_tinystories.py).
    cfg.lm.fit_from = "base"
    cfg.data = opt_finetune.data_fields()
    cfg.tokenizer = opt_finetune.tokenizer_fields()
    cfg.finetune = opt_finetune.finetune_fields()
    # Pre-training of the scratch base model (lm.source=scratch only): once per workdir, shared by
    # all seeds, as every generation of the paper starts from the same pretrained OPT.
    cfg.pretrain = opt_finetune.finetune_fields()
    cfg.pretrain.max_train_blocks = 0  # 0: every training block (before data.max_train_blocks)
    cfg.generate = generate_fields()
    cfg.tail = tail_fields()
    cfg.diversity = diversity_fields()
    cfg.example = ml_collections.ConfigDict()
    cfg.example.prompt = EXAMPLE_PROMPT
    cfg.example.max_prompt_tokens = 64  # the prompt's last tokens, <= data.block_size
    cfg.matmul_precision = "default"  # TF32 on GPUs, as the paper's fine-tuning
    cfg.num_seeds = 5
    cfg.num_generations = 10
    cfg.checkpoint.max_to_keep = 2  # per seed: the latest generations' params and datasets
    cfg.checkpoint.keep_generations = (0, 1, 2, 3, 5, 9)  # the paper's Fig. 1 generations

    if variant in ("cpu", "smoke"):
        opt_finetune.use_offline_data(cfg)
        cfg.num_seeds = 1
        # The base: a from-scratch pre-training on all training blocks (before max_train_blocks).
        cfg.pretrain.learning_rate = 2e-3
        cfg.pretrain.final_learning_rate = 1e-4
        cfg.pretrain.schedule_period = "run"
        cfg.pretrain.batch_size = 32
        # Each generation fine-tunes the base, more gently than pre-training (the paper's 2e-5 is
        # for a 125M model that is far from its data; this small one needs a larger step).
        cfg.finetune.learning_rate = 5e-4
        cfg.finetune.final_learning_rate = 5e-5
        cfg.finetune.batch_size = 32
        cfg.finetune.eval_batch_size = 64
    if variant == "cpu":
        # The best epoch on validation is kept (finetune.py); more than 3 epochs help the base.
        cfg.pretrain.num_epochs = 8
        cfg.data.max_train_blocks = 384
        cfg.data.max_eval_blocks = 256
        cfg.finetune.num_epochs = 3
        cfg.num_generations = 4
        cfg.generate.batch_size = 128
        cfg.generate.repetition_penalty = 2.0
        # The offline stand-in (the tokenized WikiText-2) has replaced its rare words by <unk>,
        # which this small model learns to emit from generation 1 on; the paper's raw text has
        # no <unk>, so there the ban changes practically nothing (the id is never a target).
        cfg.generate.suppress_tokens = (tokenizer.UNK_ID,)
    if variant == "smoke":
        opt_finetune.use_smoke_model(cfg)
        cfg.pretrain.num_epochs = 1
        cfg.pretrain.max_train_blocks = 256
        cfg.data.max_train_blocks = 32
        cfg.data.max_eval_blocks = 16
        cfg.finetune.num_epochs = 1
        cfg.finetune.batch_size = 16
        cfg.finetune.eval_batch_size = 16
        cfg.pretrain.batch_size = 64
        cfg.pretrain.eval_batch_size = 64
        cfg.num_generations = 2
        cfg.generate.num_beams = 2
        cfg.generate.batch_size = 16
        cfg.example.max_prompt_tokens = 16

    cfg.generate.update(DECODERS[a.decoder])
    if a.regime == "keep10":
        cfg.finetune.num_epochs *= 2
        cfg.mixing.regime = "keep_real"
        cfg.mixing.alpha = 0.9
        cfg.mixing.gamma = 0.1
    return cfg
