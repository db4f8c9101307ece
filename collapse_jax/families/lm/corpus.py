"""WikiText-2 or TinyStories token blocks for the LM: tokenized once, D_0 and the evaluation splits.

One loader for the single fine-tuning (``finetune.run_finetune``) and the recursive chain
(``families/lm/family.py``), and one vocabulary check for both. The blocks are cached in memory
(runs, resumes and ``open_run`` in one process share them), and TinyStories' also on disk under
the data cache (``fetch.cache_dir()/tokenized``), keyed by the data config, the tokenizer's own
definition and the text: its 2 million stories are tokenized once per machine.
"""

import hashlib
import os
from pathlib import Path
from typing import Any, NamedTuple

import ml_collections
import numpy as np
from absl import logging

from collapse_jax.errors import ConfigError

_BLOCKS: dict[tuple, dict[str, np.ndarray]] = {}  # the last corpus tokenized, by content


class Corpus(NamedTuple):
    tokenizer: Any
    train_MxL: np.ndarray  # the first data.max_train_blocks training blocks: D_0, the prompts
    valid_NxL: np.ndarray
    test_NxL: np.ndarray
    all_train_NxL: np.ndarray  # every training block (the scratch base's pre-training draws here)


def load(cfg, tokenizer_dir: Path | None = None) -> Corpus:
    """Tokenize ``cfg.data`` with ``cfg.tokenizer``; with ``tokenizer_dir`` the tokenizer is also
    saved there, so a run directory is self-contained."""
    from collapse_jax.data import tinystories, wikitext
    from collapse_jax.families.lm import tokenizer as tokenizer_lib

    if cfg.data.source == tinystories.SOURCE:
        lines = tinystories.split_lines(cfg.data)
    else:
        lines = wikitext.split_lines(cfg.data)
    tok = tokenizer_lib.load(cfg.tokenizer, lines["train"], cfg.lm.architecture)
    if tokenizer_dir is not None:
        tok.save_pretrained(tokenizer_dir)
    # Cut after blocking, as wikitext.blocks would: the uncapped split is kept for pre-training.
    uncapped = ml_collections.ConfigDict(cfg.data.to_dict())
    uncapped.max_train_blocks = 0
    digest = hashlib.sha256()
    for role in sorted(lines):
        digest.update(role.encode() + b"\0" + "\n".join(lines[role]).encode())
    key = (
        uncapped.to_json_best_effort(sort_keys=True),
        cfg.tokenizer.to_json_best_effort(sort_keys=True),
        digest.hexdigest(),
    )
    if key not in _BLOCKS:
        # Tokenizing the whole training split is most of a small run's set-up; runs, resumes and
        # open_run in one process share it (keyed on the configs and the text itself).
        _BLOCKS.clear()
        make = lambda: wikitext.blocks(uncapped, tok, lines)  # noqa: E731
        if cfg.data.source == tinystories.SOURCE:
            _BLOCKS[key] = _cached_blocks((*key, _tokenizer_digest(tok)), make)
        else:
            _BLOCKS[key] = make()
        for a in _BLOCKS[key].values():
            a.setflags(write=False)  # shared by every caller
    blocks = _BLOCKS[key]
    train, cap = blocks["train"], cfg.data.max_train_blocks
    return Corpus(tok, train[:cap] if cap else train, blocks["valid"], blocks["test"], train)


def _tokenizer_digest(tok) -> str:
    """SHA-256 of the tokenizer's full definition (its ``tokenizer.json``)."""
    backend = getattr(tok, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tok.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()


def _cached_blocks(key: tuple, make) -> dict[str, np.ndarray]:
    """``make()``'s blocks, saved once under the data cache as ``tokenized/<digest>.npz``."""
    from collapse_jax.data import fetch

    digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:32]
    path = fetch.cache_dir() / "tokenized" / f"{digest}.npz"
    if path.is_file():
        try:
            with np.load(path) as f:
                return {k: np.asarray(f[k]) for k in f.files}
        except (OSError, ValueError) as e:  # a torn file: make it again
            logging.warning("%s: unreadable (%s); tokenizing again", path, e)
    blocks = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **blocks)
    tmp.replace(path)  # atomic: a crash never leaves a half file under the final name
    return blocks


def check_vocabulary(cfg, vocab_size: int, corpus: Corpus) -> None:
    """Raise ``ConfigError`` when a token id of the corpus does not fit the model's embedding."""
    splits = (corpus.all_train_NxL, corpus.valid_NxL, corpus.test_NxL)
    max_id = max(int(b.max()) for b in splits)
    if max_id >= vocab_size:
        raise ConfigError(
            f"lm.source={cfg.lm.source}: vocab_size {vocab_size} is too small for "
            f"tokenizer.source={cfg.tokenizer.source} (token id {max_id})"
        )
