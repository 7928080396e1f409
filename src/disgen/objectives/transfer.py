"""``transfer``: classification with a pretrained backbone (resnet-transfer, seed 003).

The step is ``classify``'s. What differs: pretrained weights are loaded when a run starts
(``prepare``); the head and a trainable backbone get separate learning rates (fine-tuning with a
lower backbone lr); evaluation reports the Kaggle competition's metric, log loss (mean
cross-entropy of the predicted probabilities), next to accuracy, and ``best.pt`` is the lowest
log loss; the run's pictures add a confusion matrix and the worst-classified validation images.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from disgen.data.loader import batches
from disgen.models import Nets, inference
from disgen.objectives import Context, Objective, classify, register_objective
from disgen.objectives.classify import EXPORT, PICTURES, save_errors, step
from disgen.viz import save_grid

confusion, save_confusion = classify.confusion, classify.save_confusion  # their home before classify's
EVAL_BATCH = 64  # 224-pixel ResNet activations: 1000-image batches would need many GB


def logits_of(nets: Nets, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    return classify.logits_of(nets, x, batch_size)


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


def snapshot(ctx: Context, tag: str) -> None:
    if tag == "before":
        save_grid(ctx.train_x[:64], ctx.out_dir / "train_batch.png", 8, value_range=ctx.value_range)
    if tag != "after" or len(ctx.eval_x) == 0:
        return
    save_errors(ctx, logits_of(ctx.nets, ctx.eval_x))


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
        export=dataclasses.replace(EXPORT, tags=["image-classification", "transfer-learning", "resnet"]),
        pictures=PICTURES,
    )
)
