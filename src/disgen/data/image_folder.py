"""A folder of images as a dataset: ``--dataset PATH``.

    PATH/*.png|jpg|...            one class (named after the folder)
    PATH/CLASS/*.png|jpg|...      class subfolders (files directly in PATH form a class ".")

One level of class folders, never more: images deeper than ``PATH/CLASS/`` are left out and named
in a warning (or, where they are all there is, an error saying which folder to point at), so
``--dataset /tmp`` does not train on everything under it, nor ``dogs/`` on ``dogs/train/beagle`` and
``dogs/train_valid/beagle`` as two classes of the same images. The same image (the same bytes) in
two classes is named in a warning. Each load prints a summary: images, classes and their names.

Any size and colour: each image is composited on white if it has transparency (transparent
sprites otherwise turn into black blocks), converted to RGB (or grey for 1-channel models), resized
so its shorter side fits and centre-cropped to the model's size. Corrupt or unreadable files are
skipped and counted in one warning. Decoding happens once, in worker processes
(:mod:`disgen.data.workers`), into a uint8 file under ``$DISGEN_HOME/decoded/``
(:mod:`disgen.data.cache`) keyed by the files' names, sizes and modification times and the target
size, so later runs and epochs never re-decode and a folder larger than memory trains: only the
rows a batch reads are in memory.

Every 10th image (by sorted path) is the test split; the rest is the training split.

The functions here are generic so other loaders can reuse them: :func:`list_images`,
:func:`decode`, :func:`fit`, :func:`decode_all`, :func:`load_image_folder`.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from disgen.data import cache as decoded_cache
from disgen.data import workers
from disgen.data.dataset import ImageSplit, Rows, TensorDataset, check_decoded_size, take
from disgen.data.images import IMAGE_SUFFIXES, open_image
from disgen.errors import DisgenError

DEFAULT_SHAPE = (3, 64, 64)
TEST_EVERY = 10
PARALLEL_FROM = 200  # files; below this, worker start-up costs more than it saves
IDX_STEMS = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")
MAX_WALK = 10_000  # folders looked into for images deeper than the class folders


def visible(p: Path) -> bool:
    return not p.name.startswith(".")


def list_images(root: Path) -> list[Path]:
    """Image files directly in ``root`` and in its subfolders (the class folders), hidden ones
    skipped, sorted; nothing deeper."""
    root = Path(root)
    folders = [root] + sorted(d for d in root.iterdir() if d.is_dir() and visible(d))
    return sorted(
        f
        for folder in folders
        for f in folder.iterdir()
        if f.suffix.lower() in IMAGE_SUFFIXES and visible(f) and f.is_file()
    )


def deeper_images(root: Path, limit: int = 5) -> list[Path]:
    """Up to ``limit`` image files below ``root``'s class folders (looking into at most MAX_WALK folders)."""
    found, seen = [], 0
    for folder, dirs, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if depth >= 2:
            found += [
                Path(folder) / f for f in sorted(files) if Path(f).suffix.lower() in IMAGE_SUFFIXES and visible(Path(f))
            ]
        seen += 1
        if len(found) >= limit or seen >= MAX_WALK:
            break
    return found[:limit]


def depth_advice(root: Path, deeper: list[Path]) -> str:
    """Which folder to point --dataset at for images found deeper than the class folders."""
    parent = deeper[0].parent.parent
    return (
        f"a dataset folder holds one level of class folders (PATH/CLASS/image), and {deeper[0]} is deeper: "
        f"to train on those images, point --dataset at the folder whose subfolders are their classes, e.g. {parent}"
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


def _decode_one(args: tuple[str, tuple[int, int, int]]) -> tuple[np.ndarray | None, str]:
    """A file decoded, and the SHA-1 of its bytes (the same image in two classes is found by it)."""
    try:
        data = Path(args[0]).read_bytes()
    except OSError:
        return None, ""
    return decode(io.BytesIO(data), args[1]), hashlib.sha1(data).hexdigest()


def decode_each(paths: list[Path], image_shape: tuple[int, int, int]):
    """``(i, uint8 (C, H, W) or None, SHA-1 of the file)`` for every path, in order, decoded in
    worker processes where there are enough files to pay for them; only a chunk of images is in
    memory at a time."""
    jobs = [(str(p), tuple(image_shape)) for p in paths]
    processes = min(8, os.cpu_count() or 1) if len(jobs) >= PARALLEL_FROM else 1
    for i, (arr, digest) in enumerate(workers.imap(_decode_one, jobs, processes)):
        yield i, arr, digest


def decode_all(paths: list[Path], image_shape: tuple[int, int, int]) -> tuple[torch.Tensor, list[int], list[str]]:
    """uint8 (N_ok, C, H, W) of the readable ``paths``, in memory, the indices of those that
    decoded and every file's SHA-1."""
    arrays, digests = {}, []
    for i, a, digest in decode_each(paths, image_shape):
        digests.append(digest)
        if a is not None:
            arrays[i] = a
    ok = sorted(arrays)
    stacked = np.stack([arrays[i] for i in ok]) if ok else np.zeros((0, *image_shape), np.uint8)
    return torch.from_numpy(stacked), ok, digests


def cache_key(root: Path, files: list[Path], image_shape: tuple[int, int, int]) -> str:
    digest = hashlib.sha1(repr(tuple(image_shape)).encode())
    for f in files:
        st = f.stat()
        digest.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def decode_cached(
    root: Path, files: list[Path], image_shape: tuple[int, int, int], cache: bool = True
) -> tuple[torch.Tensor | Rows, list[int], list[str], list[str]]:
    """The readable ``files`` under ``root`` as uint8 (N_ok, C, H, W), the indices of those that
    decoded, the paths (relative to ``root``) of those that could not be read and every file's
    SHA-1.

    Cached (the default): decoded once into a file keyed by :func:`cache_key`
    (:mod:`disgen.data.cache`) and returned as :class:`Rows` of it, so a folder larger than memory
    loads. ``cache=False`` decodes into memory, within the memory limit."""
    what = f"image folder {root}"
    if not cache:
        check_decoded_size(
            len(files), image_shape, what, "choose a smaller image size (e.g. --image-size) or fewer images"
        )
        images, ok, digests = decode_all(files, image_shape)
        return images, ok, skipped_of(root, files, ok), digests

    def fill(out) -> tuple[list[int], dict]:
        ok, digests = [], []
        for i, arr, digest in decode_each(files, image_shape):
            digests.append(digest)
            if arr is not None:
                out[i] = arr
                ok.append(i)
        return ok, {"root": str(root), "files": len(files), "sha1": digests}

    entry = decoded_cache.build(
        "folder-" + cache_key(root, files, image_shape), len(files), tuple(image_shape), fill, what
    )
    ok = entry.ok.tolist()
    digests = entry.meta.get("sha1")
    if not isinstance(digests, list) or len(digests) != len(files):
        digests = [""] * len(files)
    return Rows(entry.images, entry.ok), ok, skipped_of(root, files, ok), digests


def skipped_of(root: Path, files: list[Path], ok: list[int]) -> list[str]:
    return [str(files[i].relative_to(root)) for i in sorted(set(range(len(files))) - set(ok))]


def listing(items: list, limit: int = 5) -> str:
    return ", ".join(map(str, items[:limit])) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def warn_duplicates(root: Path, files: list[Path], names: list[str], digests: list[str]) -> None:
    """One warning naming images whose bytes are the same in more than one class."""
    by_digest: dict[str, list[int]] = {}
    for i, digest in enumerate(digests):
        if digest:
            by_digest.setdefault(digest, []).append(i)
    groups = [g for g in by_digest.values() if len({names[i] for i in g}) > 1]
    if groups:
        shown = [" = ".join(str(files[i].relative_to(root)) for i in g[:3]) for g in groups]
        print(
            f"warning: {root}: {len(groups)} image(s) are the same file in more than one class ({listing(shown, 3)}); "
            "each copy keeps its folder's label and a copy may land in both the training and the test split: "
            "keep each image in one class folder",
            file=sys.stderr,
        )


def summary(root: Path, n: int, classes: list[str]) -> str:
    return (
        f"{root}: {n} image{'s' * (n != 1)}, {len(classes)} class{'es' * (len(classes) != 1)}: {listing(classes, 10)}"
    )


def load_image_folder(
    root: str | Path, image_shape: tuple[int, int, int] | None = None, cache: bool = True
) -> TensorDataset:
    """The images in ``root`` and its class folders as a TensorDataset of ``image_shape`` (default 3x64x64)."""
    root = Path(root).expanduser()
    shape = tuple(image_shape or DEFAULT_SHAPE)
    files, deeper = list_images(root), deeper_images(root)
    if not files:
        if deeper:
            raise DisgenError(f"folder {root} holds no images in it or its class folders: {depth_advice(root, deeper)}")
        raise DisgenError(f"folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if deeper:
        print(f"warning: left out images below {root}'s class folders: {depth_advice(root, deeper)}", file=sys.stderr)
    images, ok, skipped, digests = decode_cached(root, files, shape, cache)
    if skipped:
        print(
            f"warning: skipped {len(skipped)} unreadable image file(s) of {len(files)} in {root}: {listing(skipped)}",
            file=sys.stderr,
        )
    if not ok:
        raise DisgenError(f"none of the {len(files)} image files in {root} could be read")
    kept = [files[i] for i in ok]
    names = [str(f.parent.relative_to(root)) for f in kept]
    warn_duplicates(root, kept, names, [digests[i] for i in ok])
    classes = sorted(set(names))
    if classes == ["."]:
        classes = [root.name or "images"]
        names = classes * len(kept)
    print(summary(root, len(kept), classes), file=sys.stderr)
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
