"""The pipeline's one decoding entry: ``continue_blocks`` dispatches on ``generate.strategy``."""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import logging

from collapse_jax import errors, rng
from collapse_jax.families.lm import opt_cache, perplexity
from collapse_jax.families.lm.decode import beam, sampling

STRATEGIES = ("beam", "greedy", "sample")


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def validate(cfg) -> None:
    """Raise a one-line ``ConfigError`` naming any bad ``cfg.generate`` decoding field."""
    strategy = errors.check(
        cfg, "generate.strategy", lambda v: v in STRATEGIES, f"one of {STRATEGIES}"
    )
    errors.check(
        cfg,
        "generate.num_beams",
        lambda v: isinstance(v, int) and v >= 1,
        "an integer >= 1 (used by strategy=beam)",
    )
    errors.check(cfg, "generate.length_penalty", _number, "a number")
    errors.check(
        cfg,
        "generate.early_stopping",
        lambda v: v in (True, False, "never"),
        'True, False, "never"',
    )
    errors.check(cfg, "generate.repetition_penalty", lambda v: _number(v) and v > 0, "> 0")
    errors.check(
        cfg,
        "generate.no_repeat_ngram_size",
        lambda v: isinstance(v, int) and v >= 0,
        "an integer >= 0",
    )
    errors.check(
        cfg,
        "generate.suppress_tokens",
        lambda v: (
            isinstance(v, tuple | list)
            and all(isinstance(t, int) and t >= 0 for t in v)
            and len(set(v)) == len(v)
        ),
        "distinct token ids >= 0",
    )
    errors.check(
        cfg, "generate.batch_size", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"
    )
    # The sampling fields only act with strategy=sample: a changed one elsewhere is a mistake
    # (e.g. a temperature set without switching the strategy), not something to ignore silently.
    # That reason comes first in the message: the value itself may be fine for sampling.
    for name, ok, expected, off in (
        ("temperature", lambda v: _number(v) and v > 0, "> 0", 1.0),
        ("top_k", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0, 0 = off", 0),
        ("top_p", lambda v: _number(v) and 0 < v <= 1, "in (0, 1], 1 = off", 1.0),
    ):
        path = f"generate.{name}"
        value = errors.check(cfg, path, ok, expected)
        if strategy != "sample" and value != off:
            raise errors.ConfigError(
                f"{path}: only sampling uses it, and generate.strategy is {strategy!r}: "
                f"expected {off} (off) or --config.generate.strategy=sample, got {value!r}"
            )


def continue_blocks(
    params, model_cfg, prompts_NxL, key: jax.Array, gen_cfg, prompt_mask_NxL=None
) -> np.ndarray:
    """Continue every prompt by ``gen_cfg.max_new_tokens`` tokens with ``gen_cfg.strategy``:
    ``new_NxT`` int32 (after an EOS, if any can occur, the pad id).

    ``model_cfg``: an OPT, GPT-2 or Llama config (or any ``decode.LanguageModel``). ``key``: the
    generation's key; sampling draws from ``fold_in(key, rng.SAMPLE)``, prompt row n with
    ``fold_in(that, n)``, so the result does not depend on ``gen_cfg.batch_size``. Prompts run in
    batches of ``gen_cfg.batch_size`` rows, the last one padded: one compiled shape for all.
    """
    model = model_cfg if hasattr(model_cfg, "next_logits") else opt_cache.CausalLM(model_cfg)
    g = gen_cfg
    common = dict(
        max_new_tokens=g.max_new_tokens,
        min_new_tokens=g.min_new_tokens,
        repetition_penalty=g.repetition_penalty,
        no_repeat_ngram_size=g.no_repeat_ngram_size,
        suppress_tokens=tuple(g.suppress_tokens),
    )
    errors.require(
        g.strategy in STRATEGIES, "generate.strategy", f"one of {STRATEGIES}", g.strategy
    )
    prompts_NxL = np.asarray(prompts_NxL, np.int32)
    if prompt_mask_NxL is None:
        rows_Nx1xL = prompts_NxL[:, None]
    else:
        rows_Nx1xL = np.stack([prompts_NxL, np.asarray(prompt_mask_NxL, np.int32)], axis=1)
    sample_key = jax.random.fold_in(key, rng.SAMPLE)
    n, out, done, t0 = prompts_NxL.shape[0], [], 0, time.perf_counter()
    for batch, real in perplexity.padded_batches(rows_Nx1xL, g.batch_size):
        ids_BxL = batch[:, 0]
        mask_BxL = None if prompt_mask_NxL is None else batch[:, 1]
        if g.strategy == "beam":
            res = beam.beam_search(
                model,
                params,
                ids_BxL,
                mask_BxL,
                num_beams=g.num_beams,
                length_penalty=g.length_penalty,
                early_stopping=g.early_stopping,
                **common,
            )
        elif g.strategy == "greedy":
            res = sampling.greedy(model, params, ids_BxL, mask_BxL, **common)
        else:
            res = sampling.sample(
                model,
                params,
                ids_BxL,
                mask_BxL,
                key=sample_key,
                temperature=g.temperature,
                top_k=g.top_k,
                top_p=g.top_p,
                first_row=done,
                **common,
            )
        out.append(np.asarray(jax.device_get(res.tokens_BxN), np.int32)[:real])
        done += real
        rate = done / max(time.perf_counter() - t0, 1e-9)
        logging.info("%s decoding %d/%d prompts | %.1f prompts/s", g.strategy, done, n, rate)
    return np.concatenate(out)
