"""Downloads against local HTTP servers: caching, md5 rejection, mirror fallback, failing fast."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from disgen.data import ImageSplit, load_dataset, mnist
from disgen.data.download import cache_dir, fetch
from disgen.data.mnist import FILE_STEMS, save_idx_dir
from disgen.errors import DisgenError

PAYLOAD = b"disgen test payload\n" * 1000
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Mirror:
    """An HTTP server on 127.0.0.1 serving ``root``, recording the paths it is asked for."""

    def __init__(self, root: Path):
        self.root, self.requests = root, []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):  # keep pytest output clean
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def make_mirror(tmp_path):
    mirrors = []

    def make(name: str, files: dict[str, bytes]) -> Mirror:
        root = tmp_path / "mirrors" / name
        root.mkdir(parents=True)
        for filename, data in files.items():
            (root / filename).write_bytes(data)
        mirrors.append(Mirror(root))
        return mirrors[-1]

    yield make
    for m in mirrors:
        m.close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused, like being offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_cache_dir_honours_disgen_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DISGEN_HOME", str(tmp_path / "h"))
    assert cache_dir() == tmp_path / "h"
    monkeypatch.delenv("DISGEN_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "disgen"


def test_fetch_caches_and_does_not_download_twice(home, make_mirror):
    mirror = make_mirror("good", {"f.bin": PAYLOAD})
    path = fetch("f.bin", [mirror.url], PAYLOAD_MD5, home)
    assert path == home / "f.bin" and path.read_bytes() == PAYLOAD
    assert fetch("f.bin", [mirror.url], PAYLOAD_MD5, home) == path
    assert mirror.requests == ["/f.bin"]
    assert leftovers(home) == ["f.bin"]  # no temp files left behind


def test_fetch_replaces_stale_cached_file(home, make_mirror):
    home.mkdir()
    (home / "f.bin").write_bytes(b"half a download")
    mirror = make_mirror("good", {"f.bin": PAYLOAD})
    assert fetch("f.bin", [mirror.url], PAYLOAD_MD5, home).read_bytes() == PAYLOAD
    assert mirror.requests == ["/f.bin"]


def test_corrupt_download_is_rejected_and_next_mirror_used(home, make_mirror):
    bad = make_mirror("bad", {"f.bin": PAYLOAD[:-1] + b"X"})
    good = make_mirror("good", {"f.bin": PAYLOAD})
    path = fetch("f.bin", [bad.url, good.url], PAYLOAD_MD5, home)
    assert path.read_bytes() == PAYLOAD
    assert bad.requests == ["/f.bin"] and good.requests == ["/f.bin"]
    assert leftovers(home) == ["f.bin"]


def test_corrupt_download_is_not_cached(home, make_mirror):
    bad = make_mirror("bad", {"f.bin": b"not the payload"})
    with pytest.raises(DisgenError, match="md5") as err:
        fetch("f.bin", [bad.url], PAYLOAD_MD5, home)
    assert leftovers(home) == []
    assert hashlib.md5(b"not the payload").hexdigest() in str(err.value)


def test_all_mirrors_failing_names_files_mirrors_and_cache(home, make_mirror, closed_port_url):
    empty = make_mirror("empty", {})
    with pytest.raises(DisgenError) as err:
        fetch("f.bin", [empty.url, closed_port_url], PAYLOAD_MD5, home)
    message = str(err.value)
    assert f"{empty.url}f.bin: HTTP 404" in message
    assert f"{closed_port_url}f.bin: unreachable" in message
    assert str(home) in message and PAYLOAD_MD5 in message
    assert leftovers(home) == []


def test_offline_fails_fast(home, closed_port_url):
    start = time.monotonic()
    with pytest.raises(DisgenError, match="unreachable"):
        fetch("f.bin", [closed_port_url, closed_port_url], PAYLOAD_MD5, home)
    assert time.monotonic() - start < 3


# ---- the mnist registry path ----------------------------------------------------------------


def tiny_mnist(tmp_path: Path) -> dict[str, bytes]:
    """The four MNIST .gz files for 20 train / 10 test random 28x28 digits."""
    gen = torch.Generator().manual_seed(0)
    splits = [
        ImageSplit(torch.randint(0, 256, (n, 1, 28, 28), generator=gen, dtype=torch.uint8), torch.arange(n) % 10)
        for n in (20, 10)
    ]
    out = save_idx_dir(tmp_path / "tiny", *splits)
    return {f"{stem}.gz": (out / f"{stem}.gz").read_bytes() for stem in FILE_STEMS}


def test_mnist_downloads_into_cache_once(home, make_mirror, tmp_path, monkeypatch, closed_port_url):
    files = tiny_mnist(tmp_path)
    for name, data in files.items():
        monkeypatch.setitem(mnist.MNIST_MD5, name, hashlib.md5(data).hexdigest())
    # what was downloaded is then checked to be "MNIST": here, these 30 digits
    tiny = mnist.load_idx_dir(tmp_path / "tiny")
    content = mnist.Content((2,) * 10, (1,) * 10, mnist.content_sha256(tiny))
    monkeypatch.setattr(mnist, "MNIST", dataclasses.replace(mnist.MNIST, content=content))
    mirror = make_mirror("mnist", files)
    monkeypatch.setenv("DISGEN_MIRRORS_MNIST", f"{closed_port_url},{mirror.url}")
    data = load_dataset("mnist")
    assert data.source == str(home / "mnist") and data.classes == [str(d) for d in range(10)]
    assert data.train.images.shape == (20, 1, 28, 28)
    assert data.test.labels.tolist() == list(range(10))
    assert sorted(mirror.requests) == sorted(f"/{name}" for name in files)
    again = load_dataset("mnist")
    assert len(mirror.requests) == 4  # the second load reads the cache
    assert torch.equal(again.train.images, data.train.images)
    assert leftovers(home / "mnist") == sorted(files)


def test_mnist_rejects_files_with_wrong_md5(home, make_mirror, tmp_path, monkeypatch):
    mirror = make_mirror("mnist", tiny_mnist(tmp_path))  # the real md5 table does not match these
    monkeypatch.setenv("DISGEN_MIRRORS_MNIST", mirror.url)
    with pytest.raises(DisgenError, match="md5"):
        load_dataset("mnist")
    assert leftovers(home / "mnist") == []


def test_mnist_offline_fails_fast_and_says_where_to_put_files(home, monkeypatch, closed_port_url):
    monkeypatch.setenv("DISGEN_MIRRORS_MNIST", closed_port_url)
    start = time.monotonic()
    with pytest.raises(DisgenError) as err:
        load_dataset("mnist")
    assert time.monotonic() - start < 3
    message = str(err.value)
    assert all(stem in message for stem in FILE_STEMS)
    assert closed_port_url in message and "--data-dir" in message and str(home / "mnist") in message


def test_mirror_lists_default_and_override(monkeypatch):
    monkeypatch.delenv("DISGEN_MIRRORS_FASHION_MNIST", raising=False)
    assert mnist.FASHION_MNIST.mirror_list() == mnist.FASHION_MIRRORS
    monkeypatch.setenv("DISGEN_MIRRORS_FASHION_MNIST", " http://a/ , http://b/")
    assert mnist.FASHION_MNIST.mirror_list() == ["http://a/", "http://b/"]
