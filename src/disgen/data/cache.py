"""Decoded images kept on disk and memory-mapped: the cache of image folders, Kaggle layouts and
Hugging Face datasets.

An entry is a folder ``$DISGEN_HOME/decoded/KEY/`` holding ``images.u8`` (the uint8 pixels of
``n`` images of shape (C, H, W), row after row) and ``meta.json`` (the shape, which rows decoded,
and what the loader wants to keep). It is written once, in a temporary folder renamed into place
when complete, so a kill mid-decode leaves no half entry; it is read back as a memory-mapped
tensor, whose pages the operating system reads from the file when a batch touches them and may
drop again under memory pressure. A dataset of 200,000 images of 64x64 (2.5 GB) therefore costs
the process no more anonymous memory than the batch it reads (see docs/data.md and
benchmarks/bench_mapped.py).

A damaged or foreign entry (a size that disagrees with its shape, a meta.json that is not ours) is
decoded again, never trusted.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from disgen.errors import DisgenError

FORMAT = 1
IMAGES, META = "images.u8", "meta.json"


@dataclass
class Decoded:
    """``images``: uint8 (n, C, H, W), memory-mapped from the entry's file (rows that did not
    decode are zeros); ``ok``: int64 indices of the rows that decoded; ``meta``: what the loader
    stored with them."""

    images: torch.Tensor
    ok: torch.Tensor
    meta: dict = field(default_factory=dict)
    path: Path | None = None


def root() -> Path:
    from disgen.data.download import cache_dir

    return cache_dir() / "decoded"


def open_entry(key: str) -> Decoded | None:
    """The cached entry ``key``, or None where there is none or it is damaged (then it is decoded again)."""
    folder = root() / key
    meta_path, images_path = folder / META, folder / IMAGES
    if not meta_path.is_file() or not images_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        shape = tuple(int(v) for v in meta["shape"])
        ok = torch.tensor([int(i) for i in meta["ok"]], dtype=torch.int64)
        if meta.get("format") != FORMAT or len(shape) != 4 or min(shape) < 0:
            raise ValueError("not a disgen cache entry")
        if images_path.stat().st_size != math.prod(shape) or (
            len(ok) and not 0 <= int(ok.min()) <= int(ok.max()) < shape[0]
        ):
            raise ValueError("its size or rows disagree with its shape")
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        print(f"warning: ignoring the damaged image cache {folder} ({err}); decoding again", file=sys.stderr)
        return None
    return Decoded(mapped(images_path, shape), ok, meta.get("extra", {}), folder)


def mapped(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    """The uint8 file as a tensor of ``shape`` backed by the file's pages (copy-on-write: the
    tensor can be written to without touching the file, though disgen never does).

    The mapping is advised random access: batches read scattered rows of a few KB, and the
    kernel's default read-ahead would read 10-30 times more of a file that is not cached."""
    if math.prod(shape) == 0:
        return torch.zeros(shape, dtype=torch.uint8)
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    if hasattr(mmap, "MADV_RANDOM"):
        mm.madvise(mmap.MADV_RANDOM)
    return torch.from_numpy(np.frombuffer(mm, dtype=np.uint8).reshape(shape))


def check_disk(folder: Path, need: int, what: str) -> None:
    """Refuse before decoding when the cache's disk cannot hold ``need`` more bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if need > free:
        raise DisgenError(
            f"{what}: its decoded images take {need / 2**30:,.2f} GiB, but the cache's disk ({folder}) has "
            f"{free / 2**30:,.2f} GiB free; free some space, point DISGEN_HOME at a larger disk, or choose a "
            "smaller image size"
        )


def build(
    key: str,
    n: int,
    shape: tuple[int, int, int],
    fill: Callable[[np.ndarray], tuple[list[int], dict]],
    what: str,
) -> Decoded:
    """Decode ``n`` images of ``shape`` into the entry ``key`` (or reuse it): ``fill(out)`` writes
    rows of ``out`` (a writable uint8 (n, C, H, W) array on disk) and returns the indices of the
    rows it could decode and a dict of what to keep beside them (JSON)."""
    found = open_entry(key)
    if found is not None:
        return found
    full = (n, *shape)
    folder = root() / key
    check_disk(folder.parent, math.prod(full), what)
    tmp = folder.parent / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if n:
            arr = np.memmap(tmp / IMAGES, dtype=np.uint8, mode="w+", shape=full)
            ok, extra = fill(arr)
            arr.flush()
            del arr
        else:
            (tmp / IMAGES).write_bytes(b"")
            ok, extra = fill(np.zeros(full, np.uint8))
        meta = {"format": FORMAT, "shape": list(full), "ok": [int(i) for i in ok], "extra": extra}
        (tmp / META).write_text(json.dumps(meta), encoding="utf-8")
        if folder.exists():  # a damaged entry (open_entry refused it): replaced by the new one
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same entry first: use that one
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    entry = open_entry(key)
    if entry is None:
        raise DisgenError(
            f"{what}: the decoded images could not be written to {folder}; check that the disk is writable"
        )
    return entry


def remove_stale(max_age_s: float = 3600) -> None:
    """Temporary folders of decodes a kill interrupted (older than ``max_age_s``)."""
    import time

    if not root().is_dir():
        return
    for tmp in root().glob(".*.tmp-*"):
        try:
            if time.time() - tmp.stat().st_mtime > max_age_s:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass
