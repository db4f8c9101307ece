"""The data lookup and download (collapse_jax/data/fetch.py) against a real HTTP server.

The server on 127.0.0.1 serves a mirror made of ``../shared/data``'s files: the MNIST t10k ``.gz``
files as they are, and WikiText-2's valid/test text packed in the raw release's zip layout. Those
files are not the canonical ones (re-compressed, tokenized), so the tests give the lookup a
registry of the served files' own SHA-256; the pinned canonical digests stay the default.
"""

import hashlib
import http.server
import json
import shutil
import threading
import zipfile

import pytest

from collapse_jax import chain
from collapse_jax.data import fetch, mnist, wikitext
from collapse_jax.errors import DataError
from configs import opt_wikitext
from configs import vae as vae_config


def _sha256(path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def mirror(tmp_path, shared_data, monkeypatch):
    """``(root, requests)``: a served mirror, an empty cache, no ``$COLLAPSE_JAX_DATA``."""
    root = tmp_path / "mirror"
    (root / "mnist").mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shared_data / "mnist" / name, root / "mnist" / name)
    with zipfile.ZipFile(root / fetch.RAW_ZIP, "w", zipfile.ZIP_DEFLATED) as z:
        for split in ("valid", "test"):
            z.write(shared_data / "wikitext-2" / f"{split}.txt", fetch.raw_member(split))
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    registry = {p: _sha256(root / p) for p in fetch.REGISTRY if (root / p).is_file()}
    monkeypatch.setattr(fetch, "REGISTRY", registry)
    monkeypatch.setattr(fetch, "RETRIES", 0)
    monkeypatch.delenv(fetch.DATA_ENV, raising=False)
    monkeypatch.setenv(fetch.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(fetch.MIRROR_ENV, f"http://127.0.0.1:{server.server_address[1]}/")
    mnist.load_idx.cache_clear()
    yield root, requests
    server.shutdown()
    thread.join()
    mnist.load_idx.cache_clear()


def _cache_files(tmp_path) -> list[str]:
    cache = tmp_path / "cache"
    files = [
        p for p in cache.rglob("*") if p.is_file() and "tfds" not in p.relative_to(cache).parts
    ]
    return sorted(str(p.relative_to(cache)) for p in files)


@pytest.mark.slow  # in CI's slow leg (the default suite's 5-minute budget, docs/testing.md)
def test_smoke_runs_fetch_once_verify_and_cache(mirror, tmp_path, shared_data):
    root, requests = mirror
    cfg = vae_config.get_config("smoke")
    cfg.vae.split = "test"  # the mirror, like ../shared/data, has only the t10k files
    # Generation 0 alone: the fetch happens before it, and one program (the smoke VAE's first
    # step, which tests/test_vae.py's resume test compiles too) is all it costs.
    cfg.num_generations = 1
    vae_dir = chain.run(cfg, tmp_path / "vae")
    assert sorted(requests) == [
        "/mnist/t10k-images-idx3-ubyte.gz",
        "/mnist/t10k-labels-idx1-ubyte.gz",
    ]
    source = json.loads((vae_dir / "data_source.json").read_text())["mnist"]
    assert source["found"] == "downloaded"
    lm_dir = chain.run(opt_wikitext.get_config("smoke"), tmp_path / "opt")
    assert requests[2:] == [f"/{fetch.RAW_ZIP}"]
    source = json.loads((lm_dir / "data_source.json").read_text())["wikitext-2"]
    assert (source["found"], source["version"]) == ("downloaded", "wikitext-2-raw-v1")
    assert (lm_dir / "metrics.jsonl").read_text().count("\n") == 2
    assert _cache_files(tmp_path) == [
        "mnist/t10k-images-idx3-ubyte.gz",
        "mnist/t10k-labels-idx1-ubyte.gz",
        fetch.RAW_ZIP,
    ]
    for p in _cache_files(tmp_path):  # what was kept is what was served
        assert (tmp_path / "cache" / p).read_bytes() == (root / p).read_bytes()

    # A second run (its in-memory copy of the prepared arrays dropped, as in a new process)
    # finds everything in the cache, re-hashes it, and fetches nothing.
    mnist.load_idx.cache_clear()
    chain.run(cfg, vae_dir)  # complete already: loads the data, runs nothing
    assert json.loads((vae_dir / "data_source.json").read_text())["mnist"]["found"] == "cache"
    lines = wikitext.split_lines(opt_wikitext.get_config("smoke").data)
    text = (shared_data / "wikitext-2" / "test.txt").read_text()
    assert lines["test"] == [t if t.strip() else "" for t in text.splitlines(keepends=True)]
    assert len(requests) == 3


def test_wrong_checksum_is_one_line_and_leaves_nothing(mirror, tmp_path, monkeypatch):
    root, requests = mirror
    name = "mnist/t10k-labels-idx1-ubyte.gz"
    wrong = "sha256:" + "0" * 64
    monkeypatch.setitem(fetch.REGISTRY, name, wrong)
    with pytest.raises(DataError) as e:
        fetch.download("mnist", [name], None)
    msg = str(e.value)
    assert "\n" not in msg
    assert name in msg and "0" * 64 in msg and _sha256(root / name)[7:] in msg
    assert requests == [f"/{name}"]
    left = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert left == []


def test_offline_with_data_nowhere_names_places_variable_and_url(tmp_path, monkeypatch):
    monkeypatch.delenv(fetch.DATA_ENV, raising=False)
    monkeypatch.setenv(fetch.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(fetch, "RETRIES", 0)
    # A port nobody listens on: the connection is refused at once, as offline.
    with socketserver_port() as port:
        monkeypatch.setenv(fetch.MIRROR_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(DataError) as e:
        fetch.wikitext("", ["valid", "test"])
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("wikitext-2", fetch.DATA_ENV, str(tmp_path / "cache"), f"127.0.0.1:{port}/"):
        assert part in msg
    # Every layout the lookup accepts is named: the raw zip, the raw files, the tokenized files.
    for part in (fetch.RAW_ZIP, "wikitext-2-raw/wiki.valid.raw", "wikitext-2/valid.txt"):
        assert part in msg
    assert list((tmp_path / "cache").rglob("*.zip")) == []


class socketserver_port:
    """A free local port, closed again on exit (nothing listens there afterwards)."""

    def __enter__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()


def test_lookup_order_explicit_then_env_then_cache(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv(fetch.DATA_ENV, str(shared_data))
    monkeypatch.setenv(fetch.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(fetch.MIRROR_ENV, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(fetch, "RETRIES", 0)
    assert fetch.mnist_dir("", "train") == shared_data / "mnist"
    explicit = tmp_path / "mine"
    explicit.mkdir()
    assert fetch.mnist_dir(str(explicit), "train") == explicit
    with pytest.raises(DataError, match=r"vae\.data_dir=.*no such directory"):
        fetch.mnist_dir(str(tmp_path / "nope"), "train")
    found = fetch.wikitext("", ["valid", "test"])
    assert (found.kind, found.path) == ("tokenized", shared_data / "wikitext-2")
    # The tokenized copy has no train split: the lookup goes on (here: to the unreachable URL).
    with pytest.raises(DataError, match=r"127\.0\.0\.1:9/wikitext-2-raw-v1\.zip"):
        fetch.wikitext("", ["train", "test"])
