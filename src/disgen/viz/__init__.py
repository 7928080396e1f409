"""Pictures a user looks at: image grids (optionally captioned) and curves of logged metrics.

Grids are drawn with Pillow; curves with matplotlib's Agg backend (no display needed). Per family:
``viz.gan`` (a 2-D GAN's decision surface) and ``viz.aae`` (an AAE's codes against its prior).

May import: runs, models, data, config, files, errors; it draws tensors it is given and never
imports objectives, training or anything above.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw


def to_uint8(images: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """(N, C, H, W) floats in ``value_range`` -> (N, H, W, C) uint8."""
    lo, hi = value_range
    x = images.detach().float().cpu().clamp(lo, hi).sub(lo).div(hi - lo).mul(255).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def grid_image(
    images: torch.Tensor,
    nrow: int | None = None,
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    scale: int = 1,
    pad: int = 2,
    captions: Sequence[str] | None = None,
    caption_colors: Sequence[tuple[int, int, int]] | None = None,
) -> Image.Image:
    """Tile ``images`` (N, C, H, W) into one picture, ``nrow`` per row, with optional captions."""
    arr = to_uint8(images, value_range)
    n, h, w, c = arr.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    h, w = h * scale, w * scale
    cap_h = 12 if captions is not None else 0
    cell_h, cell_w = h + pad + cap_h, w + pad
    canvas = Image.new("RGB", (nrow * cell_w + pad, rows * cell_h + pad), (40, 40, 40))
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        tile = Image.fromarray(arr[i, :, :, 0] if c == 1 else arr[i], "L" if c == 1 else "RGB")
        if scale != 1:
            tile = tile.resize((w, h), Image.NEAREST)
        x0, y0 = pad + (i % nrow) * cell_w, pad + (i // nrow) * cell_h
        canvas.paste(tile.convert("RGB"), (x0, y0))
        if captions is not None:
            color = caption_colors[i] if caption_colors is not None else (230, 230, 230)
            draw.text((x0 + 1, y0 + h), str(captions[i]), fill=color)
    return canvas


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, **kwargs) -> Path:
    """Write :func:`grid_image` to ``path`` (PNG), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(images, nrow, **kwargs).save(path)
    return path


def save_pairs(
    originals: torch.Tensor, reconstructions: torch.Tensor, path: str | Path, nrow: int = 10, **kwargs
) -> Path:
    """Rows of originals, each followed by a row of their reconstructions (as seed 001 shows)."""
    rows = []
    lo = kwargs.get("value_range", (0.0, 1.0))[0]
    for i in range(0, len(originals), nrow):
        for part in (originals[i : i + nrow], reconstructions[i : i + nrow]):
            blank = torch.full((nrow - len(part), *part.shape[1:]), lo, dtype=part.dtype, device=part.device)
            rows.append(torch.cat([part, blank]))  # a short last row is padded to keep pairs aligned
    return save_grid(torch.cat(rows), path, nrow, **kwargs)


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Write a matplotlib figure as PNG (creating the folder) and free it. Its panels' titles go into
    the PNG's Title text too, for a reader that cannot see the picture (and a test that reads it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    fig.savefig(path, dpi=90, bbox_inches="tight", metadata={"Title": "; ".join(titles)})
    pyplot().close(fig)
    return path


NOT_METRICS = ("epoch", "lr", "seconds", "eval_seconds")  # logged each epoch, but not how well it learns
LOG_SPAN = 10  # a positive curve whose largest value is this many times its smallest: a log scale


def same_curves(history: list[dict], keys: list[str]) -> dict[str, str]:
    """Keys whose values equal an earlier key's at every epoch (gan2d's ``w2_squared`` and
    ``frechet_distance``: one number under two names), each to that earlier key."""
    seen: dict[tuple, str] = {}
    out = {}
    for k in keys:
        values = tuple(h.get(k) for h in history)
        if values in seen:
            out[k] = seen[values]
        else:
            seen[values] = k
    return out


def wants_log(values: list) -> bool:
    """Whether a curve reads better on a log scale: all positive and spread over LOG_SPAN times or
    more (a distance that falls from 5 to 0.01 is flat on a linear axis after a few epochs)."""
    ys = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return bool(ys) and min(ys) > 0 and max(ys) >= LOG_SPAN * min(ys)


def curve_panels(history: list[dict]) -> list[tuple[str, str, bool]]:
    """The panels of curves.png, as (title, key, log scale): one per logged metric (losses and
    held-out metrics), not the seconds an epoch took, one for a metric logged under two names (its
    title gives both), a log scale where a linear one would flatten it."""
    keys = (
        [k for k in history[0] if k not in NOT_METRICS and isinstance(history[0][k], (int, float))] if history else []
    )
    twins = same_curves(history, keys)
    return [
        (
            " = ".join([k, *(t for t, of in twins.items() if of == k)]),
            k,
            wants_log([h.get(k) for h in history]),
        )
        for k in keys
        if k not in twins
    ]


def save_curves(history: list[dict], path: str | Path, title: str = "") -> Path:
    """curves.png: the :func:`curve_panels` of ``history`` against the epoch."""
    plt = pyplot()
    panels = curve_panels(history)
    cols = min(3, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    epochs = [h["epoch"] for h in history]
    for ax, (name, key, log) in zip(axes.flat, panels):
        ax.plot(epochs, [h.get(key, float("nan")) for h in history], marker="o", ms=3)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
