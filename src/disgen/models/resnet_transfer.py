"""``resnet-transfer``: an ImageNet ResNet-18/34/50 with a new classification head (seed 003, d2l
"Kaggle dog breed identification": pretrained ResNet-34, frozen, a small new output network).

The ResNet (He et al. 2015) is written here with torchvision's exact module and parameter names
and shapes (``conv1``, ``bn1``, ``layer1``..``layer4`` of ``BasicBlock``/``Bottleneck`` blocks
with ``conv1, bn1, conv2, bn2[, conv3, bn3], downsample.0/.1``, ``fc``), so torchvision and timm
checkpoint files load directly (see :mod:`disgen.models.weights`) without torchvision installed.

The model takes images in [0, 1] of any size: the test transform (centre crop to ``image_size``)
and ImageNet's per-channel normalisation happen inside ``features``, so datasets stay uint8 in
[0, 1] like every other disgen dataset and ``predict`` needs nothing but the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from disgen.config import opt
from disgen.errors import DisgenError
from disgen.models import register_model

# torchvision's ResNet init too: He normal (fan_out) convolutions, batch norm as the identity.
from disgen.models.cnn_classifier import init_weights

# Blocks per stage, from torchvision.models.resnet (He et al. 2015, table 1).
ARCHS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_RATIO = 256 / 224  # the seed's test transform: resize to 256, centre-crop 224


@dataclass
class ResNetTransferConfig:
    arch: str = opt("resnet34", "the ImageNet ResNet to start from", choices=("resnet18", "resnet34", "resnet50"))
    image_size: int = opt(224, "crop side in pixels; images are stored at image_size * 256/224")
    head: str = opt(
        "new",
        "new: a head on the 1000-d ImageNet output (seed); replace: a head instead of fc",
        choices=("new", "replace"),
    )
    hidden: int = opt(256, "width of the head's hidden layer (seed: 256); 0: a single linear layer")
    train_backbone: str = opt(
        "none",
        "what of the backbone trains: none (frozen, seed), last (layer4 and fc) or all",
        choices=("none", "last", "all"),
    )
    backbone_lr_scale: float = opt(0.1, "the backbone's lr relative to --lr when it trains")
    pretrained: bool = opt(
        True,
        "start from torchvision's ImageNet weights, fetched into the cache (offline: "
        "--weights FILE, or --no-pretrained for random weights)",
    )
    weights: str = opt("", "a .pth or .safetensors file with torchvision/timm names (wins over --pretrained)")
    # The same result as training through the frozen backbone, epochs in seconds (objectives/transfer.py).
    cache_features: bool = opt(
        False,
        "frozen backbone and --augment none: compute the training images' features once and train the head on them",
    )

    def data_shape(self) -> tuple[int, int, int]:
        """The (C, H, W) images are decoded to: the crop's side times 256/224."""
        side = round(self.image_size * RESIZE_RATIO)
        return (3, side, side)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, width, stride), nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = conv3x3(width, width), nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5: the stride sits on the 3x3 convolution, not the first 1x1."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1, self.bn1 = conv1x1(cin, width), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv3x3(width, width, stride), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = conv1x1(width, width * 4), nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_stage(block: type, cin: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or cin != width * block.expansion:
        downsample = nn.Sequential(
            conv1x1(cin, width * block.expansion, stride), nn.BatchNorm2d(width * block.expansion)
        )
    layers = [block(cin, width, stride, downsample)]
    layers += [block(width * block.expansion, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` window of (B, C, H, W), if the images are larger."""
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[..., top : top + min(size, h), left : left + min(size, w)]


class ResNetTransfer(nn.Module):
    """torchvision's ResNet (same attribute names) plus ``classifier``, the new head."""

    def __init__(self, cfg: ResNetTransferConfig, num_classes: int):
        super().__init__()
        kind, blocks = ARCHS[cfg.arch]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.image_size, self.head_mode = cfg.image_size, cfg.head
        # Not persistent: they are constants, and torchvision's state dicts do not have them.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)  # (B, 64, S/2, S/2)
        self.bn1, self.relu = nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)  # (B, 64, S/4, S/4)
        self.layer1 = make_stage(block, 64, 64, blocks[0], 1)  # (B, 64e, S/4, S/4)
        self.layer2 = make_stage(block, 64 * block.expansion, 128, blocks[1], 2)  # (B, 128e, S/8, S/8)
        self.layer3 = make_stage(block, 128 * block.expansion, 256, blocks[2], 2)  # (B, 256e, S/16, ..)
        self.layer4 = make_stage(block, 256 * block.expansion, 512, blocks[3], 2)  # (B, 512e, S/32, ..)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # (B, 512e, 1, 1)
        width = 512 * block.expansion
        # "new": keep ImageNet's 1000-way fc as part of the backbone (seed); "replace": no fc.
        self.fc = nn.Linear(width, 1000) if cfg.head == "new" else nn.Identity()
        self.feature_dim = 1000 if cfg.head == "new" else width
        self.hidden = cfg.hidden
        self.apply(init_weights)
        self.reset_head(num_classes)

    def reset_head(self, num_classes: int) -> None:
        """A fresh ``classifier`` (Linear, ReLU, Linear; seed: 1000 -> 256 -> classes)."""
        if self.hidden > 0:
            self.classifier = nn.Sequential(
                nn.Linear(self.feature_dim, self.hidden), nn.ReLU(inplace=True), nn.Linear(self.hidden, num_classes)
            )  # (B, classes)
        else:
            self.classifier = nn.Sequential(nn.Linear(self.feature_dim, num_classes))

    def backbone_modules(self) -> list[nn.Module]:
        return [self.conv1, self.bn1, self.layer1, self.layer2, self.layer3, self.layer4, self.fc]

    def freeze_backbone(self, keep_last_stage: bool = False) -> None:
        """Stop training everything but the head (and ``layer4`` and ``fc`` if ``keep_last_stage``).

        Frozen batch norms also stay in eval mode (see :meth:`train`), so their running statistics,
        and hence the backbone's outputs, do not change during training."""
        for module in self.backbone_modules():
            keep = keep_last_stage and module in (self.layer4, self.fc)
            for p in module.parameters():
                p.requires_grad_(keep)
        self.train(self.training)

    def train(self, mode: bool = True) -> "ResNetTransfer":
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d) and not any(p.requires_grad for p in m.parameters()):
                m.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, 1000) ImageNet logits ("new" head) or (B, 512e) pooled."""
        x = center_crop(x, self.image_size)  # (B, C, size, size): the test transform
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey -> RGB
        x = (x - self.mean) / self.std
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> logits; already computed features (B, feature_dim) -> logits."""
        return self.head(x if x.dim() == 2 else self.features(x))


def check_config(cfg: ResNetTransferConfig) -> None:
    choices = {"arch": tuple(ARCHS), "head": ("new", "replace"), "train_backbone": ("none", "last", "all")}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise DisgenError(f"--{name.replace('_', '-')} {getattr(cfg, name)!r}: choose one of {', '.join(allowed)}")
    if cfg.image_size < 16:
        raise DisgenError(f"--image-size {cfg.image_size} is too small for a ResNet: use 16 or more")


# d2l's values for this chapter: SGD momentum 0.9, lr 0.01, weight decay 1e-4, lr x0.1 every 10
# epochs, batch 128 (the seed runs 1 epoch as a demo and suggests more).
PRESETS = {
    "seed": dict(
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        weight_decay=1e-4,
        lr_schedule="step",
        lr_period=10,
        lr_decay=0.1,
        batch_size=128,
        epochs=10,
        augment="imagenet",
        model=dict(arch="resnet34", head="new", hidden=256, train_backbone="none", pretrained=True),
    ),
    "default": dict(
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        weight_decay=1e-4,
        lr_schedule="step",
        lr_period=10,
        lr_decay=0.1,
        batch_size=128,
        epochs=20,
        augment="imagenet",
        model=dict(arch="resnet34", head="new", hidden=256, train_backbone="none", pretrained=True),
    ),
}


@register_model(
    "resnet-transfer",
    objective="transfer",
    config=ResNetTransferConfig,
    presets=PRESETS,
    description="ImageNet ResNet-18/34/50 (torchvision names) + new head: transfer learning (seed 003)",
)
def build(cfg: ResNetTransferConfig, image_shape, num_classes) -> dict[str, nn.Module]:
    """The networks only: pretrained weights are loaded by the objective's ``prepare`` when a
    training run starts, so loading a finished run never needs the weights file."""
    check_config(cfg)
    model = ResNetTransfer(cfg, num_classes)
    if cfg.train_backbone != "all":
        model.freeze_backbone(keep_last_stage=cfg.train_backbone == "last")
    return {"model": model}
