"""``reconstruct``: an autoencoder trained to reproduce its input under mean squared error."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from disgen.data.loader import batches
from disgen.models import Nets, inference
from disgen.objectives import Context, Objective, minimize, register_objective
from disgen.viz import save_grid, save_pairs


def step(nets: Nets, opts, batch) -> dict[str, torch.Tensor]:
    x, _ = batch
    loss = F.mse_loss(nets["model"](x), x)  # mean over pixels and batch, seed 001's "mse"
    minimize(opts, "model", loss)
    return {"mse": loss.detach()}


def reconstruct(nets: Nets, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    with inference(nets):
        return torch.cat([nets["model"](x[s]).float() for s in batches(len(x), batch_size)])


def evaluate(nets: Nets, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000) -> dict[str, float]:
    """Test ``mse``: mean squared error per pixel between images and their reconstructions."""
    return {"mse": F.mse_loss(reconstruct(nets, x, batch_size), x.float()).item()}


def snapshot(ctx: Context, tag: str) -> None:
    if tag == "before":
        save_grid(ctx.train_x[:100], ctx.out_dir / "train_batch.png", 10, value_range=ctx.value_range)
    if tag in ("before", "after"):
        x = ctx.eval_x[:50]
        save_pairs(
            x, reconstruct(ctx.nets, x), ctx.out_dir / f"reconstructions_{tag}.png", 10, value_range=ctx.value_range
        )


register_objective(
    Objective(
        "reconstruct",
        step,
        evaluate,
        best=("mse", "min"),
        snapshot=snapshot,
        reconstruct=reconstruct,
    )
)
