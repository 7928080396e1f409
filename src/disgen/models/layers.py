"""What the model families share: MXNet's uniform init, activations by name, whether a network
mixes the samples of a batch, inference mode for a run's networks, networks' weight
averages and the GAN loss option (whose table is disgen.objectives.gan's).

May import: config, errors.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Callable, Iterator

import torch
from torch import nn

from disgen.config import opt
from disgen.errors import DisgenError


def init_uniform(scale: float) -> Callable[[nn.Module], None]:
    """MXNet's ``initializer/uniform scale``: weights U(-scale, scale), biases 0.

    (MXNet initialises every parameter named ``*_bias`` to zero whatever the initializer.)
    """

    def apply(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.uniform_(m.weight, -scale, scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    return apply


ACTIVATIONS = ("sigmoid", "relu", "tanh", "gelu", "leaky_relu")  # the choices of every act option


def activation(name: str) -> nn.Module:
    """A fresh activation module by name: one of ACTIVATIONS (leaky_relu's slope is 0.2)."""
    table = dict(zip(ACTIVATIONS, (nn.Sigmoid, nn.ReLU, nn.Tanh, nn.GELU, lambda: nn.LeakyReLU(0.2))))
    if name not in table:
        raise DisgenError(f"unknown activation {name!r}: use one of {', '.join(table)}")
    return table[name]()


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def per_sample(net: nn.Module) -> bool:
    """Whether each output of ``net`` depends on its own input alone in training mode: no batch
    norm and no layer marked ``mixes_batch`` (e.g. dcgan28's minibatch-std channel)."""
    return not any(isinstance(m, BATCH_NORMS) or getattr(m, "mixes_batch", False) for m in net.modules())


@contextlib.contextmanager
def inference(nets: dict[str, nn.Module]) -> Iterator[None]:
    """Eval mode and no autograd for ``nets``, restoring each module's mode afterwards."""
    modes = {k: m.training for k, m in nets.items()}
    for m in nets.values():
        m.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        for k, m in nets.items():
            m.train(modes[k])


GAN_LOSSES = ("bce", "hinge", "wasserstein-gp")  # the keys of disgen.objectives.gan.GAN_LOSSES


def gan_loss_option():
    """A GAN config's ``gan_loss`` field: which losses the gan objective's step takes."""
    return opt(
        "bce",
        "D's and G's losses: bce (the seeds'), hinge, or wasserstein-gp (a critic with a gradient penalty)",
        choices=GAN_LOSSES,
    )


def add_ema(nets: dict[str, nn.Module], decay: float, roles: tuple[str, ...] = ("generator",)) -> dict[str, nn.Module]:
    """``nets`` plus ``ROLE_ema`` for each of ``roles``: a frozen copy of that network averaged after
    every step by :func:`update_ema` (decay > 0, the model config's ``ema``, which the objective's
    step passes it). GANs average G; the aae its encoder and decoder."""
    if decay > 0:
        for role in roles:
            ema = copy.deepcopy(nets[role]).requires_grad_(False)
            ema.register_buffer("ema_updates", torch.zeros((), dtype=torch.int64))
            nets[f"{role}_ema"] = ema
    return nets


@torch.no_grad()
def update_ema(nets: dict[str, nn.Module], decay: float) -> None:
    """Every weight average :func:`add_ema` made, ``ROLE_ema``, after a step of ``ROLE``: ema <-
    decay * ema + (1 - decay) * net for weights; buffers (batch-norm statistics) copied. The decay
    warms up as min(decay, (1 + n) / (10 + n)) after n updates (TensorFlow's
    ExponentialMovingAverage), so the average does not drag the random initial weights along. A
    count below 0 (only a crafted checkpoint holds one) counts as 0: a decay above 1 or a division
    by zero would wreck the average."""
    for role, ema in nets.items():
        if not role.endswith("_ema"):
            continue
        net = nets[role.removesuffix("_ema")]
        n = max(int(ema.ema_updates.item()), 0)
        d = min(decay, (1 + n) / (10 + n))
        for pe, p in zip(ema.parameters(), net.parameters()):
            pe.lerp_(p, 1.0 - d)
        ours = dict(ema.named_buffers())
        for name, b in net.named_buffers():
            ours[name].copy_(b)
        ema.ema_updates += 1
