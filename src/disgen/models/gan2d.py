"""``gan2d``: seed 003's GAN that fits a 2-D Gaussian (d2l, "the world's most inefficient
estimator of parameters for a Gaussian"): a linear generator 2 -> 2 and a 2-5-3-1 tanh
discriminator, weights N(0, 0.02), biases 0, Adam 0.05 for D and 0.005 for G, batch 8, 20 epochs.

Train it on ``--dataset gaussian2d`` (the seed's data) or ``gaussian2d-ring8`` (mode collapse).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from disgen.config import opt
from disgen.models import ACTIVATIONS, activation, add_ema, gan_loss_option, register_model


@dataclass
class Gan2dConfig:
    latent_dim: int = opt(2, "size of z (seed 003: z ~ N(0, I) in 2-D; a linear G then only learns A and b)")
    noise_std: float = opt(1.0, "std of z ~ N(0, std)")
    g_hidden: tuple[int, ...] = opt(
        (), "G's hidden widths; empty: the seed's single linear layer (widths: an MLP G, for rings)"
    )
    d_hidden: tuple[int, ...] = opt((5, 3), "D's hidden widths (seed 003's 2-5-3-1)")
    d_activation: str = opt("tanh", "D's hidden activation", choices=ACTIVATIONS)
    init_std: float = opt(0.02, "N(0, std) weights, zero biases (seed 003's _initialize_weights)")
    d_lr: float | None = opt(0.05, "D's Adam learning rate; G's is --lr (seed 003: 0.005)")
    ema: float = opt(0.0, "decay of G's weight average used for sampling; 0: none (the seed)")
    gan_loss: str = gan_loss_option()
    gp_weight: float = opt(10.0, "lambda of wasserstein-gp's gradient penalty (Gulrajani et al. 2017: 10)")

    def data_shape(self) -> tuple[int]:
        """2-D points, one (x, y) per sample."""
        return (2,)


def mlp(sizes: list[int], act: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation(act))
    return nn.Sequential(*layers)


def normal_init(std: float):
    def apply(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)

    return apply


class Generator(nn.Module):
    def __init__(self, cfg: Gan2dConfig, dim: int):
        super().__init__()
        self.latent_dim, self.noise_std = cfg.latent_dim, cfg.noise_std
        self.net = mlp([cfg.latent_dim, *cfg.g_hidden, dim], "relu")  # (B, dim)
        self.apply(normal_init(cfg.init_std))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """Returns logits; the seed's final sigmoid lives in the loss (BCE on logits)."""

    def __init__(self, cfg: Gan2dConfig, dim: int):
        super().__init__()
        self.net = mlp([dim, *cfg.d_hidden, 1], cfg.d_activation)  # (B, 1)
        self.apply(normal_init(cfg.init_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


PRESETS = {
    "seed": dict(
        val_split=0.0,  # the document trained on the whole training split
        dataset="gaussian2d",
        optimizer="adam",
        lr=0.005,
        batch_size=8,
        epochs=20,
        model=dict(d_lr=0.05),
    ),
    # Chosen by measurement (docs/gans.md, benchmarks/bench_gan2d.py): a wider D (32-32) sees the
    # covariance error the 5-3 D misses; G's lr 4x higher reaches the optimum by mid-run, then a
    # cosine decay of both lrs stops Adam's random walk around it; beta1 = 0.5 (Radford et al.
    # 2015). Same batch, epochs and so steps as the seed.
    "default": dict(
        dataset="gaussian2d",
        optimizer="adam",
        lr=0.02,
        betas=(0.5, 0.999),
        batch_size=8,
        epochs=20,
        lr_schedule="cosine",
        model=dict(d_lr=0.02, d_hidden=(32, 32)),
    ),
}


@register_model(
    "gan2d",
    objective="gan",
    config=Gan2dConfig,
    presets=PRESETS,
    description="seed 003's GAN fitting a 2-D Gaussian (linear G, 2-5-3-1 tanh D)",
    value_range=(0.0, 1.0),
)
def build(cfg: Gan2dConfig, image_shape, num_classes) -> dict[str, nn.Module]:
    dim = image_shape[0] if len(image_shape) == 1 else 2
    return add_ema({"generator": Generator(cfg, dim), "discriminator": Discriminator(cfg, dim)}, cfg.ema)
