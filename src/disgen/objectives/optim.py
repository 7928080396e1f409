"""Optimizers and learning-rate schedules from a :class:`~disgen.config.TrainConfig`: torch's public
``torch.optim`` classes, which every objective's networks step (the Trainer builds them here too)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from disgen.config import TrainConfig


def make_optimizer(params, cfg: TrainConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD from ``cfg``, torch's own classes; Adam's fused kernels (one call for all
    parameters instead of a Python loop over them) make small models' steps about 1.3x faster on CPU."""
    lr = cfg.lr if lr is None else lr
    params = list(params)
    if cfg.optimizer == "sgd":
        # foreach, not fused: torch's fused SGD takes every momentum buffer or none, and a resumed
        # state may rightly lack some (parameters without gradients yet); foreach handles either.
        cls, kw = torch.optim.SGD, dict(momentum=cfg.momentum, nesterov=cfg.nesterov, foreach=True, fused=False)
    else:
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        kw = dict(betas=tuple(cfg.betas))
    try:
        return cls(params, lr=lr, weight_decay=cfg.weight_decay, **{"fused": True, **kw})
    except (RuntimeError, TypeError):  # a device or dtype without fused kernels
        return cls(params, lr=lr, weight_decay=cfg.weight_decay, **kw)


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at iteration ``it`` (stepped once per batch)."""
    total = max(1, cfg.max_steps or cfg.epochs * steps_per_epoch)  # --time-budget: the steps that fit
    if cfg.lr_schedule == "step":  # d2l's lr_period / lr_decay (seed 003)
        return lambda it: cfg.lr_decay ** ((it // steps_per_epoch) // cfg.lr_period)
    if cfg.lr_schedule == "cosine":
        return lambda it: 0.5 * (1 + math.cos(math.pi * min(it, total) / total))
    if cfg.lr_schedule == "onecycle":  # Smith & Topin 2017: warm up over 25%, then cosine down
        warm = max(1, int(0.25 * total))
        return lambda it: (
            (0.04 + 0.96 * it / warm)
            if it < warm
            else 0.5 * (1 + math.cos(math.pi * min(it - warm, total - warm) / max(1, total - warm)))
        )
    return lambda it: 1.0


def base_lr(group: dict) -> float:
    """A parameter group's learning rate before any schedule (LambdaLR keeps it as initial_lr)."""
    return group.get("initial_lr", group["lr"])
