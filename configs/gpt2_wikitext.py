"""The paper's recursive LLM experiment with GPT-2 in place of OPT (Drayson et al. 2025; Herel &
Mikolov 2024): fine-tuned on WikiText-2, then on its own generations.

    python -m launch.run --config=configs/gpt2_wikitext.py:cpu --workdir=/tmp/gpt2_cpu
    python -m launch.run --config=configs/gpt2_wikitext.py:cpu_topk50 --workdir=/tmp/gpt2_topk50

The argument is ``configs/opt_wikitext.py``'s: ``VARIANT[_REGIME][_DECODER]`` with the same
regimes (``5ep``, ``10ep_keep10``) and Drayson's six decoders (``beam``, ``greedy``,
``sampling``, ``temp09``, ``topk50``, ``topp095``); every field is the OPT experiment's but the
model and its tokenizer.

paper  ``gpt2`` (124M, the hub checkpoint and its tokenizer) fine-tuned on ``wikitext-2-raw-v1``
       with the OPT experiment's recipe (5 epochs, AdamW 2e-5, batch 128, 5-way beam search of
       exactly 64 new tokens), 5 seeds, generations 0..9. Needs the hub (or its cache) and an
       accelerator; the memory fields (``finetune.micro_batches``, ``remat_policy``,
       ``param_dtype``) keep a batch-128 step within 8 GiB (docs/lm_architectures.md).
cpu    a scratch GPT-2-architecture model (2 layers, hidden 128, 4 heads, learned positions, tied
       head) on the offline WikiText-2 stand-in with the OPT cpu variant's recipe: a base
       pre-trained once on every training block, then 4 generations fine-tuning it on 384 blocks
       (repetition penalty 2.0, ``<unk>`` banned). Measured in docs/lm_architectures.md.
smoke  a tiny GPT-2 on 32 blocks, 2 generations: seconds (what the tests run).
"""

from configs import opt_wikitext

VARIANTS = ("paper", "cpu", "smoke", "cpu_sampling")


def get_config(arg=None):
    cfg = opt_wikitext.get_config(arg)
    cfg.experiment = "gpt2_wikitext"
    cfg.lm.architecture = "gpt2"
    if cfg.variant == "paper":
        cfg.lm.source = "hub:gpt2"
        cfg.tokenizer.source = "hub:gpt2"
    # A scratch GPT-2 takes lm.scratch.dropout as resid_pdrop and embd_pdrop and
    # lm.scratch.attention_dropout as attn_pdrop.
    return cfg
