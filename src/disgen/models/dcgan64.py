"""``dcgan64``: seed 003's d2l DCGAN for 64x64 RGB images (the Pokemon sprites), after Radford et
al. 2015. G: a 100-d latent at 1x1 through four blocks of 4x4 transposed convolution + batch norm +
ReLU up to 32x32, then a transposed convolution to 3x64x64 and tanh. D: four blocks of 4x4
stride-2 convolution + batch norm + LeakyReLU(0.2), then a 4x4 convolution to one logit. Weights
N(0, 0.02), batch-norm scales N(1, 0.02), Adam with beta1 = 0.5. Train it on ``--dataset FOLDER``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from disgen.config import opt
from disgen.errors import DisgenError
from disgen.models import add_ema, gan_loss_option, register_model
from disgen.models.dcgan28 import dcgan_init


@dataclass
class DCGAN64Config:
    latent_dim: int = opt(100, "size of G's input noise z")
    noise_std: float = opt(1.0, "std of z ~ N(0, std)")
    width: int = opt(64, "channels of the widest-but-three stage: stages have width x 8, 4, 2, 1 (d2l: 64)")
    # d2l writes BatchNorm2d(c, 0.8): the 0.8 lands on eps (meant as momentum, probably); the seed
    # preset keeps it, the default uses PyTorch's 1e-5.
    bn_eps: float = opt(0.8, "batch norm's eps (d2l's 0.8, kept by the seed preset; PyTorch's is 1e-5)")
    d_input_norm: bool = opt(True, "batch norm in D's first block (d2l: yes; Radford et al.: no)")
    d_lr: float | None = opt(None, "D's learning rate; unset: --lr")
    ema: float = opt(0.0, "decay of G's weight average used for sampling; 0: none (the seed)")
    gan_loss: str = gan_loss_option()
    gp_weight: float = opt(10.0, "lambda of wasserstein-gp's gradient penalty (Gulrajani et al. 2017: 10)")

    def data_shape(self) -> tuple[int, int, int]:
        """3x64x64 RGB images (d2l's); image folders are resized and centre-cropped to it."""
        return (3, 64, 64)


def g_block(cin: int, cout: int, eps: float, stride: int = 2, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, stride, padding, bias=False), nn.BatchNorm2d(cout, eps=eps), nn.ReLU()
    )


def d_block(cin: int, cout: int, eps: float, norm: bool = True) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, 2, 1, bias=False),
        nn.BatchNorm2d(cout, eps=eps) if norm else nn.Identity(),
        nn.LeakyReLU(0.2),
    )


class Generator(nn.Module):
    def __init__(self, cfg: DCGAN64Config, channels: int):
        super().__init__()
        self.latent_dim, self.noise_std = cfg.latent_dim, cfg.noise_std
        w, eps = cfg.width, cfg.bn_eps
        self.net = nn.Sequential(
            nn.Unflatten(1, (cfg.latent_dim, 1, 1)),  # (B, 100, 1, 1)
            g_block(cfg.latent_dim, 8 * w, eps, stride=1, padding=0),  # (B, 8w, 4, 4)
            g_block(8 * w, 4 * w, eps),  # (B, 4w, 8, 8)
            g_block(4 * w, 2 * w, eps),  # (B, 2w, 16, 16)
            g_block(2 * w, w, eps),  # (B, w, 32, 32)
            nn.ConvTranspose2d(w, channels, 4, 2, 1, bias=False),
            nn.Tanh(),  # (B, C, 64, 64)
        )
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, cfg: DCGAN64Config, channels: int):
        super().__init__()
        w, eps = cfg.width, cfg.bn_eps
        self.net = nn.Sequential(
            d_block(channels, w, eps, cfg.d_input_norm),  # (B, w, 32, 32)
            d_block(w, 2 * w, eps),  # (B, 2w, 16, 16)
            d_block(2 * w, 4 * w, eps),  # (B, 4w, 8, 8)
            d_block(4 * w, 8 * w, eps),  # (B, 8w, 4, 4)
            nn.Conv2d(8 * w, 1, 4, bias=False),
            nn.Flatten(),  # (B, 1); the seed's sigmoid is in the loss
        )
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


PRESETS = {
    # d2l: lr 0.005 for both, Adam betas (0.5, 0.999), 50 epochs; batch 256 is d2l's loader's.
    "seed": dict(
        val_split=0.0,  # the document trained on the whole training split
        optimizer="adam",
        lr=0.005,
        betas=(0.5, 0.999),
        batch_size=256,
        epochs=50,
        model=dict(bn_eps=0.8, d_input_norm=True),
    ),
    "default": dict(
        optimizer="adam",
        lr=2e-4,
        betas=(0.5, 0.999),
        batch_size=64,
        epochs=50,
        model=dict(bn_eps=1e-5, d_input_norm=False),
    ),
}


@register_model(
    "dcgan64",
    objective="gan",
    config=DCGAN64Config,
    presets=PRESETS,
    description="seed 003's d2l DCGAN for 64x64 RGB image folders",
    value_range=(-1.0, 1.0),
)
def build(cfg: DCGAN64Config, image_shape, num_classes) -> dict[str, nn.Module]:
    if len(image_shape) != 3 or tuple(image_shape[1:]) != (64, 64):
        raise DisgenError(
            f"dcgan64 takes 64x64 images, the dataset has shape {tuple(image_shape)}; "
            "pass a folder of images (resized to 64x64) with --dataset PATH"
        )
    nets = {"generator": Generator(cfg, image_shape[0]), "discriminator": Discriminator(cfg, image_shape[0])}
    return add_ema(nets, cfg.ema)
