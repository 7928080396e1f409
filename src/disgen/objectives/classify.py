"""``classify``: softmax cross-entropy on labelled images (mlp-classifier, cnn-classifier)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from disgen.data.loader import batches
from disgen.models import Nets, inference
from disgen.objectives import Context, Objective, minimize, register_objective
from disgen.objectives.exports import Case, ExportSpec, Network, Port, digits, input_images
from disgen.viz import pyplot, save_figure, save_grid


def step(nets: Nets, opts, batch, cfg=None) -> dict[str, torch.Tensor]:
    """``cfg``: the model config; its ``label_smoothing`` (cnn-classifier's option) spreads that
    share of each target over the classes (none where the model has no such option)."""
    x, y = batch
    model = nets["model"]
    logits = model(x)
    loss = F.cross_entropy(logits, y, label_smoothing=getattr(cfg, "label_smoothing", 0.0))
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


# -- the report's pictures of a classifier ----------------------------------------------------------
WORST = 32  # validation images shown in worst.png


def confusion(pred: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """(k, k) counts: row = true class, column = predicted class."""
    return torch.bincount(y * k + pred, minlength=k * k).view(k, k)


def save_confusion(matrix: torch.Tensor, classes: list[str], path: Path, split: str = "validation") -> Path:
    """Counts drawn on their true-class rate (Blues): light text on dark cells, dark on light."""
    plt = pyplot()

    k = len(classes)
    rates = matrix.float() / matrix.sum(1, keepdim=True).clamp(min=1)
    size = min(24, 3 + 0.25 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    if k <= 40:  # beyond that the names overlap; the picture still shows the diagonal
        ax.set_xticks(range(k), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(k), classes, fontsize=7)
    if k <= 12:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    str(int(matrix[i, j])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(
        f"confusion matrix on the {split} split "
        f"(accuracy {matrix.diag().sum().item() / max(1, matrix.sum().item()):.3f})"
    )
    fig.tight_layout()
    return save_figure(fig, path)


def save_errors(ctx: Context, logits: torch.Tensor) -> None:
    """confusion.png and worst.png of the held-out images ``ctx.eval_x`` and their ``logits``."""
    pred = logits.argmax(1)
    save_confusion(
        confusion(pred.cpu(), ctx.eval_y.cpu(), len(ctx.classes)),
        ctx.classes,
        ctx.out_dir / "confusion.png",
        ctx.eval_split,
    )
    losses = F.cross_entropy(logits, ctx.eval_y, reduction="none")
    worst = losses.argsort(descending=True)[:WORST]
    p_true = logits.softmax(1)[worst, ctx.eval_y[worst]]
    scale = -(-128 // ctx.eval_x.shape[-1])  # room for the captions under small images
    n = max(3, (ctx.eval_x.shape[-1] * scale // 6 - 6) // 2)  # characters per class name (6-px font)
    save_grid(
        ctx.eval_x[worst],
        ctx.out_dir / "worst.png",
        8,
        value_range=ctx.value_range,
        scale=scale,
        captions=[
            f"{ctx.classes[int(ctx.eval_y[i])][:n]}>{ctx.classes[int(pred[i])][:n]} {p:.2f}"
            for i, p in zip(worst.tolist(), p_true.tolist())
        ],
        caption_colors=[(255, 90, 90) if pred[i] != ctx.eval_y[i] else (230, 230, 230) for i in worst.tolist()],
    )


# -- export: one network, images -> class probabilities -------------------------------------------
class Probabilities(nn.Module):
    """A classifier's logits made probabilities: :func:`predict` as one module."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).float().softmax(1)


def export_networks(run, nets: Nets) -> list[Network]:
    probs = Port("probabilities", ("N", len(run.classes)), "[0, 1], rows sum to 1", "class probabilities (softmax)")
    computes = "images -> class probabilities, as `disgen predict` (the softmax of the logits)"
    return [Network("classifier", Probabilities(nets["model"]), [input_images(run)], [probs], computes)]


def export_cases(run) -> list[Case]:
    x, _ = digits(run)
    xf = run.as_batch(x)
    what = f"predict on {len(x)} mnist-mini test digits"
    return [Case(what, lambda r, s: r("classifier", {"images": xf[s]}), {"probabilities": run.predict(x)})]


def report_pictures(run, data, ctx: Context, log) -> None:
    """The report's confusion matrix and worst-classified images."""
    if len(ctx.eval_x):
        save_errors(ctx, logits_of(ctx.nets, ctx.eval_x))


EXPORT = ExportSpec(
    export_networks,
    export_cases,
    roles=lambda nets: ["model"],
    usage=lambda run: ['probabilities = nets["model"](images).softmax(1)'],
    pipeline="image-classification",
    tags=["image-classification"],
    shows_classes=True,
)
PICTURES = (
    ("confusion.png", "confusion matrix on the {split} split"),
    ("worst.png", "worst-classified {split} images: true>predicted p(true)"),
)

register_objective(
    Objective(
        "classify",
        step,
        evaluate,
        best=("accuracy", "max"),
        snapshot=snapshot,
        predict=predict,
        export=EXPORT,
        pictures=(*PICTURES, ("predictions_after.png", "predictions on {split} images after training (red: wrong)")),
        report_pictures=report_pictures,
    )
)
