"""``classify``: softmax cross-entropy on labelled images (mlp-classifier, cnn-classifier)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from disgen.data.loader import batches
from disgen.models import Nets, inference
from disgen.objectives import Context, Objective, minimize, register_objective
from disgen.viz import save_grid


def step(nets: Nets, opts, batch) -> dict[str, torch.Tensor]:
    x, y = batch
    model = nets["model"]
    logits = model(x)
    loss = F.cross_entropy(logits, y, label_smoothing=getattr(model, "label_smoothing", 0.0))
    minimize(opts, "model", loss)
    # Training accuracy of this batch, as seed 000 reports it (before this step's update).
    return {"loss": loss.detach(), "accuracy": (logits.detach().argmax(1) == y).float().mean()}


def logits_of(nets: Nets, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    with inference(nets):
        return torch.cat([nets["model"](x[s]).float() for s in batches(len(x), batch_size)])


def evaluate(nets: Nets, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
    """Test ``accuracy`` and mean cross-entropy ``loss`` of the classifier on (x, y)."""
    logits = logits_of(nets, x, batch_size)
    return {
        "accuracy": (logits.argmax(1) == y).float().mean().item(),
        "loss": F.cross_entropy(logits, y).item(),
    }


def predict(nets: Nets, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, classes)."""
    return logits_of(nets, x).softmax(1)


def snapshot(ctx: Context, tag: str) -> None:
    if tag == "before":
        save_grid(ctx.train_x[:100], ctx.out_dir / "train_batch.png", 10, value_range=ctx.value_range)
    if tag not in ("before", "after"):
        return
    x, y = ctx.eval_x[:100], ctx.eval_y[:100]
    pred = predict(ctx.nets, x).argmax(1)
    right = (pred == y).tolist()
    save_grid(
        x,
        ctx.out_dir / f"predictions_{tag}.png",
        10,
        value_range=ctx.value_range,
        scale=2,
        captions=[ctx.classes[p] for p in pred.tolist()],
        caption_colors=[(120, 230, 120) if r else (255, 90, 90) for r in right],
    )


register_objective(
    Objective(
        "classify",
        step,
        evaluate,
        best=("accuracy", "max"),
        snapshot=snapshot,
        predict=predict,
    )
)
