"""TinyStories (Eldan & Li 2023) as text lines for the LM's token blocks: one story a line.

The release has a train and a valid file (stories separated by ``<|endoftext|>``); the LM
corpus takes ``data.train_split`` / ``data.test_split`` from them (``train`` / ``valid``) and,
as for the offline WikiText-2 stand-in, its validation blocks from the training tail
(``data.valid_holdout_fraction``). ``data.max_stories`` caps each split's stories (0: all),
read in file order; the tokenized blocks are cached on disk by ``corpus.load``.
"""

from __future__ import annotations

from collapse_jax.data import fetch
from collapse_jax.errors import ConfigError, DataError

SPLITS = ("train", "valid")
SOURCE = "tinystories"
SEPARATOR = "<|endoftext|>"


def read_stories(path, max_stories: int) -> list[str]:
    """The non-empty stories of one file, whitespace-trimmed, at most ``max_stories`` (0: all)."""
    stories: list[str] = []
    buffer: list[str] = []
    with open(path, encoding="utf-8") as f:  # line by line: the train file is 1.9 GB
        for line in f:
            *ended, rest = line.split(SEPARATOR)
            for part in ended:
                buffer.append(part)
                story = "".join(buffer).strip()
                buffer = []
                if story:
                    stories.append(story)
                    if max_stories and len(stories) == max_stories:
                        return stories
            buffer.append(rest)
    story = "".join(buffer).strip()
    if story:
        stories.append(story)
    if not stories:
        raise DataError(f"{path}: no story found (stories end with a {SEPARATOR} line)")
    return stories


def split_lines(data_cfg) -> dict[str, list[str]]:
    """``{"train", "test"}`` (and ``"valid"`` with ``data.valid_split`` set and no holdout) ->
    stories, as ``wikitext.split_lines``."""
    names = {"train": data_cfg.train_split, "test": data_cfg.test_split}
    if data_cfg.valid_holdout_fraction == 0.0:
        names["valid"] = data_cfg.valid_split
    for role, split in names.items():
        if split not in SPLITS:
            raise ConfigError(
                f"data.{role}_split: expected one of {SPLITS} for data.source={SOURCE}, "
                f"got {split!r}"
            )
    files = fetch.tinystories(data_cfg.tinystories_dir, names.values())
    cache: dict[str, list[str]] = {}
    out = {}
    for role, split in names.items():
        if split not in cache:
            cache[split] = read_stories(files[split], data_cfg.max_stories)
        out[role] = cache[split]
    return out
