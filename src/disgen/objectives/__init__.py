"""Training objectives: what one optimisation step, one evaluation and the run's pictures are.

The Trainer is the same for every model; the model's ``objective`` picks an :class:`Objective`
here. A step function ``step(nets, opts, batch) -> dict[str, Tensor]`` does its own updates,
each through :func:`minimize`, so multi-network games (GAN, AAE) need no trainer of their own.
One module per objective (classify, reconstruct, gan, aae, transfer) and ``optim`` (the optimizers
and learning-rate schedules the steps use).

May import: evaluation, viz, runs, models, data, config, files, errors. Never training or above.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from disgen.errors import DisgenError
from disgen.models import Nets


class Opts(dict):
    """The run's optimizers by name. The Trainer sets ``scaler`` (fp16's gradient scaler) and
    ``sync`` (averages gradients across processes, disgen.training.distributed); a plain dict works too."""

    scaler: torch.amp.GradScaler | None = None
    sync: Callable[[torch.optim.Optimizer], None] | None = None


def minimize(opts: dict[str, torch.optim.Optimizer], name: str, loss: torch.Tensor) -> None:
    """One update of optimizer ``name`` on ``loss``: zero_grad, backward, step. With fp16 the loss
    is scaled and the step skipped on overflow; across processes the gradients are averaged
    between backward and step (as StyleGAN2-ADA does for its multi-phase games)."""
    opt = opts[name]
    scaler, sync = getattr(opts, "scaler", None), getattr(opts, "sync", None)
    opt.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if sync is not None:
        sync(opt)
    if scaler is not None:
        scaler.step(opt)
    else:
        opt.step()
    # Autocast keeps low-precision copies of weights for its whole region; after an update they
    # are stale, and the next phase of a GAN or AAE step must see the new weights.
    torch.clear_autocast_cache()


StepFn = Callable[[Nets, Opts, tuple[torch.Tensor, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass
class Context:
    """What an objective's picture hooks may look at: held-out images ``eval_x``/``eval_y`` of the
    split named ``eval_split`` (the validation split where the run has one); ``out_dir`` is the
    run's images folder."""

    nets: Nets
    train_x: torch.Tensor
    eval_x: torch.Tensor
    eval_y: torch.Tensor
    classes: list[str]
    value_range: tuple[float, float]
    out_dir: Path
    eval_split: str = "validation"


@dataclass
class Objective:
    """``evaluate(nets, x, y) -> {metric: float}`` is pure; ``best`` names the metric that picks
    ``best.pt`` (on the validation split) and whether higher or lower is better, or several such
    pairs, of which the first that the evaluation reports is used (:meth:`pick`).
    ``snapshot(ctx, tag)`` draws pictures at
    ``tag`` "before" training, after each epoch ("epoch_NNN") and "after"."""

    name: str
    step: StepFn
    evaluate: Callable[..., dict[str, float]]
    best: tuple[str, str] | tuple[tuple[str, str], ...]
    snapshot: Callable[[Context, str], None] | None = None
    predict: Callable[[Nets, torch.Tensor], torch.Tensor] | None = None
    reconstruct: Callable[[Nets, torch.Tensor], torch.Tensor] | None = None
    # optimizers(nets, train_cfg, model_cfg) -> {name: optimizer}; None: one per network from
    # the TrainConfig (see disgen.objectives.optim.make_optimizer).
    optimizers: Callable[..., Opts] | None = None
    # eval_context(data, device, **options) -> extra keyword arguments of ``evaluate`` computed once
    # per run (a GAN's reference classifier); sample(nets, z) -> outputs in the model's range;
    # warnings(history) -> messages logged live after each epoch (collapse, divergence).
    eval_context: Callable[..., dict] | None = None
    sample: Callable[[Nets, torch.Tensor], torch.Tensor] | None = None
    warnings: Callable[[list[dict]], list[str]] | None = None
    # With --labels N the step gets (x, y, x_lab, y_lab): x from every training image (used
    # unlabelled), (x_lab, y_lab) from the labelled subset (the semi-supervised aae).
    needs_labelled: bool = False
    # prepare(nets, model_cfg, log): once, after the Trainer builds the networks for a run (not
    # when a finished run is loaded), e.g. loading pretrained weights.
    prepare: Callable[..., None] | None = None
    # precompute(nets, train_cfg, model_cfg, train_x) -> what the training batches hold instead of
    # the images (e.g. cached features that ``step`` feeds to the head), or None to keep images.
    precompute: Callable[..., torch.Tensor | None] | None = None
    # min_select(val_x) -> the fewest validation samples on which ``best`` may choose best.pt (a
    # Fréchet distance of 27 images' features is noise); below it the run keeps last.pt alone.
    min_select: Callable[[torch.Tensor], int] | None = None

    def pick(self, metrics: dict) -> tuple[str, str]:
        """(metric, "min" | "max") that picks best.pt, for an evaluation that reported ``metrics``
        (keys without their split prefix)."""
        pairs = self.best if isinstance(self.best[0], tuple) else (self.best,)
        return next((p for p in pairs if p[0] in metrics), pairs[-1])


_REGISTRY: dict[str, Objective] = {}
_MODULES = ("classify", "reconstruct", "gan", "aae", "transfer")


def register_objective(objective: Objective) -> Objective:
    _REGISTRY[objective.name] = objective
    return objective


def get_objective(name: str) -> Objective:
    for module in _MODULES:
        importlib.import_module(f"disgen.objectives.{module}")
    if name not in _REGISTRY:
        raise DisgenError(f"unknown objective {name!r}")
    return _REGISTRY[name]
