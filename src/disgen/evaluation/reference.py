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
from pathlib import Path

import torch
from torch import nn

from disgen import runs
from disgen.data import TensorDataset, splits
from disgen.data.download import cache_dir
from disgen.data.loader import batches
from disgen.errors import DisgenError
from disgen.models import get_model, inference

REFERENCE_MODEL = "cnn-classifier"


class Reference:
    """A classifier's ``features``/``head``, taking images in any value range."""

    def __init__(self, net: nn.Module, value_range: tuple[float, float], num_classes: int, source: str):
        self.net, self.value_range, self.num_classes, self.source = net.eval(), value_range, num_classes, source

    def features_of(self, x: torch.Tensor, value_range: tuple[float, float], batch_size: int = 500) -> torch.Tensor:
        """(N, D) float features of images ``x`` given in ``value_range``, ``batch_size`` 28x28
        images at a time (fewer of larger ones: the activations of a batch, not its count, are what
        must fit; 500 of 3x64x64 would hold 1.3 GB)."""
        batch_size = max(16, batch_size * 784 // max(784, x.shape[-1] * x.shape[-2]))
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
        for part in splits.chunks(t):
            digest.update(part.contiguous().cpu().numpy().tobytes())
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


def classifier_of(nets: dict[str, nn.Module]) -> nn.Module | None:
    """The network that classifies with ``features(x)`` and ``head(h)`` (asked what it does, not
    found by name), or None."""
    return next((m for m in nets.values() if hasattr(m, "features") and hasattr(m, "head")), None)


def load_reference(run_dir: str | Path, data: TensorDataset, device: torch.device) -> Reference:
    cfg, spec, nets, state, _ = runs.load_nets(Path(run_dir), "last", device)
    model = classifier_of(nets)
    if model is None:
        raise DisgenError(
            f"--reference {run_dir} is a {spec.name} run; it must be a classifier "
            "with features(x), e.g. `disgen train cnn-classifier`"
        )
    image_shape = tuple(state["data"]["image_shape"])
    if image_shape != tuple(data.image_shape):
        raise DisgenError(
            f"--reference {run_dir} takes images {image_shape}, the dataset "
            f"{data.name} has {tuple(data.image_shape)}: train a reference on this dataset"
        )
    return Reference(model, spec.value_range, len(state["data"]["classes"]), str(run_dir))


def cached_dir(data: TensorDataset) -> Path | None:
    """Where ``data``'s automatic reference is cached, or None where none is trained: 2-D points
    (measured in closed form) and fewer than two classes (a fixed random network)."""
    if len(data.classes) < 2 or data.train.images.dim() != 4:
        return None
    return cache_dir() / "reference" / f"{dataset_key(data)}-{RECIPE_TAG}"


def missing(data: TensorDataset) -> Path | None:
    """The folder the reference of ``data`` must be trained into, or None when there is one (or
    none is needed): disgen.training.trainer.train_reference fills it."""
    target = cached_dir(data)
    return target if target is not None and not (target / "checkpoints" / "last.pt").exists() else None


def get_reference(data: TensorDataset, device: torch.device, run_dir: str | Path | None = None) -> Reference:
    """The reference for ``data``: ``run_dir`` if given, else the cached one, which
    :func:`disgen.training.trainer.train_reference` trains once where it is :func:`missing`."""
    if run_dir:
        return load_reference(run_dir, data, device)
    if len(data.classes) < 2:
        spec = get_model(REFERENCE_MODEL)
        torch.manual_seed(0)  # the caller forks the RNG: this fixed draw does not disturb training
        net = classifier_of(spec.build(spec.model_config(), data.image_shape, 2)).to(device)
        return Reference(net, spec.value_range, 0, "random cnn-classifier features (seed 0)")
    target = cached_dir(data)
    if missing(data):
        raise DisgenError(
            f"no reference classifier for {data.name} in {target}: `disgen train` and `disgen eval` "
            "of a GAN train it once; or pass --reference RUN_DIR of a cnn-classifier run"
        )
    return load_reference(target, data, device)
