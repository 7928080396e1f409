"""A Hugging Face dataset's images decoded into the cache (:mod:`disgen.data.cache`), as an image
folder's are (:func:`disgen.data.image_folder.fit`), in worker processes where there are enough
(:mod:`disgen.data.workers`). A row without an image (None, an empty or ragged array, bytes that
are no image) is skipped, to be counted; an array column outside 0..255 is one error naming its
declared dtype. Pillow's warning for a large image never reaches the terminal: the decode refuses
one past the limit, naming it.

May import: errors and the modules of disgen.data. ``datasets`` is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from disgen.data import cache as decoded_cache
from disgen.data import workers
from disgen.data.image_folder import DEFAULT_SHAPE, PARALLEL_FROM, fit
from disgen.data.images import open_image
from disgen.errors import DisgenError

BATCH = 512  # rows read from the Arrow files at a time: only these are in memory while decoding


def decoded(present: dict, columns: tuple, kind: str, image_shape, key: str, what: str) -> decoded_cache.Decoded:
    """Every split's images, one after the other, from the decoded cache (decoded into it the first
    time). ``columns``: the image column and, for an array column, its declared dtype. The entry's
    name ends in the size asked for, or "own" for the images' own size, found by reading their
    headers only when the entry is not there yet."""
    want = tuple(image_shape) if image_shape and len(image_shape) == 3 else None
    key = f"{key}-{'x'.join(map(str, want)) if want else 'own'}"
    n = sum(len(ds) for ds in present.values())
    entry = decoded_cache.open_entry(key, n, want)
    if entry is not None:
        return entry
    shape = want or own_shape(present, columns, kind, what)
    return decoded_cache.build(key, n, shape, filler(present, columns, kind, shape, what), what)


def images_of(ds, column: str, kind: str):
    """Batches of a split's image column, undecoded: ``{"bytes", "path"}`` dicts of an Image
    column (Pillow then reads them as image files are read), numpy arrays of an array column."""
    import datasets

    ds = ds.select_columns([column])
    if kind == "image":
        ds = ds.cast_column(column, datasets.Image(decode=False))
    else:
        ds = ds.with_format("numpy")
    for batch in ds.iter(batch_size=BATCH):
        yield list(batch[column])


def own_shape(present: dict, columns: tuple, kind: str, what: str) -> tuple[int, int, int]:
    """The images' own (C, H, W) where they all share it (1 channel where all are grey), else 3x64x64
    (read from the files' headers); arrays must share one shape (C, H, W)."""
    column, declared = columns
    shapes = set()
    for ds in present.values():
        for batch in images_of(ds, column, kind):
            for item in batch:
                if kind == "array":
                    arr = as_image_array(item, column, what, declared)
                    if arr is None:
                        continue
                    shapes.add(arr.shape)
                    if len(shapes) > 1:
                        both = " and ".join(map(str, sorted(shapes)))
                        raise DisgenError(
                            f"{what}: the arrays of its column {column!r} differ in shape ({both}): give them one "
                            "shape, or choose a model with a fixed image size (e.g. resnet-transfer --image-size)"
                        )
                    continue
                shape = header_shape(item)
                if shape:
                    shapes.add(shape)
    if kind == "array" or len({s[1:] for s in shapes}) == 1:
        return (min(s[0] for s in shapes), *shapes.pop()[1:]) if shapes else DEFAULT_SHAPE
    return DEFAULT_SHAPE


def header_shape(item) -> tuple[int, int, int] | None:
    """(C, H, W) from an image's header; None where there is no image or it cannot be read (it is
    skipped when decoding). Pillow's warning for a large image stays off the terminal: decoding
    refuses one past the limit, naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(item["bytes"]) if item["bytes"] else item["path"]) as im:
                grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
                return (1 if grey else 3, im.height, im.width)
    except Exception:  # None for an image, Pillow's many types: an unreadable image is skipped when decoding
        return None


def as_image_array(value, column: str, what: str, declared: str | None = None) -> np.ndarray | None:
    """A pixel array (H, W), (H, W, C) or (C, H, W) of uint8 as (C, H, W), C = 1, 3 or 4; None for a
    row that holds no array (None, empty, ragged): it is skipped as an unreadable image."""
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged nested lists
        return None
    if value is None or arr.size == 0 or arr.dtype == object:
        return None
    if arr.dtype != np.uint8 and not (arr.dtype.kind in "iu" and 0 <= arr.min() and arr.max() <= 255):
        bad = arr[(arr < 0) | (arr > 255)] if arr.dtype.kind in "iuf" else arr.reshape(-1)
        example = f" (e.g. {bad.reshape(-1)[0]})" if bad.size else ""
        raise DisgenError(
            f"{what}: its column {column!r} holds arrays of {declared or arr.dtype}, not uint8 pixels in "
            f"0..255{example}: rescale them to 0..255, or name an image column with --image-column"
        )
    if arr.ndim == 2:
        return arr[None].astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        return arr.transpose(2, 0, 1).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
        return arr.astype(np.uint8)
    raise DisgenError(
        f"{what}: its column {column!r} holds arrays of shape {arr.shape}, not images (H, W), (H, W, C) or "
        "(C, H, W) with 1, 3 or 4 channels: name an image column with --image-column"
    )


def decode_item(job: tuple) -> np.ndarray | None:
    """One row's image as uint8 (C, H, W) of ``shape``, decoded as an image folder's files are; None if unreadable."""
    item, kind, shape, (column, declared), what = job
    if kind == "array":
        arr = as_image_array(item, column, what, declared)
        if arr is None or arr.shape == tuple(shape):
            return arr
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[0]]
        im = Image.fromarray(arr[0] if mode == "L" else arr.transpose(1, 2, 0), mode)
        if mode == "RGBA":
            im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
        return fit(im.convert("RGB"), shape)
    try:
        return fit(open_image(io.BytesIO(item["bytes"]) if item["bytes"] else Path(item["path"])), shape)
    except (DisgenError, TypeError, KeyError):  # TypeError: None, a row without an image
        return None


def filler(present: dict, columns: tuple, kind: str, shape: tuple[int, int, int], what: str):
    """``fill(out)`` for :func:`disgen.data.cache.build`: every split's images, one after the other,
    decoded in worker processes where there are enough to pay for them."""

    def fill(out) -> tuple[list[int], dict]:
        ok, row = [], 0
        n = sum(len(ds) for ds in present.values())
        processes = min(8, os.cpu_count() or 1) if n >= PARALLEL_FROM and kind == "image" else 1
        with workers.Workers(processes) if processes > 1 else contextlib.nullcontext() as pool:
            for ds in present.values():
                for batch in images_of(ds, columns[0], kind):
                    jobs = [(item, kind, shape, columns, what) for item in batch]
                    for arr in pool.imap(decode_item, jobs, 32) if pool else map(decode_item, jobs):
                        if arr is not None:
                            out[row] = arr
                            ok.append(row)
                        row += 1
        return ok, {"rows": {str(k): len(ds) for k, ds in present.items()}, "column": columns[0]}

    return fill
