"""Tokenizer and WikiText-2 blocks: per-line tokens, concatenated, cut into blocks."""

import importlib.util
import json

import ml_collections
import numpy as np
import pytest

from collapse_jax.data import wikitext
from collapse_jax.errors import DataError
from collapse_jax.families.lm import tokenizer as tokenizer_lib
from configs import opt_finetune

# A small corpus with repeated words (so BPE merges something), punctuation and non-ASCII text.
LINES = [
    f" The {w} of section {i} is 5 – 6 km ( Ångström , naïve ) .\n"
    for i in range(40)
    for w in ("river", "castle", "species")
]


class CharTokenizer:
    """Stand-in with the OPT convention: </s> (2) then one id per character."""

    def __call__(self, lines, add_special_tokens=True):
        return {"input_ids": [[2] + [10 + ord(c) % 50 for c in line] for line in lines]}


def test_blocks_concatenate_lines_then_cut_and_drop_the_remainder():
    lines = ["ab\n", "", "cdefg\n", "hij\n"]
    stream = wikitext.token_stream(CharTokenizer(), lines, skip_empty_lines=True)
    expected = [2, *(10 + ord(c) % 50 for c in "ab\n"), 2, *(10 + ord(c) % 50 for c in "cdefg\n")]
    expected += [2, *(10 + ord(c) % 50 for c in "hij\n")]
    np.testing.assert_array_equal(stream, expected)  # the empty line is skipped
    blocks = wikitext.group_blocks(stream, 5)
    assert blocks.dtype == np.int32 and blocks.shape == (len(expected) // 5, 5)
    # Blocks run across line boundaries, and the last len % 5 tokens are dropped.
    np.testing.assert_array_equal(blocks.ravel(), expected[: blocks.size])
    assert len(expected) % 5 != 0
    kept = wikitext.token_stream(CharTokenizer(), lines, skip_empty_lines=False)
    assert kept.shape[0] == len(expected) + 1  # an empty line is a lone </s>


def test_trained_tokenizer_round_trips_and_prepends_bos(tmp_path):
    cfg = ml_collections.ConfigDict(
        {"source": "train_bpe", "vocab_size": 300, "cache_dir": str(tmp_path)}
    )
    tok = tokenizer_lib.load(cfg, LINES)
    assert [tok.convert_tokens_to_ids(t) for t in tokenizer_lib.SPECIAL_TOKENS] == [0, 1, 2, 3]
    for line in [*LINES[:3], "unseen words: Zürich 東京 ⅔\n"]:
        ids = tok(line)["input_ids"]
        assert ids[0] == tokenizer_lib.BOS_ID and tokenizer_lib.BOS_ID not in ids[1:]
        assert tok.decode(ids[1:]) == line
        assert tokenizer_lib.UNK_ID not in ids  # byte-level: nothing is unknown
    assert len(tok(LINES[0])["input_ids"]) < len(LINES[0].encode())  # merges were learnt
    # Cached by the text's hash: a second load reuses the directory and gives the same ids.
    (entry,) = tmp_path.iterdir()
    again = tokenizer_lib.load(cfg, LINES)
    assert list(tmp_path.iterdir()) == [entry]
    assert again(LINES[5])["input_ids"] == tok(LINES[5])["input_ids"]
    # The saved directory is a plain HF tokenizer directory for AutoTokenizer (the hub/local path).
    local = tokenizer_lib.load(ml_collections.ConfigDict({"source": str(entry)}))
    assert local(LINES[7])["input_ids"] == tok(LINES[7])["input_ids"]
    # The same vocabulary in facebook/opt-125m's on-hub layout (slow GPT2Tokenizer files,
    # add_bos_token) tokenizes identically: the trained tokenizer behaves as OPT's does.
    opt_dir = tmp_path / "opt_layout"
    opt_dir.mkdir()
    tok.backend_tokenizer.model.save(str(opt_dir))  # vocab.json, merges.txt
    specials = {"bos_token": "</s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "</s>"}
    (opt_dir / "special_tokens_map.json").write_text(json.dumps(specials))
    opt_config = {"tokenizer_class": "GPT2Tokenizer", "add_bos_token": True, **specials}
    (opt_dir / "tokenizer_config.json").write_text(json.dumps(opt_config))
    opt_like = tokenizer_lib.load(ml_collections.ConfigDict({"source": str(opt_dir)}))
    for line in (LINES[7], "unseen words: Zürich 東京 ⅔\n"):
        assert opt_like(line)["input_ids"] == tok(line)["input_ids"]


def test_missing_split_file_is_a_data_error_naming_it(tmp_path):
    (tmp_path / "valid.txt").write_text(" a line\n")
    with pytest.raises(DataError, match=r"test\.txt"):
        wikitext.read_lines(str(tmp_path), "test")
    assert wikitext.read_lines(str(tmp_path), "valid") == [" a line\n"]
    with pytest.raises(DataError, match="tokenizer"):
        tokenizer_lib.load(ml_collections.ConfigDict({"source": str(tmp_path / "nope")}))


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="datasets installed")
def test_hub_source_without_datasets_says_what_to_install():
    with pytest.raises(DataError, match="pip install datasets"):
        wikitext.read_lines("hf:wikitext-2-raw-v1", "test")


def test_local_wikitext_lines_match_the_hf_row_format(shared_data):
    lines = wikitext.read_lines(str(shared_data / "wikitext-2"), "valid")
    assert len(lines) == 3760  # the README's line count
    # As HF's rows: "\n" kept, whitespace-only lines as "".
    assert all(line == "" or line.endswith("\n") for line in lines)
    assert lines[0] == "" and lines[1].startswith(" = ")


def test_smoke_config_blocks(shared_data, tmp_path):
    cfg = opt_finetune.get_config("smoke")
    cfg.tokenizer.cache_dir = str(tmp_path)
    lines = wikitext.split_lines(cfg.data)
    tok = tokenizer_lib.load(cfg.tokenizer, lines["train"])
    blocks = wikitext.blocks(cfg.data, tok, lines)
    assert set(blocks) == {"train", "valid", "test"}
    for b in blocks.values():
        assert b.dtype == np.int32 and b.shape[1] == cfg.data.block_size
        assert b.min() >= 0 and b.max() < len(tok)
    assert blocks["train"].shape[0] == cfg.data.max_train_blocks
    assert blocks["valid"].shape[0] == cfg.data.max_eval_blocks
    # Every non-empty line starts with </s>: one per non-empty line in the kept stream.
    assert (blocks["train"] == tokenizer_lib.BOS_ID).any()
