"""The paper's recursive LLM experiment as a host family of the chain (``chain.host``).

Shumailov et al., Sec. 4 / Fig. 1: OPT is fine-tuned on WikiText-2 token blocks (generation 0);
generation n >= 1 continues original training blocks (the prompts, ``block_size`` tokens) with
model n-1 by 5-way beam search of exactly ``block_size`` new tokens (EOS blocked), and those new
tokens form one synthetic block. The chain's mixing plan (``mixing``) makes each generation's
dataset: ``replace`` is the paper's 5-epoch regime (every original block continued), ``keep_real``
with gamma = 0.1 the 10-epoch one (only the ``alpha * M`` model blocks are generated, from a
random subset of the prompts, and a random 10% of the original blocks join them). Model n starts
again from the base (pretrained) model and keeps the parameters best on the real validation
blocks. The chain loops over seeds and generations; this module is single-seed.

Every regime of ``mixing`` runs through the same plan as the vmapped families:
  augment   all of D_0 plus round(lambda M) continuations (prompts: ``prompt_indices``, from the
            sample key; with lambda > 1 a prompt is continued more than once, and beam search,
            being deterministic, then repeats its block).
  fresh     round(gamma M) training blocks after D_0 never used before (``fresh_data``; needs
            ``data.max_train_blocks`` > 0) plus M - round(gamma M) continuations.
  weights   ``mixing.real_weight`` / ``synthetic_weight``: fine-tuning minimises the weighted mean
            of the blocks' token-mean losses (``finetune``); validation is unweighted.
  curation  ``initial`` / ``current``: each candidate block's log-likelihood (``log_prob``), kept
            by ``mixing.curate``; ``oracle`` is refused (text has no true density). Candidates
            beyond M prompts repeat prompts (identical blocks under beam search).

The model: ``lm.architecture`` (opt, gpt2, llama) or the checkpoint's ``model_type``. Two fits:
  ``lm.fit_from=base``     (the paper) every generation fine-tunes the base model.
                           ``lm.source=hub:...`` loads a pretrained one; ``lm.source=scratch`` (the
                           CPU stand-in) pre-trains one with ``rng.run_key(cfg.seed, rng.BASE)``
                           once per workdir (checkpoint ``DIR/checkpoints/base``), shared by every
                           seed and generation.
  ``lm.fit_from=scratch``  (Gerstgrasser et al. 2024; Kazdan et al. 2025) every generation trains a
                           fresh model from random initialisation (``fold_in(fit key,
                           rng.SCRATCH_INIT)``) on its pool, ``cfg.finetune`` being that training;
                           with ``mixing.regime`` replace or accumulate. No base is made.
``DIR/tokenizer/`` holds the
tokenizer, ``DIR/reference.json`` the rare sets of D_0 (``tail.py``), ``DIR/examples.jsonl`` and
``DIR/examples.md`` each model's continuation of the paper's Example 1 prompt.

Metrics: ``valid_perplexity`` of the kept checkpoint, and the test and tail metrics of ``tail.py``.
"""

import functools
import json
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from absl import logging

from collapse_jax import family, rng, sampling
from collapse_jax.errors import require
from collapse_jax.families.lm import (
    architectures,
    decode,
    diversity,
    finetune,
    nn,
    perplexity,
    tail,
)
from collapse_jax.families.lm import corpus as corpus_lib

FIT_FROM = ("base", "scratch")


def validate(cfg) -> None:
    """Raise ``ConfigError`` naming any bad LM field, before any data or model is loaded."""
    finetune.validate(cfg)
    require(cfg.lm.fit_from in FIT_FROM, "lm.fit_from", f"one of {FIT_FROM}", cfg.lm.fit_from)
    names = architectures.NAMES if cfg.lm.source == "scratch" else (*architectures.NAMES, "auto")
    require(cfg.lm.architecture in names, "lm.architecture", f"one of {names}", cfg.lm.architecture)
    if cfg.lm.fit_from == "scratch":
        require(
            cfg.lm.source == "scratch",
            "lm.source",
            "scratch with lm.fit_from=scratch (every generation starts from random weights)",
            cfg.lm.source,
        )
    sampling.refuse(cfg, "opt_wikitext", "its decoder (generate.temperature, top_k, top_p)")
    m = cfg.mixing
    require(
        m.curation.score != "oracle",
        "mixing.curation.score",
        "none, initial or current for the LM (text has no true density: no oracle)",
        m.curation.score,
    )
    if m.regime == "fresh":
        require(
            cfg.data.max_train_blocks > 0,
            "data.max_train_blocks",
            "> 0 for mixing.regime=fresh (with every training block in D_0 no unused real block "
            "is left to draw)",
            cfg.data.max_train_blocks,
        )
    decode.validate(cfg)
    diversity.validate(cfg)
    g, d = cfg.generate, cfg.data
    require(
        g.max_new_tokens == d.block_size,
        "generate.max_new_tokens",
        f"data.block_size={d.block_size} (the new tokens form one training block)",
        g.max_new_tokens,
    )
    require(
        g.min_new_tokens == g.max_new_tokens,
        "generate.min_new_tokens",
        f"max_new_tokens={g.max_new_tokens} (exactly that many new tokens, EOS blocked; a shorter "
        "block would need padding that fine-tuning does not mask)",
        g.min_new_tokens,
    )
    tail.validate(cfg)
    require(
        1 <= cfg.example.max_prompt_tokens <= d.block_size,
        "example.max_prompt_tokens",
        f"in [1, data.block_size={d.block_size}]",
        cfg.example.max_prompt_tokens,
    )
    if cfg.lm.source == "scratch":
        need = d.block_size + g.max_new_tokens
        require(
            cfg.lm.scratch.max_position_embeddings >= need,
            "lm.scratch.max_position_embeddings",
            f">= {need} (prompt + new tokens)",
            cfg.lm.scratch.max_position_embeddings,
        )
        require(
            cfg.pretrain.max_train_blocks >= 0,
            "pretrain.max_train_blocks",
            ">= 0 (0: every training block)",
            cfg.pretrain.max_train_blocks,
        )


class Truth(NamedTuple):
    """What every seed shares."""

    corpus: corpus_lib.Corpus
    config: Any  # opt.OPTConfig, gpt2.GPT2Config or llama.LlamaConfig
    base_params: Any  # every generation's fine-tuning starts here (fit_from=base)
    tail: tail.TailReference
    example_BxL: tuple[np.ndarray, np.ndarray]  # (ids, mask) of the example prompt


def _log(label: str):
    def log(row):
        logging.info("%s finetune %s", label, {k: v for k, v in row.items() if v is not None})

    return log


def example_prompt(cfg, tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """The last ``example.max_prompt_tokens`` tokens of the paper's Example 1 prompt, left-padded
    to ``data.block_size`` and repeated to ``generate.batch_size`` rows: ``(ids_BxL, mask_BxL)``.

    The shapes of the synthetic data's beam search, so the example reuses its compiled loop.
    """
    ids = tokenizer(cfg.example.prompt, add_special_tokens=False)["input_ids"]
    ids = ids[-cfg.example.max_prompt_tokens :]
    L, B = cfg.data.block_size, cfg.generate.batch_size
    pad = L - len(ids)
    ids_L = np.asarray([tokenizer.pad_token_id] * pad + ids, np.int32)
    mask_L = np.asarray([0] * pad + [1] * len(ids), np.int32)
    return np.tile(ids_L, (B, 1)), np.tile(mask_L, (B, 1))


def reference(cfg, workdir: Path, once: family.Once) -> Truth:
    """Corpus, base model and tail reference; writes ``DIR/tokenizer/`` and ``reference.json``."""
    corpus = corpus_lib.load(cfg, workdir / "tokenizer")
    _check_fresh_supply(cfg, corpus)
    k_init, k_pre = jax.random.split(rng.run_key(cfg.seed, rng.BASE))
    config, params = finetune.build_model(cfg.lm, len(corpus.tokenizer), k_init, corpus.tokenizer)
    corpus_lib.check_vocabulary(cfg, config.vocab_size, corpus)
    if cfg.lm.source == "scratch" and cfg.lm.fit_from == "base":
        cap = cfg.pretrain.max_train_blocks
        blocks = corpus.all_train_NxL[:cap] if cap else corpus.all_train_NxL

        def pretrain():
            logging.info("pre-training the scratch base on %d blocks", blocks.shape[0])
            result = finetune.finetune(
                k_pre, params, config, blocks, corpus.valid_NxL, cfg.pretrain, _log("base")
            )
            return result.params, {"best_step": result.best_step, "history": result.history}

        params = once("base", params, pretrain)
    ref = tail.reference(cfg, corpus.train_MxL, corpus.test_NxL, config.vocab_size)
    (workdir / "reference.json").write_text(json.dumps(ref.summary, indent=2) + "\n")
    return Truth(corpus, config, params, ref, example_prompt(cfg, corpus.tokenizer))


def original_data(key, truth: Truth, cfg) -> np.ndarray:
    """D_0: the first ``data.max_train_blocks`` training blocks, the same for every seed."""
    del key, cfg
    return truth.corpus.train_MxL


def _check_fresh_supply(cfg, corpus: corpus_lib.Corpus) -> None:
    """Regime fresh: the training blocks after D_0 must hold every generation's fresh draws."""
    if cfg.mixing.regime != "fresh":
        return
    M = corpus.train_MxL.shape[0]
    n = round(cfg.mixing.fresh_fraction * M)  # the plan's num_original at M = D_0's blocks
    unused = corpus.all_train_NxL.shape[0] - M
    need = (cfg.num_generations - 1) * n
    require(
        need <= unused,
        "mixing.fresh_fraction",
        f"at most {unused} unused training blocks over {cfg.num_generations - 1} generations "
        f"(D_0 = data.max_train_blocks = {M} of {corpus.all_train_NxL.shape[0]}; "
        f"{n} per generation need {need})",
        cfg.mixing.fresh_fraction,
    )


def fresh_data(key, truth: Truth, n: int, generation: int, cfg) -> np.ndarray:
    """Regime fresh: ``n`` training blocks never used before, ``new_NxL``.

    The blocks after D_0 (``data.max_train_blocks``) in one order drawn once per run from
    ``rng.run_key(cfg.seed, rng.FRESH_ORDER)``; generation g >= 1 takes positions
    ``[(g - 1) n, g n)`` of it: without replacement, disjoint from D_0 and from every other
    generation's, and the same on resume (``key`` unused). Shared by every seed, as D_0 is.
    The scratch base's pre-training (``pretrain.max_train_blocks``) may have seen them.
    """
    del key
    M = truth.corpus.train_MxL.shape[0]
    unused_NxL = truth.corpus.all_train_NxL[M:]
    order = jax.random.permutation(rng.run_key(cfg.seed, rng.FRESH_ORDER), unused_NxL.shape[0])
    return unused_NxL[np.asarray(order)[(generation - 1) * n : generation * n]]


def log_prob(state, x_NxL, truth: Truth, cfg) -> np.ndarray:
    """Curation score: each block's log-likelihood under ``state``, ``logp_N`` float32.

    The block alone, as fine-tuning sees it: the sum of its ``L - 1`` next-token log-probs.
    """
    x_NxL = np.asarray(x_NxL, np.int32)
    loss_N = perplexity.block_losses(state, truth.config, x_NxL, cfg.finetune.eval_batch_size)
    return (-loss_N * (x_NxL.shape[1] - 1)).astype(np.float32)


def init(truth: Truth, cfg):
    del cfg
    return truth.base_params


def _blocks(data) -> np.ndarray:
    """The filled slots of a pool as int32 token blocks."""
    return np.asarray(data.x)[np.asarray(data.weight) > 0]


def _weights(data) -> np.ndarray | None:
    """The filled slots' fit weights, or None when they are all equal (then they change nothing:
    ``finetune`` normalises by the mean weight, and the unweighted step runs)."""
    w = np.asarray(data.weight)
    w = w[w > 0]
    return None if np.all(w == w[0]) else w


def fit(key, state, data, truth: Truth, cfg) -> family.Fitted:
    """Fine-tune the base model, or train a fresh one (``lm.fit_from``), never ``state``: every
    generation starts again. Each block is weighted by its slot's weight (``finetune``: a
    weighted mean of block losses)."""
    del state
    train_x = _blocks(data)
    start = truth.base_params
    if cfg.lm.fit_from == "scratch":
        start = nn.init_params(jax.random.fold_in(key, rng.SCRATCH_INIT), truth.config)
    result = finetune.finetune(
        key,
        start,
        truth.config,
        train_x,
        truth.corpus.valid_NxL,
        cfg.finetune,
        _log("fit"),
        _weights(data),
    )
    best = next(r for r in result.history if r["step"] == result.best_step)
    record = {
        "best_step": result.best_step,
        "num_train_blocks": int(train_x.shape[0]),
        "history": result.history,
    }
    return family.Fitted(result.params, {"valid_perplexity": best["valid_perplexity"]}, record)


def prompt_indices(key, M: int, n: int) -> np.ndarray:
    """Which of the ``M`` original blocks ``n`` continuations start from: every block
    ``n // M`` times in order, then ``n % M`` more drawn without replacement by ``key`` (in order).

    So n = M continues each block once, n < M a random subset (``keep_real``), n > M (``augment``
    with lambda > 1, curation's candidates) each block more than once: a deterministic decoder
    (beam search) then gives identical copies, a sampling one different continuations.
    """
    q, r = divmod(n, M)
    rest = np.sort(np.asarray(jax.random.permutation(key, M))[:r]) if r else np.zeros(0, int)
    return np.concatenate([np.tile(np.arange(M), q), rest]).astype(np.int64)


def continue_prompts(key, params, config, train_MxL: np.ndarray, n: int, gen_cfg) -> np.ndarray:
    """Continue ``n`` original blocks (``prompt_indices``) with ``params``: ``new_NxL`` int32."""
    M, L = train_MxL.shape
    if n == 0:
        return np.zeros((0, L), np.int32)  # augment with lambda * M rounding to 0
    # The prompts are drawn with ``key`` itself and a sampling decoder gets a stream of its own,
    # so a beam run's prompts do not depend on the decoder.
    k_decode = jax.random.fold_in(key, rng.DECODE)
    idx = prompt_indices(key, M, n)
    return decode.continue_blocks(params, config, train_MxL[idx], k_decode, gen_cfg)


def sample(key, state, n: int, truth: Truth, cfg) -> np.ndarray:
    return continue_prompts(key, state, truth.config, truth.corpus.train_MxL, n, cfg.generate)


def metrics(key, state, data, origin: family.Origin, cfg) -> family.Measured:
    """Test and tail metrics of model g; its training data scored by model 0; the example."""
    truth: Truth = origin.truth
    train_x = _blocks(data)
    eval_bs = cfg.finetune.eval_batch_size
    data_ppl_N = perplexity.sequence_perplexities(origin.state0, truth.config, train_x, eval_bs)
    out = tail.model_metrics(state, truth.config, truth.corpus.test_NxL, truth.tail, cfg)
    out |= tail.data_metrics(data_ppl_N, train_x, truth.tail, cfg, truth.config.vocab_size)
    out |= diversity.metrics(train_x, cfg.diversity)
    ids_BxL, mask_BxL = truth.example_BxL
    new_BxN = decode.continue_blocks(state, truth.config, ids_BxL, key, cfg.generate, mask_BxL)
    text = truth.corpus.tokenizer.decode(new_BxN[0].tolist())
    logging.info("test ppl %.2f, data ppl median %.2f", out["test_perplexity"], out["data_ppl_q50"])
    return family.Measured(out, data_ppl_N.astype(np.float32), {"text": text})


def write_examples_md(cfg, workdir: Path) -> Path:
    """``DIR/examples.md`` from ``DIR/examples.jsonl`` (the paper's Example 1 table)."""
    rows = [json.loads(x) for x in (workdir / "examples.jsonl").read_text().splitlines() if x]
    lines = [
        "# Example continuations (the paper's Example 1)",
        "",
        f"Prompt: {cfg.example.prompt}",
        "",
    ]
    for r in rows:
        text = r["text"].replace("\n", " ")
        lines.append(f"- generation {r['generation']}, seed {r['seed']}: {text}")
    path = workdir / "examples.md"
    path.write_text("\n".join(lines) + "\n")
    return path


class SavedModels:
    """A run's fine-tuned models opened for analysis (``runs.open_run``), shaped by the run's own
    tokenizer (``DIR/tokenizer/``): no corpus or base model is built until ``sample`` needs D_0."""

    def __init__(self, cfg, workdir: Path):
        from transformers import AutoTokenizer

        self.cfg, self.tokenizer_dir = cfg, workdir / "tokenizer"
        if not self.tokenizer_dir.is_dir():
            raise FileNotFoundError(
                f"{self.tokenizer_dir}: missing; the LM family saves its tokenizer here"
            )
        tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_dir)
        vocab_size = len(tokenizer)
        box = {}

        def params(key):
            box["config"], p = finetune.build_model(cfg.lm, vocab_size, key, tokenizer)
            return p

        self.template = jax.eval_shape(params, jax.random.key(0))
        self.config = box["config"]

    @functools.cached_property
    def train_MxL(self) -> np.ndarray:
        return corpus_lib.load(self.cfg).train_MxL

    def sample(self, key, state, n: int) -> np.ndarray:
        """Continue ``n`` of D_0's blocks (drawn without replacement by ``key``) with ``state``,
        as the chain makes the next generation's data."""
        train_MxL = self.train_MxL
        M = train_MxL.shape[0]
        require(1 <= n <= M, "sample: n", f"in [1, {M}] (the original blocks)", n)
        return continue_prompts(key, state, self.config, train_MxL, n, self.cfg.generate)

    def export(self, state, directory) -> Path:
        """``state`` and the run's tokenizer as a Hugging Face directory that
        ``transformers.AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer`` load."""
        import shutil

        from collapse_jax.families.lm import convert

        directory = convert.save_pretrained(state, self.config, directory)
        for f in self.tokenizer_dir.iterdir():
            if f.is_file():
                shutil.copy2(f, directory / f.name)
        return Path(directory)


FAMILY = family.HostFamily(
    name="opt_wikitext",
    validate=validate,
    reference=reference,
    original_data=original_data,
    init=init,
    fit=fit,
    sample=sample,
    metrics=metrics,
    finish=write_examples_md,
    notes="examples.jsonl",
    outputs=("arrays", "examples.jsonl", "examples.md", "reference.json", "tokenizer"),
    fresh_data=fresh_data,
    log_prob=log_prob,
    open_saved=SavedModels,
)
