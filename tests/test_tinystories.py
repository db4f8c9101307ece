"""TinyStories through the data lookup: a checked download into the cache from a mirror (a local
HTTP server serving small files this test writes), ``$COLLAPSE_JAX_DATA``, one-line failures,
and token blocks tokenized once and cached on disk."""

import hashlib
import http.server
import threading

import numpy as np
import pytest

from collapse_jax.data import fetch, tinystories, wikitext
from collapse_jax.errors import DataError
from collapse_jax.families.lm import corpus
from configs import llama_tinystories

WORDS = "the cat dog sun hat ran sat saw big red little happy tree ball mom said".split()


def _stories(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        sentence = " ".join(rng.choice(WORDS, size=rng.integers(8, 20))).capitalize() + "."
        out.append(f"{sentence}\n{sentence.lower()}\n{tinystories.SEPARATOR}\n")
    return "".join(out)


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """``(root, requests)``: a served mirror of two small TinyStories files, an empty cache."""
    root = tmp_path / "mirror" / "tinystories"
    root.mkdir(parents=True)
    (root / "TinyStories-train.txt").write_text(_stories(300, 0))
    (root / "TinyStories-valid.txt").write_text(_stories(60, 1))
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root.parent), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    registry = dict(fetch.REGISTRY)
    for split in tinystories.SPLITS:
        path = fetch.tinystories_file(split)
        digest = hashlib.sha256((root.parent / path).read_bytes()).hexdigest()
        registry[path] = "sha256:" + digest
    monkeypatch.setattr(fetch, "REGISTRY", registry)
    monkeypatch.setattr(fetch, "RETRIES", 0)
    monkeypatch.delenv(fetch.DATA_ENV, raising=False)
    monkeypatch.setenv(fetch.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(fetch.MIRROR_ENV, f"http://127.0.0.1:{server.server_address[1]}/")
    yield root, requests
    server.shutdown()
    thread.join()


def _config(tmp_path):
    cfg = llama_tinystories.get_config("smoke")
    cfg.data.source = "tinystories"
    cfg.data.train_split, cfg.data.test_split, cfg.data.valid_split = "train", "valid", ""
    cfg.data.valid_holdout_fraction = 0.1
    cfg.data.block_size = 16
    cfg.data.max_train_blocks = cfg.data.max_eval_blocks = 0
    cfg.tokenizer.vocab_size = 300
    cfg.tokenizer.cache_dir = str(tmp_path / "tokenizers")
    return cfg


def test_download_once_checked_then_from_the_cache(mirror, tmp_path):
    root, requests = mirror
    files = fetch.tinystories("", ["train", "valid"])
    assert sorted(requests) == [
        "/tinystories/TinyStories-train.txt",
        "/tinystories/" + "TinyStories-valid.txt",
    ]
    for split, path in files.items():
        assert path.read_bytes() == (root / f"TinyStories-{split}.txt").read_bytes()
    fetch.tinystories("", ["train", "valid"])
    assert len(requests) == 2  # found in the cache, its hash checked, not downloaded again
    stories = tinystories.read_stories(files["valid"], 0)
    assert len(stories) == 60 and all(tinystories.SEPARATOR not in s for s in stories)


def test_a_wrong_checksum_keeps_nothing_and_says_so_in_one_line(mirror, tmp_path, monkeypatch):
    path = fetch.tinystories_file("valid")
    monkeypatch.setitem(fetch.REGISTRY, path, "sha256:" + "0" * 64)
    with pytest.raises(DataError, match="has SHA-256") as e:
        fetch.tinystories("", ["valid"])
    assert "\n" not in str(e.value)
    assert not (tmp_path / "cache" / path).exists()


def test_data_folder_is_used_before_any_download(mirror, monkeypatch):
    root, requests = mirror
    monkeypatch.setenv(fetch.DATA_ENV, str(root.parent))
    files = fetch.tinystories("", ["train"])
    assert files["train"] == root / "TinyStories-train.txt" and requests == []


def test_stories_split_on_separators_anywhere_and_are_capped(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text(
        f"One.\nTwo<|endoftext|>Three.\n{tinystories.SEPARATOR}\n\n{tinystories.SEPARATOR}\nFour"
    )
    assert tinystories.read_stories(f, 0) == ["One.\nTwo", "Three.", "Four"]
    assert tinystories.read_stories(f, 2) == ["One.\nTwo", "Three."]


def test_blocks_are_tokenized_once_and_cached_on_disk(mirror, tmp_path, monkeypatch):
    cfg = _config(tmp_path)
    first = corpus.load(cfg)
    assert first.train_MxL.shape[1] == 16 and first.test_NxL.shape[0] > 0
    (cached,) = (tmp_path / "cache" / "tokenized").glob("*.npz")
    corpus._BLOCKS.clear()  # a new process: only the disk cache is left

    def no_tokenizing(*a, **k):
        raise AssertionError("tokenized again")

    with monkeypatch.context() as m:
        m.setattr(wikitext, "blocks", no_tokenizing)
        again = corpus.load(cfg)
    for a, b in zip(first[1:], again[1:], strict=True):
        np.testing.assert_array_equal(a, b)
    # Another tokenizer is another cache entry.
    corpus._BLOCKS.clear()
    cfg.tokenizer.vocab_size = 320
    corpus.load(cfg)
    assert len(list(cached.parent.glob("*.npz"))) == 2
