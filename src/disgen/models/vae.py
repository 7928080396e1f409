"""``vae``: the variational autoencoder of Kingma and Welling 2013 ("Auto-Encoding Variational
Bayes"): an encoder q(z|x) = N(mu(x), diag(sigma(x)^2)), a decoder p(x|z) of independent Bernoulli
pixels (the paper's model of MNIST), the prior p(z) = N(0, I), trained on the reparameterised
evidence lower bound. There is no source document among disgen's seeds, so no ``seed`` preset.

Its sizes are the unsupervised aae's (``disgen train aae --mode unsupervised``): a 784-1000-1000
ReLU encoder, a 10-dimensional code and the mirrored decoder, so the two differ only in how the
code is pushed towards its prior (a KL term here, a discriminator there). The loss and the rest
of what tools need live in ``disgen.objectives.vae``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from disgen.config import opt
from disgen.errors import DisgenError
from disgen.models import register_model


@dataclass
class VAEConfig:
    hidden: tuple[int, ...] = opt((1000, 1000), "encoder units per layer; the decoder mirrors them (the aae's)")
    z_dim: int = opt(10, "size of the code z (the aae's; 2 for a scatter of the whole code)")
    beta: float = opt(1.0, "weight of the KL term; 1: the ELBO of Kingma and Welling (beta-VAE: more)")


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear + ReLU layers through ``sizes`` (the last one has no activation)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """x (B, C, H, W) -> (mu (B, z_dim), log of the variance (B, z_dim)) of q(z|x)."""

    def __init__(self, cfg: VAEConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), mlp([math.prod(image_shape), *cfg.hidden]), nn.ReLU())  # (B, h)
        self.mu = nn.Linear(cfg.hidden[-1], cfg.z_dim)  # (B, z_dim)
        self.log_var = nn.Linear(cfg.hidden[-1], cfg.z_dim)  # (B, z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.log_var(h)


class Decoder(nn.Module):
    """z (B, z_dim) -> the logits of the pixels' Bernoulli means (B, C, H, W): a sigmoid makes
    them images in [0, 1]. ``latent_dim`` and ``noise_std``: the prior N(0, I) that samples draw."""

    def __init__(self, cfg: VAEConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.latent_dim, self.noise_std = cfg.z_dim, 1.0
        self.net = mlp([cfg.z_dim, *reversed(cfg.hidden), math.prod(image_shape)])  # (B, C*H*W)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.image_shape)


PRESETS = {
    # Adam at 1e-3 and batch 100, as the aae's presets; 50 epochs as its default.
    "default": dict(optimizer="adam", lr=1e-3, batch_size=100, epochs=50),
}


@register_model(
    "vae",
    objective="vae",
    config=VAEConfig,
    presets=PRESETS,
    description="variational autoencoder (Kingma and Welling 2013) on the unsupervised aae's sizes",
)
def build(cfg: VAEConfig, image_shape, num_classes) -> dict[str, nn.Module]:
    if len(image_shape) != 3:
        raise DisgenError(f"vae takes images (C, H, W); the data has shape {tuple(image_shape)}")
    if not cfg.hidden or cfg.z_dim < 1:
        raise DisgenError("vae: --hidden must name at least one layer and --z-dim be at least 1")
    if not 0 <= cfg.beta:
        raise DisgenError(f"vae --beta {cfg.beta:g}: a weight, 0 or more")
    return {"encoder": Encoder(cfg, image_shape), "decoder": Decoder(cfg, image_shape)}
