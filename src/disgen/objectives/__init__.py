"""Training objectives: what one optimisation step, one evaluation and the run's pictures are.

The Trainer is the same for every model; the model's ``objective`` picks an :class:`Objective`
here. A step function ``step(nets, opts, batch) -> dict[str, Tensor]`` does its own updates,
each through :func:`minimize`, so multi-network games (GAN, AAE) need no trainer of their own. A
step that declares a ``cfg`` parameter gets the run's model config there (:func:`bound_step`):
its loss options are read from it, never from attributes of the networks.
One module per objective, found by :func:`get_objective` without a list (a new family adds its
module and nothing here), ``optim`` (the optimizers and learning-rate schedules the steps use) and
``exports`` (what an objective tells ``disgen export``).

An objective declares, with defaults, everything the tools need to know of its kind of model:
which network defines the latent code (``latent_net``), what a run offers (``offers``), what
``export`` writes and checks (``export``), the report's pictures (``pictures``, ``report_pictures``)
and how generated points are drawn (``draw_points``). The tools ask it; none branches on its name.

May import: evaluation, viz, runs, models, data, config, files, errors. Never training or above.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from disgen.errors import DisgenError
from disgen.models import Nets
from disgen.objectives.exports import ExportSpec


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


@functools.lru_cache(maxsize=64)
def takes_config(step: Callable) -> bool:
    """Whether ``step`` declares a ``cfg`` parameter (the model config its losses read)."""
    return "cfg" in inspect.signature(step).parameters


def bound_step(step: Callable, model_cfg) -> StepFn:
    """``step`` as ``(nets, opts, batch) -> outputs``, given the run's ``model_cfg`` where it takes one."""
    return functools.partial(step, cfg=model_cfg) if takes_config(step) else step


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
    model_cfg: Any = None  # the run's model config (its loss options say what D's output means)


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
    # held_steps(model_cfg, optimizer name) -> N: that optimizer's learning rate is 0 for the first
    # N steps of the run (a phase that waits for another to learn first; the trainer warns when N
    # is more than half the run's steps); None: none held.
    held_steps: Callable[[Any, str], int] | None = None
    # tie_break: (metric, "min" | "max") deciding between epochs whose ``best`` metric is equal
    # (an accuracy on a few hundred validation images ties often); None: the first such epoch.
    tie_break: tuple[str, str] | None = None
    # latent_net(nets) -> the network whose ``latent_dim`` and ``noise_std`` define the z that
    # ``sample`` takes (`disgen sample`, --interpolate, the explorer); None where nothing samples.
    latent_net: Callable[[Nets], torch.nn.Module] | None = None
    # offers(model_cfg) -> which of "predict", "reconstruct" and "labels" (a chosen class to draw)
    # a run with this model config answers; None: predict and reconstruct where the hooks exist.
    offers: Callable[[Any], dict[str, bool]] | None = None
    # What `disgen export` writes and checks, and the model card's pipeline and tags.
    export: ExportSpec | None = None
    # The report's pictures: (file name, title) in the order shown ("{split}" is the held-out
    # split's name); report_pictures(run, data, ctx, log) draws more from a checkpoint into
    # ctx.out_dir (a classifier's confusion matrix, an image GAN's class coverage).
    pictures: tuple[tuple[str, str], ...] = ()
    report_pictures: Callable[..., None] | None = None
    # draw_points(nets, real, fake, path, model_cfg): a picture of generated 2-D points
    # (`disgen sample --out FILE.png`).
    draw_points: Callable[..., None] | None = None

    def features(self, model_cfg) -> dict[str, bool]:
        """What a run with ``model_cfg`` offers: predict, reconstruct, sample and labels."""
        out = {"predict": self.predict is not None, "reconstruct": self.reconstruct is not None, "labels": False}
        if self.offers is not None:
            out.update(self.offers(model_cfg))
        out["sample"] = self.sample is not None
        return out

    def rank(self, metrics: dict) -> tuple[float, float] | None:
        """best.pt's order of an evaluation's ``metrics`` (keys without their split prefix): the
        picked metric, then the tie-break's, both signed so that larger is better; None where the
        picked metric is missing or not finite (such an epoch is never best)."""
        key, mode = self.pick(metrics)
        if not finite(metrics.get(key)):
            return None
        tie = 0.0 if self.tie_break is None else -math.inf  # an epoch without it loses a tie
        if self.tie_break is not None and finite(metrics.get(self.tie_break[0])):
            tie = metrics[self.tie_break[0]] * (1.0 if self.tie_break[1] == "max" else -1.0)
        return (metrics[key] * (1.0 if mode == "max" else -1.0), tie)

    def best_record(self, history: list[dict]) -> int | None:
        """Index of the epoch record (metrics.jsonl's, keys ``val_*``) whose checkpoint best.pt
        holds: the first of the highest :meth:`rank`, as the trainer chooses; None without one."""
        best, where = None, None
        for i, record in enumerate(history):
            rank = self.rank(validation_metrics(record))
            if rank is not None and (best is None or rank > best):
                best, where = rank, i
        return where

    def pick(self, metrics: dict) -> tuple[str, str]:
        """(metric, "min" | "max") that picks best.pt, for an evaluation that reported ``metrics``
        (keys without their split prefix)."""
        pairs = self.best if isinstance(self.best[0], tuple) else (self.best,)
        return next((p for p in pairs if p[0] in metrics), pairs[-1])


def validation_metrics(record: dict) -> dict:
    """An epoch record's validation metrics (metrics.jsonl's ``val_*``) without the prefix, as
    :meth:`Objective.rank` and :meth:`Objective.pick` read them."""
    return {k[4:]: v for k, v in record.items() if k.startswith("val_")}


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_REGISTRY: dict[str, Objective] = {}


def register_objective(objective: Objective) -> Objective:
    _REGISTRY[objective.name] = objective
    return objective


def get_objective(name: str) -> Objective:
    for module in pkgutil.iter_modules(__path__):  # every module of this package: no list to keep
        importlib.import_module(f"{__name__}.{module.name}")
    if name not in _REGISTRY:
        raise DisgenError(f"unknown objective {name!r}")
    return _REGISTRY[name]
