"""gan2d's picture: real and generated points over the discriminator's decision surface D(x)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from disgen.models import inference
from disgen.viz import pyplot, save_figure


def save_decision_surface(
    d: nn.Module, real: torch.Tensor, fake: torch.Tensor, path: str | Path, grid: int = 120, probability: bool = True
) -> Path:
    """``probability``: D gives logits and sigmoid(D(x)) = P(real) is drawn (the bce loss); else
    D's score itself, on a scale symmetric about 0 (hinge, a Wasserstein critic)."""
    plt = pyplot()

    real, fake = real.detach().float().cpu(), fake.detach().float().cpu()
    both = torch.cat([real, fake])
    lo, hi = both.min(0).values, both.max(0).values
    pad = (hi - lo) * 0.15
    xs = torch.linspace(float(lo[0] - pad[0]), float(hi[0] + pad[0]), grid)
    ys = torch.linspace(float(lo[1] - pad[1]), float(hi[1] + pad[1]), grid)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    device = next(d.parameters()).device
    with inference({"d": d}):
        out = d(torch.stack([gx, gy], -1).reshape(-1, 2).to(device)).float().reshape(grid, grid).cpu()
    fig, ax = plt.subplots(figsize=(5, 4))
    if probability:
        values, lo, hi, label = torch.sigmoid(out), 0.0, 1.0, "D(x) = P(real)"
    else:
        top = max(float(out.abs().max()), 1e-6)
        values, lo, hi, label = out, -top, top, "D(x), a score (real > generated)"
    mesh = ax.pcolormesh(xs.numpy(), ys.numpy(), values.numpy(), cmap="RdBu", vmin=lo, vmax=hi, shading="auto")
    fig.colorbar(mesh, ax=ax, label=label)
    ax.scatter(real[:1000, 0].numpy(), real[:1000, 1].numpy(), s=4, c="tab:blue", label="real")
    ax.scatter(fake[:1000, 0].numpy(), fake[:1000, 1].numpy(), s=4, c="tab:orange", label="generated")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
