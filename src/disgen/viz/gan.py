"""gan2d's picture: real and generated points over the discriminator's decision surface D(x)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from disgen.models import inference
from disgen.viz import pyplot, save_figure


def save_decision_surface(
    d: nn.Module, real: torch.Tensor, fake: torch.Tensor, path: str | Path, grid: int = 120
) -> Path:
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
        prob = torch.sigmoid(d(torch.stack([gx, gy], -1).reshape(-1, 2).to(device))).reshape(grid, grid).cpu()
    fig, ax = plt.subplots(figsize=(5, 4))
    mesh = ax.pcolormesh(xs.numpy(), ys.numpy(), prob.numpy(), cmap="RdBu", vmin=0, vmax=1, shading="auto")
    fig.colorbar(mesh, ax=ax, label="D(x) = P(real)")
    ax.scatter(real[:1000, 0].numpy(), real[:1000, 1].numpy(), s=4, c="tab:blue", label="real")
    ax.scatter(fake[:1000, 0].numpy(), fake[:1000, 1].numpy(), s=4, c="tab:orange", label="generated")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
