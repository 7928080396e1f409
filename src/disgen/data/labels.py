"""``--labels N``: a seeded, class-balanced labelled subset of the training split (N / classes
images of each class), stored by index in ``RUN_DIR/labels.json``.

The subset depends only on the training labels, N and the seed (drawn on the CPU with its own
generator), so an ``aae`` run and its ``mlp-classifier`` baseline with the same ``--seed`` and
``--labels`` see exactly the same labelled images. Classifiers train on the subset alone; the
semi-supervised AAE uses every training image unlabelled and the subset as a second loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch

from disgen.data.loader import TensorLoader
from disgen.errors import DisgenError

LABELS_FILE = "labels.json"


def labelled_indices(labels: torch.Tensor, n: int, num_classes: int, seed: int) -> torch.Tensor:
    """Sorted indices (n,) into the training split: n / num_classes of each class, seeded."""
    if n <= 0 or n % num_classes:
        raise DisgenError(
            f"--labels {n}: must be a positive multiple of the {num_classes} classes, "
            f"so that each class gets the same number (e.g. {10 * num_classes})"
        )
    per_class = n // num_classes
    gen = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    chosen = []
    for c in range(num_classes):
        idx = (labels == c).nonzero().squeeze(1)
        if len(idx) < per_class:
            raise DisgenError(
                f"--labels {n} needs {per_class} images of class {c}, but the training "
                f"split has {len(idx)}: use at most --labels {len(idx) * num_classes}"
            )
        chosen.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    return torch.cat(chosen).sort().values


def save_labels(run_dir: Path, indices: torch.Tensor, dataset: str, seed: int) -> Path:
    """Write the subset (indices into the training split) to ``RUN_DIR/labels.json``."""
    from disgen.files import write_json

    path = Path(run_dir) / LABELS_FILE
    write_json(path, {"dataset": dataset, "seed": seed, "n": len(indices), "indices": indices.tolist()})
    return path


def read_labels(run_dir: Path) -> torch.Tensor:
    from disgen.config import read_json

    path = Path(run_dir) / LABELS_FILE
    data = read_json(path, "labelled-subset file", max_bytes=64 << 20)
    if data is None:
        raise DisgenError(f"{path} does not exist: the run was not trained with --labels N")
    try:
        return torch.tensor(data["indices"], dtype=torch.long)
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as err:
        raise DisgenError(
            f"{path} is not a labelled-subset file ({err}); re-create it by training "
            "again with the same --labels and --seed"
        ) from None


class LabelledLoader:
    """Batches ``(x, y, x_lab, y_lab)``: every batch of ``main`` with a batch of ``labelled``, which
    cycles (a new shuffle each time it runs out). It restarts with each epoch, so its whole state
    is the shared generator's, which checkpoints save: a resumed run draws the same batches."""

    def __init__(self, main: TensorLoader, labelled: TensorLoader):
        self.main, self.labelled = main, labelled

    def __len__(self) -> int:
        return len(self.main)

    @property
    def part(self) -> tuple[int, int] | None:
        return self.main.part

    @property
    def share(self) -> float:
        return self.main.share

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        lab = iter(())
        for x, y in self.main:
            try:
                x_lab, y_lab = next(lab)
            except StopIteration:
                lab = iter(self.labelled)
                x_lab, y_lab = next(lab)
            yield x, y, x_lab, y_lab
