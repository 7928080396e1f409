"""The one training loop. Per-model behaviour is the objective's step function; the Trainer owns
the device, seeding, batching, the learning-rate schedule, progress, evaluation, logging,
checkpoints, resume and pictures.

A run directory holds everything: ``config.json``, ``run.json`` (data and environment),
``metrics.jsonl`` (one line per epoch), ``checkpoints/last.pt`` and ``best.pt`` and ``images/``.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from disgen import checkpoint, runs
from disgen.config import TrainConfig
from disgen.data import TensorDataset, load_dataset, to_float
from disgen.data.augment import TRANSFORMS
from disgen.data.loader import TensorLoader
from disgen.errors import DisgenError
from disgen.labels import LabelledLoader, labelled_indices, save_labels
from disgen.models import get_model
from disgen.objectives import Context, get_objective


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DisgenError(f"--device {name}: no CUDA GPU is visible to PyTorch here; use --device cpu "
                          "(or install a CUDA build of torch, see README)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DisgenError(f"--device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from None


def make_optimizer(params, cfg: TrainConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD from ``cfg``; the fused kernels (one call for all parameters instead of
    a Python loop over them) make small models' steps about 1.3x faster on CPU."""
    lr = cfg.lr if lr is None else lr
    params = list(params)
    if cfg.optimizer == "sgd":
        cls, kw = torch.optim.SGD, dict(momentum=cfg.momentum, nesterov=cfg.nesterov)
    else:
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        kw = dict(betas=tuple(cfg.betas))
    try:
        return cls(params, lr=lr, weight_decay=cfg.weight_decay, fused=True, **kw)
    except (RuntimeError, TypeError):  # a device or dtype without fused kernels
        return cls(params, lr=lr, weight_decay=cfg.weight_decay, **kw)


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at iteration ``it`` (stepped once per batch)."""
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.lr_schedule == "step":  # d2l's lr_period / lr_decay (seed 003)
        return lambda it: cfg.lr_decay ** ((it // steps_per_epoch) // cfg.lr_period)
    if cfg.lr_schedule == "cosine":
        return lambda it: 0.5 * (1 + math.cos(math.pi * min(it, total) / total))
    if cfg.lr_schedule == "onecycle":  # Smith & Topin 2017: warm up over 25%, then cosine down
        warm = max(1, int(0.25 * total))
        return lambda it: (0.04 + 0.96 * it / warm) if it < warm else \
            0.5 * (1 + math.cos(math.pi * min(it - warm, total - warm) / max(1, total - warm)))
    return lambda it: 1.0


class Trainer:
    """Train ``cfg.model`` on ``dataset`` (loaded from ``cfg.dataset`` if not given) into ``run_dir``."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, dataset: TensorDataset | None = None,
                 log: Callable[[str], None] | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.spec = get_model(cfg.model)
        self.objective = get_objective(self.spec.objective)
        self.device = resolve_device(cfg.device)
        model_cfg = self.spec.model_config(cfg.model_args)
        self.data = dataset if dataset is not None else \
            load_dataset(cfg.dataset, cfg.data_dir, self.spec.data_shape(model_cfg))
        torch.manual_seed(cfg.seed)  # model init is the first draw: same seed, same weights
        image_shape, classes = self.data.image_shape, len(self.data.classes)
        self.nets: dict[str, nn.Module] = {
            k: m.to(self.device) for k, m in self.spec.build(model_cfg, image_shape, classes).items()
        }
        if self.objective.prepare is not None:  # e.g. pretrained weights (a resumed run overwrites them)
            self.objective.prepare(self.nets, model_cfg, self.log)
        vr = self.spec.value_range
        self.train_x = to_float(self.data.train.images.to(self.device), vr)
        self.train_y = self.data.train.labels.to(self.device)
        self.test_x = to_float(self.data.test.images.to(self.device), vr)
        self.test_y = self.data.test.labels.to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.label_idx = labelled_indices(self.data.train.labels, cfg.labels, classes, cfg.seed) \
            if cfg.labels else None
        self.loader = self.make_loader(model_cfg)
        if self.objective.optimizers is not None:  # e.g. a GAN's own lr per network
            self.opts = self.objective.optimizers(self.nets, cfg, model_cfg)
        else:  # one optimizer per network over its trainable parameters (frozen ones excluded)
            self.opts = {k: make_optimizer([p for p in m.parameters() if p.requires_grad], cfg)
                         for k, m in self.nets.items() if any(p.requires_grad for p in m.parameters())}
        factor = lr_factor(cfg, len(self.loader))
        self.scheds = {k: torch.optim.lr_scheduler.LambdaLR(o, factor) for k, o in self.opts.items()
                       if cfg.lr_schedule != "none"}
        # Computed once per run, e.g. a GAN's reference classifier for Fréchet distance.
        self.eval_kw = self.objective.eval_context(self.data, self.device, log=self.log, per_epoch=True) \
            if self.objective.eval_context else {}
        self.epoch = 0
        self.best: float | None = None
        self.history: list[dict] = []

    def make_loader(self, model_cfg) -> TensorLoader | LabelledLoader:
        """The training batches. With ``--labels N`` (disgen.labels) classifiers train on the
        labelled subset alone; objectives that use every image unlabelled (aae) also get a
        labelled batch with each batch, drawn by the same generator so resume stays exact."""
        cfg = self.cfg
        if self.label_idx is not None and not self.objective.needs_labelled:
            if self.objective.predict is None:  # it does not classify
                raise DisgenError(f"--labels applies to classifiers and aae, not {cfg.model}")
            idx = self.label_idx.to(self.device)
            self.train_x, self.train_y = self.train_x[idx], self.train_y[idx]
        loader = TensorLoader(self.train_x, self.train_y, cfg.batch_size, shuffle=True,
                              generator=self.generator, transform=TRANSFORMS[cfg.augment])
        if self.label_idx is not None and self.objective.needs_labelled:
            idx = self.label_idx.to(self.device)
            loader = LabelledLoader(loader, TensorLoader(
                self.train_x[idx], self.train_y[idx], cfg.batch_size, shuffle=True,
                generator=self.generator, transform=TRANSFORMS[cfg.augment]))
        if self.objective.precompute is not None:  # e.g. a frozen backbone's features, once per run
            cached = self.objective.precompute(self.nets, cfg, model_cfg, self.train_x)
            if cached is not None:
                loader.images = cached
        return loader

    # -- checkpoints ---------------------------------------------------------------------------
    def state(self) -> dict:
        rng = {"torch": torch.get_rng_state(), "loader": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "model": self.cfg.model, "config": self.cfg.to_dict(), "epoch": self.epoch,
            "best": self.best, "data": runs.data_info(self.data),
            "nets": {k: m.state_dict() for k, m in self.nets.items()},
            "opts": {k: o.state_dict() for k, o in self.opts.items()},
            "scheds": {k: s.state_dict() for k, s in self.scheds.items()},
            "rng": rng,
        }

    def restore(self, state: dict) -> None:
        runs.check_compatible(state, self.cfg, self.nets)
        for k, m in self.nets.items():
            m.load_state_dict(state["nets"][k])
        for k, o in self.opts.items():
            o.load_state_dict(state["opts"][k])
        for k, s in self.scheds.items():
            s.load_state_dict(state["scheds"][k])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["loader"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.epoch, self.best = state["epoch"], state["best"]

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> list[dict]:
        runs.prepare(self.run_dir, self.cfg, self.data, self.device, resume)
        if self.label_idx is not None:
            save_labels(self.run_dir, self.label_idx, self.data.name, self.cfg.seed)
        last = self.run_dir / "checkpoints" / "last.pt"
        if resume and last.exists():
            self.restore(checkpoint.load(last, self.device))
            self.history = runs.read_metrics(self.run_dir, upto=self.epoch)
            runs.write_metrics(self.run_dir, self.history)
            self.log(f"resuming {self.run_dir} after epoch {self.epoch}")
        elif resume:
            self.log(f"no checkpoint in {self.run_dir} yet: starting from the beginning")
        ctx = Context(self.nets, self.train_x, self.test_x, self.test_y, list(self.data.classes),
                      self.spec.value_range, self.run_dir / "images")
        if self.epoch == 0 and self.objective.snapshot:
            self.objective.snapshot(ctx, "before")
        while self.epoch < self.cfg.epochs:
            record = self.train_epoch()
            self.end_epoch(record, ctx)
        if self.objective.snapshot:
            self.objective.snapshot(ctx, "after")
        if self.history:
            from disgen.viz import save_curves

            save_curves(self.history, self.run_dir / "images" / "curves.png",
                        f"{self.cfg.model} on {self.data.name}")
        return self.history

    def train_epoch(self) -> dict:
        for m in self.nets.values():
            m.train()
        outs: list[dict[str, torch.Tensor]] = []
        sizes: list[int] = []
        start = time.perf_counter()
        bar = progress(len(self.loader), f"epoch {self.epoch + 1}/{self.cfg.epochs}", self.cfg.progress)
        for i, batch in enumerate(self.loader):
            outs.append(self.objective.step(self.nets, self.opts, batch))
            sizes.append(len(batch[0]))
            for s in self.scheds.values():
                s.step()
            if bar is not None:
                bar.update(1)
                if i % 20 == 0:
                    bar.set_postfix({k: f"{v.item():.4g}" for k, v in outs[-1].items()})
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - start
        # Batch means weighted by batch size, reduced once per epoch: no device sync per step.
        weights = torch.tensor(sizes, dtype=torch.float32, device=self.device) / max(sum(sizes), 1)
        means = {k: (torch.stack([o[k].float() for o in outs]) * weights).sum().item()
                 for k in (outs[0] if outs else {})}
        record = {"epoch": self.epoch + 1}
        record.update({f"train_{k}": v for k, v in means.items()})
        record["lr"] = next(iter(self.opts.values())).param_groups[0]["lr"] if self.opts else 0.0
        record["seconds"] = round(seconds, 3)
        return record

    def end_epoch(self, record: dict, ctx: Context) -> None:
        for k, v in record.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise DisgenError(f"training diverged at epoch {record['epoch']}: {k} = {v}; the last "
                                  f"good checkpoint is kept: resume with a lower --lr (now {self.cfg.lr})")
        start = time.perf_counter()
        test = self.objective.evaluate(self.nets, self.test_x, self.test_y, **self.eval_kw)
        record.update({f"test_{k}": v for k, v in test.items()})
        record["eval_seconds"] = round(time.perf_counter() - start, 3)
        self.epoch += 1
        key, mode = self.objective.best
        value = test.get(key)
        improved = value is not None and (self.best is None or
                                          (value > self.best if mode == "max" else value < self.best))
        if improved:
            self.best = value
        # Metrics first, last.pt last: a kill in between re-runs the epoch on resume (metric lines
        # past the checkpoint's epoch are dropped), so no epoch goes missing from metrics.jsonl.
        self.history.append(record)
        runs.append_metrics(self.run_dir, record)
        state = self.state()
        try:
            if improved:
                checkpoint.save(self.run_dir / "checkpoints" / "best.pt", state)
            checkpoint.save(self.run_dir / "checkpoints" / "last.pt", state)
        except DisgenError:  # e.g. disk full: metrics.jsonl goes back to what last.pt holds
            self.history.pop()
            runs.write_metrics(self.run_dir, self.history)
            raise
        if self.objective.snapshot:
            self.objective.snapshot(ctx, f"epoch_{self.epoch:03d}")
        shown = {k: v for k, v in record.items() if k != "epoch"}
        self.log(f"epoch {self.epoch}/{self.cfg.epochs} " + " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
        for message in (self.objective.warnings(self.history) if self.objective.warnings else []):
            self.log(f"warning: {message}")


def progress(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr, or None when disabled or stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
