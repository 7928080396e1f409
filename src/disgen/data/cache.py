"""Decoded images kept on disk and read back a batch at a time: the cache of image folders, Kaggle
layouts, Hugging Face datasets and CSV files.

An entry is a folder ``$DISGEN_HOME/decoded/KEY/`` holding ``images.u8`` (the uint8 pixels of
``n`` images of shape (C, H, W), row after row) and ``meta.json`` (the shape, which rows decoded,
what the loader wants to keep, a digest of a sample of the rows and a digest of itself). It is
written once, in a temporary folder renamed into place when complete, so a kill mid-decode leaves
no half entry; the file's space is reserved before the first row is written, so a disk that fills
up (another decode beside this one) is one error, never a write into space that is not there.

Rows are read with ``pread`` into ordinary tensors (:class:`FileRows`), never mapped: a file that
shrinks under a reader (truncated by hand, rewritten by another process) is a short read and one
error naming it, where a memory-mapped page past the file's end kills the process (SIGBUS). The
pages stay in the kernel's page cache, not the process's memory, so a dataset of 200,000 images
of 64x64 (2.5 GB) costs the process no more than the batch it reads (see docs/data.md).

An entry is checked on open against what it must be: its meta's digest, the shape and count the
caller expects (the source's files and the size asked for), the rows that decoded (increasing,
within the file) and a digest of up to 64 of its rows. A damaged or edited entry is decoded
again, never trusted. Temporary folders of decodes whose process died are removed before a new
decode.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from disgen.config import read_json
from disgen.errors import DisgenError

FORMAT = 2  # 2: meta.json carries its own digest and a digest of sampled rows; format 1 decodes again
IMAGES, META, LOCK = "images.u8", "meta.json", ".lock"
SAMPLED = 64  # rows whose bytes the meta's digest covers: a zeroed or rewritten file fails it
MAX_META, META_PER_ROW = 1 << 20, 128  # bytes of meta.json: a row's index, file digest and label take < 60


@dataclass
class Decoded:
    """``images``: uint8 rows (n, C, H, W) of the entry's file (:class:`FileRows`; rows that did
    not decode are zeros); ``ok``: int64 indices of the rows that decoded; ``meta``: what the
    loader stored with them."""

    images: FileRows
    ok: torch.Tensor
    meta: dict = field(default_factory=dict)
    path: Path | None = None


class FileRows:
    """The uint8 rows (n, C, H, W) of a cache file, read with ``pread`` when asked for: ``x[i]``,
    ``x[a:b]`` and ``x.index_select(0, idx)`` give ordinary tensors, as a tensor's would; ``len``,
    ``shape``, ``dtype`` and ``dim()`` answer as a tensor's. Consecutive rows are read in one call."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.path, self.shape, self.dtype = Path(path), torch.Size(shape), torch.uint8
        self.row = math.prod(shape[1:])
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except Exception:  # at interpreter exit the os module may be gone; the kernel closes it then
            pass

    def __len__(self) -> int:
        return self.shape[0]

    def dim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            return self.index_select(0, torch.arange(*key.indices(len(self))))
        if isinstance(key, torch.Tensor):
            return self.index_select(0, key)
        i = int(key)
        return self.index_select(0, torch.tensor([i + len(self) if i < 0 else i]))[0]

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        if dim != 0:
            raise ValueError("FileRows selects along the first dimension only")
        idx = index.cpu().to(torch.int64).reshape(-1).numpy()
        if len(idx) and not (0 <= idx.min() and idx.max() < len(self)):
            raise IndexError(f"row {int(idx.max() if idx.max() >= len(self) else idx.min())} of {len(self)}")
        rows, inverse = np.unique(idx, return_inverse=True)
        out = np.empty((len(rows), self.row), np.uint8)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]) if len(rows) else ():
            self.read_into(out[start:stop], int(rows[start]))
        if len(rows) != len(idx) or not np.array_equal(rows, idx):
            out = out[inverse.reshape(-1)]
        return torch.from_numpy(out).reshape(len(idx), *self.shape[1:])

    def read_into(self, out: np.ndarray, first: int) -> None:
        view, offset, done = memoryview(out).cast("B"), first * self.row, 0
        while done < len(view):
            got = os.preadv(self.fd, [view[done:]], offset + done)
            if got == 0:
                raise DisgenError(
                    f"the image cache {self.path} shrank while it was read (another process truncated or "
                    f"rewrote it): it holds {os.fstat(self.fd).st_size:,} bytes of {len(self) * self.row:,}; "
                    "run the command again (the images are decoded afresh)"
                )
            done += got


def root() -> Path:
    from disgen.data.download import cache_dir

    return cache_dir() / "decoded"


def meta_digest(meta: dict) -> str:
    return hashlib.sha256(
        json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode()
    ).hexdigest()


def rows_digest(images: FileRows) -> str:
    """SHA-256 of up to SAMPLED rows spread evenly over the file (a few KB to read)."""
    n = len(images)
    picked = torch.from_numpy(np.unique(np.linspace(0, n - 1, min(n, SAMPLED)).round().astype(np.int64)))
    h = hashlib.sha256(f"{tuple(images.shape)}".encode())
    if n:
        h.update(images.index_select(0, picked).numpy().tobytes())
    return h.hexdigest()


def open_entry(key: str, n: int | None = None, shape: tuple[int, ...] | None = None) -> Decoded | None:
    """The cached entry ``key``, or None where there is none or it is damaged (then it is decoded
    again): ``n`` and ``shape`` (C, H, W), where given, are what the source holds."""
    folder = root() / key
    meta_path, images_path = folder / META, folder / IMAGES
    if not meta_path.is_file() or not images_path.is_file():
        return None
    try:
        limit = MAX_META + META_PER_ROW * n if n is not None else 64 * MAX_META
        meta = read_json(meta_path, "the image cache's", max_bytes=limit)  # a FIFO, 5 GB: refused
        full = tuple(int(v) for v in meta["shape"])
        if meta.get("format") != FORMAT or meta.get("sha256") != meta_digest(meta):
            raise ValueError("not this disgen's cache entry, or its meta.json was edited")
        if len(full) != 4 or min(full) < 0 or (n is not None and full[0] != n) or shape and full[1:] != tuple(shape):
            raise ValueError(f"its shape {full} is not the source's ({n}, {', '.join(map(str, shape or ()))})")
        ok = np.asarray(meta["ok"], dtype=np.int64)
        if ok.ndim != 1 or len(ok) and (ok[0] < 0 or ok[-1] >= full[0] or (np.diff(ok) <= 0).any()):
            raise ValueError("its list of decoded rows is not increasing rows of the file")
        if images_path.stat().st_size != math.prod(full):
            raise ValueError("its size disagrees with its shape")
        images = FileRows(images_path, full)
        if rows_digest(images) != meta.get("rows_sha256"):
            raise ValueError("its images are not the ones decoded (their digest differs)")
    except (OSError, ValueError, KeyError, TypeError, OverflowError, DisgenError) as err:
        print(f"warning: ignoring the damaged image cache {folder} ({err}); decoding again", file=sys.stderr)
        return None
    return Decoded(images, torch.from_numpy(ok), meta.get("extra", {}), folder)


class RowWriter:
    """What ``fill`` writes decoded rows into: ``out[i] = image`` and ``out[a:b] = images`` (uint8,
    broadcast as numpy does) go to the entry's file with ``pwrite``, into space already reserved."""

    def __init__(self, fd: int, shape: tuple[int, ...]):
        self.fd, self.shape = fd, tuple(shape)
        self.row = math.prod(shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, key, value) -> None:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise ValueError("RowWriter writes consecutive rows only")
            target = (max(0, stop - start), *self.shape[1:])
        else:
            start = int(key) + (len(self) if int(key) < 0 else 0)
            if not 0 <= start < len(self):
                raise IndexError(f"row {int(key)} of {len(self)}")
            target = self.shape[1:]
        data = np.ascontiguousarray(np.broadcast_to(np.asarray(value).astype(np.uint8, copy=False), target))
        view, offset, done = memoryview(data).cast("B"), start * self.row, 0
        while done < len(view):
            done += os.pwrite(self.fd, view[done:], offset + done)


def check_disk(folder: Path, need: int, what: str, err: OSError | None = None) -> None:
    """Refuse before decoding when the cache's disk cannot hold ``need`` more bytes (``err``: the
    reservation itself failed)."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if need > free or err is not None:
        why = f" ({err.strerror or err})" if err is not None else ""
        raise DisgenError(
            f"{what}: its decoded images take {need / 2**30:,.2f} GiB, but the cache's disk ({folder}) has "
            f"{free / 2**30:,.2f} GiB free{why}; free some space, point DISGEN_HOME at a larger disk, or "
            "choose a smaller image size"
        )


def build(
    key: str,
    n: int,
    shape: tuple[int, int, int],
    fill: Callable[[RowWriter], tuple[list[int], dict]],
    what: str,
) -> Decoded:
    """Decode ``n`` images of ``shape`` into the entry ``key`` (or reuse it): ``fill(out)`` writes
    rows of ``out`` (a :class:`RowWriter` of (n, C, H, W) into the entry's file) and returns the
    indices of the rows it could decode and a dict of what to keep beside them (JSON)."""
    found = open_entry(key, n, shape)
    if found is not None:
        return found
    full = (n, *shape)
    folder = root() / key
    remove_stale()
    check_disk(folder.parent, math.prod(full), what)
    tmp = folder.parent / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lock = os.open(tmp / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held while decoding: remove_stale leaves this folder alone
        fill_entry(tmp, full, fill, what)
        os.unlink(tmp / LOCK)
        if folder.exists():  # a damaged entry (open_entry refused it): replaced by the new one
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same entry first: use that one
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(lock)
    entry = open_entry(key, n, shape)
    if entry is None:
        raise DisgenError(
            f"{what}: the decoded images could not be written to {folder}; check that the disk is writable"
        )
    return entry


@contextlib.contextmanager
def reserving(folder: Path):
    """One process at a time reserves space in the cache: two decodes that reserve at once on a disk
    with room for one would each take part of it and both fail; in turn, one gets its space."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the cache's folder itself: no lock file
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def fill_entry(tmp: Path, full: tuple[int, ...], fill: Callable, what: str) -> None:
    """``images.u8`` (its space reserved first) and ``meta.json`` of an entry in the folder ``tmp``."""
    fd = os.open(tmp / IMAGES, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if math.prod(full):
            try:
                with reserving(tmp.parent):
                    os.posix_fallocate(fd, 0, math.prod(full))
            except OSError as err:
                os.ftruncate(fd, 0)  # give back what a partial reservation took
                check_disk(tmp.parent, math.prod(full), what, err)
        ok, extra = fill(RowWriter(fd, full))
    finally:
        os.close(fd)
    meta = {
        "format": FORMAT,
        "shape": list(full),
        "ok": sorted({int(i) for i in ok}),
        "extra": extra,
        "rows_sha256": rows_digest(FileRows(tmp / IMAGES, full)),
    }
    meta["sha256"] = meta_digest(meta)
    try:
        (tmp / META).write_text(json.dumps(meta), encoding="utf-8")
    except OSError as err:
        check_disk(tmp.parent, len(json.dumps(meta)), what, err)


def remove_stale(max_age_s: float = 24 * 3600) -> list[Path]:
    """Remove the temporary folders of decodes whose process died (a kill, a crash): their lock is
    free, or, where none was taken yet, their process is gone; any older than ``max_age_s`` too."""
    removed = []
    for tmp in root().glob(".*.tmp-*") if root().is_dir() else []:
        with contextlib.suppress(OSError):
            if abandoned(tmp) or time.time() - tmp.stat().st_mtime > max_age_s:
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
    return removed


def abandoned(tmp: Path) -> bool:
    try:
        fd = os.open(tmp / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:  # killed before taking the lock: is its process still there?
        pid = tmp.name.rpartition("-")[2]
        if not pid.isdigit():
            return True
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
