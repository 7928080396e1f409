"""Batched augmentation on the device: one affine warp per image in a single ``grid_sample``.

Random rotation, scaling and translation of digits (the elastic-free part of Simard et al. 2003's
augmentation), drawn from the loader's generator so resumed runs see the same augmentations.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    degrees: float = 10.0,
    scale: float = 0.1,
    translate: float = 0.1,
) -> torch.Tensor:
    """Warp each image of ``x`` (B, C, H, W) by a random rotation within ±``degrees``, scale
    within 1±``scale`` and shift within ±``translate`` of the image size; zeros fill the border
    (the value of a background pixel in [0, 1] data)."""
    b = x.shape[0]
    device = generator.device if generator is not None else x.device
    u = torch.rand(b, 4, generator=generator, device=device).to(x.device, torch.float32) * 2 - 1
    angle = u[:, 0] * math.radians(degrees)
    s = 1 + u[:, 1] * scale
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    # affine_grid uses normalised coordinates in [-1, 1], so a shift of t*size is 2t.
    theta = torch.stack(
        [torch.stack([cos, -sin, u[:, 2] * 2 * translate], 1),
         torch.stack([sin, cos, u[:, 3] * 2 * translate], 1)], 1
    ).to(x.dtype)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


TRANSFORMS = {"none": None, "affine": random_affine}
