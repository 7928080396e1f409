"""``aae``: adversarial autoencoders (Makhzani et al. 2015, "Adversarial Autoencoders"), after seed
004 (Nagabushan 2017, "A Wizard's Guide to Adversarial Autoencoders, part 4: classify MNIST using
1000 labels"), in three modes:

- ``unsupervised``: encoder q(z|x), decoder p(x|z), and ``d_gauss`` telling prior samples from z.
- ``supervised``: the decoder also gets the one-hot label, so z learns style only (part 3).
- ``semi-supervised``: the encoder also outputs y (logits over classes); ``d_cat`` tells one-hot
  samples of a categorical prior from softmax(y); the decoder sees [softmax(y), z] (part 4).

The step with its three phases lives in ``disgen.objectives.aae``; the priors are here, next to
the networks whose outputs they shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from disgen.config import opt
from disgen.errors import DisgenError
from disgen.models import add_ema, register_model

MODES = ("unsupervised", "supervised", "semi-supervised")
PRIORS = ("gaussian", "mixture")


@dataclass
class AAEConfig:
    mode: str = opt("semi-supervised", "which labels the model uses: none, all, or --labels N of them", choices=MODES)
    hidden: tuple[int, ...] = opt((1000, 1000), "encoder units per layer; the decoder mirrors them")
    z_dim: int = opt(10, "style/latent code size (2 for the scatter plots of the paper's figures)")
    d_hidden: tuple[int, ...] = opt((1000, 1000), "units per layer of d_gauss and d_cat")
    prior: str = opt(
        "gaussian", "the prior z is pushed to; mixture: 10 Gaussians on a circle, needs --z-dim 2", choices=PRIORS
    )
    prior_std: float = opt(5.0, "std of the Gaussian prior; seed 004 draws z ~ N(0, 5²)")
    d_lr: float = opt(0.0, "lr of both discriminators; 0: --lr")
    g_lr: float = opt(0.0, "lr of the encoder as generator (regularisation phase); 0: --lr")
    dropout: float = opt(0.0, "probability, before the encoder's heads (regularises few labels)")
    input_noise: float = opt(0.0, "std of Gaussian noise on the encoder's input in training (denoising)")
    # d_gauss also seeing the label: z must match the prior within every class, not only over all of
    # them, so no digit keeps its own corner of z and any prior draw is a style that fits every digit
    # (more of the style grid's cells are read as their digit: docs/aae.md).
    label_conditioned: bool = opt(
        True, "supervised mode: d_gauss also sees the one-hot label (no: the paper's supervised AAE)"
    )
    y_conditioned: bool = opt(
        False, "semi-supervised mode: d_gauss also sees the predicted class, so z carries no class"
    )
    # The decoder fed softmax(y) learns to read the digit from z, which the encoder fills first,
    # while y is still a guess; a one-hot y is a clean class signal that it does use (with
    # --y-conditioned and a unit prior `disgen sample --label K` draws class K: docs/aae.md).
    one_hot_y: bool = opt(
        False,
        "semi-supervised mode: the decoder gets the one-hot predicted class (gradient straight through "
        "to the probabilities), not the probabilities (the paper's)",
    )
    # The UDA form of Xie et al. 2019: the class probabilities on a perturbed copy of each unlabelled
    # image are pulled toward those on the image itself (KL, the clean side held fixed).
    consistency: float = opt(
        0.0, "semi-supervised mode: weight of a consistency term on the unlabelled batch; 0: the paper's AAE"
    )
    # With few labels the reconstruction and the adversaries, shaping y from the first step, can
    # settle on a split of two similar digits that the labelled images allow but the digits do not
    # follow (full MNIST, 100 labels: one seed of three read half its 4s as 9 and half its 9s as 4).
    # y trained on the labels (and the consistency term) first keeps their split.
    classifier_warmup: int = opt(
        0,
        "semi-supervised mode: for the first N steps only the classification phase learns (the other "
        "phases' learning rates are 0), so y takes the labels' split of the digits before the "
        "reconstruction and the adversaries shape it; 0: from the first step, as the paper",
    )
    # The adversary on z also shapes the encoder's body, which y reads. Stopped at the z head, the
    # body learns from the reconstruction, the labels and d_cat only: no seed mixes up 4 and 9 with 100
    # MNIST labels, but samples less often their digit and worse with 1000 labels and on
    # mnist-mini (docs/aae.md, "What each choice moves"), so not the preset's.
    z_adversary_body: bool = opt(
        True,
        "d_gauss's loss trains the encoder's body as well as its z head (no: the z head only, so that "
        "the features y reads are not shaped by the adversary on z)",
    )
    # UDA's sharpening and confidence mask (Xie et al. 2019, section 3.2) and the mean teacher's
    # targets (Tarvainen & Valpola 2017): the targets say more than the encoder's own guess.
    consistency_sharpen: float = opt(
        1.0, "temperature of the consistency term's targets: below 1 sharpens them (UDA: 0.4); 1: as they are"
    )
    consistency_confidence: float = opt(
        0.0,
        "the consistency term counts only the unlabelled images whose most probable class has at least "
        "this probability (UDA: 0.8); 0: every image",
    )
    consistency_teacher: str = opt(
        "self",
        "what gives the consistency term's targets: self (the encoder, held fixed) or average (the "
        "weight average of --ema: the mean teacher)",
        choices=("self", "average"),
    )
    # Polyak averaging (as a GAN's --ema, and the mean teacher's weights, Tarvainen & Valpola 2017):
    # the adversarial phases keep moving the encoder, and the average of its recent weights
    # classifies more steadily than the last of them.
    ema: float = opt(
        0.0,
        "decay of a weight average of the encoder and decoder that evaluation, the best checkpoint, "
        "predict, sample and export use (e.g. 0.999); 0: the trained weights, as the paper",
    )
    consistency_augment: str = opt(
        "affine",
        "the consistency term's perturbation: affine (rotation, scale, "
        "shift), flip (not for digits) or none (dropout alone)",
        choices=("affine", "flip", "none"),
    )


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear + ReLU layers through ``sizes`` (the last one has no activation)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """x -> (y logits (B, classes) or None, z (B, z_dim)); y only in semi-supervised mode."""

    def __init__(self, cfg: AAEConfig, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        width = math.prod(image_shape)
        # (B, h); dropout before the heads only, as mlp-classifier's, so that the baseline
        # `mlp-classifier --act relu --init default --hidden H --dropout P` is this same network.
        self.body = nn.Sequential(nn.Flatten(), mlp([width, *cfg.hidden]), nn.ReLU())
        if cfg.dropout:
            self.body.append(nn.Dropout(cfg.dropout))
        # z is linear (any real value, like the prior); y are logits, softmax is applied by the user.
        self.z_head = nn.Linear(cfg.hidden[-1], cfg.z_dim)  # (B, z_dim)
        self.y_head = nn.Linear(cfg.hidden[-1], num_classes) if cfg.mode == "semi-supervised" else None
        self.input_noise = cfg.input_noise

    def forward(self, x: torch.Tensor, z_through_body: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``z_through_body=False``: z's gradient stops at the z head (the body's output is taken
        as fixed for z), y's does not."""
        if self.input_noise and self.training:
            x = x + torch.randn_like(x) * self.input_noise
        h = self.body(x)
        return (self.y_head(h) if self.y_head is not None else None), self.z_head(h if z_through_body else h.detach())


class Decoder(nn.Module):
    """[one-hot or softmax y (B, classes), z (B, z_dim)] -> image (B, C, H, W) in [0, 1]."""

    def __init__(self, cfg: AAEConfig, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.y_dim = num_classes if cfg.mode != "unsupervised" else 0
        # `disgen sample` draws z ~ N(0, noise_std²) of latent_dim; the aae objective's sample()
        # shapes that noise into the prior.
        self.latent_dim, self.noise_std = cfg.z_dim, 1.0
        sizes = [self.y_dim + cfg.z_dim, *reversed(cfg.hidden), math.prod(image_shape)]
        self.net = nn.Sequential(mlp(sizes), nn.Sigmoid())  # (B, C*H*W)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.y_dim:
            z = torch.cat([y, z], 1)
        return self.net(z).view(-1, *self.image_shape)


class LatentDiscriminator(nn.Module):
    """A code (B, dim) -> logit (B,) that it came from the prior (real) rather than the encoder;
    with ``label_dim``, the code's one-hot label (B, label_dim) is a second input."""

    def __init__(self, dim: int, hidden: tuple[int, ...], label_dim: int = 0):
        super().__init__()
        self.label_dim = label_dim
        self.net = mlp([dim + label_dim, *hidden, 1])

    def forward(self, code: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_dim:
            if label is None:
                raise ValueError("this discriminator is label-conditioned: pass the one-hot label")
            code = torch.cat([code, label], 1)
        return self.net(code).squeeze(1)


def mixture_means(k: int = 10, radius: float = 4.0) -> torch.Tensor:
    """(k, 2) centres on a circle: the paper's mixture of 10 2-D Gaussians (its figure 4)."""
    angle = torch.arange(k, dtype=torch.float32) * (2 * math.pi / k)
    return torch.stack([torch.cos(angle), torch.sin(angle)], 1) * radius


def sample_prior(cfg: AAEConfig, n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """z (n, z_dim) from the prior."""
    return shape_noise(
        cfg,
        torch.randn(n, cfg.z_dim, generator=generator, device=device),
        torch.randint(0, 10, (n,), generator=generator, device=device),
    )


def shape_noise(cfg: AAEConfig, eps: torch.Tensor, component: torch.Tensor) -> torch.Tensor:
    """N(0, 1) noise ``eps`` (n, z_dim) made into prior samples: times ``prior_std``, or around
    the mixture's ``component`` (n,) centres, elongated along the radius (std 1 radially, 0.25
    across) as in the paper's figure."""
    if cfg.prior == "gaussian":
        return eps * cfg.prior_std
    means = mixture_means().to(eps.device)[component]  # (n, 2)
    u = means / means.norm(dim=1, keepdim=True)  # radial unit vectors
    v = torch.stack([-u[:, 1], u[:, 0]], 1)  # tangential
    return means + u * eps[:, :1] + v * eps[:, 1:2] * 0.25


def sample_categorical(n: int, k: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, k) one-hot rows of a uniform categorical: the "real" samples of d_cat."""
    idx = torch.randint(0, k, (n,), generator=generator, device=device)
    return nn.functional.one_hot(idx, k).float()


def conditioned(cfg: AAEConfig) -> bool:
    """Whether d_gauss sees a one-hot class beside z: the true label in supervised mode, the
    encoder's predicted one in semi-supervised mode."""
    return (cfg.mode == "supervised" and cfg.label_conditioned) or (cfg.mode == "semi-supervised" and cfg.y_conditioned)


def check(cfg: AAEConfig) -> None:
    if cfg.mode not in MODES:
        raise DisgenError(f"--mode {cfg.mode!r}: choose one of {', '.join(MODES)}")
    if cfg.prior not in PRIORS:
        raise DisgenError(f"--prior {cfg.prior!r}: choose one of {', '.join(PRIORS)}")
    if cfg.prior == "mixture" and cfg.z_dim != 2:
        raise DisgenError(f"--prior mixture is a mixture of 2-D Gaussians: use --z-dim 2 (got {cfg.z_dim})")
    if cfg.consistency_augment not in ("flip", "affine", "none"):
        raise DisgenError(
            f"--consistency-augment {cfg.consistency_augment!r}: choose affine (any "
            "images), flip (clothes, objects; not digits) or none"
        )
    if cfg.consistency < 0:
        raise DisgenError(f"--consistency {cfg.consistency:g}: a weight, 0 (off) or more")
    if not cfg.consistency_sharpen > 0:
        raise DisgenError(
            f"--consistency-sharpen {cfg.consistency_sharpen:g}: a temperature above 0 (1: no sharpening)"
        )
    if not 0 <= cfg.consistency_confidence < 1:
        raise DisgenError(
            f"--consistency-confidence {cfg.consistency_confidence:g}: a probability in [0, 1) (0: every image counts)"
        )
    if cfg.consistency_teacher not in ("self", "average"):
        raise DisgenError(f"--consistency-teacher {cfg.consistency_teacher!r}: choose self or average")
    if cfg.consistency_teacher == "average" and not cfg.ema:
        raise DisgenError(
            "--consistency-teacher average takes its targets from the weight average: give --ema too (e.g. 0.999)"
        )
    if cfg.classifier_warmup < 0:
        raise DisgenError(f"--classifier-warmup {cfg.classifier_warmup}: a number of steps, 0 (off) or more")
    if not 0 <= cfg.ema < 1:
        raise DisgenError(f"--ema {cfg.ema:g}: a decay in [0, 1), e.g. 0.999 (0: no weight average)")
    if cfg.z_dim < 1 or not cfg.hidden or not cfg.d_hidden:
        raise DisgenError("--z-dim must be at least 1 and --hidden / --d-hidden name at least one layer")


PRESETS = {
    # Seed 004: 784-1000-1000-[10 classes, z 10], decoder mirrored, discriminators 1000-1000-1,
    # z ~ N(0, 5²), Adam lr 0.001 beta1 0.9, batch 100, 1000 epochs (its 95% on full MNIST).
    "seed": dict(  # the document trained on the whole training split: no validation split
        val_split=0.0,
        model=dict(mode="semi-supervised", hidden=(1000, 1000), z_dim=10, d_hidden=(1000, 1000), prior_std=5.0),
        optimizer="adam",
        lr=1e-3,
        betas=(0.9, 0.999),
        batch_size=100,
        epochs=1000,
    ),
    # Same body; beta1 0.5 steadies the adversarial phases (Radford et al. 2015), dropout against
    # few labels, the consistency term on the unlabelled images (the paper's phases alone tie the
    # supervised baseline on Fashion-MNIST with 1000 labels; with it the AAE beats it, docs/aae.md)
    # and a cosine decay that settles the last epochs. The content goes in y, the style in z (so
    # `disgen sample --label K` draws class K, docs/aae.md "Content in y"): the decoder gets the
    # one-hot predicted class, d_gauss sees that class beside z (z must match the prior within
    # every class) at the full lr, and z is 5-D with a unit prior, at the scale of y's entries.
    # y learns from the labels alone for the first 200 steps (with 100 MNIST labels one seed of
    # three mixed up 4 and 9 without it; docs/aae.md, "What each choice moves").
    "default": dict(
        model=dict(
            mode="semi-supervised",
            hidden=(1000, 1000),
            z_dim=5,
            d_hidden=(1000, 1000),
            prior_std=1.0,
            dropout=0.2,
            consistency=1.0,
            y_conditioned=True,
            one_hot_y=True,
            classifier_warmup=200,
        ),
        optimizer="adam",
        lr=1e-3,
        betas=(0.5, 0.999),
        batch_size=100,
        epochs=50,
        lr_schedule="cosine",
    ),
}


@register_model(
    "aae",
    objective="aae",
    config=AAEConfig,
    presets=PRESETS,
    description="seed 004: adversarial autoencoder, --mode unsupervised | supervised | semi-supervised",
)
def build(cfg: AAEConfig, image_shape, num_classes) -> dict[str, nn.Module]:
    check(cfg)
    nets = {
        "encoder": Encoder(cfg, image_shape, num_classes),
        "decoder": Decoder(cfg, image_shape, num_classes),
        "d_gauss": LatentDiscriminator(cfg.z_dim, cfg.d_hidden, num_classes if conditioned(cfg) else 0),
    }
    if cfg.mode == "semi-supervised":
        nets["d_cat"] = LatentDiscriminator(num_classes, cfg.d_hidden)
    add_ema(nets, cfg.ema, ("encoder", "decoder"))
    for m in nets.values():
        # What reads a trained aae (its decoder input, sampling, pictures) needs the mode and
        # prior; the step's loss options come from the run's config (objectives.bound_step).
        m.cfg = cfg
    return nets
