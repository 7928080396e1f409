"""The Python API: ``disgen.train(...) -> Run`` and ``disgen.load(run_dir) -> Run``.

run = disgen.train("cnn-classifier", dataset="mnist-mini", epochs=3)
run = disgen.load("runs/cnn-classifier-mnist-mini-20260101-120000")
probs = run.predict(images)          # (N, classes) probabilities
recon = run.reconstruct(images)      # autoencoders
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from disgen import runs
from disgen.config import TrainConfig
from disgen.data import TensorDataset, load_dataset, splits, to_float
from disgen.data.loader import StreamedImages, batches, keep_on_device
from disgen.errors import DisgenError
from disgen.models import ModelSpec, get_model, list_models, resolve
from disgen.objectives import Objective, get_objective
from disgen.training import distributed

SPLITS = {"test": "test", "val": "validation", "train": "training"}


@dataclass(repr=False)
class Run:
    """A trained model and its run directory ``run_dir``, with the weights of ``checkpoint``:
    ``disgen.train`` and ``disgen.load`` both give best.pt (chosen on the validation split) where
    the run has one, else last.pt, as every command does by default (``--checkpoint auto``)."""

    run_dir: Path
    config: TrainConfig
    spec: ModelSpec
    objective: Objective
    nets: dict[str, nn.Module]
    image_shape: tuple[int, int, int]
    classes: list[str]
    history: list[dict] = field(default_factory=list)
    checkpoint: str = "last"  # which checkpoint the weights are from ("best" or "last")
    epoch: int | None = None  # the epoch that checkpoint was written at
    final: dict | None = None  # the test record written after the last epoch (runs.read_final)

    def __post_init__(self) -> None:
        if self.final is None:
            self.final = runs.read_final(self.run_dir)

    @property
    def dir(self) -> Path:
        """The run directory (an older name of :attr:`run_dir`)."""
        return self.run_dir

    def __repr__(self) -> str:
        return (
            f"Run({str(self.run_dir)!r}, model={self.spec.name!r}, dataset={self.config.dataset!r}, "
            f"checkpoint={self.checkpoint!r}, epoch={self.epoch})"
        )

    @property
    def device(self) -> torch.device:
        return next(next(iter(self.nets.values())).parameters()).device

    def as_batch(self, x: Any, floats: bool = True) -> torch.Tensor:
        """Images as a float batch (N, C, H, W) in the model's value range (``floats=False``: the
        images shaped so, still as given).

        Accepts tensors or arrays shaped (H, W), (N, H, W), (N, C, H, W) or flat (N, C*H*W);
        uint8 values are read as 0..255, floats as 0..1.
        """
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        c, h, w = self.image_shape
        if t.dim() == 2 and tuple(t.shape) == (h, w):
            t = t[None]
        if t.dim() == 2 and t.shape[1] == c * h * w:
            t = t.view(-1, c, h, w)
        if t.dim() == 3 and c == 1:
            t = t[:, None]
        if t.dim() != 4 or tuple(t.shape[1:]) != (c, h, w):
            raise DisgenError(
                f"images of shape {tuple(t.shape)} do not fit this model, which takes "
                f"{(c, h, w)} (or (N, {h}, {w}) / (N, {c * h * w}))"
            )
        if len(t) == 0:
            raise DisgenError("no images: pass at least one")
        if not floats:
            return t
        if t.dtype == torch.uint8:
            return to_float(t.to(self.device), self.spec.value_range)
        lo, hi = self.spec.value_range
        return t.to(self.device, torch.float32) * (hi - lo) + lo

    def require(self, what: str) -> None:
        """An error unless this run can ``what`` ("predict" or "reconstruct"): checked before any
        input is read."""
        if what == "predict" and self.objective.predict is None:
            raise DisgenError(f"{self.spec.name} does not classify; `predict` works on classifier runs")
        if what == "reconstruct" and self.objective.reconstruct is None:
            raise DisgenError(f"{self.spec.name} is not an autoencoder; `reconstruct` needs one")

    def predict(self, x: Any) -> torch.Tensor:
        """Class probabilities (N, classes) for images ``x``."""
        self.require("predict")
        return self.in_chunks(self.objective.predict, x)

    def reconstruct(self, x: Any, label: int | None = None) -> torch.Tensor:
        """Reconstructions (N, C, H, W), in [0, 1], of images ``x``; ``label``: the class a
        supervised aae decodes them as (its decoder takes each image's style and a label)."""
        self.require("reconstruct")
        fn = self.objective.reconstruct
        if label is not None:
            if "label" not in inspect.signature(fn).parameters:
                raise DisgenError(f"--label {label}: a {self.spec.name} run reconstructs without one; leave it out")
            if not 0 <= label < len(self.classes):
                raise DisgenError(f"--label {label}: this run has classes 0..{len(self.classes) - 1}")
            fn = functools.partial(fn, label=label)
        out = self.in_chunks(fn, x)
        lo, hi = self.spec.value_range
        return (out - lo) / (hi - lo)

    def in_chunks(self, fn, x: Any, size: int = 1024) -> torch.Tensor:
        """``fn(nets, batch)`` over ``x``, each chunk made a float batch only when its turn comes
        (the float copy of a large input would cost 4 bytes a pixel at once)."""
        t = self.as_batch(x, floats=False)
        out = torch.cat([fn(self.nets, self.as_batch(t[s])) for s in batches(len(t), size)])
        bad = ~torch.isfinite(out).reshape(len(out), -1).all(1)
        if bool(bad.any()):  # finite weights too large (3e38) overflow: never rows of nan in a CSV
            raise DisgenError(
                f"the model of {self.run_dir} ({self.checkpoint}.pt) gives NaN or infinite outputs for "
                f"{int(bad.sum()):,} of {len(out):,} inputs: its weights are damaged (or far too large); "
                "use another checkpoint of the run, or train it again"
            )
        return out

    def sample(
        self, n: int = 64, seed: int = 0, z: torch.Tensor | None = None, label: int | None = None
    ) -> torch.Tensor:
        """``n`` generated samples (images in [0, 1], or points) from latent draws of ``seed``;
        ``label``: the class to draw (supervised and semi-supervised aae runs)."""
        if self.objective.sample is None:
            raise DisgenError(f"{self.spec.name} is not a generator; `sample` works on runs of {generator_models()}")
        if label is not None and "labels" not in inspect.signature(self.objective.sample).parameters:
            raise DisgenError(
                f"--label {label}: a {self.spec.name} run draws no chosen class; --label applies to "
                "supervised and semi-supervised aae runs"
            )
        from disgen.objectives.gan import latent

        if z is None:
            z = latent(self.latent_net(), n, torch.Generator().manual_seed(seed), "cpu")
        extra = {} if label is None else {"labels": torch.full((len(z),), label, device=self.device)}
        out = self.objective.sample(self.nets, z.to(self.device), **extra)
        if out.dim() == 2:  # points are in their own units
            return out
        lo, hi = self.spec.value_range
        return ((out - lo) / (hi - lo)).clamp(0, 1)

    def latent_net(self) -> nn.Module:
        """The network whose ``latent_dim`` and ``noise_std`` define the z that :meth:`sample` takes."""
        if self.objective.latent_net is None:
            raise DisgenError(f"{self.spec.name} is not a generator; `sample` works on runs of {generator_models()}")
        return self.objective.latent_net(self.nets)

    def columns(self, dataset: str | None) -> dict:
        """The run's --image-column/--label-column, for its own dataset (another finds its own columns)."""
        if dataset is not None and dataset != self.config.dataset:
            return {}
        return {"image_column": self.config.image_column, "label_column": self.config.label_column}

    def dataset(self, dataset: str | TensorDataset | None = None, data_dir: str | None = None) -> TensorDataset:
        """``dataset`` (default: the run's own) split the way the run split its data: with the run's
        ``--val-split``, so the run's own dataset gives back exactly its validation images."""
        data = (
            dataset
            if isinstance(dataset, TensorDataset)
            else load_dataset(
                dataset or self.config.dataset,
                data_dir or self.config.data_dir,
                self.image_shape,
                **self.columns(dataset),
            )
        )
        if tuple(data.image_shape) != tuple(self.image_shape):
            raise DisgenError(f"dataset {data.name} has images {data.image_shape}, the model takes {self.image_shape}")
        return splits.with_validation(data, self.config.val_split)

    def evaluate(
        self,
        dataset: str | TensorDataset | None = None,
        data_dir: str | None = None,
        split: str = "test",
        **options: Any,
    ) -> dict:
        """The objective's metrics on ``split`` ("test", "val" or "train") of ``dataset`` (default:
        the run's own, whose validation and training splits must be the ones the run was trained
        with; disgen.data.splits).

        ``options`` go to the objective's ``eval_context`` (a GAN's ``reference`` run directory and
        ``n_samples``)."""
        if split not in SPLITS:
            raise DisgenError(f"--split {split!r}: choose one of {', '.join(SPLITS)}")
        data = self.dataset(dataset, data_dir)
        own = dataset is None or (isinstance(dataset, str) and dataset == self.config.dataset)
        if own and split != "test":  # the training and validation images depend on the split
            splits.check(self.run_dir, data.extra["split"], f"evaluate the {split} split of")
        part = {"test": data.test, "val": data.val, "train": data.train}[split]
        if part is None or len(part) == 0:
            why = " (the run was trained with --val-split 0)" if split == "val" else ""
            raise DisgenError(
                f"dataset {data.name} has no {SPLITS[split]} split{why}; evaluate another "
                f"split with --split {'val' if split == 'test' and data.val else 'test'}"
            )
        if keep_on_device(self.config.data_on_device, data, self.device):
            x = to_float(part.images.to(self.device), self.spec.value_range)
        else:  # a dataset too large for the device: read in batches from its uint8 images
            x = StreamedImages(part.images, self.device, self.spec.value_range)
        if self.objective.eval_context and not options.get("reference"):
            from disgen.training.trainer import train_reference

            train_reference(data)  # a GAN's reference classifier, where it is not yet cached
        extra = (
            self.objective.eval_context(data, self.device, split=split, **options)
            if self.objective.eval_context
            else {}
        )
        return self.objective.evaluate(self.nets, x, part.labels.to(self.device), **extra)


def generator_models() -> str:
    """The registered models that `sample` draws from, for messages: "aae, dcgan28, ... or vae"."""
    names = [m for m in list_models() if get_objective(get_model(m).objective).sample is not None]
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)


def load_run_data(cfg) -> TensorDataset:
    """The dataset ``cfg`` names, images decoded to the shape its model is built for."""
    spec = get_model(cfg.model)
    return load_dataset(
        cfg.dataset,
        cfg.data_dir,
        spec.data_shape(spec.model_config(cfg.model_args)),
        image_column=cfg.image_column,
        label_column=cfg.label_column,
    )


def train(
    model: str = "cnn-classifier",
    *,
    config_file: str | None = None,
    resume: bool | str = False,
    dataset_obj: TensorDataset | None = None,
    **options: Any,
) -> Run:
    """Train ``model`` with TrainConfig ``options`` (e.g. dataset, epochs, lr, run_dir) -> Run,
    holding the weights of best.pt where the run has one, else last.pt (as ``disgen.load``).

    With ``resume=True`` the run in ``run_dir`` continues after its last completed epoch, with its
    saved config; ``options`` may change only what a resume may (``epochs`` to more, ``lr``, how it
    runs: disgen.training.resume.RESUMABLE), others are refused; a ``run_dir`` holding no run is
    an error naming the nearest run directories. ``resume="auto"``: continue the run if there is
    one, else start it (for scripts).
    """
    from disgen.training import budget
    from disgen.training.resume import resume_config
    from disgen.training.trainer import Trainer, train_reference

    run_dir = options.get("run_dir")
    if resume not in (True, False, "auto"):
        raise DisgenError(f"--resume {resume!r}: give --resume alone, or --resume auto")
    if resume and not run_dir:
        raise DisgenError("--resume needs --run-dir DIR, the run to continue")
    given = {k: v for k, v in options.items() if v is not None}
    if "time_budget" in given and "epochs" in given and "max_steps" not in given:
        raise DisgenError(
            f"--time-budget {given['time_budget']} with --epochs {given['epochs']}: a budget run trains until "
            "its seconds are spent, and its epochs follow from the steps that fit; give one of them "
            "(--max-steps N trains exactly N steps)"
        )
    if resume == "auto":
        resume = runs.holds_run(Path(run_dir))
    elif resume and not runs.holds_run(Path(run_dir)):
        raise runs.no_run_error(Path(run_dir))
    if resume and (Path(run_dir) / "config.json").exists():
        cfg = resume_config(model, Path(run_dir), options, config_file)  # refuses what a resume may not change
    else:
        cfg = resolve(model, options, config_file)
    run_dir = Path(cfg.run_dir) if cfg.run_dir else runs.default_run_dir(cfg)
    cfg.run_dir = str(run_dir)
    runs.check_run_dir(run_dir, None if dataset_obj is not None else cfg.dataset, bool(resume))
    with runs.lock(run_dir, enabled=distributed.is_main()), runs.resumable(cfg, run_dir):
        data = dataset_obj if dataset_obj is not None else load_run_data(cfg)
        trainer = Trainer(cfg, run_dir, data)  # the validation split, networks, optimizers, batches
        trainer.deadline = budget.fit(trainer)  # --time-budget: its deadline (and a narrower network)
        if trainer.objective.eval_context and trainer.main:  # a GAN: the classifier that measures it
            train_reference(trainer.data, trainer.log)  # trained once per dataset, then cached
        history = trainer.fit(resume=resume)
    if distributed.is_main():  # the weights every command takes by default: best.pt where there is one
        run = load(trainer.run_dir, "auto", trainer.device)
        run.history = history
        return run
    data = trainer.data
    return Run(
        trainer.run_dir,
        cfg,
        trainer.spec,
        trainer.objective,
        trainer.nets,
        data.image_shape,
        list(data.classes),
        history,
        "last",
        trainer.epoch,
        trainer.final,
    )


def load(run_dir: str | Path, checkpoint_name: str = "auto", device: str = "cpu") -> Run:
    """Load a trained run from its directory alone. ``checkpoint_name``: "best" (the best
    validation epoch), "last", or "auto" (the default): best where the run has it, else last."""
    run_dir = Path(run_dir)
    cfg, spec, nets, state, path = runs.load_nets(run_dir, checkpoint_name, device)
    info = state["data"]
    return Run(
        run_dir,
        cfg,
        spec,
        get_objective(spec.objective),
        nets,
        tuple(info["image_shape"]),
        list(info["classes"]),
        runs.read_metrics(run_dir),
        path.stem,
        state.get("epoch"),
    )
