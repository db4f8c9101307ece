"""MNIST through TensorFlow Datasets, without TensorFlow.

Two sources (``cfg.vae.source``):

  idx   ``MnistIdx``, a TFDS builder that prepares the standard IDX files
        (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-...``), found by
        ``collapse_jax.data.fetch`` (``cfg.vae.data_dir``, ``$COLLAPSE_JAX_DATA/mnist``, the cache,
        else downloaded and checked), into ``array_record`` files of ``Tensor`` features,
        read back with ``tfds.data_source`` (random access; no TensorFlow needed, which is why the
        features are plain ``Tensor`` s: ``tfds.features.Image`` encodes PNGs through TensorFlow).
  tfds  the catalogue's ``mnist``; its download and preparation need TensorFlow, so this source
        raises a ``DataError`` saying so when TensorFlow is missing.

Pixels are kept as ``uint8`` (4x less memory than float32 for a pool copied per seed); the model
divides by 255 per batch, so it sees floats in [0, 1].
"""

import functools
import gzip
import importlib.util
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from collapse_jax.data import fetch
from collapse_jax.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[2]
WHERE = fetch.URLS["mnist/train-images-idx3-ubyte.gz"].rsplit("/", 1)[0] + "/"
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
ROWS = COLS = 28
# split name -> file prefix of the IDX release
PREFIX = {"train": "train", "test": "t10k"}


class Mnist(NamedTuple):
    images_NxHxW: np.ndarray  # uint8
    labels_N: np.ndarray  # int32
    split: str


def resolve(path: str) -> Path:
    """``~`` expanded; a relative path is taken from the repository root, not the cwd."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def idx_file(directory: Path, prefix: str, kind: str) -> Path | None:
    """``<prefix>-<kind>-idx?-ubyte[.gz]`` in ``directory``, or None."""
    ndim = 3 if kind == "images" else 1
    for name in (f"{prefix}-{kind}-idx{ndim}-ubyte.gz", f"{prefix}-{kind}-idx{ndim}-ubyte"):
        if (directory / name).is_file():
            return directory / name
    return None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX array of unsigned bytes; ``DataError`` naming the file if it is not one."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # a truncated or non-gzip .gz file
        raise DataError(f"{path}: cannot read ({e}); expected an IDX file") from e
    ndim = magic & 0xFF
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    got = int.from_bytes(raw[:4], "big")
    if got != magic:
        raise DataError(f"{path}: IDX magic {got}, expected {magic}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)):
        raise DataError(
            f"{path}: {len(body)} data bytes, expected {int(np.prod(shape))} for {shape}"
        )
    return np.frombuffer(body, np.uint8).reshape(shape)


def read_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split from IDX files, checked against each other."""
    paths = [idx_file(directory, PREFIX[split], kind) for kind in ("images", "labels")]
    for kind, p in zip(("images", "labels"), paths, strict=True):
        if p is None:
            raise DataError(
                f"{directory}/{PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz: "
                f"missing; get the MNIST IDX files from {WHERE}"
            )
    images = read_idx(paths[0], IMAGES_MAGIC)
    labels = read_idx(paths[1], LABELS_MAGIC)
    if images.shape[1:] != (ROWS, COLS):
        raise DataError(f"{paths[0]}: images of shape {images.shape[1:]}, expected (28, 28)")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{paths[1]}: {labels.shape[0]} labels for {images.shape[0]} images")
    if labels.max(initial=0) > 9:
        raise DataError(f"{paths[1]}: label {labels.max()} out of range 0..9")
    return images, labels


class MnistIdx(tfds.core.GeneratorBasedBuilder):
    """MNIST prepared from the IDX files of a manual directory; splits for the files present."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"Put the MNIST IDX files (from {WHERE}) in the manual dir."
    # A manual-only builder has no checksums file next to its code; without this TFDS looks for
    # one through etils' resource lookup, which needs the (absent) importlib_resources package.
    code_path = None

    def _info(self):
        # DatasetInfo directly: dataset_info_from_configs reads metadata files from the package
        # directory, which a builder defined in a library module does not have.
        return tfds.core.DatasetInfo(
            builder=self,
            description="MNIST from the IDX files; `index` is the position in the IDX file.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(ROWS, COLS), dtype=np.uint8),
                    "label": tfds.features.Tensor(shape=(), dtype=np.int64),
                    "index": tfds.features.Tensor(shape=(), dtype=np.int64),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="http://yann.lecun.com/exdb/mnist/",
        )

    def _split_generators(self, dl_manager):
        directory = Path(dl_manager.manual_dir)
        present = [s for s in PREFIX if idx_file(directory, PREFIX[s], "images")]
        if not present:
            read_split(directory, "train")  # raises the missing-file error
        return {s: self._generate_examples(directory, s) for s in present}

    def _generate_examples(self, directory, split):
        images, labels = read_split(directory, split)
        for i in range(images.shape[0]):
            yield i, {"image": images[i], "label": int(labels[i]), "index": i}


def prepare(idx_dir, prepared_dir) -> MnistIdx:
    """``mnist_idx`` prepared (once) from the IDX files in ``idx_dir`` into ``prepared_dir``."""
    b = MnistIdx(data_dir=str(prepared_dir), file_format="array_record")
    tfds.disable_progress_bar()
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(idx_dir)))
    return b


@functools.lru_cache(maxsize=4)
def load_idx(data_dir: str, prepared_dir: str, split: str) -> Mnist:
    """``split`` of the IDX files in ``data_dir``, prepared once into array_record, read back.

    When ``split`` is "train" and only the t10k files are present (as in ``../shared/data/mnist``),
    the test split becomes the pool and a log line says so.
    """
    idx_dir, out_dir = resolve(data_dir), resolve(prepared_dir)
    if not idx_dir.is_dir():
        raise DataError(
            f"vae.data_dir={idx_dir}: no such directory; get the IDX files from {WHERE}"
        )
    if split not in PREFIX:
        raise DataError(f"vae.split: expected one of {sorted(PREFIX)}, got {split!r}")
    if (
        split == "train"
        and not idx_file(idx_dir, "train", "images")
        and idx_file(idx_dir, "t10k", "images")
    ):
        logging.warning(
            "%s holds no MNIST train split: using the 10,000 t10k images as the pool (the paper "
            "uses the 60,000 training images)",
            idx_dir,
        )
        split = "test"
    want = read_split(idx_dir, split)[1]  # checks the files before TFDS sees them
    # One prepared copy per set of splits present: a folder of t10k files and one of all four
    # files (a download after an offline run) never meet in the same TFDS directory.
    present = [s for s in PREFIX if idx_file(idx_dir, PREFIX[s], "images")]
    out_dir = out_dir / "+".join(present)
    b = prepare(idx_dir, out_dir)
    if split not in b.info.splits or b.info.splits[split].num_examples != want.shape[0]:
        raise DataError(
            f"{b.data_dir}: prepared from other IDX files than {idx_dir} "
            f"(split {split!r} missing or of another size); delete it to prepare again"
        )
    source = tfds.data_source("mnist_idx", split=split, data_dir=str(out_dir))
    rows = source.__getitems__(range(len(source)))  # one batched read; records come shuffled
    order = np.argsort([r["index"] for r in rows])
    images = np.stack([rows[i]["image"] for i in order]).astype(np.uint8)
    labels = np.array([rows[i]["label"] for i in order], np.int32)
    images.flags.writeable = labels.flags.writeable = False  # cached: shared by every caller
    return Mnist(images, labels, split)


def load_tfds(prepared_dir: str, split: str) -> Mnist:
    """The TFDS catalogue's ``mnist`` (downloads on first use; preparing it needs TensorFlow)."""
    if importlib.util.find_spec("tensorflow") is None:
        raise DataError(
            "vae.source='tfds': preparing TFDS 'mnist' needs tensorflow, which is not installed; "
            "install it, or set vae.source='idx' and vae.data_dir to a folder with the four MNIST "
            f"IDX files from {WHERE}"
        )
    source = tfds.data_source(
        "mnist",
        split=split,
        data_dir=str(resolve(prepared_dir)),
        download=True,
        builder_kwargs={"file_format": "array_record"},
    )
    rows = source.__getitems__(range(len(source)))
    images = np.stack([r["image"][..., 0] for r in rows]).astype(np.uint8)
    labels = np.array([r["label"] for r in rows], np.int32)
    return Mnist(images, labels, split)


def prepared_root(vae_cfg) -> str:
    """``vae.prepared_dir``, or ``CACHE/tfds`` when it is empty."""
    return vae_cfg.prepared_dir or str(fetch.cache_dir() / "tfds")


def load(vae_cfg) -> Mnist:
    """The training pool named by ``cfg.vae`` (``source``, ``data_dir``, ``prepared_dir``, ``split``)."""
    if vae_cfg.source == "idx":
        if vae_cfg.split not in PREFIX:
            raise DataError(f"vae.split: expected one of {sorted(PREFIX)}, got {vae_cfg.split!r}")
        idx_dir = fetch.mnist_dir(vae_cfg.data_dir, PREFIX[vae_cfg.split], resolve)
        return load_idx(str(idx_dir), prepared_root(vae_cfg), vae_cfg.split)
    if vae_cfg.source == "tfds":
        return load_tfds(prepared_root(vae_cfg), vae_cfg.split)
    raise DataError(f"vae.source: expected 'idx' or 'tfds', got {vae_cfg.source!r}")
