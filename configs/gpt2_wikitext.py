"""The paper's recursive LLM experiment with GPT-2 in place of OPT (Drayson et al. 2025; Herel &
Mikolov 2024): fine-tuned on WikiText-2, then on its own generations.

    python -m launch.run --config=configs/gpt2_wikitext.py:cpu --workdir=/tmp/gpt2_cpu
    python -m launch.run --config=configs/gpt2_wikitext.py:cpu,decoder=topk50 --workdir=/tmp/gpt2_topk50

Arguments (``:KEY=VALUE,...``; a bare ``:NAME`` is ``variant=NAME``):
  variant  paper (default) | cpu | smoke
  regime   5ep (default) | keep10
  decoder  beam (default) | greedy | sampling | temp09 | topk50 | topp095

regime and decoder are ``configs/opt_wikitext.py``'s (the paper's two regimes; Drayson's six
decoders); every field is the OPT experiment's but the model (``lm.architecture=gpt2``) and, in
the paper variant, its checkpoint and tokenizer.

variant=paper  ``gpt2`` (124M, the hub checkpoint and its tokenizer) fine-tuned on
  ``wikitext-2-raw-v1`` with the OPT experiment's recipe (5 epochs, AdamW 2e-5, batch 128, 5-way
  beam search of exactly 64 new tokens), 5 seeds, generations 0..9. Needs the hub (or its cache)
  and an accelerator; the memory fields (``finetune.micro_batches``, ``finetune.remat_policy``,
  ``finetune.param_dtype``) bound a batch-128 step (docs/lm_architectures.md). Not timed yet.
variant=cpu  a scratch GPT-2-architecture model (2 layers, hidden 128, 4 heads, learned
  positions, tied head) on the offline WikiText-2 stand-in with the OPT cpu variant's recipe: a
  base pre-trained once on every training block, then 4 generations fine-tuning it on 384 blocks
  (repetition penalty 2.0, ``<unk>`` banned). Not timed yet.
variant=smoke  a tiny GPT-2 on 32 blocks, 2 generations: seconds (what the tests run).
"""

from configs import common, opt_wikitext

ARGS = opt_wikitext.ARGS
LEGACY = {}


def get_config(arg=None):
    a = common.parse_arg(arg, ARGS, LEGACY)
    cfg = opt_wikitext.get_config(a.name)
    cfg.experiment = "gpt2_wikitext"
    # A scratch GPT-2 takes lm.scratch.dropout as resid_pdrop and embd_pdrop and
    # lm.scratch.attention_dropout as attn_pdrop.
    cfg.lm.architecture = "gpt2"
    if a.variant == "paper":
        cfg.lm.source = "hub:gpt2"
        cfg.tokenizer.source = "hub:gpt2"
    return cfg
