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


def plan_progress(it: int, plan: list[list[int]]) -> float:
    """How far (0..1) a ``--time-budget`` run's schedule is at step ``it``, from its plan's knots
    ``[step, planned steps]`` (disgen.training.budget): from each knot on, the progress left is
    spread evenly over the steps then planned, so a new plan changes the pace, never the position."""
    done = 0.0
    for k, (start, total) in enumerate(plan):
        end = plan[k + 1][0] if k + 1 < len(plan) else None
        upto = it if end is None or it < end else end
        done += (upto - start) * (1 - done) / max(1, total - start)
        if end is None or it < end:
            return min(1.0, max(0.0, done))
    return min(1.0, done)


def planned_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """The steps a run is set to take: --max-steps where given, else every epoch's."""
    return max(1, cfg.max_steps or cfg.epochs * steps_per_epoch)


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at iteration ``it`` (stepped once per batch). A
    ``--time-budget`` run's cosine and one-cycle schedules follow its plan (:func:`plan_progress`),
    which it may extend or shorten as it goes."""
    total = planned_steps(cfg, steps_per_epoch)
    if cfg.lr_schedule == "step":  # d2l's lr_period / lr_decay (seed 003)
        return lambda it: cfg.lr_decay ** ((it // steps_per_epoch) // cfg.lr_period)
    if cfg.budget_plan and cfg.lr_schedule in ("cosine", "onecycle"):
        return lambda it: schedule_at(cfg.lr_schedule, plan_progress(it, cfg.budget_plan))
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


def held_for(factor: Callable[[int], float], steps: int) -> Callable[[int], float]:
    """``factor`` with the learning rate held at 0 for the first ``steps`` iterations (an
    objective's ``held_steps``: a phase that waits while another learns first)."""
    if steps <= 0:
        return factor
    return lambda it: 0.0 if it < steps else factor(it)


def held_warning(held: dict[str, int], total: int) -> str | None:
    """What to tell the user when phases held by an objective's ``held_steps`` (e.g. the aae's
    ``--classifier-warmup``) would wait through more than half of a run of ``total`` steps (a short
    run of a preset made for a long one): None otherwise."""
    longest = max(held.values(), default=0)
    if 2 * longest <= total:
        return None
    names = ", ".join(k for k, v in held.items() if v == longest)
    return (
        f"{names} wait {longest} steps before they learn (the model's warm-up, e.g. the aae's "
        f"--classifier-warmup) and this run has {total}: train for more steps (--epochs) or pass a "
        f"shorter warm-up, e.g. --classifier-warmup {total // 10}"
    )


def schedule_at(name: str, p: float) -> float:
    """The cosine or one-cycle factor at progress ``p`` (0..1) of the schedule: one-cycle warms
    up over its first quarter, then both go down along a cosine."""
    if name == "onecycle":
        if p < 0.25:
            return 0.04 + 0.96 * p / 0.25
        p = (p - 0.25) / 0.75
    return 0.5 * (1 + math.cos(math.pi * p))


def base_lr(group: dict) -> float:
    """A parameter group's learning rate before any schedule (LambdaLR keeps it as initial_lr)."""
    return group.get("initial_lr", group["lr"])
