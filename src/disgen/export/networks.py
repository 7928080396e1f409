"""The networks an export writes, each the exact computation of a disgen command as one module.

    classifier  images -> class probabilities      softmax of the logits, as ``disgen predict``
    generator   z -> images in [0, 1] (or points)  the EMA generator where the run keeps one,
                                                   mapped to [0, 1] and clamped, as ``disgen sample``
    encoder     images -> z (and class             an autoencoder's code; a semi-supervised aae's
                probabilities)                     class probabilities, as ``disgen predict``
    decoder     z (and y) -> images in [0, 1]      decoder(encoder(x)) is ``disgen reconstruct``;
                                                   an aae's decoder on prior draws is ``disgen sample``

Inputs are float32 with the batch first; images (N, C, H, W) in the model's value range
(``spec.value_range``), as :meth:`disgen.api.Run.as_batch` makes them. Each network is in eval mode.

May import: api and every layer below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from disgen.api import Run
from disgen.errors import DisgenError
from disgen.models import Nets

EXAMPLE_BATCH = 8  # rows of the example inputs a network is traced or exported with (the batch axis stays free)


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


class Probabilities(nn.Module):
    """A classifier's logits made probabilities: objectives.classify / transfer ``predict``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).float().softmax(1)


class Sampler(nn.Module):
    """G(z) mapped as Run.sample maps it: images to [0, 1] and clamped; points (gan2d) as they are."""

    def __init__(self, generator: nn.Module, value_range: tuple[float, float], points: bool):
        super().__init__()
        self.generator = generator
        self.to_unit = nn.Identity() if points else ToUnit(value_range, clamp=True)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_unit(self.generator(z).float())


class Part(nn.Module):
    """A method of an autoencoder (``encode`` or ``decode``) as a module of its own."""

    def __init__(self, model: nn.Module, method: str, after: nn.Module | None = None):
        super().__init__()
        self.model, self.method, self.after = model, method, after or nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.after(getattr(self.model, self.method)(x).float())


class AAEEncoder(nn.Module):
    """x -> z, or (z, softmax(y logits)) in semi-supervised mode (what the decoder and predict use)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor):
        logits, z = self.encoder(images)
        return z.float() if logits is None else (z.float(), logits.float().softmax(1))


class AAEDecoder(nn.Module):
    """(z, y) -> images in [0, 1]; y the one-hot class (supervised) or class probabilities."""

    def __init__(self, decoder: nn.Module, value_range: tuple[float, float]):
        super().__init__()
        self.decoder, self.to_unit = decoder, ToUnit(value_range)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.to_unit(self.decoder(z, y))


def sampler_role(nets: Nets) -> str:
    """The generator ``disgen sample`` draws from: the weight average where the run keeps one
    (as disgen.objectives.gan.sampler picks it)."""
    return "generator_ema" if "generator_ema" in nets else "generator"


def inference_roles(spec_objective: str, nets: Nets) -> list[str]:
    """The run's networks that inference needs (the safetensors file holds these)."""
    if spec_objective == "gan":
        return [sampler_role(nets)]
    if spec_objective == "aae":
        return ["encoder", "decoder"]
    return ["model"]


def networks(run: Run, nets: Nets | None = None) -> list[Network]:
    """The networks an export of ``run`` writes, built on ``nets`` (default: the run's own)."""
    nets = run.nets if nets is None else nets
    build = {"classify": classifier, "transfer": classifier, "gan": generator, "reconstruct": autoencoder}
    build["aae"] = aae
    if run.spec.objective not in build:
        raise DisgenError(f"{run.spec.name} runs (objective {run.spec.objective}) cannot be exported yet")
    out = build[run.spec.objective](run, nets)
    for net in out:
        net.module.eval()
    return out


def image_port(run: Run, name: str, unit: bool, meaning: str) -> Port:
    lo, hi = run.spec.value_range
    where = "[0, 1]" if unit else f"[{lo:g}, {hi:g}]"
    return Port(name, ("N", *run.image_shape), where, meaning)


def classifier(run: Run, nets: Nets) -> list[Network]:
    images = image_port(run, "images", False, "the images, float32, pixel values in the model's value range")
    probs = Port("probabilities", ("N", len(run.classes)), "[0, 1], rows sum to 1", "class probabilities (softmax)")
    computes = "images -> class probabilities, as `disgen predict` (the softmax of the logits)"
    return [Network("classifier", Probabilities(nets["model"]), [images], [probs], computes)]


def generator(run: Run, nets: Nets) -> list[Network]:
    role = sampler_role(nets)
    g = nets[role]
    points = len(run.image_shape) == 1
    z = Port("z", ("N", g.latent_dim), "any real", f"latent code, drawn z ~ N(0, {g.noise_std:g}^2) per entry")
    if points:
        out = Port("points", ("N", *run.image_shape), "the data's own units", "generated points")
    else:
        out = image_port(run, "images", True, "generated images, float32")
    which = "the weight average (generator_ema)" if role == "generator_ema" else "the generator"
    computes = f"z -> {out.name}, as `disgen sample` ({which}, in eval mode)"
    return [Network("generator", Sampler(g, run.spec.value_range, points), [z], [out], computes)]


def autoencoder(run: Run, nets: Nets) -> list[Network]:
    model = nets["model"]
    if not (hasattr(model, "encode") and hasattr(model, "decode")):
        raise DisgenError(f"{run.spec.name}'s network has no encode/decode to export apart")
    images = image_port(run, "images", False, "the images, float32, pixel values in the model's value range")
    with torch.no_grad():
        width = model.encode(torch.zeros(1, *run.image_shape)).shape[1]
    code = Port("z", ("N", width), "any real", "the code")
    recon = image_port(run, "images", True, "the reconstructions (decoder of the encoder's z), float32")
    return [
        Network("encoder", Part(model, "encode"), [images], [code], "images -> z, the autoencoder's code"),
        Network(
            "decoder",
            Part(model, "decode", ToUnit(run.spec.value_range)),
            [code],
            [recon],
            "z -> images; decoder(encoder(x)) is `disgen reconstruct`",
        ),
    ]


def aae(run: Run, nets: Nets) -> list[Network]:
    enc, dec = nets["encoder"], nets["decoder"]
    cfg, k = enc.cfg, dec.y_dim
    images = image_port(run, "images", False, "the images, float32, pixel values in the model's value range")
    prior = f"N(0, {cfg.prior_std:g}^2) per entry" if cfg.prior == "gaussian" else "the 2-D mixture prior"
    z = Port("z", ("N", cfg.z_dim), "any real", f"the code (style); the prior is {prior}")
    outputs = [z]
    if cfg.mode == "semi-supervised":
        outputs.append(Port("class_probabilities", ("N", k), "[0, 1], rows sum to 1", "as `disgen predict`"))
    inputs = [z]
    if k:
        y = "one-hot class" if cfg.mode == "supervised" else "class probabilities (the encoder's), or a one-hot class"
        inputs.append(Port("y", ("N", k), "[0, 1]", y))
    recon = image_port(run, "images", True, "decoded images, float32")
    return [
        Network("encoder", AAEEncoder(enc), [images], outputs, "images -> " + ", ".join(p.name for p in outputs)),
        Network(
            "decoder",
            AAEDecoder(dec, run.spec.value_range),
            inputs,
            [recon],
            " + ".join(p.name for p in inputs) + " -> images: `disgen reconstruct` after the encoder, "
            "`disgen sample` on prior draws",
        ),
    ]


def one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    return F.one_hot(labels, k).float()
