"""MNIST from IDX files through the TFDS array_record builder (no TensorFlow, no network)."""

import gzip
import importlib.util
import re
import sys

import numpy as np
import pytest

from collapse_jax.data import mnist
from collapse_jax.errors import DataError


def write_idx(path, array, magic, compress=True):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def make_split(directory, prefix, n, rng, compress=True):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, (n,), dtype=np.uint8)
    write_idx(directory / f"{prefix}-images-idx3-ubyte", images, 2051, compress)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels, 2049, compress)
    return images, labels


def test_builder_round_trips_both_splits(tmp_path):
    rng = np.random.default_rng(0)
    idx = tmp_path / "idx"
    idx.mkdir()
    train = make_split(idx, "train", 37, rng)
    test = make_split(idx, "t10k", 11, rng, compress=False)  # plain IDX files are accepted too
    for split, (images, labels) in (("train", train), ("test", test)):
        got = mnist.load_idx(str(idx), str(tmp_path / "prepared"), split)
        assert got.split == split
        np.testing.assert_array_equal(got.images_NxHxW, images)  # IDX order restored
        np.testing.assert_array_equal(got.labels_N, labels)
    assert (tmp_path / "prepared" / "train+test" / "mnist_idx" / "1.0.0").is_dir()
    files = list(
        (tmp_path / "prepared" / "train+test" / "mnist_idx" / "1.0.0").glob("*.array_record*")
    )
    assert len(files) == 2
    assert "tensorflow" not in sys.modules


def test_train_falls_back_to_t10k(tmp_path):
    images, _ = make_split(tmp_path, "t10k", 5, np.random.default_rng(1))
    got = mnist.load_idx(str(tmp_path), str(tmp_path / "prepared"), "train")
    assert got.split == "test"
    np.testing.assert_array_equal(got.images_NxHxW, images)


def test_missing_files_name_the_file_and_where_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: missing.*cvdf-datasets"):
        mnist.load_idx(str(tmp_path), str(tmp_path / "prepared"), "train")
    with pytest.raises(DataError, match="no such directory"):
        mnist.load_idx(str(tmp_path / "nope"), str(tmp_path / "prepared"), "train")


def test_corrupt_files_name_the_file(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    bad_magic = write_idx(tmp_path / "a-images-idx3-ubyte", images, 2049)
    with pytest.raises(DataError, match=re.escape(f"{bad_magic}: IDX magic 2049, expected 2051")):
        mnist.read_idx(bad_magic, 2051)
    short = tmp_path / "b-images-idx3-ubyte"
    write_idx(short, images, 2051, compress=False)
    short.write_bytes(short.read_bytes()[:-1])
    with pytest.raises(DataError, match=re.escape(f"{short}: 2351 data bytes, expected 2352")):
        mnist.read_idx(short, 2051)
    not_gz = tmp_path / "c-images-idx3-ubyte.gz"
    not_gz.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=re.escape(str(not_gz))):
        mnist.read_idx(not_gz, 2051)
    # Labels that do not match the images are caught before TFDS sees them.
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images, 2051)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8), 2049)
    with pytest.raises(DataError, match="4 labels for 3 images"):
        mnist.read_split(tmp_path, "test")


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None, reason="TF installed")
def test_tfds_source_without_tensorflow_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"needs tensorflow.*source='idx'"):
        mnist.load_tfds(str(tmp_path), "train")


def test_shared_test_split(shared_data, tmp_path):
    got = mnist.load_idx(str(shared_data / "mnist"), str(tmp_path), "train")
    assert got.split == "test" and got.images_NxHxW.shape == (10_000, 28, 28)
    # The label counts documented in ../shared/data/README.md.
    counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    np.testing.assert_array_equal(np.bincount(got.labels_N), counts)
