"""Read and write IDX files, the format MNIST and Fashion-MNIST ship in.

Format (LeCun, Cortes and Burges, "THE MNIST DATABASE of handwritten digits",
http://yann.lecun.com/exdb/mnist/, section "FILE FORMATS FOR THE MNIST DATABASE"): two zero bytes,
one byte naming the element type, one byte giving the number of dimensions; then each dimension
as a big-endian uint32; then the elements, big-endian, in C order. Files may be gzip-compressed;
compression is recognised by its magic bytes on reading and chosen by a ``.gz`` suffix on writing.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from disgen.errors import DisgenError

# Type byte -> big-endian numpy dtype, and torch dtype -> type byte (same source as above).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
TORCH_TO_IDX: dict[torch.dtype, int] = {
    torch.uint8: 0x08,
    torch.int8: 0x09,
    torch.int16: 0x0B,
    torch.int32: 0x0C,
    torch.float32: 0x0D,
    torch.float64: 0x0E,
}
# Refuse headers declaring more than this before reading a byte of the body: what the decoded
# tensors will cost, the array read (its dtype's bytes a value) and, per value and channel, the
# uint8 pixels and float32 inputs a model is given (5 bytes). The largest real IDX file, MNIST's
# training images (47 million values), costs 282 MB; 2 GiB means a corrupt or hostile header.
MAX_DECODED_BYTES = 2**31
# Bodies are read in pieces of this size, so memory grows with the bytes a file really holds,
# not with what its header declares (a one-shot read(n) allocates all n bytes up front).
READ_CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


def decoded_bytes(shape: tuple[int, ...], dtype: np.dtype, channels: int = 1) -> int:
    """What reading an IDX body of ``shape`` costs: the array, then uint8 and float32 per channel."""
    return math.prod(shape) * (dtype.itemsize + 5 * channels)


def read_idx(path: str | Path, channels: int = 1) -> torch.Tensor:
    """Read an IDX file (raw or gzip) into a tensor of the matching dtype and shape.

    Raises :class:`DisgenError` naming the file for a missing file, a bad header, a truncated
    body, trailing bytes, a declared size whose decoded tensors (as images of ``channels``
    channels, :func:`decoded_bytes`) would cost over MAX_DECODED_BYTES, or corrupt gzip data.
    The body is decompressed in a stream and read no further than its header declares.
    """
    path = Path(path)
    if not path.is_file():
        raise DisgenError(f"IDX file not found: {path}: check the path or download the file again")
    try:
        with _open(path) as f:
            dtype, shape = _read_header(f, path)
            # A zero dimension makes the body empty, but the other dimensions still shape an array:
            # (0, 10**6, 10**6, 10**6) is no dataset, and numpy cannot even reshape to it.
            bound = tuple(max(d, 1) for d in shape)
            cost = decoded_bytes(bound, dtype, channels)
            if cost > MAX_DECODED_BYTES:
                raise DisgenError(
                    f"IDX file {path} declares shape {shape} of {dtype.name} ({math.prod(bound):,} values"
                    f"{' if its zero dimension were one' if 0 in shape else ''}: "
                    f"{cost / 2**30:,.1f} GiB decoded, as uint8 and float32 images), over the limit of "
                    f"{MAX_DECODED_BYTES / 2**30:g} GiB: its header is corrupt, or split the file into smaller ones"
                )
            return _read_body(f, path, dtype, shape)
    except (gzip.BadGzipFile, zlib.error, EOFError) as err:
        raise DisgenError(f"corrupt gzip data in {path} ({err}): delete the file and download it again") from err
    except OSError as err:
        raise DisgenError(f"cannot read IDX file {path}: {err}") from err


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _read_exact(f: BinaryIO, n: int, path: Path, what: str) -> bytearray:
    """Exactly ``n`` bytes, read in pieces of READ_CHUNK into one buffer grown as they arrive:
    memory follows what the file holds, never what its header declares, and a body is held once
    (a large buffer grows in place, without a copy)."""
    buf = bytearray()
    while len(buf) < n:
        part = f.read(min(READ_CHUNK, n - len(buf)))
        if not part:
            break
        buf += part
    if len(buf) != n:
        raise DisgenError(
            f"truncated IDX file {path}: {what} needs {n} bytes but only {len(buf)} remain; "
            "the file is incomplete: download it again"
        )
    return buf


def _read_header(f: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    zero0, zero1, code, ndim = _read_exact(f, 4, path, "the header")
    if zero0 != 0 or zero1 != 0:
        raise DisgenError(
            f"{path} is not an IDX file: its magic number starts with bytes "
            f"{zero0:#04x} {zero1:#04x}, not 0x00 0x00; pass an IDX file "
            "(e.g. train-images-idx3-ubyte)"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"{c:#04x}" for c in IDX_DTYPES)
        raise DisgenError(
            f"unknown IDX element type {code:#04x} in {path}: expected one of {known}; the file is corrupt or not IDX"
        )
    shape = struct.unpack(f">{ndim}I", _read_exact(f, 4 * ndim, path, f"{ndim} dimension sizes"))
    return IDX_DTYPES[code], tuple(shape)


def _read_body(f: BinaryIO, path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    nbytes = math.prod(shape) * dtype.itemsize
    body = _read_exact(f, nbytes, path, f"shape {shape} of {dtype.name}")
    if f.read(1):
        raise DisgenError(
            f"IDX file {path} has bytes after the {nbytes} its header declares for shape {shape}: "
            "the file is corrupt or not IDX; download it again"
        )
    array = np.frombuffer(body, np.uint8).view(dtype)  # writable: a bytearray's memory
    if not dtype.isnative:  # big-endian on disk: swapped in place, then read as native
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return torch.from_numpy(array.reshape(shape))


def is_idx_file(path: Path) -> bool:
    """Whether ``path``'s content (gzip-compressed or not) starts with an IDX magic number: two
    zero bytes, a known element type, at least one dimension. The name does not decide."""
    try:
        with _open(Path(path)) as f:
            head = f.read(4)
    except (OSError, EOFError, zlib.error):
        return False
    return len(head) == 4 and head[0] == head[1] == 0 and head[2] in IDX_DTYPES and head[3] >= 1


def as_pixels(x: torch.Tensor, path: Path) -> torch.Tensor:
    """IDX values as uint8 pixels: uint8 as they are; other types (int16, float32...) only if
    every value is a finite number in 0..255 (rounded), else a DisgenError naming the file."""
    if x.dtype == torch.uint8:
        return x
    bad = ~torch.isfinite(x) | (x < 0) | (x > 255) if x.is_floating_point() else (x < 0) | (x > 255)
    if bad.any():
        first = x.reshape(-1)[bad.reshape(-1).nonzero()[0]].item()
        raise DisgenError(
            f"IDX file {path} holds {str(x.dtype).removeprefix('torch.')} values outside the pixel range 0..255 "
            f"({int(bad.sum()):,} of {x.numel():,}, e.g. {first}): images are read as 0..255; "
            "rescale the file's values or write it as uint8"
        )
    return x.round().to(torch.uint8) if x.is_floating_point() else x.to(torch.uint8)


def write_idx(path: str | Path, tensor: torch.Tensor) -> Path:
    """Write ``tensor`` as an IDX file; gzip-compressed if ``path`` ends in ``.gz``.

    Gzip output has mtime 0 and no stored file name, so the same tensor gives the same bytes.
    """
    path = Path(path)
    if tensor.dtype not in TORCH_TO_IDX:
        names = ", ".join(str(d) for d in TORCH_TO_IDX)
        raise DisgenError(f"cannot write {tensor.dtype} to IDX file {path}: convert the tensor to one of {names}")
    if tensor.ndim > 255 or any(n >= 2**32 for n in tensor.shape):
        raise DisgenError(f"shape {tuple(tensor.shape)} does not fit an IDX header ({path})")
    code = TORCH_TO_IDX[tensor.dtype]
    header = struct.pack(f">BBBB{tensor.ndim}I", 0, 0, code, tensor.ndim, *tensor.shape)
    body = tensor.detach().cpu().contiguous().numpy().astype(IDX_DTYPES[code]).tobytes()
    with open(path, "wb") as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
                f.write(header + body)
        else:
            raw.write(header + body)
    return path
