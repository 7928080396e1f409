"""The one training loop. Per-model behaviour is the objective's step function; the Trainer owns
the device, precision and memory layout (disgen.training.precision), processes (disgen.training.distributed),
seeding, batching, the learning-rate schedule, progress, evaluation, logging, checkpoints, resume
and pictures. Under torchrun every process trains its part of each batch; only the main process
evaluates, draws and writes the run directory.

Measurement discipline: every choice made during training (``best.pt``, the live warnings) reads
the validation split (disgen.data.splits) and only it; the test split is evaluated once, after the
last epoch, with the model the run chose (``best.pt`` where there is a validation split, else the
last weights), unless ``--test-every-epoch`` asks for a test curve.

A run directory holds everything: ``config.json``, ``run.json`` (data and environment),
``split.json`` (which images the validation split holds), ``metrics.jsonl`` (one line per epoch,
then the final test record), ``eval.json``, ``checkpoints/last.pt`` and ``best.pt`` and ``images/``.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from disgen import runs
from disgen.config import TrainConfig
from disgen.data import ImageSplit, TensorDataset, splits, to_float
from disgen.data.augment import TRANSFORMS
from disgen.data.labels import LabelledLoader, labelled_indices, save_labels
from disgen.data.loader import StreamedImages, TensorLoader, keep_on_device
from disgen.errors import DisgenError, plural
from disgen.evaluation import reference
from disgen.models import get_model, resolve
from disgen.objectives import Context, Opts, bound_step, get_objective, validation_metrics
from disgen.objectives.optim import held_for, held_warning, lr_factor, make_optimizer, planned_steps
from disgen.runs import checkpoint
from disgen.training import budget, distributed, precision
from disgen.training.divergence import DivergenceGuard, due
from disgen.training.progress import progress
from disgen.training.resume import resume_run, state_of


def train_reference(data: TensorDataset, log: Callable[[str], None] | None = None) -> None:
    """Train the reference classifier that measures GANs on ``data`` (disgen.evaluation.reference)
    if it is missing: REFERENCE_RECIPE into a temporary folder, then moved into place, so that a
    concurrent or interrupted run never sees half a reference."""
    target = reference.missing(data)
    if target is None:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    epochs = reference.reference_epochs(len(data.train))
    (log or (lambda m: None))(
        f"training the reference classifier for Fréchet distance and class coverage ({reference.REFERENCE_MODEL} "
        f"on {data.name}, {epochs} epochs, once per dataset; cached in {target})"
    )
    try:
        cfg = resolve(
            reference.REFERENCE_MODEL,
            {
                **reference.REFERENCE_RECIPE,
                "dataset": data.name,
                "epochs": epochs,
                "progress": False,
                "device": "cpu",
                "run_dir": str(tmp / "run"),
            },
        )
        # Its own seeding must not move the caller's random streams: a run that trains the
        # reference and one that finds it cached (a resumed run) draw the same numbers afterwards.
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):
            Trainer(cfg, tmp / "run", data).fit()
        os.replace(tmp / "run", target)
    except OSError:
        if not (target / "checkpoints" / "last.pt").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_optimizers(
    objective, nets: dict[str, nn.Module], cfg: TrainConfig, model_cfg
) -> dict[str, torch.optim.Optimizer]:
    """A run's optimizers by network: the objective's own where it has them (a GAN's lr per
    network), else one per network over its trainable parameters (frozen ones excluded)."""
    if objective.optimizers is not None:
        return objective.optimizers(nets, cfg, model_cfg)
    return {
        k: make_optimizer([p for p in m.parameters() if p.requires_grad], cfg)
        for k, m in nets.items()
        if any(p.requires_grad for p in m.parameters())
    }


class Trainer:
    """Train ``cfg.model`` on ``dataset`` (loaded from ``cfg.dataset`` if not given) into ``run_dir``."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        dataset: TensorDataset,
        log: Callable[[str], None] | None = None,
    ):
        self.cfg = cfg
        if cfg.deterministic:  # cuBLAS reads it when CUDA starts: deterministic matmuls need it
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        self.main = distributed.is_main()
        self.log = (log or (lambda msg: print(msg, file=sys.stderr))) if self.main else (lambda msg: None)
        self.spec = get_model(cfg.model)
        self.objective = get_objective(self.spec.objective)
        self.device = distributed.setup(precision.resolve_device(cfg.device))
        self.run_dir = Path(distributed.gather(str(run_dir))[0])  # the main process's (a timestamp)
        cfg.run_dir = str(self.run_dir)
        self.data = splits.with_validation(dataset, cfg.val_split)
        self.build()
        self.deadline: budget.Deadline | None = None  # --time-budget: set by budget.fit before fit()
        self.scheds: dict = {}  # the learning-rate schedules, made when training starts (fit)
        self.held_until = 0  # steps before every optimizer learns (the objective's held_steps): set in fit()
        self.eval_kw: dict = {}  # per split, what evaluation takes (a GAN's own draws): made in fit()
        self.epoch = 0
        self.best: float | None = None  # best.pt's value of the objective's metric
        self.best_rank: tuple[float, float] | None = None  # and its Objective.rank (with the tie-break)
        self.final: dict | None = None  # the test record written after the last epoch
        self.history: list[dict] = []
        self.guard = DivergenceGuard(self.nets)
        self.unit = "point" if len(self.data.image_shape) == 1 else "image"  # what the messages count
        self.selects = self.val_x is not None and len(self.val_x) >= self.fewest_to_select()

    def fewest_to_select(self) -> int:
        """The validation samples the objective's metric needs to choose best.pt; fewer are said."""
        fewest = self.objective.min_select(self.val_x) if self.objective.min_select and self.val_x is not None else 0
        if self.val_x is not None and len(self.val_x) < fewest:
            metric = self.objective.pick({})[0].replace("_", " ")
            self.log(
                f"validation split of {plural(len(self.val_x), self.unit)}: too few to choose a checkpoint by {metric} "
                f"(it takes {fewest}, docs/gans.md); best.pt is not written, and the last weights "
                "(last.pt) are tested, sampled and exported"
            )
        return fewest

    def build(self) -> None:
        """The networks, their optimizers, the precision and the training batches, from the seed
        on: what the config's model options shape (called again when --time-budget takes a
        narrower network, so that run draws what a run given that network would)."""
        cfg = self.cfg
        model_cfg = self.model_cfg = self.spec.model_config(cfg.model_args)  # the step's loss options
        torch.manual_seed(cfg.seed)  # model init is the first draw: same seed, same weights
        image_shape, classes = self.data.image_shape, len(self.data.classes)
        self.nets: dict[str, nn.Module] = {
            k: m.to(self.device) for k, m in self.spec.build(model_cfg, image_shape, classes).items()
        }
        if self.objective.prepare is not None:  # e.g. pretrained weights (a resumed run overwrites them)
            self.objective.prepare(self.nets, model_cfg, self.log)
        self.nets = distributed.replicate(self.nets, self.device)
        if distributed.enabled():  # each process its own noise and dropout from here on
            torch.manual_seed(distributed.process_seed(cfg.seed))
        self.speed = precision.resolve(cfg.precision, cfg.channels_last, cfg.compile, self.device, self.nets)
        self.step_nets = precision.prepare_nets(self.nets, self.speed)  # what the step calls
        vr = self.spec.value_range
        self.resident = keep_on_device(cfg.data_on_device, self.data, self.device)
        self.train_x = (
            to_float(self.data.train.images.to(self.device), vr)
            if self.resident
            else StreamedImages(self.data.train.images, self.device, vr)
        )
        self.train_y = self.data.train.labels.to(self.device)
        self.val_x, self.val_y = self.on_device(self.data.val)
        self.test_x, self.test_y = self.on_device(self.data.test)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.label_idx = labelled_indices(self.data.train.labels, cfg.labels, classes, cfg.seed) if cfg.labels else None
        self.loader = self.make_loader(model_cfg)
        self.opts = Opts(build_optimizers(self.objective, self.nets, cfg, model_cfg))
        self.opts.scaler = self.speed.scaler()

    def on_device(self, split: ImageSplit | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """A split's images as floats in the model's range and its labels, on the device."""
        if split is None or len(split) == 0:
            return None, None
        if not self.resident:
            return StreamedImages(split.images, self.device, self.spec.value_range), split.labels.to(self.device)
        return to_float(split.images.to(self.device), self.spec.value_range), split.labels.to(self.device)

    def make_loader(self, model_cfg) -> TensorLoader | LabelledLoader:
        """The training batches. With ``--labels N`` (disgen.data.labels) classifiers train on the
        labelled subset alone; objectives that use every image unlabelled (aae) also get a
        labelled batch with each batch, drawn by the same generator so resume stays exact."""
        cfg = self.cfg
        if self.label_idx is not None and not self.objective.needs_labelled:
            if self.objective.predict is None:  # it does not classify
                raise DisgenError(f"--labels applies to classifiers and aae, not {cfg.model}")
            idx = self.label_idx.to(self.device)
            self.train_x, self.train_y = self.train_x[idx], self.train_y[idx]
        # Streamed data: each process gathers only its own part of a batch (resident data is
        # split after the gather, by distributed.shard).
        part = (
            (distributed.world().rank, distributed.world().size)
            if distributed.enabled() and not self.resident
            else None
        )
        loader = TensorLoader(
            self.train_x,
            self.train_y,
            cfg.batch_size,
            shuffle=True,
            generator=self.generator,
            transform=TRANSFORMS[cfg.augment],
            part=part,
        )
        if self.label_idx is not None and self.objective.needs_labelled:
            idx = self.label_idx.to(self.device)
            loader = LabelledLoader(
                loader,
                TensorLoader(
                    self.train_x[idx],
                    self.train_y[idx],
                    cfg.batch_size,
                    shuffle=True,
                    generator=self.generator,
                    transform=TRANSFORMS[cfg.augment],
                    part=part,
                ),
            )
        if self.objective.precompute is not None:  # e.g. a frozen backbone's features, once per run
            cached = self.objective.precompute(self.nets, cfg, model_cfg, self.train_x)
            if cached is not None:
                loader.images = cached
        return loader

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> list[dict]:
        """Train: epochs of steps, each followed by the validation split, then the test split once
        (see the module docstring); from the last checkpoint with ``resume``. A GAN's reference
        classifier must exist by now (:func:`train_reference`)."""
        from disgen.training.tensorboard import TensorBoardLog

        factor = lr_factor(self.cfg, len(self.loader))  # over the steps a budget planned, where it did
        held = {k: self.objective.held_steps(self.model_cfg, k) if self.objective.held_steps else 0 for k in self.opts}
        self.held_until = max(held.values(), default=0)
        if message := held_warning(held, planned_steps(self.cfg, len(self.loader))):
            self.log(f"warning: {message}")
        self.scheds = {
            k: torch.optim.lr_scheduler.LambdaLR(o, held_for(factor, held[k]))
            for k, o in self.opts.items()
            if self.cfg.lr_schedule != "none" or self.held_until
        }
        self.eval_kw = {  # per split: a GAN's own draws for each, read by its reference classifier
            split: self.objective.eval_context(self.data, self.device, per_epoch=True, split=split)
            if self.objective.eval_context and self.main
            else {}
            for split in ("val", "test")
        }
        tensorboard = TensorBoardLog(self.run_dir) if self.cfg.tensorboard and self.main else None  # fails early
        split = self.data.extra["split"]
        if self.main and resume and runs.has_checkpoint(self.run_dir):  # the same validation images, or no resume
            splits.check(self.run_dir, split, "resume")
        if resume:  # the checkpoint restored and checked before config.json is written
            resume_run(self)
        if self.main:
            runs.prepare(
                self.run_dir,
                self.cfg,
                self.data,
                self.device,
                resume,
                {
                    **self.speed.as_dict(),
                    "processes": distributed.world().size,
                },
            )
            splits.save(self.run_dir, split)
            self.log(splits.describe(split, self.unit))
            if self.label_idx is not None:
                save_labels(self.run_dir, self.label_idx, self.data.name, self.cfg.seed)
        distributed.barrier()  # the run directory exists before any process reads it
        shown = (
            (self.val_x, self.val_y, "validation") if self.val_x is not None else (self.test_x, self.test_y, "test")
        )  # what the pictures show: validation images where there are
        ctx = Context(
            self.nets,
            self.train_x,
            *shown[:2],
            list(self.data.classes),
            self.spec.value_range,
            self.run_dir / "images",
            shown[2],
            self.model_cfg,
        )
        with precision.deterministic(self.cfg.deterministic):
            if self.epoch == 0:
                self.draw(ctx, "before")
                self.guard.start()
            while self.epoch < self.cfg.epochs and not budget.spent_before(self):
                record = self.train_epoch()
                self.end_epoch(record, ctx)
                if tensorboard:
                    tensorboard.log_epoch(record, self.nets)
            self.draw(ctx, "after")
            if tensorboard:
                tensorboard.close(self.epoch)
        budget.finish(self)  # a budget run's steps taken, into config.json and run.json
        self.final_test()
        distributed.check_in_step(self.nets)
        if self.history:
            from disgen.viz import save_curves

            self.draw(
                ctx,
                "curves",
                lambda: save_curves(
                    self.history, self.run_dir / "images" / "curves.png", f"{self.cfg.model} on {self.data.name}"
                ),
            )
        return self.history

    def final_test(self) -> dict | None:
        """The test split, evaluated once after the last epoch with the model the run chose:
        ``best.pt`` (the best validation epoch) when the run has a validation split, else the last
        weights. Appended to metrics.jsonl as the final record and kept in eval.json; a resumed run
        that already has it for this epoch is not evaluated again."""
        if not self.main or self.test_x is None or self.epoch == 0:
            return None
        done = runs.read_final(self.run_dir)
        if done is not None and done.get("epoch") == self.epoch:
            return done
        nets, which, chosen = self.nets, "last", self.epoch
        best = self.run_dir / "checkpoints" / "best.pt"
        if self.val_x is not None and best.is_file():
            state = checkpoint.load(best, self.device)
            nets = {k: copy.deepcopy(m) for k, m in self.nets.items()}
            for k, m in nets.items():
                m.load_state_dict(state["nets"][k])
            which, chosen = "best", state["epoch"]
        start = time.perf_counter()
        kw = (
            self.objective.eval_context(self.data, self.device, per_epoch="final", split="test")
            if self.objective.eval_context
            else {}
        )
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            test = self.objective.evaluate(nets, self.test_x, self.test_y, **kw)
        record = {
            "epoch": self.epoch,
            "final": True,
            "checkpoint": which,
            "checkpoint_epoch": chosen,
            **{f"test_{k}": v for k, v in test.items()},
            "eval_seconds": round(time.perf_counter() - start, 3),
        }
        runs.append_metrics(self.run_dir, record)
        runs.record_eval(
            self.run_dir,
            {"dataset": self.cfg.dataset, "split": "test", "checkpoint": which, "checkpoint_epoch": chosen, **test},
        )
        self.final = record
        self.log(
            f"test split ({plural(len(self.test_x), self.unit)}, evaluated once) with {which}.pt of epoch {chosen}: "
            + " ".join(f"{k}={v:.4g}" for k, v in test.items())
        )
        return record

    def draw(self, ctx: Context, tag: str, draw: Callable[[], None] | None = None) -> None:
        """The objective's pictures at ``tag`` (or ``draw()``). A failed write (a full disk) stops
        the run with one clear error; the checkpoints written before it stay intact."""
        if not self.main or (draw is None and self.objective.snapshot is None):
            return
        try:
            draw() if draw is not None else self.objective.snapshot(ctx, tag)
        except OSError as err:
            raise DisgenError(
                f"could not write images in {ctx.out_dir}: {err.strerror or err}; "
                f"{self.checkpoint_note()}: free some disk space and continue with "
                "--resume"
            ) from None

    def checkpoint_note(self) -> str:
        last = self.run_dir / "checkpoints" / "last.pt"
        if self.epoch == 0 or not last.exists():
            return "no checkpoint was written yet"
        return f"the last good checkpoint is {last} (epoch {self.epoch})"

    def train_epoch(self) -> dict:
        for m in self.nets.values():
            m.train()
        outs: list[dict[str, torch.Tensor]] = []
        sizes: list[int] = []
        start = budget.clock()  # the clock a budget counts: the same seconds
        checked, steps = 0, len(self.loader)
        done = self.epoch * steps  # steps of the epochs before this one
        bar = progress(
            budget.steps_in_epoch(self, done), f"epoch {self.epoch + 1}/{self.cfg.epochs}", self.cfg.progress
        )
        dl = self.deadline
        if dl is not None:
            dl.start()
        ran = 0  # steps this epoch took
        for i, batch in enumerate(self.loader):
            if self.cfg.max_steps is not None and done + i >= self.cfg.max_steps:
                break  # --max-steps, a budget run's rerun: the last epoch ends early
            if dl is not None and dl.over(done + i):
                break  # --time-budget: the seconds are spent, or the plan ends here
            taken = self.take_step(batch)
            ran = i + 1
            if dl is not None:
                dl.stepped(done + i + 1, self.device)
                if bar is not None:
                    bar.total = budget.steps_in_epoch(self, done)
            if taken is None:
                continue
            outs.append(taken[0])
            sizes.append(taken[1])
            if due(self.epoch, i, steps):
                found = self.guard.check(outs, checked, self.epoch)
                if found:
                    raise self.diverged(*found)
                checked = len(outs)
            for s in self.scheds.values():
                s.step()
            if bar is not None:
                bar.update(1)
                if i % 20 == 0:
                    bar.set_postfix({k: f"{v.item():.4g}" for k, v in outs[-1].items()})
        if bar is not None:
            bar.close()
        if dl is not None and dl.over(done + ran):  # the budget's last epoch: its steps fixed now
            dl.end(done + ran, self.epoch + 1)
        seconds = budget.clock() - start
        # Batch means weighted by batch size, reduced once per epoch: no device sync per step.
        weights = torch.tensor(sizes, dtype=torch.float32, device=self.device) / max(sum(sizes), 1)
        means = {
            k: distributed.mean((torch.stack([o[k].float() for o in outs]) * weights).sum()).item()
            for k in (outs[0] if outs else {})
        }
        record = {"epoch": self.epoch + 1}
        record.update({f"train_{k}": v for k, v in means.items()})
        record["lr"] = next(iter(self.opts.values())).param_groups[0]["lr"] if self.opts else 0.0
        record["seconds"] = round(seconds, 3)
        return record

    def take_step(self, batch) -> tuple[dict[str, torch.Tensor], int] | None:
        """One optimisation step on ``batch`` (this process's part of it under torchrun): the
        step's outputs and the images it took; None where this process's part is empty."""
        if distributed.enabled():  # this process's part of the global batch; gradients averaged by share
            batch, share = (batch, self.loader.share) if self.loader.part else distributed.shard(batch)
            if len(batch[0]) == 0:  # a last batch smaller than the number of processes
                return None
            self.opts.sync = functools.partial(distributed.average_gradients, share=share)
        with self.speed.autocast():
            out = bound_step(self.objective.step, self.model_cfg)(self.step_nets, self.opts, batch)
        if self.opts.scaler is not None:
            self.opts.scaler.update()
        return out, len(batch[0])

    def diverged(self, what: str, i: int, early: bool) -> DisgenError:
        cfg = self.cfg
        preset_lr = self.spec.presets.get(cfg.preset, {}).get("lr")
        lower = preset_lr if early and preset_lr and preset_lr < cfg.lr else cfg.lr / 10
        why = f"the learning rate {cfg.lr:g} is likely too high" if early else "training diverged"
        return DisgenError(
            f"{why}: {what} at epoch {self.epoch + 1} step {i + 1}; {self.checkpoint_note()}: "
            f"continue with a lower learning rate, e.g. `disgen train {cfg.model} --run-dir "
            f"{self.run_dir} --resume --lr {lower:g}`"
        )

    def end_epoch(self, record: dict, ctx: Context) -> None:
        self.epoch += 1
        if not self.main:  # the main process evaluates and writes; the state call is collective
            self.history.append(record)
            state_of(self)
            return
        start = time.perf_counter()
        if self.val_x is not None:  # what every choice reads
            val = self.objective.evaluate(self.nets, self.val_x, self.val_y, **self.eval_kw["val"])
            record.update({f"val_{k}": v for k, v in val.items()})
        if self.cfg.test_every_epoch and self.test_x is not None:  # a curve to look at, never to choose by
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                test = self.objective.evaluate(self.nets, self.test_x, self.test_y, **self.eval_kw["test"])
            record.update({f"test_{k}": v for k, v in test.items()})
        record["eval_seconds"] = round(time.perf_counter() - start, 3)
        val = validation_metrics(record)
        rank = self.objective.rank(val) if self.selects else None
        improved = rank is not None and (self.best_rank is None or rank > self.best_rank)
        if improved:
            self.best, self.best_rank = val[self.objective.pick(val)[0]], rank
        # Metrics first, last.pt last: a kill in between re-runs the epoch on resume (metric lines
        # past the checkpoint's epoch are dropped), so no epoch goes missing from metrics.jsonl.
        self.history.append(record)
        runs.append_metrics(self.run_dir, record)
        state = state_of(self)
        try:
            if improved:
                checkpoint.save(self.run_dir / "checkpoints" / "best.pt", state)
            checkpoint.save(self.run_dir / "checkpoints" / "last.pt", state)
        except DisgenError:  # e.g. disk full: metrics.jsonl goes back to what last.pt holds
            self.history.pop()
            runs.write_metrics(self.run_dir, self.history)
            raise
        self.draw(ctx, f"epoch_{self.epoch:03d}")
        shown = {k: v for k, v in record.items() if k != "epoch"}
        self.log(
            f"epoch {self.epoch}/{self.cfg.epochs} "
            + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
        )
        # Epochs begun while a phase was held (a discriminator not yet learning sits at chance) say
        # nothing of the game the warnings watch.
        begun = [h for h in self.history if (h["epoch"] - 1) * len(self.loader) >= self.held_until]
        for message in self.objective.warnings(begun) if self.objective.warnings else []:
            self.log(f"warning: {message}")
