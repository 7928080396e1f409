"""The reference classifier whose feature space measures image GANs.

Inception weights cannot be downloaded offline, and Inception FID on MNIST is nearly meaningless,
so disgen measures generators with a ``cnn-classifier`` trained by disgen on the same dataset: its
``features(x)`` give the space for Fréchet distance, KID and precision/recall, its ``head`` the
predicted classes for class coverage. Pass ``--reference RUN_DIR`` to use a run of your own;
otherwise one is trained once per dataset and cached under ``$DISGEN_HOME/reference/KEY`` (KEY: the
dataset's name and a hash of its training images). A dataset with fewer than two classes gets a
fixed randomly initialised cnn-classifier as feature extractor (random features still separate
image distributions; Naeem et al. 2020) and no class metrics.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from disgen.data import TensorDataset
from disgen.errors import DisgenError
from disgen.objectives import batches, inference

REFERENCE_MODEL = "cnn-classifier"


class Reference:
    """A classifier's ``features``/``head``, taking images in any value range."""

    def __init__(self, net: nn.Module, value_range: tuple[float, float], num_classes: int,
                 source: str):
        self.net, self.value_range, self.num_classes, self.source = net.eval(), value_range, num_classes, source

    def features_of(self, x: torch.Tensor, value_range: tuple[float, float],
                    batch_size: int = 500) -> torch.Tensor:
        """(N, D) float features of images ``x`` given in ``value_range``."""
        (lo, hi), (rlo, rhi) = value_range, self.value_range
        device = next(self.net.parameters()).device
        out = []
        with inference({"reference": self.net}):
            for s in batches(len(x), batch_size):
                xs = (x[s].to(device).float() - lo) / (hi - lo) * (rhi - rlo) + rlo
                out.append(self.net.features(xs).float())
        return torch.cat(out)

    def predict_features(self, h: torch.Tensor) -> torch.Tensor:
        with inference({"reference": self.net}):
            return self.net.head(h)


def dataset_key(data: TensorDataset) -> str:
    digest = hashlib.sha1()
    for t in (data.train.images, data.train.labels):
        digest.update(t.contiguous().cpu().numpy().tobytes())
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in data.name)[:40]
    return f"{name}-{digest.hexdigest()[:12]}"


# How the automatic reference is trained: cnn-classifier's `fast` preset with random affine warps
# (rotation, scale, shift), so that it also reads slightly distorted, generated-looking images
# well. The tag is part of the cache key: a new recipe never reuses an old reference.
REFERENCE_RECIPE = dict(preset="fast", augment="affine")
RECIPE_TAG = "-".join(REFERENCE_RECIPE.values())  # "fast-affine"


def reference_epochs(n_train: int) -> int:
    """About 80,000 images seen, between 4 and 20 epochs (mnist-mini: 20, Fashion-MNIST: 4)."""
    return max(4, min(20, 80_000 // max(n_train, 1)))


def train_reference(data: TensorDataset, target: Path, log: Callable[[str], None]) -> None:
    """Train the cnn-classifier (REFERENCE_RECIPE) into a temporary folder, then move it into place, so
    a concurrent or interrupted run never sees half a reference."""
    import disgen

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    epochs = reference_epochs(len(data.train))
    log(f"training the reference classifier for Fréchet distance and class coverage ({REFERENCE_MODEL} on "
        f"{data.name}, {epochs} epochs, once per dataset; cached in {target})")
    try:
        disgen.train(REFERENCE_MODEL, **REFERENCE_RECIPE, dataset=data.name, dataset_obj=data, epochs=epochs,
                     progress=False, run_dir=str(tmp / "run"), device="cpu")
        os.replace(tmp / "run", target)
    except OSError:
        if not (target / "checkpoints" / "last.pt").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_reference(run_dir: str | Path, data: TensorDataset, device: torch.device) -> Reference:
    import disgen

    run = disgen.load(run_dir, device=str(device))
    if run.objective.name != "classify" or not hasattr(run.nets["model"], "features"):
        raise DisgenError(f"--reference {run_dir} is a {run.spec.name} run; it must be a classifier "
                          "with features(x), e.g. `disgen train cnn-classifier`")
    if tuple(run.image_shape) != tuple(data.image_shape):
        raise DisgenError(f"--reference {run_dir} takes images {tuple(run.image_shape)}, the dataset "
                          f"{data.name} has {tuple(data.image_shape)}: train a reference on this dataset")
    return Reference(run.nets["model"], run.spec.value_range, len(run.classes), str(run_dir))


def get_reference(data: TensorDataset, device: torch.device, run_dir: str | Path | None = None,
                  log: Callable[[str], None] | None = None) -> Reference:
    """The reference for ``data``: ``run_dir`` if given, else the cached one (trained if missing)."""
    if run_dir:
        return load_reference(run_dir, data, device)
    if len(data.classes) < 2:
        from disgen.models import get_model

        spec = get_model(REFERENCE_MODEL)
        torch.manual_seed(0)  # the caller forks the RNG: this fixed draw does not disturb training
        net = spec.build(spec.model_config(), data.image_shape, 2)["model"].to(device)
        return Reference(net, spec.value_range, 0, "random cnn-classifier features (seed 0)")
    from disgen.data.download import cache_dir

    target = cache_dir() / "reference" / f"{dataset_key(data)}-{RECIPE_TAG}"
    if not (target / "checkpoints" / "last.pt").exists():
        train_reference(data, target, log or (lambda m: None))
    return load_reference(target, data, device)
