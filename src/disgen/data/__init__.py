"""Datasets: a registry of named image datasets held as tensors.

Every dataset is returned as a :class:`TensorDataset` of uint8 images ``(N, C, H, W)`` and int64
labels, with a train and a test split, and a validation split where the dataset has its own (a
Kaggle-organised ``valid/`` folder, gaussian2d's generated points); otherwise the Trainer carves one
out of the training split (:mod:`disgen.data.splits`). Conversion to floats happens once, on the device, in the
range the model asks for (see :func:`to_float`): ``[0, 1]`` by default, ``[-1, 1]`` for GAN-style
models.

Adding a dataset is a one-file change: write a module in this package whose loader function is
decorated with :func:`register_dataset`, and list the module in ``_MODULES`` below.
"""
from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from disgen.catalog import FOLDER_FORMS
from disgen.errors import DisgenError


@dataclass
class ImageSplit:
    """One split: ``images`` uint8 (N, C, H, W) in [0, 255], ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class TensorDataset:
    """A named dataset with train and test splits and human-readable class names.

    ``val`` is the dataset's own validation split, if it has one (None: carve one out of ``train``
    with :func:`disgen.data.splits.with_validation`). ``test`` may be None where the dataset has
    no labelled test split (a Kaggle competition's test images are scored by Kaggle)."""

    name: str
    train: ImageSplit
    test: ImageSplit | None
    classes: list[str]
    source: str = ""  # where it was read from, shown to the user
    extra: dict = field(default_factory=dict)
    val: ImageSplit | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # (C, H, W)


MAX_CLASSES = 100_000  # a model's classes; more means a corrupt labels file or checkpoint


def machine_memory() -> int:
    """Bytes of physical memory (16 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def check_decoded_size(n: int, shape: tuple[int, ...], what: str, advice: str) -> None:
    """Refuse to decode ``n`` images of ``shape`` when they and the float32 copy a model trains on
    (5 bytes a value) would take over half this machine's memory, before any is decoded."""
    need, limit = n * math.prod(shape) * 5, machine_memory() // 2
    if need > limit:
        raise DisgenError(f"{what}: {n:,} images of {'x'.join(map(str, shape))} would take {need / 2**30:,.1f} GiB "
                          f"decoded (uint8 and float32), over half this machine's {machine_memory() / 2**30:.1f} "
                          f"GiB of memory; {advice}")


Loader = Callable[..., TensorDataset]
_REGISTRY: dict[str, tuple[Loader, str]] = {}
_MODULES = ("disgen.data.mnist", "disgen.data.mnist_mini", "disgen.data.gaussian2d")


def register_dataset(name: str, description: str = "") -> Callable[[Loader], Loader]:
    """Register ``loader(data_dir: Path | None) -> TensorDataset`` under ``name``."""

    def wrap(loader: Loader) -> Loader:
        _REGISTRY[name] = (loader, description)
        return loader

    return wrap


def _import_all() -> None:
    for module in _MODULES:
        importlib.import_module(module)


def list_datasets() -> dict[str, str]:
    """Registered dataset names and their one-line descriptions."""
    _import_all()
    return {name: desc for name, (_, desc) in sorted(_REGISTRY.items())}


def load_dataset(name_or_path: str, data_dir: str | Path | None = None,
                 image_shape: tuple[int, ...] | None = None) -> TensorDataset:
    """Load a registered dataset by name, or a directory holding IDX files or images by path.

    ``image_shape`` (C, H, W) is the size a folder of images is resized to (default 3x64x64)."""
    from disgen.config import check_text

    _import_all()
    check_text("--dataset", name_or_path)
    if name_or_path in _REGISTRY:
        loader, _ = _REGISTRY[name_or_path]
        return loader(Path(data_dir) if data_dir else None)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        from disgen.data.image_folder import is_image_folder, load_image_folder
        from disgen.data.kaggle import load_organized, organized_root

        if organized_root(path):  # train/ + valid/ class folders (disgen kaggle-organize)
            return load_organized(path, image_shape if image_shape and len(image_shape) == 3 else (3, 256, 256))
        if (path / "labels.csv").is_file() and (path / "train").is_dir():
            raise DisgenError(f"{path} is a Kaggle competition download (labels.csv and train/): organise it "
                              f"first with `disgen kaggle-organize {path} --out DIR`, then train on --dataset DIR")
        if is_image_folder(path):
            return load_image_folder(path, image_shape if image_shape and len(image_shape) == 3 else None)
        from disgen.data.mnist import has_idx_files, load_idx_dir

        if not has_idx_files(path):
            raise DisgenError(f"the folder {path} holds no image files and no IDX files. {dataset_forms()}")
        return load_idx_dir(path)
    if path.exists():
        raise DisgenError(f"--dataset {path} is a file, not a folder. {dataset_forms()}")
    import difflib

    close = difflib.get_close_matches(name_or_path, list(_REGISTRY), n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    raise DisgenError(f"unknown dataset {name_or_path!r}: no registered dataset has that name, and the path "
                      f"{path.absolute()} does not exist.{hint} {dataset_forms()}")


def dataset_forms(names: list[str] | None = None) -> str:
    """One sentence listing every form a dataset may take, with the registered names."""
    names = sorted(_REGISTRY) if names is None else names
    return ("A dataset is a registered name (" + ", ".join(names) + "; see `disgen datasets`), " +
            ", ".join(FOLDER_FORMS[:-1]) + ", or " + FOLDER_FORMS[-1] + ".")


def to_float(images: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """uint8 images in [0, 255] -> float32 in ``value_range`` (e.g. (0, 1) or (-1, 1))."""
    if images.is_floating_point():  # e.g. 2-D points (gaussian2d): already in their own units
        return images.to(torch.float32).clone()
    lo, hi = value_range
    return images.to(torch.float32).mul_((hi - lo) / 255.0).add_(lo)
