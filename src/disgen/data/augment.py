"""Batched augmentation on the device: one warp or gather per batch, no per-image Python.

``affine``: random rotation, scaling and translation of digits (the elastic-free part of Simard et
al. 2003's augmentation). ``flip``: horizontal flips and shifts of up to 2 pixels (clothes and
objects, not digits: airbench's CIFAR-10 recipe). ``imagenet``: seed 003's random resized crop,
flip and colour jitter. Drawn from the loader's generator so resumed runs see the same
augmentations.
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
        [torch.stack([cos, -sin, u[:, 2] * 2 * translate], 1), torch.stack([sin, cos, u[:, 3] * 2 * translate], 1)], 1
    ).to(x.dtype)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, background: float = 0.0) -> torch.Tensor:
    """Each image of ``x`` (B, C, H, W) moved by whole pixels ``dy``, ``dx`` (B,), with
    ``background`` filling what comes in; one gather, differentiable in x."""
    b, _, h, w = x.shape
    pad = int(max(dy.abs().max(), dx.abs().max(), 1)) if b else 1
    gy = (torch.arange(h, device=x.device).view(1, h, 1) - dy.view(b, 1, 1) + pad).clamp(0, h + 2 * pad - 1)
    gx = (torch.arange(w, device=x.device).view(1, 1, w) - dx.view(b, 1, 1) + pad).clamp(0, w + 2 * pad - 1)
    padded = F.pad(x, (pad, pad, pad, pad), value=background).permute(0, 2, 3, 1)  # (B, H+2p, W+2p, C)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded[batch, gy, gx].permute(0, 3, 1, 2)  # (B, C, H, W)


def translate(x: torch.Tensor, fraction: float = 0.125, background: float = -1.0) -> torch.Tensor:
    """Each image shifted by up to ``fraction`` of its size, filled with ``background``.
    Differentiable in x: DiffAugment (Zhao et al. 2020) applies it to real and fake alike, so D
    cannot memorise a small training set and G's gradient still flows through it."""
    b, _, h, w = x.shape
    sy, sx = int(h * fraction + 0.5), int(w * fraction + 0.5)
    ty = torch.randint(-sy, sy + 1, (b,), device=x.device)
    tx = torch.randint(-sx, sx + 1, (b,), device=x.device)
    return shift(x, ty, tx, background)


def cutout(x: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
    """Each image with a random square of ``fraction`` of its size set to 0 (DiffAugment)."""
    b, _, h, w = x.shape
    ch, cw = int(h * fraction + 0.5), int(w * fraction + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device) - ch // 2  # centre anywhere
    left = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device) - cw // 2
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def flip_shift(x: torch.Tensor, generator: torch.Generator | None = None, *, pixels: int = 2) -> torch.Tensor:
    """Flip half the images of ``x`` (B, C, H, W) left to right and shift each by up to ``pixels``
    in each direction, zeros filling the border."""
    b = x.shape[0]
    device = generator.device if generator is not None else x.device
    u = torch.rand(b, 3, generator=generator, device=device).to(x.device)
    x = torch.where((u[:, 0] < 0.5).view(b, 1, 1, 1), x.flip(3), x)
    dy, dx = ((u[:, 1:] * (2 * pixels + 1)).floor().long() - pixels).unbind(1)
    return shift(x, dy, dx)


def crop_boxes(
    u: torch.Tensor, h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's RandomResizedCrop box, batched: from uniform draws ``u`` (B, 2 * attempts),
    the first attempt whose box (area ``scale`` of the image, aspect ``ratio``) fits, else the
    whole image. Returns the box's width and height as fractions of the image's (B,), (B,)."""
    attempts = u.shape[1] // 2
    area = (scale[0] + (scale[1] - scale[0]) * u[:, :attempts]) * (h * w)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, attempts:])
    fw, fh = torch.sqrt(area * aspect) / w, torch.sqrt(area / aspect) / h  # (B, attempts)
    fits = (fw <= 1) & (fh <= 1)
    first = fits.float().argmax(1, keepdim=True)  # index of the first box that fits
    any_fit = fits.any(1)
    one = torch.ones_like(any_fit, dtype=fw.dtype)
    return (torch.where(any_fit, fw.gather(1, first)[:, 0], one), torch.where(any_fit, fh.gather(1, first)[:, 0], one))


def jitter(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast and saturation scaled by ``factors`` (B, 3), as torchvision's
    ColorJitter blends them (in this fixed order; torchvision shuffles it); ``x`` in [0, 1]."""
    view = (-1, 1, 1, 1)
    x = (x * factors[:, 0].view(view)).clamp(0, 1)
    grey = x if x.shape[1] == 1 else (x * GREY_WEIGHTS.to(x).view(1, 3, 1, 1)).sum(1, keepdim=True)
    mean = grey.mean((1, 2, 3), keepdim=True)
    c = factors[:, 1].view(view)
    x = (c * x + (1 - c) * mean).clamp(0, 1)
    if x.shape[1] == 3:
        grey = (x * GREY_WEIGHTS.to(x).view(1, 3, 1, 1)).sum(1, keepdim=True)
        s = factors[:, 2].view(view)
        x = (s * x + (1 - s) * grey).clamp(0, 1)
    return x


GREY_WEIGHTS = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601 luma, as PIL's convert("L")


def imagenet_train(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    crop: float = 224 / 256,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: float = 0.5,
    strength: float = 0.4,
    attempts: int = 10,
) -> torch.Tensor:
    """Seed 003's training transform on a batch in [0, 1] stored at 256/224 of the crop size
    (B, C, S, S) -> (B, C, S*224/256, same): random resized crop (area ``scale``, aspect
    ``ratio``), horizontal flip with probability ``flip``, and brightness/contrast/saturation
    jitter by factors in 1 +- ``strength``, as one ``grid_sample`` plus elementwise ops."""
    b, _, h, w = x.shape
    out_h, out_w = round(h * crop), round(w * crop)
    device = generator.device if generator is not None else x.device
    u = torch.rand(b, 2 * attempts + 6, generator=generator, device=device).to(x.device, torch.float32)
    fw, fh = crop_boxes(u[:, : 2 * attempts], h, w, scale, ratio)
    cx = (u[:, -6] * 2 - 1) * (1 - fw)  # box centre, in affine_grid's [-1, 1] coordinates
    cy = (u[:, -5] * 2 - 1) * (1 - fh)
    sign = torch.where(u[:, -4] < flip, -1.0, 1.0).to(x.device)
    zero = torch.zeros_like(fw)
    theta = torch.stack([torch.stack([fw * sign, zero, cx], 1), torch.stack([zero, fh, cy], 1)], 1).to(
        x.dtype
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, [b, x.shape[1], out_h, out_w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return jitter(x, 1 + strength * (u[:, -3:] * 2 - 1))


TRANSFORMS = {"none": None, "affine": random_affine, "flip": flip_shift, "imagenet": imagenet_train}
