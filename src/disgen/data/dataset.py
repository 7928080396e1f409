"""What every dataset is: :class:`TensorDataset` (uint8 images and int64 labels per split), the
registry of named datasets, and the size limits a decoded dataset must keep to. The loaders of
this package import it; :mod:`disgen.data` dispatches a name or a path to them.
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from disgen.errors import DisgenError


class Rows:
    """Rows of a memory-mapped uint8 image file, selected lazily: ``base[rows]`` without the copy.

    A decoded dataset larger than memory lives in a file on disk (:mod:`disgen.data.cache`);
    splitting it (every 10th image for the test split, a validation split carved out of the
    training split) selects rows here instead of copying them, so only the rows a batch reads
    are ever in memory. Indexing (``rows[i]``, ``rows[a:b]``, ``rows.index_select(0, idx)``) gathers
    those rows into an ordinary tensor; :meth:`select` makes a smaller view; ``to``/``contiguous``
    gather the whole selection (what a small dataset's callers do)."""

    def __init__(self, base: torch.Tensor, rows: torch.Tensor | None = None):
        self.base = base
        self.rows = torch.arange(len(base)) if rows is None else rows.to(torch.int64)
        self.shape = torch.Size((len(self.rows), *base.shape[1:]))
        self.dtype = base.dtype
        self.ndim = base.dim()

    def __len__(self) -> int:
        return len(self.rows)

    def dim(self) -> int:
        return self.ndim

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def select(self, key) -> Rows:
        """A view of some of these rows (an index tensor, a boolean mask or a slice)."""
        return Rows(self.base, self.rows[key])

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        if dim != 0:
            raise ValueError("Rows selects along the first dimension only")
        return self.base.index_select(0, self.rows[index.cpu()])

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, int):
            return self.base[int(self.rows[key])]
        return self.base.index_select(0, self.rows[key])

    def contiguous(self) -> torch.Tensor:
        return self.base.index_select(0, self.rows)

    def to(self, *args, **kwargs) -> torch.Tensor:
        return self.contiguous().to(*args, **kwargs)

    def cpu(self) -> torch.Tensor:
        return self.contiguous()

    def __getattr__(self, name: str):
        # Any other tensor method gathers the selection first (what a small dataset's code or a
        # user's expects of split.images); disgen's own large-data paths use the methods above.
        if name.startswith("__") or name in ("base", "rows"):
            raise AttributeError(name)
        return getattr(self.contiguous(), name)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        def gathered(a):
            if isinstance(a, Rows):
                return a.contiguous()
            if isinstance(a, (list, tuple)):
                return type(a)(gathered(v) for v in a)
            return a

        return func(*gathered(args), **{k: gathered(v) for k, v in (kwargs or {}).items()})

    def __eq__(self, other):
        return self.contiguous() == (other.contiguous() if isinstance(other, Rows) else other)

    __hash__ = None

    def chunks(self, rows: int = 4096):
        """The selection in order, ``rows`` at a time: for hashing or copying without holding it all."""
        for i in range(0, len(self.rows), rows):
            yield self.base.index_select(0, self.rows[i : i + rows])


def take(images: torch.Tensor | Rows, key) -> torch.Tensor | Rows:
    """``images[key]`` for a split's rows: a lazy :class:`Rows` view of a memory-mapped file, an
    ordinary tensor otherwise."""
    return images.select(key) if isinstance(images, Rows) else images[key]


@dataclass
class ImageSplit:
    """One split: ``images`` uint8 (N, C, H, W) in [0, 255], ``labels`` int64 (N,).

    ``images`` is a tensor in memory, or :class:`Rows` of a memory-mapped file for a dataset
    decoded to disk (image folders, Kaggle layouts, Hugging Face datasets)."""

    images: torch.Tensor | Rows
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
    """Bytes of memory this process may use: the machine's physical memory (16 GiB where the
    system does not say), or less where a limit says so: the cgroup's memory limit (a container,
    a batch job's allocation; every cgroup above this one counts) and the address-space limit
    (``ulimit -v``, ``RLIMIT_AS``) less what the process has mapped already."""
    try:
        found = [os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
    except (ValueError, OSError, AttributeError):
        found = [16 << 30]
    found += cgroup_limits()
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            found.append(max(0, soft - mapped_bytes()))
    except (ImportError, OSError, ValueError):
        pass
    return min(found)


def mapped_bytes() -> int:
    """The address space this process has mapped (VmSize; 0 where /proc does not say)."""
    try:
        for line in open("/proc/self/status", encoding="ascii", errors="replace"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cgroup_limits(root: str = "/sys/fs/cgroup") -> list[int]:
    """The memory limits of this process's cgroup and those above it (cgroup v2's memory.max,
    v1's memory.limit_in_bytes; "max" and v1's near-2^63 mean none)."""
    limits = []
    try:
        lines = open("/proc/self/cgroup", encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            base, name = Path(root), "memory.max"
        elif "memory" in controllers.split(","):
            base, name = Path(root) / "memory", "memory.limit_in_bytes"
        else:
            continue
        here = base / path.lstrip("/")
        for folder in [here, *here.parents]:
            try:
                text = (folder / name).read_text().strip()
            except OSError:
                text = ""
            if text.isdigit() and int(text) < 1 << 60:
                limits.append(int(text))
            if folder == base:
                break
    return limits


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
