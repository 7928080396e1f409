"""The GAN objective's losses and penalties, chosen by option from two tables (as StudioGAN picks
``adv_loss``): :data:`LOSSES` by the model config's ``gan_loss`` (:data:`GAN_LOSSES` maps the
option's names), :data:`PENALTIES` on D with their weights; :func:`settings` reads every loss
option from the model config the step receives.

May import: data, models and the layers below them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from disgen.data.augment import cutout, translate


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


# -- the loss table: D's and G's losses of D's outputs (logits, or a critic's scores) ----------------
@dataclass(frozen=True)
class GanLoss:
    """``d(real, fake, real_label)``: D's loss on its outputs for real and generated images;
    ``g(fake)``: G's loss on D's outputs for its images; ``classifies``: D's output is a decision
    at 0 (real > 0), so its accuracy ``d_acc`` means something (not a Wasserstein critic's)."""

    d: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]
    classifies: bool = True


def bce_d(real: torch.Tensor, fake: torch.Tensor, real_label: float) -> torch.Tensor:
    # The mean over real and fake, as both seeds; real_label < 1 is one-sided label smoothing.
    return (bce(real, real_label) + bce(fake, 0.0)) / 2


def hinge_d(real: torch.Tensor, fake: torch.Tensor, real_label: float) -> torch.Tensor:
    # Lim and Ye 2017; Miyato et al. 2018: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def wasserstein_d(real: torch.Tensor, fake: torch.Tensor, real_label: float) -> torch.Tensor:
    # Arjovsky et al. 2017: the critic maximises E[D(x)] - E[D(G(z))]
    return fake.mean() - real.mean()


def mean_score_g(fake: torch.Tensor) -> torch.Tensor:
    # hinge and Wasserstein G: -E[D(G(z))]
    return -fake.mean()


LOSSES = {
    # Non-saturating G: -log D(G(z)) (both seeds: "change the label of the fake data from 0 to 1").
    "bce": GanLoss(bce_d, lambda fake: bce(fake, 1.0)),
    "hinge": GanLoss(hinge_d, mean_score_g),
    "wasserstein": GanLoss(wasserstein_d, mean_score_g, classifies=False),
}


# -- the penalty table: terms added to D's loss, each a function of D near the data -----------------
def r1_penalty(d, x: torch.Tensor, fake: torch.Tensor, real_out: torch.Tensor, augment) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E||grad_x D(x)||^2 at real images (``x`` requires grad and
    ``real_out`` is D's output for it)."""
    (grad,) = torch.autograd.grad(real_out.float().sum(), x, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def gradient_penalty(d, x: torch.Tensor, fake: torch.Tensor, real_out: torch.Tensor, augment) -> torch.Tensor:
    """GP (Gulrajani et al. 2017): E(||grad D(x^)||_2 - 1)^2 at x^ = e x + (1 - e) G(z), one
    e ~ U(0, 1) per image: the critic kept 1-Lipschitz along lines between real and fake."""
    e = torch.rand(len(x), *[1] * (x.dim() - 1), device=x.device, dtype=x.dtype)
    mixed = (e * x.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(d(augment(mixed)).float().sum(), mixed, create_graph=True)
    return (grad.float().flatten(1).norm(dim=1) - 1).pow(2).mean()


PENALTIES = {"r1": r1_penalty, "gp": gradient_penalty}
# --gan-loss: the name a model option gives -> (loss, penalty it brings or None)
GAN_LOSSES = {"bce": ("bce", None), "hinge": ("hinge", None), "wasserstein-gp": ("wasserstein", "gp")}


@dataclass(frozen=True)
class Settings:
    """A GAN step's loss options, read from the model config (an option a model lacks keeps the
    default here): the loss, the penalties with their weights, D's real target, DiffAugment and
    the decay of G's weight average."""

    loss: str = "bce"
    penalties: tuple[tuple[str, float], ...] = ()
    real_label: float = 1.0
    diffaugment: bool = False
    ema: float = 0.0


def settings(cfg) -> Settings:
    """``cfg``'s loss options: --gan-loss (and wasserstein-gp's --gp-weight), --r1 (its weight is
    gamma / 2), --real-label, --diffaugment and --ema."""
    loss, penalty = GAN_LOSSES[getattr(cfg, "gan_loss", "bce")]
    penalties = []
    if getattr(cfg, "r1", 0.0):
        penalties.append(("r1", cfg.r1 / 2))
    if penalty is not None:
        penalties.append((penalty, cfg.gp_weight))
    return Settings(
        loss,
        tuple(penalties),
        getattr(cfg, "real_label", 1.0),
        getattr(cfg, "diffaugment", False),
        getattr(cfg, "ema", 0.0),
    )


def diff_augment(x: torch.Tensor) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020): random shifts, then cutout, of real and fake images alike."""
    return cutout(translate(x))
