"""2-D toy targets for GANs: seed 003's shifted Gaussian (d2l "the world's lamest example") and a
ring of 8 Gaussians, the standard picture of mode collapse (Metz et al. 2016).

Points are float32 ``(N, 2)`` "images" in their own units (no [0, 255] scaling). The train split
is drawn as the seed does. The validation and test splits are fresh draws of their own (a
generated dataset need not give up training points), and *moment-matched*: their sample mean and
covariance are exactly the true ones, so a Fréchet distance to either is the distance to the true
Gaussian itself, without the sampling error of a finite sample.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from disgen.data.dataset import ImageSplit, TensorDataset, register_dataset

# Seed 003: data = X @ A + b with X ~ N(0, I), so mean b and covariance AᵀA = [[1.01, 1.95], [1.95, 4.25]].
SEED_A = torch.tensor([[1.0, 2.0], [-0.1, 0.5]], dtype=torch.float64)
SEED_B = torch.tensor([1.0, 2.0], dtype=torch.float64)
N_TRAIN, N_TEST = 1000, 1000  # seed 003 uses 1,000 points
RING_MODES, RING_RADIUS, RING_STD = 8, 2.0, 0.05


def whiten(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N, D) transformed to sample mean exactly 0 and sample covariance exactly I."""
    x = x - x.mean(0)
    cov = x.T @ x / (len(x) - 1)
    return x @ torch.linalg.inv(torch.linalg.cholesky(cov)).T


def seed_gaussian(n: int, seed: int, exact: bool = False) -> torch.Tensor:
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (whiten(x) if exact else x) @ SEED_A + SEED_B


def ring(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points (n // 8 per mode) of 8 Gaussians of std 0.05 on a circle of radius 2."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(RING_MODES).repeat_interleave(n // RING_MODES)
    angle = labels.double() * 2 * math.pi / RING_MODES
    centres = torch.stack([angle.cos(), angle.sin()], 1) * RING_RADIUS
    return centres + RING_STD * torch.randn(len(labels), 2, generator=gen, dtype=torch.float64), labels


def points(name: str, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], classes: list[str]) -> TensorDataset:
    """A points dataset from ``{"train" | "val" | "test": (points, labels)}``."""
    train, val, test = (ImageSplit(x.float(), y) for x, y in (splits[k] for k in ("train", "val", "test")))
    return TensorDataset(name, train, test, classes, source="generated", val=val)


@register_dataset(
    "gaussian2d",
    "1,000 2-D points X @ A + b of seed 003 (mean [1, 2], cov [[1.01, 1.95], [1.95, 4.25]]); generated, no files",
)
def load_gaussian2d(data_dir: Path | None = None) -> TensorDataset:
    zeros = torch.zeros(N_TRAIN, dtype=torch.int64)
    return points(
        "gaussian2d",
        {
            "train": (seed_gaussian(N_TRAIN, 0), zeros),
            "val": (seed_gaussian(N_TEST, 2, exact=True), zeros[:N_TEST]),
            "test": (seed_gaussian(N_TEST, 1, exact=True), zeros[:N_TEST]),
        },
        ["gaussian"],
    )


@register_dataset(
    "gaussian2d-ring8", "2-D ring of 8 Gaussians (radius 2, std 0.05), labels = mode: shows mode collapse"
)
def load_ring8(data_dir: Path | None = None) -> TensorDataset:
    return points(
        "gaussian2d-ring8",
        {"train": ring(N_TRAIN * 2, 0), "val": ring(N_TEST * 2, 2), "test": ring(N_TEST * 2, 1)},
        [f"mode{i}" for i in range(RING_MODES)],
    )
