"""Catching a diverging run early: a non-finite loss at any step, and, in a run's first steps, a
loss or a network's weight norm grown far past its first value (the sign of a learning rate far too
high; bounded losses such as a sigmoid's MSE never explode themselves, so the weights are watched
too). The Trainer turns a finding into an error naming the step and what to do.

Losses stay on the device between checks: one sync every CHECK_EVERY steps, and every step of the
run's first EARLY_STEPS.
"""

from __future__ import annotations

import math

import torch
from torch import nn

CHECK_EVERY = 20
EARLY_STEPS = 50
EXPLODE = 1e3


def due(epoch: int, i: int, steps: int) -> bool:
    """Whether step ``i`` (0-based) of epoch ``epoch`` (0-based) of ``steps`` is checked."""
    return (epoch == 0 and i < EARLY_STEPS) or (i + 1) % CHECK_EVERY == 0 or i + 1 == steps


def weight_norms(nets: dict[str, nn.Module]) -> dict[str, float]:
    """Each network's L2 norm over all its parameters."""
    norms = {
        k: torch.stack([p.detach().float().norm() for p in m.parameters()]).norm()
        for k, m in nets.items()
        if next(m.parameters(), None) is not None
    }
    return dict(zip(norms, torch.stack(list(norms.values())).tolist())) if norms else {}


class DivergenceGuard:
    def __init__(self, nets: dict[str, nn.Module]):
        self.nets = nets
        self.first_losses: dict[str, float] = {}  # each loss at the run's first step
        self.first_norms: dict[str, float] = {}  # each network's weight norm before it

    def start(self) -> None:
        """Call before a run's first step."""
        self.first_norms = weight_norms(self.nets)

    def check(self, outs: list[dict[str, torch.Tensor]], start: int, epoch: int) -> tuple[str, int, bool] | None:
        """The first sign of divergence in the steps ``outs[start:]`` of epoch ``epoch`` (0-based), as
        (what happened, step index, whether in the run's first steps), or None."""
        keys = list(outs[0])
        values = torch.stack([torch.stack([o[k].detach().float() for k in keys]) for o in outs[start:]])
        for i, row in enumerate(values.tolist(), start):
            early = epoch == 0 and i < EARLY_STEPS
            for key, value in zip(keys, row):
                if not math.isfinite(value):
                    return f"loss {key!r} became {value}", i, early
                if early and (key.endswith("loss") or key == "mse"):
                    first = self.first_losses.setdefault(key, value)
                    if abs(value) > EXPLODE * max(abs(first), 1.0):
                        return f"loss {key!r} grew from {first:.4g} to {value:.4g}", i, True
        if epoch == 0 and start < EARLY_STEPS:
            for name, norm in weight_norms(self.nets).items():
                first = self.first_norms.get(name, norm)
                if not norm <= EXPLODE * max(first, 1.0):  # also nan
                    what = f"the weights of {name!r} grew from norm {first:.3g} to {norm:.3g}"
                    return what, len(outs) - 1, True
        return None
