"""``dcgan28``: GANs for 28x28 images (MNIST, Fashion-MNIST).

``arch="keras"`` is seed 002's Keras DCGAN exactly: a dense + upsampling generator with tanh
activations and batch norm after its second dense layer, a conv + max-pool discriminator, Keras'
Glorot-uniform init, SGD 0.0005 with Nesterov momentum 0.9 for both nets, batch 64, z ~ N(0, 0.3²)
of dim 100, data in [-1, 1]. ``arch="dcgan"`` (the default preset) follows Radford et al. 2015:
strided (transposed) 4x4 convolutions, batch norm, ReLU in G and LeakyReLU(0.2) in D, Adam with
beta1 = 0.5, z ~ N(0, 1); chosen by measurement (docs/gans.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from disgen.config import opt
from disgen.errors import DisgenError
from disgen.models import add_ema, gan_loss_option, register_model


@dataclass
class DCGAN28Config:
    arch: str = opt(
        "dcgan", "the networks: keras (seed 002) or dcgan (Radford et al. 2015)", choices=("keras", "dcgan")
    )
    latent_dim: int = opt(100, "size of G's input noise z (seed 002 and Radford et al.: 100)")
    noise_std: float = opt(1.0, "std of z ~ N(0, std); seed 002 draws N(0, 0.3)")
    g_width: int = opt(64, "channels of G's 14x14 stage (its 7x7 stage has twice as many)")
    g_depth: int = opt(0, "extra 3x3 conv + batch norm + ReLU layers in each of G's 7x7 and 14x14 stages")
    d_width: int = opt(64, "channels of D's 14x14 stage (its 7x7 stage has twice as many)")
    d_lr: float | None = opt(None, "D's learning rate; unset: --lr")
    ema: float = opt(0.0, "decay of G's weight average used for sampling; 0: none (the seed)")
    diffaugment: bool = opt(False, "D sees randomly shifted and cut-out images, real and fake alike")
    minibatch_std: bool = opt(False, "D's 7x7 stage gets one more channel: the batch's feature spread")
    mbstd_group: int = opt(0, "images per minibatch-std group (StyleGAN2: 4); 0: the whole batch")
    r1: float = opt(0.0, "gamma of the R1 penalty on D's gradient at real images (Mescheder et al. 2018); 0: none")
    spectral_norm: bool = opt(False, "D's layers spectrally normalised instead of batch norm (Miyato et al. 2018)")
    real_label: float = opt(1.0, "D's target for real images; 0.9: one-sided label smoothing (Salimans et al. 2016)")
    pack: int = opt(1, "D judges packs of this many images stacked as channels (PacGAN, Lin et al. 2018); 1: none")
    gan_loss: str = gan_loss_option()
    gp_weight: float = opt(10.0, "lambda of wasserstein-gp's gradient penalty (Gulrajani et al. 2017: 10)")

    def data_shape(self) -> tuple[int, int, int]:
        """1x28x28 images: the nets' 7 -> 14 -> 28 upsampling fixes the side; image folders are resized to it."""
        return (1, 28, 28)


class KerasGenerator(nn.Module):
    """Seed 002's ``model_generator`` (widths fixed by the seed: 1024, 128x7x7, 64)."""

    def __init__(self, cfg: DCGAN28Config, channels: int):
        super().__init__()
        self.latent_dim, self.noise_std = cfg.latent_dim, cfg.noise_std
        self.net = nn.Sequential(
            nn.Linear(cfg.latent_dim, 1024),
            nn.Tanh(),  # (B, 1024)
            # Keras BatchNormalization: momentum 0.99 (PyTorch 0.01), epsilon 1e-3
            nn.Linear(1024, 128 * 7 * 7),
            nn.BatchNorm1d(128 * 7 * 7, eps=1e-3, momentum=0.01),
            nn.Tanh(),
            nn.Unflatten(1, (128, 7, 7)),  # (B, 128, 7, 7)
            # Keras' UpSampling2D + Conv2D 5x5 "same", computed as UpsampledConv2d (the same function
            # and weights, 2.8x fewer multiply-adds); the Identity keeps the checkpoint's key names.
            nn.Identity(),
            UpsampledConv2d(128, 64),
            nn.Tanh(),  # (B, 64, 14, 14)
            nn.Identity(),
            UpsampledConv2d(64, channels),
            nn.Tanh(),  # (B, C, 28, 28)
        )
        self.apply(glorot_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class UpsampledConv2d(nn.Conv2d):
    """``Conv2d(k=5, padding=2)`` applied to the 2x nearest-neighbour upsampling of its input, in
    one convolution at the input's resolution. Output pixel (2p + r, 2q + s) of the upsampled
    convolution sees input rows p-1..p+1 only, through the 5 kernel rows summed into 3 for phase r
    (rows (0+1, 2+3, 4) for r = 0, (0, 1+2, 3+4) for r = 1), likewise for columns. So one 3x3
    convolution with the 4 phase kernels as 4x the output channels, then a pixel shuffle, gives
    the same outputs with 4*9 instead of 4*25 multiply-adds per input pixel. The parameters are
    the 5x5 kernel itself, so weights, init and checkpoints are those of the plain layers."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 5, padding=2)
        fold = torch.tensor(
            [
                [[1, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1]],  # phase 0
                [[1, 0, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 1]],
            ],  # phase 1
            dtype=torch.float32,
        )  # (phase, 3 folded taps, 5 taps)
        self.register_buffer("fold", fold, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o, i = self.out_channels, self.in_channels
        a = self.fold.to(self.weight.dtype)
        # kernels[o, r, s, i, 3, 3] = A_r @ W[o, i] @ A_s^T, laid out as pixel_shuffle reads them
        k = torch.einsum("ryk,oikl,sxl->orsiyx", a, self.weight, a).reshape(4 * o, i, 3, 3)
        y = nn.functional.conv2d(x, k, self.bias.repeat_interleave(4), padding=1)  # (B, 4*o, H, W)
        return nn.functional.pixel_shuffle(y, 2)  # (B, o, 2H, 2W)


class KerasDiscriminator(nn.Module):
    """Seed 002's ``model_discriminator``; returns a logit (its sigmoid lives in the loss)."""

    def __init__(self, cfg: DCGAN28Config, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 64, 5, padding=2),
            nn.Tanh(),
            nn.MaxPool2d(2),  # (B, 64, 14, 14)
            nn.Conv2d(64, 128, 5),
            nn.Tanh(),
            nn.MaxPool2d(2),  # "valid": (B, 128, 10, 10) -> (B, 128, 5, 5)
            nn.Flatten(),
            nn.Linear(128 * 5 * 5, 1024),
            nn.Tanh(),  # (B, 1024)
            nn.Linear(1024, 1),  # (B, 1)
        )
        self.apply(glorot_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Generator(nn.Module):
    def __init__(self, cfg: DCGAN28Config, channels: int):
        super().__init__()
        self.latent_dim, self.noise_std = cfg.latent_dim, cfg.noise_std
        w = cfg.g_width
        self.net = nn.Sequential(
            nn.Linear(cfg.latent_dim, 2 * w * 7 * 7, bias=False),
            nn.BatchNorm1d(2 * w * 7 * 7),
            nn.ReLU(True),
            nn.Unflatten(1, (2 * w, 7, 7)),  # (B, 2w, 7, 7)
            *conv_bn_relu(2 * w, cfg.g_depth),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(True),  # (B, w, 14, 14)
            *conv_bn_relu(w, cfg.g_depth),
            nn.ConvTranspose2d(w, channels, 4, 2, 1),
            nn.Tanh(),  # (B, C, 28, 28)
        )
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def conv_bn_relu(channels: int, n: int) -> list[nn.Module]:
    """``n`` shape-keeping 3x3 conv + batch norm + ReLU layers."""
    return [
        m
        for _ in range(n)
        for m in (nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(True))
    ]


class Discriminator(nn.Module):
    """No batch norm on D's input layer (Radford et al. 2015); returns a logit."""

    def __init__(self, cfg: DCGAN28Config, channels: int):
        super().__init__()
        w, extra = cfg.d_width, int(cfg.minibatch_std)
        self.pack = cfg.pack  # D's own input layout (its first layer takes pack * C channels)
        if cfg.pack < 1:
            raise DisgenError(f"dcgan28 --pack {cfg.pack}: give 1 (no packing) or more images per pack")
        self.mixes_batch = cfg.pack > 1  # a pack's logit depends on several images
        self.net = nn.Sequential(
            nn.Conv2d(channels * cfg.pack, w, 4, 2, 1),
            nn.LeakyReLU(0.2, True),  # (B, w, 14, 14)
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=cfg.spectral_norm),
            *([] if cfg.spectral_norm else [nn.BatchNorm2d(2 * w)]),
            nn.LeakyReLU(0.2, True),  # (B, 2w, 7, 7)
            *([MinibatchStd(cfg.mbstd_group)] if extra else []),  # (B, 2w + 1, 7, 7)
            nn.Flatten(),
            nn.Linear((2 * w + extra) * 7 * 7, 1),  # (B, 1)
        )
        self.apply(dcgan_init)
        if cfg.spectral_norm:
            for i, m in enumerate(self.net):
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    self.net[i] = nn.utils.parametrizations.spectral_norm(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pack > 1:  # (B, C, H, W) -> (B // pack, pack * C, H, W); a remainder is left out
            b, c, h, w = x.shape
            x = x[: b - b % self.pack].reshape(b // self.pack, self.pack * c, h, w)
        return self.net(x)


class MinibatchStd(nn.Module):
    """Appends the feature spread of the image's group as one constant channel (Karras et al.
    2018, ProGAN; groups of 4 as StyleGAN2): a group of near-identical fakes stands out, so G is
    pushed towards variety (mode coverage). ``group`` 0: one group, the whole batch."""

    mixes_batch = True  # each output depends on other images of the batch

    def __init__(self, group: int = 0):
        super().__init__()
        self.group = group

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b = h.shape[0]
        g = min(self.group or b, b)
        while b % g:  # the largest group size up to `group` that divides the batch
            g -= 1
        # (g, b // g, ...): image i is in group i % (b // g), as StyleGAN2's reshape
        hs = h.float().reshape(g, b // g, *h.shape[1:])
        # sqrt(var + 1e-8), as ProGAN: a feature equal over the group (likely in bfloat16) has
        # std 0, where the square root's gradient is infinite
        spread = (hs.var(0, unbiased=False) + 1e-8).sqrt().flatten(1).mean(1)  # (b // g,)
        spread = spread.repeat(g).to(h.dtype).view(b, 1, 1, 1).expand(b, 1, *h.shape[2:])
        return torch.cat([h, spread], 1)


def glorot_init(m: nn.Module) -> None:
    # Keras' defaults: glorot_uniform kernels, zero biases.
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)


def dcgan_init(m: nn.Module) -> None:
    # Radford et al. 2015: weights N(0, 0.02); batch-norm scales N(1, 0.02).
    if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


PRESETS = {
    "seed": dict(
        val_split=0.0,  # the document trained on the whole training split
        dataset="mnist-mini",
        optimizer="sgd",
        lr=0.0005,
        momentum=0.9,
        nesterov=True,
        batch_size=64,
        epochs=100,
        model=dict(arch="keras", noise_std=0.3),
    ),
    # Chosen in docs/gans.md: the minibatch-std channel raises the rarest class's share, the
    # cosine decay lets the Adam iterates settle instead of circling (sharper, more varied samples),
    # and one more 3x3 conv per G stage (g_depth 1) sharpens the digits and evens out their
    # classes (a lower Fréchet distance at the same epochs).
    "default": dict(
        dataset="mnist-mini",
        optimizer="adam",
        lr=5e-4,
        betas=(0.5, 0.999),
        batch_size=64,
        epochs=30,
        lr_schedule="cosine",
        model=dict(arch="dcgan", minibatch_std=True, g_depth=1),
    ),
}
ARCHS = {"keras": (KerasGenerator, KerasDiscriminator), "dcgan": (Generator, Discriminator)}


@register_model(
    "dcgan28",
    objective="gan",
    config=DCGAN28Config,
    presets=PRESETS,
    description="DCGAN for 28x28 images: seed 002's Keras nets or a Radford-style default",
    value_range=(-1.0, 1.0),
)
def build(cfg: DCGAN28Config, image_shape, num_classes) -> dict[str, nn.Module]:
    if len(image_shape) != 3 or tuple(image_shape[1:]) != (28, 28):
        raise DisgenError(
            f"dcgan28 takes 28x28 images, the dataset has shape {tuple(image_shape)}; use dcgan64 for other sizes"
        )
    if cfg.arch not in ARCHS:
        raise DisgenError(f"dcgan28 --arch {cfg.arch!r}: choose one of {', '.join(ARCHS)}")
    if cfg.real_label != 1.0 and cfg.gan_loss != "bce":
        raise DisgenError(
            f"dcgan28 --real-label {cfg.real_label:g} is a target of the bce loss; --gan-loss {cfg.gan_loss} has "
            "none: leave --real-label out"
        )
    g, d = ARCHS[cfg.arch]
    return add_ema({"generator": g(cfg, image_shape[0]), "discriminator": d(cfg, image_shape[0])}, cfg.ema)
