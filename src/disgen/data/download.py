"""Fetch a file from a list of mirrors into the cache, checked by md5.

Generic on purpose: datasets use it now, pretrained weights later. The pattern (try mirrors in
order, verify a published checksum, keep nothing that fails it) follows torchvision's
``torchvision/datasets/utils.py`` (``download_url`` / ``check_integrity``); the temp file plus
``os.replace`` makes the cache safe against interrupted downloads and concurrent processes.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from disgen.errors import DisgenError

# Connect and per-read timeout in seconds: long enough for a slow mirror, short enough that a
# machine without network fails in seconds rather than hanging.
TIMEOUT = 10.0
CHUNK = 1 << 20  # stream in 1 MiB pieces: never hold a whole file in memory


def cache_dir() -> Path:
    """Where downloads are kept: ``$DISGEN_HOME`` if set, else ``~/.cache/disgen``."""
    home = os.environ.get("DISGEN_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "disgen"


def md5sum(path: Path) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(filename: str, mirrors: list[str], md5: str, cache_dir: Path, timeout: float = TIMEOUT) -> Path:
    """Return ``cache_dir / filename``, downloading it from the first mirror that serves it intact.

    A cached file whose md5 matches is used without any request. Each mirror is a base URL;
    ``filename`` is appended to it. A download with the wrong md5 is deleted and the next mirror is
    tried. Raises :class:`DisgenError` listing every URL tried and why it failed.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / filename
    if target.is_file() and md5sum(target) == md5:
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DisgenError(f"cannot create cache directory {cache_dir}: {err}; set DISGEN_HOME elsewhere") from err
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        reason = _try_mirror(url, md5, target, timeout)
        if reason is None:
            return target
        failures.append(f"  {url}: {reason}")
    tried = "\n".join(failures) or "  (no mirrors given)"
    raise DisgenError(
        f"could not download {filename} into {cache_dir}; tried:\n{tried}\n"
        f"Check the network, or put {filename} (md5 {md5}) into {cache_dir} yourself."
    )


def _try_mirror(url: str, md5: str, target: Path, timeout: float) -> str | None:
    """Download ``url`` to ``target`` if its md5 matches; return why not, or None on success."""
    print(f"disgen: downloading {url}", file=sys.stderr)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _stream(url, out, timeout)
        got = md5sum(tmp)
        if got != md5:
            return f"md5 {got} differs from the expected {md5} (corrupt or changed file, not kept)"
        os.replace(tmp, target)
        return None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        return _describe(err)
    finally:
        tmp.unlink(missing_ok=True)  # after os.replace this is a no-op


def _stream(url: str, out, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        for chunk in iter(lambda: response.read(CHUNK), b""):
            out.write(chunk)


def _describe(err: Exception) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return f"unreachable ({err.reason})"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
