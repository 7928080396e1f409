"""Batches from tensors held on the device, shuffled with ``randperm`` and sliced by index.

No per-sample Python ``Dataset`` and no worker processes: for datasets that fit in memory this is
about twice as fast as a tutorial ``DataLoader`` (see benchmarks/), after airbench's CifarLoader.
A dataset too large to keep as floats on the device is read through :class:`StreamedImages`
instead: the same batches, gathered from uint8 rows in memory or a memory-mapped file.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

Batch = tuple[torch.Tensor, torch.Tensor]


class StreamedImages:
    """uint8 images kept in host memory or a memory-mapped file (``source``: a tensor or
    :class:`~disgen.data.dataset.Rows`), read as floats in ``value_range`` on ``device`` a batch
    at a time: the stand-in for the float copy on the device that a dataset too large for it
    cannot have. ``x[a:b]``, ``x[idx]`` and ``x.index_select(0, idx)`` gather those rows (pinned
    and copied without blocking where the device is a GPU) and convert them, giving the same
    values as the resident copy would; ``len``, ``shape``, ``dim()`` and ``device`` answer as a
    tensor's would, so evaluation and pictures that slice their input take either."""

    def __init__(self, source, device: torch.device, value_range: tuple[float, float]):
        self.source, self.device, self.value_range = source, torch.device(device), value_range
        self.shape = torch.Size(source.shape)
        self.dtype = torch.float32

    def __len__(self) -> int:
        return len(self.source)

    def dim(self) -> int:
        return len(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        return self.convert(self.source.index_select(dim, index.cpu()))

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, torch.Tensor) and key.dtype != torch.bool:
            return self.index_select(0, key)
        return self.convert(self.source[key])

    def convert(self, rows: torch.Tensor) -> torch.Tensor:
        from disgen.data.dataset import to_float

        if self.device.type == "cuda":
            rows = rows.pin_memory().to(self.device, non_blocking=True)
        return to_float(rows, self.value_range)

    def float(self) -> torch.Tensor:
        """All of it, converted (only for the small splits of callers that need the whole)."""
        return self[0 : len(self)]


class TensorLoader:
    """Iterate ``(x, y)`` mini-batches of ``images``/``labels`` (already on the device).

    ``generator`` drives the shuffling (and ``transform``'s randomness), so saving its state in a
    checkpoint makes a resumed run draw the same batches as an uninterrupted one.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        transform: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None,
        part: tuple[int, int] | None = None,
    ):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.generator = generator
        self.transform = transform
        # (rank, processes): yield only this process's part of each batch, gathering only its
        # rows (streamed data under torchrun); ``share`` is the part's share of the batch.
        self.part, self.share = part, 1.0

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.images)
        if self.shuffle:
            order = torch.randperm(
                n,
                generator=self.generator,
                device=self.generator.device if self.generator is not None else self.images.device,
            )
            order = order.to(self.images.device)
        else:
            order = None
        for i in range(len(self)):
            if order is None:
                x, y = (
                    self.images[i * self.batch_size : (i + 1) * self.batch_size],
                    self.labels[i * self.batch_size : (i + 1) * self.batch_size],
                )
            else:
                idx = order[i * self.batch_size : (i + 1) * self.batch_size]
                if self.part is not None:
                    rank, size = self.part
                    whole, idx = len(idx), torch.tensor_split(idx, size)[rank]
                    self.share = len(idx) / whole
                # index_select: the same rows as images[idx], faster (no advanced-indexing dispatch),
                # which shows in a small MLP's step
                x, y = self.images.index_select(0, idx), self.labels.index_select(0, idx)
            if self.transform is not None:
                x = self.transform(x, self.generator)
            yield x, y


def batches(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


RESIDENT_LIMIT = 2 << 30  # bytes of float32 copies held on the device by --data-on-device auto


def keep_on_device(choice: str, data, device: torch.device) -> bool:
    """``--data-on-device``: whether a run holds every split as floats on the device (``yes``) or
    streams batches from the uint8 images (``no``). ``auto`` keeps them while their float32
    copies take under :data:`RESIDENT_LIMIT` and a quarter of the device's memory (the machine's
    for the CPU): above it, a dataset decoded to disk stays there and memory follows the batch."""
    if choice in ("yes", "no"):
        return choice == "yes"
    from disgen.data.dataset import machine_memory

    parts = [data.train, data.val, data.test]
    need = sum(4 * len(p) * int(torch.Size(p.images.shape[1:]).numel()) for p in parts if p is not None)
    memory = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else machine_memory()
    return need <= min(RESIDENT_LIMIT, memory // 4)
