"""Tokenizers: the OPT tokenizer from a hub id or a local directory, or a byte-level BPE trained here.

Every source ends as a Hugging Face tokenizer directory loaded by ``AutoTokenizer``, so the data
pipeline and the decoder never know where it came from. The trained tokenizer copies OPT's
conventions: ``<s>`` = 0, ``<pad>`` = 1, ``</s>`` = 2, ``<unk>`` = 3, byte-level pre-tokenization
without a prefix space, and ``</s>`` (OPT's bos) prepended to every encoded text.

Sources (``cfg.tokenizer.source``):
  ``hub:NAME``   ``AutoTokenizer.from_pretrained(NAME)`` (needs network or an HF cache)
  ``train_bpe``  train on the training text (``cfg.tokenizer.vocab_size``); cached by text hash
  a path        a local HF tokenizer directory (``tokenizer.json`` or vocab/merges files)
"""

import hashlib
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from collapse_jax.errors import ConfigError, DataError

# OPT's special tokens and ids (facebook/opt-125m vocab.json); a scratch OPTConfig keeps
# pad_token_id=1 and bos_token_id=eos_token_id=2, so the trained tokenizer must agree.
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>")
PAD_ID, BOS_ID, UNK_ID = 1, 2, 3
# Bump when the training recipe changes, so stale cached tokenizers are not reused.
_BPE_RECIPE = "bytelevel-bpe-v1"


def train_bpe(lines: Sequence[str], vocab_size: int, out_dir) -> Path:
    """Train an OPT-like byte-level BPE on ``lines`` and save it as an HF tokenizer directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    min_size = len(SPECIAL_TOKENS) + len(pre_tokenizers.ByteLevel.alphabet())
    if vocab_size < min_size:
        raise ConfigError(
            f"tokenizer.vocab_size: expected >= {min_size} (specials + 256 bytes), got {vocab_size}"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        # Every byte is in the vocabulary, so no text ever maps to <unk>.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="</s> $A", pair="</s> $A </s> $B", special_tokens=[("</s>", BOS_ID)]
    )
    # Specials take ids 0..3 in order; check rather than trust the trainer.
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="</s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary sibling and rename, so a crashed run never leaves a half cache entry.
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    fast.save_pretrained(tmp)
    if out_dir.exists():  # another run got there first; its tokenizer is the same
        shutil.rmtree(tmp)
    else:
        tmp.replace(out_dir)
    return out_dir


def text_digest(lines: Sequence[str]) -> str:
    """SHA-256 of the training lines (the cache key of a trained tokenizer)."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def trained_dir(lines: Sequence[str], vocab_size: int, cache_dir) -> Path:
    """The cached trained tokenizer for these lines, training it on a miss."""
    key = f"{_BPE_RECIPE}-{vocab_size}-{text_digest(lines)[:16]}"
    out = Path(cache_dir).expanduser().resolve() / key
    if not (out / "tokenizer.json").exists():
        train_bpe(lines, vocab_size, out)
    return out


def load(tok_cfg, train_lines: Sequence[str] | None = None, architecture: str = "opt"):
    """The tokenizer named by ``cfg.tokenizer``; ``train_lines`` is needed for ``train_bpe``.

    The trained BPE and OPT's tokenizer must follow OPT's conventions (``check_opt_like``); a
    hub tokenizer of another architecture (GPT-2's, SmolLM2's) is taken as it is, its EOS
    padding when it has no pad token (what transformers' ``generate`` does)."""
    source = tok_cfg.source
    if source == "train_bpe":
        if not train_lines:
            raise DataError("tokenizer.source=train_bpe: no training text to train on")
        # Our own directory format is known: skip AutoTokenizer's import of every model's config
        # (seconds). AutoTokenizer.from_pretrained loads the same directory identically.
        from transformers import PreTrainedTokenizerFast

        path = trained_dir(train_lines, tok_cfg.vocab_size, tok_cfg.cache_dir)
        tok = PreTrainedTokenizerFast.from_pretrained(path)
    else:
        from transformers import AutoTokenizer

        if source.startswith("hub:"):
            name = source.removeprefix("hub:")
        else:
            name = Path(source).expanduser()
            if not name.is_dir():
                raise DataError(
                    f"{name}: tokenizer.source is not a directory (expected an HF tokenizer "
                    "directory, 'hub:NAME' or 'train_bpe')"
                )
        tok = AutoTokenizer.from_pretrained(name)
    if source == "train_bpe" or architecture == "opt":
        check_opt_like(tok, source)
        return tok
    if tok.eos_token_id is None:
        raise ConfigError(f"tokenizer.source={source}: expected an EOS token, got none")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def check_opt_like(tok, source: str) -> None:
    """Fail loudly unless the tokenizer uses OPT's pad/bos ids and prepends bos."""
    if tok.pad_token_id != PAD_ID or tok.bos_token_id != BOS_ID:
        raise ConfigError(
            f"tokenizer.source={source}: expected OPT's pad_token_id={PAD_ID} and "
            f"bos_token_id={BOS_ID}, got {tok.pad_token_id} and {tok.bos_token_id}"
        )
    ids = tok("a")["input_ids"]
    if not ids or ids[0] != BOS_ID:
        raise ConfigError(f"tokenizer.source={source}: expected </s> prepended, got {ids}")
