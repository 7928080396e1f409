"""A folder of images as a dataset: ``--dataset PATH``.

    PATH/*.png|jpg|...            one class (named after the folder)
    PATH/CLASS/*.png|jpg|...      class subfolders (files directly in PATH form a class ".")

Any size and colour: each image is composited on white if it has transparency (transparent
sprites otherwise turn into black blocks), converted to RGB (or grey for 1-channel models), resized
so its shorter side fits and centre-cropped to the model's size. Corrupt or unreadable files are
skipped and counted in one warning. Decoding happens once, in worker processes, into a
memory-mapped uint8 file under ``$DISGEN_HOME/decoded/`` (:mod:`disgen.data.cache`) keyed by the
files' names, sizes and modification times and the target size, so later runs and epochs never
re-decode and a folder larger than memory trains: only the rows a batch reads are in memory.

Every 10th image (by sorted path) is the test split; the rest is the training split.

The functions here are generic so other loaders can reuse them: :func:`list_images`,
:func:`decode`, :func:`fit`, :func:`decode_all`, :func:`load_image_folder`.
"""

from __future__ import annotations

import hashlib
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from disgen.data import cache as decoded_cache
from disgen.data.dataset import ImageSplit, Rows, TensorDataset, check_decoded_size, take
from disgen.data.images import IMAGE_SUFFIXES, open_image
from disgen.errors import DisgenError

DEFAULT_SHAPE = (3, 64, 64)
TEST_EVERY = 10
PARALLEL_FROM = 200  # files; below this, worker start-up costs more than it saves
IDX_STEMS = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")


def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursively, hidden files skipped), sorted."""
    return sorted(
        p
        for p in Path(root).rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def is_image_folder(path: Path) -> bool:
    """A folder of image files that is not an IDX dataset folder."""
    path = Path(path)
    if any((path / (stem + sfx)).exists() for stem in IDX_STEMS for sfx in ("", ".gz")):
        return False
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*"))


def decode(path: Path, image_shape: tuple[int, int, int]) -> np.ndarray | None:
    """One file as uint8 (C, H, W): transparency on white, resized to cover and centre-cropped;
    None if it cannot be read."""
    try:
        return fit(open_image(path), image_shape)  # RGB, RGBA composited on white
    except DisgenError:
        return None


def fit(im: Image.Image, image_shape: tuple[int, int, int]) -> np.ndarray:
    """An opened RGB image as uint8 (C, H, W): resized so its shorter side fits and centre-cropped
    (an image already of the size is kept pixel for pixel), grey for a 1-channel shape."""
    c, h, w = image_shape
    im = ImageOps.fit(im, (w, h), Image.BICUBIC)
    arr = np.asarray(im.convert("L") if c == 1 else im, dtype=np.uint8)
    return arr[None] if c == 1 else arr.transpose(2, 0, 1).copy()


def _decode_one(args: tuple[str, tuple[int, int, int]]) -> np.ndarray | None:
    return decode(Path(args[0]), args[1])


def decode_each(paths: list[Path], image_shape: tuple[int, int, int]):
    """``(i, uint8 (C, H, W) or None)`` for every path, in order, decoded in worker processes
    where there are enough files to pay for them; only a chunk of images is in memory at a time."""
    jobs = [(str(p), tuple(image_shape)) for p in paths]
    if len(jobs) >= PARALLEL_FROM and (os.cpu_count() or 1) > 1:
        with ProcessPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            yield from enumerate(pool.map(_decode_one, jobs, chunksize=64))
    else:
        yield from ((i, _decode_one(j)) for i, j in enumerate(jobs))


def decode_all(paths: list[Path], image_shape: tuple[int, int, int]) -> tuple[torch.Tensor, list[int]]:
    """uint8 (N_ok, C, H, W) of the readable ``paths``, in memory, and the indices of those that decoded."""
    arrays = dict((i, a) for i, a in decode_each(paths, image_shape) if a is not None)
    ok = sorted(arrays)
    stacked = np.stack([arrays[i] for i in ok]) if ok else np.zeros((0, *image_shape), np.uint8)
    return torch.from_numpy(stacked), ok


def cache_key(root: Path, files: list[Path], image_shape: tuple[int, int, int]) -> str:
    digest = hashlib.sha1(repr(tuple(image_shape)).encode())
    for f in files:
        st = f.stat()
        digest.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def decode_cached(
    root: Path, files: list[Path], image_shape: tuple[int, int, int], cache: bool = True
) -> tuple[torch.Tensor | Rows, list[int], list[str]]:
    """The readable ``files`` under ``root`` as uint8 (N_ok, C, H, W), the indices of those that
    decoded and the paths (relative to ``root``) of those that could not be read.

    Cached (the default): decoded once into a memory-mapped file keyed by :func:`cache_key`
    (:mod:`disgen.data.cache`) and returned as :class:`Rows` of it, so a folder larger than memory
    loads. ``cache=False`` decodes into memory, within the memory limit."""
    what = f"image folder {root}"
    if not cache:
        check_decoded_size(
            len(files), image_shape, what, "choose a smaller image size (e.g. --image-size) or fewer images"
        )
        images, ok = decode_all(files, image_shape)
        return images, ok, skipped_of(root, files, ok)

    def fill(out: np.ndarray) -> tuple[list[int], dict]:
        ok = []
        for i, arr in decode_each(files, image_shape):
            if arr is not None:
                out[i] = arr
                ok.append(i)
        return ok, {"root": str(root), "files": len(files)}

    entry = decoded_cache.build(
        "folder-" + cache_key(root, files, image_shape), len(files), tuple(image_shape), fill, what
    )
    ok = entry.ok.tolist()
    return Rows(entry.images, entry.ok), ok, skipped_of(root, files, ok)


def skipped_of(root: Path, files: list[Path], ok: list[int]) -> list[str]:
    return [str(files[i].relative_to(root)) for i in sorted(set(range(len(files))) - set(ok))]


def load_image_folder(
    root: str | Path, image_shape: tuple[int, int, int] | None = None, cache: bool = True
) -> TensorDataset:
    """The images under ``root`` as a TensorDataset of ``image_shape`` (default 3x64x64)."""
    root = Path(root).expanduser()
    shape = tuple(image_shape or DEFAULT_SHAPE)
    files = list_images(root)
    if not files:
        raise DisgenError(f"folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images, ok, skipped = decode_cached(root, files, shape, cache)
    if skipped:
        shown = ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        print(
            f"warning: skipped {len(skipped)} unreadable image file(s) of {len(files)} in {root}: {shown}",
            file=sys.stderr,
        )
    if not ok:
        raise DisgenError(f"none of the {len(files)} image files in {root} could be read")
    kept = [files[i] for i in ok]
    names = [str(f.parent.relative_to(root)) for f in kept]
    classes = sorted(set(names))
    if classes == ["."]:
        classes = [root.name or "images"]
        names = classes * len(kept)
    labels = torch.tensor([classes.index(n) for n in names], dtype=torch.int64)
    test = torch.zeros(len(kept), dtype=torch.bool)
    test[::TEST_EVERY] = True
    train = ~test if len(kept) > 1 else test
    return TensorDataset(
        root.name or str(root),
        ImageSplit(take(images, train), labels[train]),
        ImageSplit(take(images, test), labels[test]),
        classes,
        source=str(root),
        extra={"skipped": skipped, "files": len(files)},
    )
