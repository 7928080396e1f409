"""What every dataset is: :class:`TensorDataset` (uint8 images and int64 labels per split), the
registry of named datasets, and the size limits a decoded dataset must keep to. The loaders of
this package import it; :mod:`disgen.data` dispatches a name or a path to them.
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass, field
from typing import Callable

import torch

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
        raise DisgenError(
            f"{what}: {n:,} images of {'x'.join(map(str, shape))} would take {need / 2**30:,.1f} GiB "
            f"decoded (uint8 and float32), over half this machine's {machine_memory() / 2**30:.1f} "
            f"GiB of memory; {advice}"
        )


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


def to_float(images: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """uint8 images in [0, 255] -> float32 in ``value_range`` (e.g. (0, 1) or (-1, 1))."""
    if images.is_floating_point():  # e.g. 2-D points (gaussian2d): already in their own units
        return images.to(torch.float32).clone()
    lo, hi = value_range
    return images.to(torch.float32).mul_((hi - lo) / 255.0).add_(lo)
