"""``cnn-classifier``: disgen's small convolutional classifier for 28x28 images.

A VGG-style stack (two 3x3 convolutions per stage, batch norm, ReLU, max pooling; Simonyan &
Zisserman 2014) ending in global average pooling, so ``features(x)`` is a compact embedding that
also serves as the feature space for Fréchet distance and class coverage of generated images.
There is no source document for it; the ``seed`` preset is the same network trained without
augmentation, the ``default`` adds random affine augmentation and a one-cycle schedule,
``budget`` (what ``--time-budget`` takes) drops the augmentation, and ``fast`` is a lighter network
and schedule for time to accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from disgen.config import opt
from disgen.errors import DisgenError
from disgen.models import register_model


@dataclass
class CNNClassifierConfig:
    widths: tuple[int, ...] = opt((32, 64, 128), "channels of the three stages (28x28, 14x14, 7x7)")
    convs: tuple[int, ...] = opt((2, 2, 1), "3x3 convolutions per stage")
    dropout: float = opt(0.2, "dropout probability before the linear head")
    pool_first: bool = opt(
        False,
        "max-pool a stage's last convolution before its batch norm and ReLU, not after them "
        "(airbench's order): the same parameters, and batch norm and ReLU on a quarter of the pixels",
    )
    label_smoothing: float = opt(
        0.0, "share of each training target spread evenly over the classes (Szegedy et al. 2016); 0: none"
    )


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    # No conv bias: batch norm's shift replaces it.
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def stage(cin: int, cout: int, n: int, pool: bool = False, pool_first: bool = False) -> list[nn.Module]:
    """``n`` convolutions, then (``pool``) a 2x2 max pool: after the last one's ReLU, or with
    ``pool_first`` between that convolution and its batch norm (airbench's order: batch norm and
    ReLU then touch a quarter of the pixels)."""
    layers = [conv_bn_relu(cin if i == 0 else cout, cout) for i in range(n)]
    if not pool:
        return layers
    if not pool_first:
        return layers + [nn.MaxPool2d(2)]
    conv, bn, relu = layers[-1]
    return layers[:-1] + [nn.Sequential(conv, nn.MaxPool2d(2), bn, relu)]


class CNNClassifier(nn.Module):
    def __init__(self, cfg: CNNClassifierConfig, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        c, _, _ = image_shape
        if len(cfg.widths) != 3 or len(cfg.convs) != 3 or min(cfg.widths) < 1 or min(cfg.convs) < 1:
            raise DisgenError(
                f"cnn-classifier takes three stages: --widths A,B,C and --convs A,B,C of "
                f"positive numbers (got widths {cfg.widths}, convs {cfg.convs})"
            )
        if not 0.0 <= cfg.label_smoothing < 1.0:
            raise DisgenError(
                f"cnn-classifier --label-smoothing {cfg.label_smoothing}: give a share in [0, 1), e.g. 0.1"
            )
        (w1, w2, w3), (n1, n2, n3) = cfg.widths, cfg.convs
        first = cfg.pool_first
        self.body = nn.Sequential(
            *stage(c, w1, n1, pool=True, pool_first=first),  # (B, w1, 14, 14)
            *stage(w1, w2, n2, pool=True, pool_first=first),  # (B, w2, 7, 7)
            *stage(w2, w3, n3),  # (B, w3, 7, 7)
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (B, w3)
        )
        self.fc = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(w3, num_classes))  # (B, classes)
        self.apply(init_weights)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def init_weights(m: nn.Module) -> None:
    # He init suits ReLU (He et al. 2015); batch norm starts as the identity. fan_in, not
    # fan_out: with one input channel fan_out would shrink the first layer's output variance to
    # ~0.006, far from batch norm's initial running variance of 1, and eval-mode accuracy would
    # lag for the first hundred steps.
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# 30 epochs, not 15: a higher validation accuracy on mnist-mini over 3 seeds (chosen on the
# validation split alone; bench_preset_check.py, docs/speed.md).
DEFAULT = dict(
    optimizer="adamw",
    lr=3e-3,
    weight_decay=5e-4,
    batch_size=64,
    epochs=30,
    lr_schedule="onecycle",
    augment="affine",
)

# Without augmentation, which in the few epochs a short budget holds costs more than it gives.
NO_AUGMENT = {**DEFAULT, "augment": "none"}

# What `--time-budget` takes when no preset is named: the default network with its pools before
# batch norm (batch norm and ReLU then touch a quarter of the pixels: faster steps) at lr 1e-2,
# chosen over the usual order and lower rates on the validation split alone
# (bench_budget.py --candidates; the figures are in benchmarks/results/budget_explore.json).
BUDGET = {**NO_AUGMENT, "lr": 1e-2, "model": dict(pool_first=True)}

PRESETS = {
    "seed": dict(optimizer="adam", lr=1e-3, batch_size=100, epochs=10),
    "default": DEFAULT,
    "budget": BUDGET,
    # The network and learning rate a `budget` run takes where the budget holds under one epoch
    # of its own network (training.budget.narrower): half the widths, one convolution at 28x28,
    # no dropout, pools after batch norm (named, so a rerun of its config.json over `budget` keeps
    # it), lr 3e-3. On Fashion-MNIST in 15 and 30 s, 1.1 and 1.6 validation points ahead
    # of the default network at 3e-3; in 60 s 0.35 behind (bench_budget.py --candidates, docs/speed.md).
    "budget-short": {
        **NO_AUGMENT,
        "model": dict(widths=(16, 32, 64), convs=(1, 2, 1), dropout=0.0, pool_first=False),
    },
    # Fashion-MNIST in a few CPU minutes (docs/speed.md): one convolution at 28x28 instead of two
    # (a third of the FLOPs), 7 epochs of a one-cycle schedule at batch 128, no augmentation.
    "fast": {
        **NO_AUGMENT,
        "batch_size": 128,
        "epochs": 7,
        "model": dict(widths=(32, 64, 128), convs=(1, 2, 1), dropout=0.0),
    },
}


@register_model(
    "cnn-classifier",
    objective="classify",
    config=CNNClassifierConfig,
    presets=PRESETS,
    description="disgen's small VGG-style CNN (batch norm, augmentation); the demo's model",
    short_budget="budget-short",
)
def build(cfg: CNNClassifierConfig, image_shape, num_classes) -> dict[str, nn.Module]:
    return {"model": CNNClassifier(cfg, image_shape, num_classes)}
