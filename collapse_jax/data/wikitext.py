"""WikiText-2 as fixed-length token blocks, as the paper's pipeline (HF ``run_clm`` group_texts).

Each line is tokenized on its own (the OPT tokenizer prepends ``</s>``), the ids of all lines are
concatenated, and the stream is cut into ``block_size`` blocks; the remainder is dropped.

Sources (``cfg.data.source``):
  ``wikitext-2``            the lookup of ``collapse_jax.data.fetch``: the raw release
                           (``wikitext-2-raw-v1``) where found or fetched, else the tokenized
                           ``{split}.txt`` files of ``$COLLAPSE_JAX_DATA/wikitext-2`` (the offline
                           stand-in); ``DIR/data_source.json`` of a run says which
  a directory              that folder only: ``wikitext-2-raw-v1.zip``, ``wiki.{split}.raw`` or
                           ``{split}.txt`` files
  ``hf:wikitext-2-raw-v1``  the Hugging Face dataset (needs the ``datasets`` package, not installed
                           by this project)

Both give the same lines: the HF dataset's rows are the file's lines with their ``"\\n"`` kept and
whitespace-only lines turned into ``""``.
"""

import numpy as np

from collapse_jax.data import fetch
from collapse_jax.errors import ConfigError, DataError

SPLITS = ("train", "valid", "test")
LOOKUP = "wikitext-2"  # data.source of the lookup (explicit folder, $COLLAPSE_JAX_DATA, cache, URL)
_HF_SPLITS = {"train": "train", "valid": "validation", "test": "test"}


def read_lines(source: str, split: str, splits=None) -> list[str]:
    """The raw lines of one split (``"\\n"`` kept, whitespace-only lines as ``""``).

    ``splits``: every split the run reads, so that all come from the same place.
    """
    if split not in SPLITS:
        raise ConfigError(f"data split: expected one of {SPLITS}, got {split!r}")
    if source.startswith("hf:"):
        try:
            import datasets
        except ImportError as e:
            raise DataError(
                f"data.source={source} needs the Hugging Face `datasets` package: "
                "pip install datasets (or use data.source=wikitext-2, fetched without it)"
            ) from e
        # "Salesforce/wikitext" is the dataset's current hub id ("wikitext" redirects there).
        ds = datasets.load_dataset(
            "Salesforce/wikitext", source.removeprefix("hf:"), split=_HF_SPLITS[split]
        )
        return list(ds["text"])
    explicit = "" if source == LOOKUP else source
    text = fetch.wikitext(explicit, splits or [split]).read(split)
    return [line if line.strip() else "" for line in text.splitlines(keepends=True)]


def token_stream(tokenizer, lines: list[str], skip_empty_lines: bool) -> np.ndarray:
    """Token ids of every line, concatenated: ``ids_T`` int32."""
    if skip_empty_lines:
        # run_clm keeps "" rows, each a lone </s>; skipping them keeps blocks free of runs of bos.
        lines = [line for line in lines if line.strip()]
    if not lines:
        return np.zeros((0,), np.int32)
    ids = tokenizer(lines, add_special_tokens=True)["input_ids"]
    return np.fromiter((t for row in ids for t in row), np.int32, sum(map(len, ids)))


def group_blocks(ids_T: np.ndarray, block_size: int) -> np.ndarray:
    """Cut the concatenated stream into ``blocks_NxL`` (L = block_size), dropping the remainder."""
    if block_size < 2:
        raise ConfigError(
            f"data.block_size: expected >= 2 (one input and one target), got {block_size}"
        )
    n = ids_T.shape[0] // block_size
    return np.ascontiguousarray(ids_T[: n * block_size].reshape(n, block_size), np.int32)


def split_lines(data_cfg) -> dict[str, list[str]]:
    """The lines of the train, valid and test splits named by ``cfg.data`` (valid may be held out)."""
    names = {"train": data_cfg.train_split, "test": data_cfg.test_split}
    if data_cfg.valid_holdout_fraction == 0.0:
        names["valid"] = data_cfg.valid_split
    elif not 0.0 < data_cfg.valid_holdout_fraction < 1.0:
        raise ConfigError(
            "data.valid_holdout_fraction: expected 0 (use data.valid_split) or in (0, 1), "
            f"got {data_cfg.valid_holdout_fraction}"
        )
    cache: dict[str, list[str]] = {}
    out = {}
    for role, split in names.items():
        if split not in cache:
            cache[split] = read_lines(data_cfg.source, split, sorted(set(names.values())))
        out[role] = cache[split]
    return out


def blocks(data_cfg, tokenizer, lines: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """``{"train", "valid", "test"}`` -> int32 ``blocks_NxL``.

    With ``valid_holdout_fraction`` > 0 the validation blocks are the tail of the training blocks
    (the offline layout has no third split); a contiguous tail, so held-out articles are unseen.
    """
    out = {
        role: group_blocks(
            token_stream(tokenizer, role_lines, data_cfg.skip_empty_lines), data_cfg.block_size
        )
        for role, role_lines in lines.items()
    }
    if "valid" not in out:
        train = out["train"]
        num_valid = round(data_cfg.valid_holdout_fraction * train.shape[0])
        if not 0 < num_valid < train.shape[0]:
            raise ConfigError(
                f"data.valid_holdout_fraction={data_cfg.valid_holdout_fraction}: leaves "
                f"{num_valid} of {train.shape[0]} training blocks for validation"
            )
        out["train"], out["valid"] = train[:-num_valid], train[-num_valid:]
    for role, limit in (
        ("train", data_cfg.max_train_blocks),
        ("valid", data_cfg.max_eval_blocks),
        ("test", data_cfg.max_eval_blocks),
    ):
        if limit:  # 0 keeps every block
            out[role] = out[role][:limit]
        if out[role].shape[0] == 0:
            raise DataError(
                f"{data_cfg.source}: the {role} text gives no full {data_cfg.block_size}-token block"
            )
    return out
