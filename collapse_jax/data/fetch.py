"""Where the datasets are found, and their checked download (pooch) when they are nowhere.

A dataset is looked for, in this order:
  1. the directory a config field names (``vae.data_dir``, ``data.source=DIR``,
     ``data.tinystories_dir``);
  2. ``$COLLAPSE_JAX_DATA``, a folder laid out like ``../shared/data``: ``mnist/*.gz``,
     ``wikitext-2/{valid,test}.txt`` (the tokenized release), ``wikitext-2-raw-v1.zip`` or
     ``wikitext-2-raw/wiki.{split}.raw``, ``tinystories/TinyStories-{train,valid}.txt``;
  3. the per-user cache ``$COLLAPSE_JAX_CACHE`` (default ``~/.cache/collapse_jax``, the OS cache
     folder), the same layout;
  4. a download into that cache from the canonical source, or from ``$COLLAPSE_JAX_MIRROR`` (the
     same relative paths under another base URL), checked against ``REGISTRY``.

Steps 3 and 4 are one ``pooch.fetch``: a cached file is re-hashed and used, a missing or altered
one is downloaded to a temporary file and moved into place only once its SHA-256 matches.
"""

import json
import os
import re
from pathlib import Path

import pooch
from absl import logging

from collapse_jax.errors import DataError

DATA_ENV = "COLLAPSE_JAX_DATA"
CACHE_ENV = "COLLAPSE_JAX_CACHE"
MIRROR_ENV = "COLLAPSE_JAX_MIRROR"

# Cache-relative path -> SHA-256 of the canonical file. MNIST: tensorflow_datasets'
# url_checksums/mnist.txt (the CVDF mirror of yann.lecun.com). WikiText-2 raw: the Salesforce
# archive (4,721,645 bytes), the digest recorded for it by the HF `wikitext` loader and every
# re-host (the original s3://research.metamind.io URL now answers 403). TinyStories (Eldan & Li
# 2023): roneneldan/TinyStories at revision f54c09fd23315a6f9c86f9dc80f725de7d8f9c64,
# TinyStories-train.txt (1,924,281,556 bytes) and TinyStories-valid.txt (19,447,282 bytes), the
# digests two public projects pin for that revision; not re-hashed here (no network), so a
# mismatch says so in one line and keeps nothing.
REGISTRY = {
    "mnist/train-images-idx3-ubyte.gz": "sha256:"
    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "mnist/train-labels-idx1-ubyte.gz": "sha256:"
    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "mnist/t10k-images-idx3-ubyte.gz": "sha256:"
    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "mnist/t10k-labels-idx1-ubyte.gz": "sha256:"
    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "wikitext-2-raw-v1.zip": "sha256:"
    "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11",
    "tinystories/TinyStories-train.txt": "sha256:"
    "c5cf5e22ff13614e830afbe61a99fbcbe8bcb7dd72252b989fa1117a368d401f",
    "tinystories/TinyStories-valid.txt": "sha256:"
    "94e431816c4cce81ff71e4408ff8d3bda9a42e8d2663986697c3954288cb38b4",
}
_MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
URLS = {
    **{p: _MNIST_URL + p.removeprefix("mnist/") for p in REGISTRY if p.startswith("mnist/")},
    "wikitext-2-raw-v1.zip": "https://wikitext.smerity.com/wikitext-2-raw-v1.zip",
    **{
        p: "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/"
        "f54c09fd23315a6f9c86f9dc80f725de7d8f9c64/" + p.removeprefix("tinystories/")
        for p in REGISTRY
        if p.startswith("tinystories/")
    },
}

RETRIES = 2  # pooch retries a failed download (network or checksum) after 1 s, 2 s

# What each run's data came from (dataset -> record), written to DIR/data_source.json.
_USED: dict[str, dict] = {}


def cache_dir() -> Path:
    """``$COLLAPSE_JAX_CACHE``, else the OS cache folder (``~/.cache/collapse_jax`` on Linux)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path(pooch.os_cache("collapse_jax"))


def data_root() -> Path | None:
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None


def url(path: str) -> str:
    """Where ``path`` (a ``REGISTRY`` key) is downloaded from: the mirror when one is set."""
    mirror = os.environ.get(MIRROR_ENV)
    return f"{mirror.rstrip('/')}/{path}" if mirror else URLS[path]


def looked(explicit: str | None) -> str:
    """The places of steps 1-3, for error messages."""
    root = data_root()
    places = [explicit] if explicit else []
    places.append(f"${DATA_ENV}={root}" if root else f"${DATA_ENV} (not set)")
    places.append(f"the cache {cache_dir()}")
    return ", ".join(str(p) for p in places)


def download(dataset: str, paths: list[str], explicit: str | None, holding: str = "") -> Path:
    """``paths`` (``REGISTRY`` keys) in the cache, downloaded and checked if missing: the root.

    ``holding``: what a folder given by hand must hold, for the offline error (default: ``paths``).
    """
    root = cache_dir()
    mirror = os.environ.get(MIRROR_ENV)
    fetcher = pooch.create(
        path=root,
        base_url=(mirror.rstrip("/") + "/") if mirror else "",
        registry={p: REGISTRY[p] for p in paths},
        urls=None if mirror else {p: URLS[p] for p in paths},
        retry_if_failed=RETRIES,
    )
    for p in paths:
        try:
            fetcher.fetch(p)
        except ValueError as e:  # pooch's hash mismatch (the temporary file is already gone)
            got = re.search(r"got (\w+)", str(e))
            raise DataError(
                f"{dataset}: {url(p)} has SHA-256 {got.group(1) if got else '?'}, expected "
                f"{REGISTRY[p].removeprefix('sha256:')}; nothing was kept in {root} (set "
                f"${MIRROR_ENV} to a mirror of the canonical file)"
            ) from e
        except Exception as e:  # requests' errors, DNS, refused connections: one line
            raise DataError(
                f"{dataset}: not found in {looked(explicit)}, and downloading {url(p)} failed "
                f"({_reason(e)}); set ${DATA_ENV} to a folder holding {holding or p} "
                f"(or ${MIRROR_ENV} to a reachable mirror)"
            ) from e
    return root


def _reason(e: Exception) -> str:
    """A short reason for a failed download (requests' messages nest whole reprs)."""
    text = " ".join(str(e).split())
    errno = re.search(r"\[Errno [^\]]*\][^'\")]*", text)
    return f"{type(e).__name__}: {errno.group(0).strip() if errno else text[:160]}"


def record(dataset: str, **fields) -> None:
    """Note where ``dataset`` came from (logged once) for the run's ``data_source.json``."""
    old = _USED.get(dataset, {})
    if {k: v for k, v in old.items() if k != "found"} == {
        k: v for k, v in fields.items() if k != "found"
    }:
        return  # read again from the same place: how it was first found is what counts
    logging.info("%s: %s", dataset, ", ".join(f"{k}={v}" for k, v in fields.items()))
    _USED[dataset] = fields


def reset() -> None:
    """Forget the records of an earlier run in this process (a sweep runs several)."""
    _USED.clear()


def write_record(path) -> None:
    """Write to ``path`` (a run's ``Workdir.data_source``) what the datasets recorded so far came
    from."""
    if _USED:
        Path(path).write_text(json.dumps(_USED, indent=2, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------------------------
# MNIST


def mnist_files(split_prefix: str) -> list[str]:
    return [
        f"mnist/{split_prefix}-images-idx3-ubyte.gz",
        f"mnist/{split_prefix}-labels-idx1-ubyte.gz",
    ]


def _has_mnist(directory: Path) -> bool:
    return any(
        (directory / f"{p}-images-idx3-ubyte{ext}").is_file()
        for p in ("train", "t10k")
        for ext in (".gz", "")
    )


def mnist_dir(explicit: str, split_prefix: str, resolve=lambda p: Path(p)) -> Path:
    """The folder of MNIST's IDX files: the first of ``explicit``, ``$COLLAPSE_JAX_DATA/mnist``
    holding either split, else the cache (``split_prefix``'s two files downloaded if missing)."""
    if explicit:
        d = resolve(explicit)
        if not d.is_dir():
            raise DataError(
                f"vae.data_dir={d}: no such directory (leave it empty to use ${DATA_ENV}, the "
                f"cache {cache_dir()} or a download)"
            )
        record("mnist", found="vae.data_dir", dir=str(d))
        return d
    root = data_root()
    if root is not None and _has_mnist(root / "mnist"):
        record("mnist", found=f"${DATA_ENV}", dir=str(root / "mnist"))
        return root / "mnist"
    files = mnist_files(split_prefix)
    cached = all((cache_dir() / f).is_file() for f in files)
    d = download("mnist", files, explicit) / "mnist"
    record("mnist", found="cache" if cached else "downloaded", dir=str(d))
    return d


# ------------------------------------------------------------------------------------------------
# WikiText-2: the raw release (wikitext-2-raw-v1, what the paper fine-tunes on) when found or
# fetched; the tokenized release (`<unk>`, ` @-@ `) of `../shared/data` as the offline stand-in.

RAW_ZIP = "wikitext-2-raw-v1.zip"


def raw_member(split: str) -> str:
    return f"wikitext-2-raw/wiki.{split}.raw"


class WikiText:
    """Where the WikiText-2 splits are: ``read(split)`` gives the text of one split."""

    def __init__(self, kind: str, path: Path):
        self.kind = kind  # "raw-zip" | "raw" (wiki.{split}.raw files) | "tokenized" ({split}.txt)
        self.path = path

    @property
    def version(self) -> str:
        return "wikitext-2-raw-v1" if self.kind.startswith("raw") else "wikitext-2-v1 (tokenized)"

    def read(self, split: str) -> str:
        if self.kind == "raw-zip":
            import zipfile

            try:
                with zipfile.ZipFile(self.path) as z:
                    return z.read(raw_member(split)).decode("utf-8")
            except (OSError, KeyError, zipfile.BadZipFile) as e:
                raise DataError(f"{self.path}: cannot read {raw_member(split)} ({e})") from e
        name = f"wiki.{split}.raw" if self.kind == "raw" else f"{split}.txt"
        return (self.path / name).read_text(encoding="utf-8")


def _wikitext_in(d: Path, splits) -> WikiText | None:
    """The first layout of ``d`` holding every split: the raw zip, raw files, tokenized files."""
    if (d / RAW_ZIP).is_file():
        return WikiText("raw-zip", d / RAW_ZIP)
    for kind, sub, name in (
        ("raw", "wikitext-2-raw", "wiki.{}.raw"),
        ("tokenized", "wikitext-2", "{}.txt"),
    ):
        for folder in (d / sub, d):
            if all((folder / name.format(s)).is_file() for s in splits):
                return WikiText(kind, folder)
    return None


def _wikitext(explicit: str, splits: tuple[str, ...], data: str):
    if explicit:
        d = Path(explicit).expanduser()
        found = _wikitext_in(d, splits)
        if found is None:
            want = [f"wiki.{s}.raw" for s in splits] + [f"{s}.txt" for s in splits]
            raise DataError(
                f"data.source={d}: WikiText-2 not found there (expected {RAW_ZIP}, or "
                f"{', '.join(want)})"
            )
        return found, "data.source"
    if data:
        found = _wikitext_in(Path(data).expanduser(), splits)
        if found is not None:
            return found, f"${DATA_ENV}"
    cached = (cache_dir() / RAW_ZIP).is_file()
    tokenized = ", ".join(f"wikitext-2/{s}.txt" for s in splits)
    raw = ", ".join(f"wikitext-2-raw/wiki.{s}.raw" for s in splits)
    holding = f"{RAW_ZIP}, or {raw} (the raw release), or {tokenized} (the tokenized release)"
    root = download("wikitext-2", [RAW_ZIP], None, holding=holding)
    return WikiText("raw-zip", root / RAW_ZIP), "cache" if cached else "downloaded"


def wikitext(explicit: str, splits) -> WikiText:
    """The WikiText-2 files holding ``splits``: raw preferred, in the lookup order above."""
    found, how = _wikitext(explicit, tuple(sorted(set(splits))), os.environ.get(DATA_ENV, ""))
    record("wikitext-2", found=how, version=found.version, path=str(found.path))
    return found


# ------------------------------------------------------------------------------------------------
# TinyStories (Eldan & Li 2023): stories separated by "<|endoftext|>" lines, a train and a valid
# file.


def tinystories_file(split: str) -> str:
    return f"tinystories/TinyStories-{split}.txt"


def tinystories(explicit: str, splits) -> dict[str, Path]:
    """``{split: file}`` of TinyStories for ``splits`` (train, valid): the first of
    ``explicit`` (a folder holding ``TinyStories-{split}.txt``), ``$COLLAPSE_JAX_DATA/tinystories``,
    else the cache (downloaded and checked if missing)."""
    splits = sorted(set(splits))
    names = {s: tinystories_file(s).removeprefix("tinystories/") for s in splits}
    if explicit:
        d = Path(explicit).expanduser()
        missing = [n for n in names.values() if not (d / n).is_file()]
        if missing:
            raise DataError(f"data.tinystories_dir={d}: expected {', '.join(missing)} there")
        record("tinystories", found="data.tinystories_dir", dir=str(d))
        return {s: d / n for s, n in names.items()}
    root = data_root()
    if root is not None and all((root / "tinystories" / n).is_file() for n in names.values()):
        record("tinystories", found=f"${DATA_ENV}", dir=str(root / "tinystories"))
        return {s: root / "tinystories" / n for s, n in names.items()}
    files = [tinystories_file(s) for s in splits]
    cached = all((cache_dir() / f).is_file() for f in files)
    d = download("tinystories", files, explicit)
    record("tinystories", found="cache" if cached else "downloaded", dir=str(d / "tinystories"))
    return {s: d / tinystories_file(s) for s in splits}
