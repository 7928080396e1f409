"""``transfer``: classification with a pretrained backbone (resnet-transfer, seed 003).

The step is ``classify``'s. What differs: pretrained weights are loaded when a run starts
(``prepare``); the head and a trainable backbone get separate learning rates (fine-tuning with a
lower backbone lr); evaluation reports the Kaggle competition's metric, log loss (mean
cross-entropy of the predicted probabilities), next to accuracy, and ``best.pt`` is the lowest
log loss; the run's pictures add a confusion matrix and the worst-classified validation images.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from disgen.data.loader import batches
from disgen.models import Nets, inference
from disgen.objectives import Context, Objective, register_objective
from disgen.objectives.classify import step
from disgen.viz import pyplot, save_figure, save_grid

EVAL_BATCH = 64  # 224-pixel ResNet activations: 1000-image batches would need many GB
WORST = 32  # validation images shown in worst.png


def logits_of(nets: Nets, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    with inference(nets):
        return torch.cat([nets["model"](x[s]).float() for s in batches(len(x), batch_size)])


def evaluate(nets: Nets, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Validation ``log_loss`` (Kaggle's metric: mean cross-entropy) and ``accuracy``."""
    logits = logits_of(nets, x)
    return {"log_loss": F.cross_entropy(logits, y).item(), "accuracy": (logits.argmax(1) == y).float().mean().item()}


def predict(nets: Nets, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, classes)."""
    return logits_of(nets, x).softmax(1)


def optimizers(nets: Nets, cfg, model_cfg) -> dict[str, torch.optim.Optimizer]:
    """One optimizer, two parameter groups: the head at --lr, a trainable backbone at
    --lr x backbone_lr_scale (frozen parameters are left out)."""
    from disgen.objectives.optim import make_optimizer

    model = nets["model"]
    head = [p for p in model.classifier.parameters() if p.requires_grad]
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head, "lr": cfg.lr}]
    if body:
        groups.append({"params": body, "lr": cfg.lr * model_cfg.backbone_lr_scale})
    return {"model": make_optimizer(groups, cfg)}


def prepare(nets: Nets, model_cfg, log) -> None:
    """Load ``--weights FILE`` or, with ``--pretrained``, torchvision's ImageNet weights."""
    from disgen.models.weights import fetch_pretrained, load_backbone, read_weights

    source = model_cfg.weights or (fetch_pretrained(model_cfg.arch) if model_cfg.pretrained else None)
    if not source:
        log("resnet-transfer: random initial weights (no --weights, --no-pretrained)")
        return
    unused = load_backbone(nets["model"], read_weights(source), str(source))
    log(f"resnet-transfer: weights from {source}" + (f" (unused: {', '.join(unused)})" if unused else ""))


def precompute(nets: Nets, cfg, model_cfg, train_x: torch.Tensor) -> torch.Tensor | None:
    """With ``--cache-features``: the frozen backbone's features of the training images, once.

    The same as running the backbone every epoch only because nothing about it changes: its
    weights are frozen, its batch norms use running statistics, and without augmentation an
    image is the same input in every epoch. Random crops, flips and jitter would make every epoch's
    features different, so caching is refused with ``--augment`` other than none."""
    from disgen.errors import DisgenError

    if not model_cfg.cache_features:
        return None
    if cfg.augment != "none" or model_cfg.train_backbone != "none":
        raise DisgenError(
            f"--cache-features needs a frozen backbone (--train-backbone none, not "
            f"{model_cfg.train_backbone!r}) and --augment none (not {cfg.augment!r}): "
            "cached features cannot be augmented or change with training"
        )
    model = nets["model"]
    with inference(nets):
        feats = torch.cat([model.features(train_x[s]).float() for s in batches(len(train_x), EVAL_BATCH)])
    return feats.clone()  # a normal tensor: inference-mode tensors cannot be saved for backward


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


def snapshot(ctx: Context, tag: str) -> None:
    if tag == "before":
        save_grid(ctx.train_x[:64], ctx.out_dir / "train_batch.png", 8, value_range=ctx.value_range)
    if tag != "after" or len(ctx.eval_x) == 0:
        return
    logits = logits_of(ctx.nets, ctx.eval_x)
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


register_objective(
    Objective(
        "transfer",
        step,
        evaluate,
        best=("log_loss", "min"),
        snapshot=snapshot,
        predict=predict,
        optimizers=optimizers,
        prepare=prepare,
        precompute=precompute,
    )
)
