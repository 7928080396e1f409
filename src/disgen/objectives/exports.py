"""What an objective tells ``disgen export``: an :class:`ExportSpec` of the networks an export
writes (each the exact computation of a disgen command, as one module), the cases its check runs
them on, the roles a safetensors file holds, and the model card's pipeline, tags and usage lines.

Inputs are float32 with the batch first; images (N, C, H, W) in the model's value range
(``spec.value_range``), as :meth:`disgen.api.Run.as_batch` makes them. A ``run`` here is a loaded
:class:`disgen.api.Run` (its ``nets``, ``spec``, ``image_shape``, ``classes``, ``predict``,
``sample`` and ``reconstruct``), passed in by the export; nothing here imports it.

May import: models, data (the check's digits) and the layers below them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from disgen.data import load_dataset

EXAMPLE_BATCH = 8  # rows of the example inputs a network is traced or exported with (the batch axis stays free)
CHECK_IMAGES = 256  # mnist-mini test digits (or latent draws) a check runs on
CHECK_SEED = 0  # the latent draws of the check are `disgen sample --seed 0`'s


@dataclass
class Port:
    """One input or output: its name (the ONNX name too), shape with "N" for the batch, value range, meaning."""

    name: str
    shape: tuple[int | str, ...]
    range: str
    meaning: str


@dataclass
class Network:
    """One exported network: ``module`` maps ``inputs`` to ``outputs`` (a tensor, or a tuple in their order)."""

    name: str  # the file's stem: classifier, generator, encoder, decoder
    module: nn.Module
    inputs: list[Port]
    outputs: list[Port]
    computes: str  # one line for the model card

    def example(self) -> tuple[torch.Tensor, ...]:
        """Example inputs of EXAMPLE_BATCH rows, fixed random draws (only their shapes matter)."""
        gen = torch.Generator().manual_seed(0)
        return tuple(torch.rand(EXAMPLE_BATCH, *p.shape[1:], generator=gen) for p in self.inputs)


# runner(network name, {input name: tensor}) -> {output name: tensor}
Runner = Callable[[str, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass
class Case:
    """``compute(runner, rows)`` runs exported networks on the rows ``rows`` of the case's inputs;
    its outputs must equal ``expected`` (disgen's own, all rows) there."""

    what: str
    compute: Callable[[Runner, slice], dict[str, torch.Tensor]]
    expected: dict[str, torch.Tensor]


@dataclass
class ExportSpec:
    """How runs of an objective are exported.

    ``networks(run, nets)``: the networks written, built on ``nets`` (the run's own, or those
    rebuilt from a safetensors file); ``cases(run)``: what the written files must reproduce;
    ``roles(nets)``: the networks a safetensors file holds; ``usage(run)``: the lines of the
    card's safetensors example after ``nets`` are loaded; ``note(run)``: a remark under the
    card's metrics, or None. ``pipeline`` and ``tags``: the card's Hugging Face pipeline tag and
    tags; ``shows_classes``: the card lists the classes by index."""

    networks: Callable[[Any, dict[str, nn.Module]], list[Network]]
    cases: Callable[[Any], list[Case]]
    roles: Callable[[dict[str, nn.Module]], list[str]]
    usage: Callable[[Any], list[str]]
    pipeline: str | None = None
    tags: list[str] = field(default_factory=list)
    shows_classes: bool = False
    note: Callable[[Any], str | None] = lambda run: None


class ToUnit(nn.Module):
    """Outputs in the model's value range (lo, hi) -> [0, 1], as Run.sample and Run.reconstruct
    return them; ``clamp``: also clipped to [0, 1] (Run.sample)."""

    def __init__(self, value_range: tuple[float, float], clamp: bool = False):
        super().__init__()
        self.lo, self.hi, self.clamp = float(value_range[0]), float(value_range[1]), clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if (self.lo, self.hi) != (0.0, 1.0):
            x = (x - self.lo) / (self.hi - self.lo)
        return x.clamp(0, 1) if self.clamp else x


def to_unit_text(lo: float, hi: float, x: str = "x") -> str:
    """How values in [lo, hi] become [0, 1], as a formula."""
    shifted = x if lo == 0 else f"({x} + {-lo:g})" if lo < 0 else f"({x} - {lo:g})"
    return shifted if hi - lo == 1 else f"{shifted} / {hi - lo:g}"


def image_port(run, name: str, unit: bool, meaning: str) -> Port:
    """An images port of ``run``'s shape, in [0, 1] (``unit``) or the model's value range."""
    lo, hi = run.spec.value_range
    where = "[0, 1]" if unit else f"[{lo:g}, {hi:g}]"
    return Port(name, ("N", *run.image_shape), where, meaning)


def input_images(run) -> Port:
    return image_port(run, "images", False, "the images, float32, pixel values in the model's value range")


def digits(run, n: int = CHECK_IMAGES) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (n, C, H, W) of the run's shape and their labels: mnist-mini's test digits
    (resized and given the model's channels where its images are not 28x28 grey)."""
    test = load_dataset("mnist-mini").test
    x, y = test.images[:n], test.labels[:n]
    c, h, w = run.image_shape
    if x.shape[1:] != (c, h, w):
        x = F.interpolate(x.float(), size=(h, w), mode="bilinear", align_corners=False)
        x = x.expand(-1, c, -1, -1).round().clamp(0, 255).to(torch.uint8)
    return x, y % max(1, len(run.classes))


def one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    return F.one_hot(labels, k).float()
