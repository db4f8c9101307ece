"""The paper's recursive LLM experiment as the chain's ``opt_wikitext`` family (a ``driver``).

Shumailov et al., Sec. 4 / Fig. 1: OPT is fine-tuned on WikiText-2 token blocks (generation 0);
generation n >= 1 continues every original training block (the prompt, ``block_size`` tokens)
with model n-1 by 5-way beam search of exactly ``block_size`` new tokens (EOS blocked), and those
new tokens form one synthetic block. Model n starts again from the base (pretrained) model and is
fine-tuned on the synthetic blocks, mixed with original blocks per ``cfg.mixing``
(``mixing.next_pool``: ``replace`` is the paper's 5-epoch regime, ``keep_real`` with gamma = 0.1
the 10-epoch one; with ``keep_real`` only the ``alpha * M`` model blocks are generated, from a
random subset of the prompts). Each fine-tuning keeps the parameters best on the real validation
blocks. Seeds are a Python loop (an OPT does not vmap over seeds); generations are the outer
loop, so ``metrics.jsonl`` gets one line per generation with one value per seed, as the chain's.

Keys: ``rng.generation_key(seed_keys[s], g)`` split into (prompt choice, mixing, training subset,
fine-tuning); beam search is deterministic. The scratch base model (``lm.source=scratch``: the
CPU stand-in for a pretrained OPT) is pre-trained once with ``fold_in(key(cfg.seed), BASE_STREAM)``
and shared by every seed and generation.

Resumption. ``DIR/checkpoints/`` holds (Orbax, step = generation):
  ``base/``            the pre-trained scratch base (step 0), if any
  ``seed_{s}/data``    the dataset pool of generation g (``mixing.Data``), saved right after the
                       beam search, before fine-tuning starts
  ``seed_{s}/params``  the fine-tuned parameters of generation g, with the generation's metrics,
                       best step and example continuation as JSON metadata
  (both keep the latest ``checkpoint.max_to_keep`` generations and ``checkpoint.keep_generations``)
  ``seed_{s}/gen0``    generation 0's parameters, kept for good (the scorer of every generation)
A generation's line is appended to ``metrics.jsonl`` once every seed has saved its parameters. A
rerun truncates ``metrics.jsonl``/``examples.jsonl`` to their complete generations, reads back the
seeds already done, reuses a saved synthetic dataset, and recomputes only what is missing; since
every step is a deterministic function of (keys, saved arrays), the files are byte-identical to an
uninterrupted run's. A crash during generation g's beam search loses only that seed's beam search.

Metrics (per generation and seed):
  test_perplexity, valid_perplexity     of model g on the real test / validation blocks
  data_log_ppl_mean, data_log_ppl_std,  per-block perplexity of generation g's training data under
  data_ppl_q{05,50,95,99}                the generation-0 model of the same seed (the paper's Fig. 1
                                        histograms; the arrays are DIR/arrays/gen_{g}_seed_{s}.npy)
  distinct_{n}                          distinct n-grams / all n-grams (within blocks) of the data
  data_rare_share_q{Q}                  share of the data's tokens that are rare at level Q
  rare_mass_q{Q}                        model g's mean probability, over the real test positions,
                                        of the next token being rare at level Q (the tail mass that
                                        collapse removes; DIR/reference.json holds the empirical
                                        share of such tokens among the test targets)
  rare_token_nll_q{Q}, rare_{n}gram_nll_q{Q}
                                        mean negative log-likelihood under model g of the test
                                        occurrences of rare tokens / n-grams: for an n-gram
                                        x_{t-n+1..t}, -log p(x_{t-n+2..t} | x_{<t-n+2})
``rare`` at level q (``cfg.tail.quantiles``, reported as Q = round(100 q)) is defined on the
original training blocks D_0: sort the token (n-gram) types that occur in D_0 by count and take
whole count classes, from the rarest up, until they hold at least a fraction q of D_0's tokens
(n-grams); ties in count are all in or all out, so the set is well defined and never empty.
N-grams are counted within blocks. For the test n-gram metrics only n-grams that occur in D_0
count (an unseen n-gram has no training frequency).
"""

import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from collapse_jax import family, mixing, rng
from collapse_jax import metrics as metrics_lib
from collapse_jax.checkpoint import Checkpointer, UnreadableCheckpoint
from collapse_jax.data import fetch
from collapse_jax.errors import CheckpointError, ConfigError, require
from collapse_jax.families.lm import decode, finetune, opt, perplexity

# fold_in constant of the base model's key: outside any seed index in use.
BASE_STREAM = 0xFFFFFFFF
# fold_in constant of the example continuation's key under the generation key (sampling
# strategies). Not a small integer: fold_in(key, i) equals split(key, n)[i] in jax's threefry.
EXAMPLE_STREAM = 0x4558414D


def _qname(q: float) -> str:
    return f"q{round(100 * q):02d}"


# ----------------------------------------------------------------------------------------------
# Config


def validate(cfg) -> None:
    """Raise ``ConfigError`` naming any bad pipeline field, before any data or model is loaded."""
    finetune.validate(cfg)
    decode.validate(cfg)
    # The LM's own loop carries the regimes it had before the one-chain move; the newer data
    # policies (mixing.py) reach it when it goes through chain.py.
    lm_regimes = ("replace", "accumulate", "accumulate_subsample", "keep_real", "custom")
    m = cfg.mixing
    require(m.regime in lm_regimes, "mixing.regime", f"one of {lm_regimes} for the LM", m.regime)
    require(
        m.curation.score == "none", "mixing.curation.score", "'none' for the LM", m.curation.score
    )
    w = (m.real_weight, m.synthetic_weight)
    require(w == (1.0, 1.0), "mixing.real_weight, synthetic_weight", "1, 1 for the LM", w)
    g, d = cfg.generate, cfg.data
    require(
        isinstance(g.num_beams, int) and g.num_beams >= 1,
        "generate.num_beams",
        "an integer >= 1",
        g.num_beams,
    )
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
    require(g.batch_size >= 1, "generate.batch_size", ">= 1", g.batch_size)
    qs = tuple(cfg.tail.quantiles)
    require(
        len(qs) > 0 and all(0 < q < 1 for q in qs),
        "tail.quantiles",
        "fractions in (0, 1)",
        qs,
    )
    require(len({_qname(q) for q in qs}) == len(qs), "tail.quantiles", "distinct percentages", qs)
    orders = tuple(cfg.tail.ngram_orders)
    require(
        all(isinstance(n, int) and 2 <= n <= d.block_size for n in orders),
        "tail.ngram_orders",
        f"integers in [2, {d.block_size}]",
        orders,
    )
    dist = tuple(cfg.tail.distinct_orders)
    require(
        all(isinstance(n, int) and 1 <= n <= d.block_size for n in dist),
        "tail.distinct_orders",
        f"integers in [1, {d.block_size}]",
        dist,
    )
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


# ----------------------------------------------------------------------------------------------
# Data and the base model


class Corpus(NamedTuple):
    tokenizer: Any
    train_MxL: np.ndarray  # D_0: the original training blocks (the prompts)
    valid_NxL: np.ndarray
    test_NxL: np.ndarray
    pretrain_NxL: np.ndarray  # the scratch base's pre-training blocks (a superset of D_0)


def load_corpus(cfg, tokenizer_dir: Path | None) -> Corpus:
    """Tokenize the splits once; D_0 is the first ``data.max_train_blocks`` training blocks."""
    from collapse_jax.data import wikitext
    from collapse_jax.families.lm import tokenizer as tokenizer_lib

    lines = wikitext.split_lines(cfg.data)
    tok = tokenizer_lib.load(cfg.tokenizer, lines["train"])
    if tokenizer_dir is not None:
        tok.save_pretrained(tokenizer_dir)
    uncapped = ml_collections.ConfigDict(cfg.data.to_dict())
    uncapped.max_train_blocks = 0
    blocks = wikitext.blocks(uncapped, tok, lines)
    train = blocks["train"]
    cap = cfg.data.max_train_blocks
    pre_cap = cfg.pretrain.max_train_blocks
    return Corpus(
        tok,
        train[:cap] if cap else train,
        blocks["valid"],
        blocks["test"],
        train[:pre_cap] if pre_cap else train,
    )


def base_model(cfg, corpus: Corpus, ckpt_dir: Path) -> tuple[opt.OPTConfig, Any]:
    """The model every generation starts from: the pretrained OPT, or the scratch OPT pre-trained
    once on the training blocks (cached as ``ckpt_dir/base``)."""
    k_init, k_pre = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed), BASE_STREAM))
    config, params = finetune.build_model(cfg.lm, len(corpus.tokenizer), k_init)
    max_id = max(int(b.max()) for b in (corpus.train_MxL, corpus.valid_NxL, corpus.test_NxL))
    if max_id >= config.vocab_size:
        raise ConfigError(
            f"lm.source={cfg.lm.source}: vocab_size {config.vocab_size} is too small for "
            f"tokenizer.source={cfg.tokenizer.source} (token id {max_id})"
        )
    if cfg.lm.source != "scratch":
        return config, params
    with Checkpointer(ckpt_dir / "base", max_to_keep=1, async_save=False) as ckpt:
        if ckpt.latest_step() == 0:
            params, _ = ckpt.restore(0, params)
            return config, params
        logging.info("pre-training the scratch base on %d blocks", corpus.pretrain_NxL.shape[0])
        result = finetune.finetune(
            k_pre, params, config, corpus.pretrain_NxL, corpus.valid_NxL, cfg.pretrain, _log("base")
        )
        ckpt.save(0, result.params, {"best_step": result.best_step, "history": result.history})
    return config, result.params


def _log(label: str):
    def log(row):
        logging.info("%s finetune %s", label, {k: v for k, v in row.items() if v is not None})

    return log


# ----------------------------------------------------------------------------------------------
# Tail reference: rare tokens and n-grams of D_0


def ngram_keys(blocks_NxL: np.ndarray, n: int, vocab_size: int) -> np.ndarray:
    """Every n-gram within each block as one int64 key: ``keys_Nx(L-n+1)``."""
    if vocab_size**n >= 2**63:
        raise ConfigError(f"tail: {n}-grams over a vocabulary of {vocab_size} overflow int64 keys")
    blocks = np.asarray(blocks_NxL, np.int64)
    L = blocks.shape[1]
    keys = np.zeros((blocks.shape[0], L - n + 1), np.int64)
    for k in range(n):
        keys = keys * vocab_size + blocks[:, k : L - n + 1 + k]
    return keys


def rare_classes(counts_T: np.ndarray, q: float) -> np.ndarray:
    """Mask of the rare types: whole count classes from the rarest up until they hold >= q of the
    mass (``counts_T`` > 0 are the types that occur)."""
    values, per_class = np.unique(counts_T[counts_T > 0], return_counts=True)
    cum = np.cumsum(values * per_class) / counts_T.sum()
    threshold = values[min(int(np.searchsorted(cum, q)), len(values) - 1)]
    return (counts_T > 0) & (counts_T <= threshold)


class TailReference(NamedTuple):
    rare_QxV: np.ndarray  # bool: token v is rare at level q
    # (name, target mask Bx(L-1) of rare occurrences in the test blocks, n) per order and level
    test_masks: tuple
    summary: dict  # thresholds, set sizes and empirical shares (DIR/reference.json)


def tail_reference(cfg, corpus: Corpus, vocab_size: int) -> TailReference:
    train, test = corpus.train_MxL, corpus.test_NxL
    qs = tuple(cfg.tail.quantiles)
    counts_V = np.bincount(train.ravel(), minlength=vocab_size)
    rare_QxV = np.stack([rare_classes(counts_V, q) for q in qs])
    targets = test[:, 1:]
    summary: dict = {"num_train_blocks": int(train.shape[0]), "vocab_size": vocab_size}
    masks = []
    for q, rare_V in zip(qs, rare_QxV, strict=True):
        name = f"rare_token_nll_{_qname(q)}"
        masks.append((name, rare_V[targets], 1))
        summary[f"rare_tokens_{_qname(q)}"] = {
            "types": int(rare_V.sum()),
            "max_count": int(counts_V[rare_V].max()),
            "train_share": float(counts_V[rare_V].sum() / counts_V.sum()),
            "test_share": float(rare_V[targets].mean()),
        }
    for n in cfg.tail.ngram_orders:
        uniq, counts = np.unique(ngram_keys(train, n, vocab_size), return_counts=True)
        test_keys = ngram_keys(test, n, vocab_size)
        # The n-gram ending at target j (token j + 1) starts at token j + 2 - n.
        pad = np.zeros((test.shape[0], n - 2), bool)
        for q in qs:
            rare = uniq[rare_classes(counts, q)]
            mask = np.concatenate([pad, np.isin(test_keys, rare)], axis=1)
            masks.append((f"rare_{n}gram_nll_{_qname(q)}", mask, n))
            summary[f"rare_{n}grams_{_qname(q)}"] = {
                "types": int(rare.size),
                "test_occurrences": int(mask.sum()),
            }
    for name, mask, _ in masks:
        if not mask.any():
            raise ConfigError(
                f"tail: {name} has no occurrence in the {test.shape[0]} test blocks; use fewer "
                "tail.ngram_orders, larger tail.quantiles or more data.max_eval_blocks"
            )
    return TailReference(rare_QxV, tuple(masks), summary)


# ----------------------------------------------------------------------------------------------
# Model-side metrics on the test blocks


def _test_scores(params, config: opt.OPTConfig, blocks_BxL, rare_QxV):
    """Next-token NLL ``nll_Bx(L-1)`` and the probability of a rare next token ``mass_Bx(L-1)xQ``."""
    logits_BxLxV, _ = opt.forward(params, config, blocks_BxL)
    logp_BxTxV = jax.nn.log_softmax(logits_BxLxV[:, :-1].astype(jnp.float32), axis=-1)
    nll_BxT = -jnp.take_along_axis(logp_BxTxV, blocks_BxL[:, 1:, None], axis=-1)[..., 0]
    mass_BxTxQ = jnp.einsum(
        "btv,qv->btq",
        jnp.exp(logp_BxTxV),
        rare_QxV.astype(jnp.float32),
        precision=jax.lax.Precision.HIGHEST,
    )
    return nll_BxT, mass_BxTxQ


_test_scores_jit = jax.jit(_test_scores, static_argnames="config")


def model_metrics(params, config, test_NxL, tail: TailReference, cfg) -> dict[str, float]:
    """Test perplexity and the tail metrics of one model (batches padded to one shape)."""
    bs = cfg.finetune.eval_batch_size
    rare = jnp.asarray(tail.rare_QxV)
    n = test_NxL.shape[0]
    nll, mass = [], []
    for batch, real in perplexity.padded_batches(test_NxL, bs):
        a, b = jax.device_get(_test_scores_jit(params, config, jnp.asarray(batch), rare))
        nll.append(np.asarray(a, np.float64)[:real])
        mass.append(np.asarray(b, np.float64)[:real])
    nll_NxT, mass_NxTxQ = np.concatenate(nll), np.concatenate(mass)
    out = {"test_perplexity": float(np.exp(nll_NxT.mean()))}
    for i, q in enumerate(cfg.tail.quantiles):
        out[f"rare_mass_{_qname(q)}"] = float(mass_NxTxQ[..., i].mean())
    # Sum of the last n - 1 token NLLs of each n-gram, by a cumulative sum along the targets.
    csum = np.concatenate([np.zeros((n, 1)), np.cumsum(nll_NxT, axis=1)], axis=1)
    for name, mask, order in tail.test_masks:
        j = np.nonzero(mask)
        span = max(order - 1, 1)  # a rare token (order 1) is scored on itself
        total = csum[j[0], j[1] + 1] - csum[j[0], j[1] + 1 - span]
        out[name] = float(total.mean())
    return out


# ----------------------------------------------------------------------------------------------
# Data-side metrics


def data_metrics(data_ppl_N: np.ndarray, x_NxL: np.ndarray, tail: TailReference, cfg, vocab_size):
    log_ppl = np.log(data_ppl_N)
    out = {"data_log_ppl_mean": float(log_ppl.mean()), "data_log_ppl_std": float(log_ppl.std())}
    for p in (5, 50, 95, 99):
        out[f"data_ppl_q{p:02d}"] = float(np.percentile(data_ppl_N, p))
    for q, rare_V in zip(cfg.tail.quantiles, tail.rare_QxV, strict=True):
        out[f"data_rare_share_{_qname(q)}"] = float(rare_V[x_NxL].mean())
    for n in cfg.tail.distinct_orders:
        keys = ngram_keys(x_NxL, n, vocab_size)
        out[f"distinct_{n}"] = float(np.unique(keys).size / keys.size)
    return out


# ----------------------------------------------------------------------------------------------
# Generation


def continue_blocks(model, params, prompts_NxL: np.ndarray, gen_cfg, key) -> np.ndarray:
    """``decode.continue_blocks`` (kept by name: tests count its calls)."""
    return decode.continue_blocks(params, model, prompts_NxL, key, gen_cfg)


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


class SeedCheckpoints(NamedTuple):
    data: Checkpointer
    params: Checkpointer
    gen0: Checkpointer

    def close(self):
        for c in self:
            c.close()

    def wait(self):
        for c in self:
            c.wait()


class Context(NamedTuple):
    cfg: Any
    corpus: Corpus
    config: opt.OPTConfig
    model: Any  # decode.LanguageModel
    base_params: Any
    plan: mixing.Plan
    tail: TailReference
    example_BxL: tuple[np.ndarray, np.ndarray]  # (ids, mask) of the example prompt
    arrays_dir: Path


def _float32(d: dict) -> dict:
    # Metrics go to metrics.jsonl as float32; rounding before they are stored makes a value read
    # back from a checkpoint's JSON identical to the one computed in an uninterrupted run.
    return {k: float(np.float32(v)) for k, v in d.items()}


def _save_array(path: Path, a: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, a)
    os.replace(tmp, path)


def _data_abstract(ctx: Context) -> mixing.Data:
    return mixing.Data(
        jax.ShapeDtypeStruct((ctx.plan.capacity, ctx.cfg.data.block_size), jnp.int32),
        jax.ShapeDtypeStruct((ctx.plan.capacity,), jnp.float32),
    )


def _readable(ctx: Context, ckpt: SeedCheckpoints, cache: dict, g: int) -> bool:
    """Restore generation ``g``'s params and pool (what ``g + 1`` starts from) into ``cache``;
    an unreadable one is set aside with one warning line (``checkpoint.restore_newest``)."""
    cache.clear()
    if g not in ckpt.params.all_steps():
        return True  # missing, not unreadable: the generation loop says so
    try:
        cache["params"], _ = ckpt.params.restore(g, ctx.base_params)
        if g >= 1 and g in ckpt.data.all_steps():
            cache["pool"], _ = ckpt.data.restore(g, _data_abstract(ctx))
    except UnreadableCheckpoint as e:
        cache.clear()
        for c in (ckpt.params, ckpt.data):
            if g in c.all_steps() and str(c.directory / str(g)) in str(e):
                aside = c.set_aside(g)
                logging.warning("%s; moved to %s, resuming from an earlier generation", e, aside)
        return False
    return True


def run_seed_generation(ctx: Context, ckpt: SeedCheckpoints, cache: dict, s: int, g: int, key):
    """Generation ``g`` of seed ``s``: its metrics record (computed, or read back when done).

    ``cache`` holds this seed's ``params`` (of generation g-1), ``pool`` (D_{g-1}) and ``params0``
    from earlier in this process; anything missing is restored from the checkpoints.
    """
    cfg, corpus = ctx.cfg, ctx.corpus
    data_abstract = _data_abstract(ctx)
    if g in ckpt.params.all_steps():
        params, meta = ckpt.params.restore(g, ctx.base_params)
        cache["params"] = params
        cache.pop("pool", None)
        return meta

    k_prompt, k_mix, k_train, k_fit = jax.random.split(key, 4)
    x0 = jnp.asarray(corpus.train_MxL)
    M = corpus.train_MxL.shape[0]
    if g == 0:
        pool = mixing.initial_pool(ctx.plan, x0)
    elif g in ckpt.data.all_steps():
        pool, _ = ckpt.data.restore(g, data_abstract)
        logging.info("seed %d generation %d: synthetic data restored", s, g)
    else:
        if "params" not in cache:
            cache["params"], _ = ckpt.params.restore(g - 1, ctx.base_params)
        if "pool" not in cache:
            if g == 1:
                cache["pool"] = mixing.initial_pool(ctx.plan, x0)
            else:
                cache["pool"], _ = ckpt.data.restore(g - 1, data_abstract)
        if ctx.plan.num_model == M:
            prompt_idx = np.arange(M)
        else:
            perm = np.asarray(jax.random.permutation(k_prompt, M))
            prompt_idx = np.sort(perm[: ctx.plan.num_model])
        t0 = time.perf_counter()
        new_NxL = continue_blocks(
            ctx.model, cache["params"], corpus.train_MxL[prompt_idx], cfg.generate, key
        )
        logging.info(
            "seed %d generation %d: %d synthetic blocks in %.1fs",
            s,
            g,
            new_NxL.shape[0],
            time.perf_counter() - t0,
        )
        pool = mixing.next_pool(k_mix, ctx.plan, cache["pool"], jnp.asarray(new_NxL), x0, g)
        ckpt.data.save(g, pool, {"generation": g, "seed_index": s})
    data = mixing.training_data(k_train, ctx.plan, pool)
    weight = np.asarray(data.weight)
    train_x = np.asarray(data.x)[weight > 0]

    result = finetune.finetune(
        k_fit,
        ctx.base_params,
        ctx.config,
        train_x,
        corpus.valid_NxL,
        cfg.finetune,
        _log(f"seed {s} generation {g}"),
    )
    params = result.params
    if g == 0:
        cache["params0"] = params
    elif "params0" not in cache:
        cache["params0"], _ = ckpt.gen0.restore(0, ctx.base_params)

    eval_bs = cfg.finetune.eval_batch_size
    data_ppl_N = perplexity.sequence_perplexities(cache["params0"], ctx.config, train_x, eval_bs)
    _save_array(ctx.arrays_dir / f"gen_{g}_seed_{s}.npy", data_ppl_N.astype(np.float32))
    best = next(r for r in result.history if r["step"] == result.best_step)
    metrics = {"valid_perplexity": best["valid_perplexity"]}
    metrics |= model_metrics(params, ctx.config, corpus.test_NxL, ctx.tail, cfg)
    metrics |= data_metrics(data_ppl_N, train_x, ctx.tail, cfg, ctx.config.vocab_size)
    example = decode.continue_blocks(
        params,
        ctx.model,
        ctx.example_BxL[0],
        jax.random.fold_in(key, EXAMPLE_STREAM),
        cfg.generate,
        prompt_mask_NxL=ctx.example_BxL[1],
    )
    text = ctx.corpus.tokenizer.decode(example[0].tolist())
    meta = {
        "generation": g,
        "seed_index": s,
        "metrics": _float32(metrics),
        "best_step": result.best_step,
        "num_train_blocks": int(train_x.shape[0]),
        "example": text,
        "history": result.history,
    }
    if g == 0:
        ckpt.gen0.save(0, params, {"generation": 0, "seed_index": s})
    ckpt.params.save(g, params, meta)
    cache["params"], cache["pool"] = params, pool
    logging.info(
        "seed %d generation %d: test ppl %.2f, data ppl median %.2f",
        s,
        g,
        metrics["test_perplexity"],
        metrics["data_ppl_q50"],
    )
    return meta


# ----------------------------------------------------------------------------------------------
# The driver


def _last_complete(path: Path) -> int:
    """The last generation with a complete line in a JSONL file whose lines start with it (-1)."""
    if not path.exists():
        return -1
    last = -1
    for line in path.read_bytes().split(b"\n")[:-1]:
        g = int(line[len(b'{"generation": ') :].split(b",", 1)[0].rstrip(b"}"))
        last = max(last, g)
    return last


def _example_line(meta: dict) -> str:
    return (
        json.dumps(
            {"generation": meta["generation"], "seed": meta["seed_index"], "text": meta["example"]},
            ensure_ascii=False,
        )
        + "\n"
    )


def write_examples_md(workdir: Path, prompt_text: str) -> Path:
    """``DIR/examples.md`` from ``DIR/examples.jsonl`` (the paper's Example 1 table)."""
    rows = [json.loads(x) for x in (workdir / "examples.jsonl").read_text().splitlines() if x]
    lines = ["# Example continuations (the paper's Example 1)", "", f"Prompt: {prompt_text}", ""]
    for r in rows:
        text = r["text"].replace("\n", " ")
        lines.append(f"- generation {r['generation']}, seed {r['seed']}: {text}")
    path = workdir / "examples.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_pipeline(cfg, workdir) -> None:
    """Run or resume the recursive fine-tuning pipeline in ``workdir`` (``chain.run`` calls it)."""
    workdir = Path(os.path.abspath(workdir))
    ckpt_dir = workdir / "checkpoints"
    arrays_dir = workdir / "arrays"
    arrays_dir.mkdir(parents=True, exist_ok=True)
    G, S = cfg.num_generations, cfg.num_seeds
    if cfg.compilation_cache_dir:
        # Each fine-tuning jits its own train step; with the persistent cache every generation,
        # seed and rerun after the first reuses the compiled executable (process-wide setting).
        path = os.path.expanduser(cfg.compilation_cache_dir)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    with jax.default_matmul_precision(cfg.matmul_precision):
        corpus = load_corpus(cfg, workdir / "tokenizer")
        fetch.write_record(workdir)
        plan = mixing.plan(cfg.mixing, corpus.train_MxL.shape[0], G)
        config, base_params = base_model(cfg, corpus, ckpt_dir)
        tail = tail_reference(cfg, corpus, config.vocab_size)
        (workdir / "reference.json").write_text(json.dumps(tail.summary, indent=2) + "\n")
        ctx = Context(
            cfg,
            corpus,
            config,
            decode.opt_model(config),
            base_params,
            plan,
            tail,
            example_prompt(cfg, corpus.tokenizer),
            arrays_dir,
        )
        writer = metrics_lib.MetricsWriter(workdir / "metrics.jsonl")
        examples = metrics_lib.MetricsWriter(workdir / "examples.jsonl")
        last = _last_complete(writer.path)
        if last >= G:
            raise CheckpointError(f"{writer.path} holds generation {last} but num_generations={G}")
        keep = max(2, cfg.checkpoint.max_to_keep)  # generation g needs g-1's params and pool
        kept = cfg.checkpoint.keep_generations  # for good, for runs.open_run
        ckpts = []
        try:
            for s in range(S):
                ckpts.append(
                    SeedCheckpoints(
                        Checkpointer(ckpt_dir / f"seed_{s}" / "data", keep, keep_steps=kept),
                        Checkpointer(ckpt_dir / f"seed_{s}" / "params", keep, keep_steps=kept),
                        Checkpointer(ckpt_dir / f"seed_{s}" / "gen0", 1),
                    )
                )
            caches: list[dict] = [{} for _ in range(S)]
            # Resume after the newest generation every seed can read back (an unreadable
            # checkpoint is set aside and its generation run again).
            while last >= 0 and not all(
                _readable(ctx, ckpts[s], caches[s], last) for s in range(S)
            ):
                last -= 1
            writer.truncate(last if last >= 0 else None)
            examples.truncate(last if last >= 0 else None)
            keys_S = rng.seed_keys(cfg.seed, S)
            progress = metrics_lib.Progress(G - 1, max(last, 0), cfg.log_every_seconds, "opt ")
            for g in range(last + 1, G):
                if g > 0:
                    for s in range(S):
                        if g - 1 not in ckpts[s].params.all_steps():
                            raise CheckpointError(
                                f"{ckpt_dir}/seed_{s}/params: generation {g - 1} is missing; "
                                "the run cannot resume (use a new --workdir or --overwrite)"
                            )
                metas = [
                    run_seed_generation(
                        ctx, ckpts[s], caches[s], s, g, rng.generation_key(keys_S[s], g)
                    )
                    for s in range(S)
                ]
                for c in ckpts:
                    c.wait()
                names = sorted(metas[0]["metrics"])
                m_1xS = {
                    k: np.asarray([[m["metrics"][k] for m in metas]], np.float32) for k in names
                }
                bad = metrics_lib.first_nonfinite([g], m_1xS)
                if bad is not None:
                    raise FloatingPointError(bad[1])
                writer.write([g], m_1xS)
                with open(examples.path, "a") as f:
                    f.write("".join(_example_line(m) for m in metas))
                progress.update(g, force=True)
        finally:
            for c in ckpts:
                c.close()
        write_examples_md(workdir, cfg.example.prompt)


FAMILY = family.HostFamily(name="opt_wikitext", validate=validate, driver=run_pipeline)
