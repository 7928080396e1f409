"""What reads a trained ``aae``: its codes in eval mode (images to (y, z) and back, in batches)
and the exported encoder and decoder with the cases that check them against `disgen predict`,
`reconstruct` and `sample`. The training step that writes them is :mod:`disgen.objectives.aae`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from disgen.data.loader import batches
from disgen.models import Nets, inference
from disgen.models.aae import shape_noise
from disgen.objectives.exports import (
    CHECK_IMAGES,
    CHECK_SEED,
    Case,
    ExportSpec,
    Network,
    Port,
    ToUnit,
    digits,
    image_port,
    input_images,
    one_hot,
)


def decoder_input(nets: Nets, x: torch.Tensor, y: torch.Tensor, num_classes: int):
    """(y for the decoder or None, z, the encoder's y logits or None): supervised mode feeds the
    decoder the true one-hot label, semi-supervised the encoder's softmax(y) (with --one-hot-y
    the one-hot of its argmax, the gradient passed straight through to the probabilities),
    unsupervised nothing."""
    logits, z = nets["encoder"](x)
    cfg = nets["encoder"].cfg
    if cfg.mode == "supervised":
        return F.one_hot(y, num_classes).float(), z, logits
    if cfg.mode == "semi-supervised":
        p = logits.softmax(1)
        if cfg.one_hot_y:
            p = p + (F.one_hot(p.argmax(1), p.shape[1]).to(p.dtype) - p).detach()
        return p, z, logits
    return None, z, logits


# -- codes in eval mode ---------------------------------------------------------------------------
def roles(nets: Nets) -> list[str]:
    """The encoder and decoder that whatever reads a trained aae uses (and an export holds): with
    ``--ema`` the weight averages ``encoder_ema`` and ``decoder_ema``."""
    return [f"{r}_ema" if f"{r}_ema" in nets else r for r in ("encoder", "decoder")]


def averaged(nets: Nets) -> Nets:
    """``nets`` with the networks of :func:`roles` in the places of ``encoder`` and ``decoder``."""
    enc, dec = roles(nets)
    return {**nets, "encoder": nets[enc], "decoder": nets[dec]}


def encode(nets: Nets, x: torch.Tensor, batch_size: int = 1000):
    """(y logits or None, z) of ``x`` in eval mode, in batches (the weight average with --ema)."""
    nets = averaged(nets)
    with inference(nets):
        parts = [nets["encoder"](x[s]) for s in batches(len(x), batch_size)]
    z = torch.cat([p[1] for p in parts]).float()
    return (torch.cat([p[0] for p in parts]).float() if parts[0][0] is not None else None), z


def reconstruct_with(nets: Nets, x: torch.Tensor, y: torch.Tensor | None, batch_size: int = 1000):
    """Decoded codes of ``x`` in eval mode (``y``: the true labels a supervised run decodes with)."""
    nets = averaged(nets)
    with inference(nets):
        out = []
        for s in batches(len(x), batch_size):
            y_in, z, _ = decoder_input(nets, x[s], y[s] if y is not None else None, nets["decoder"].y_dim)
            out.append(nets["decoder"](z, y_in).float())
    return torch.cat(out)


def decode(nets: Nets, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 1000) -> torch.Tensor:
    """Images from codes ``z`` (N, z_dim) and, for supervised/semi-supervised runs, ``labels`` (N,)
    (default: class 0 for every code)."""
    nets = averaged(nets)
    dec = nets["decoder"]
    y = None
    if dec.y_dim:
        labels = labels if labels is not None else torch.zeros(len(z), dtype=torch.long, device=z.device)
        y = F.one_hot(labels.to(z.device), dec.y_dim).float()
    with inference(nets):
        return torch.cat([dec(z[s], y[s] if y is not None else None).float() for s in batches(len(z), batch_size)])


# -- export ----------------------------------------------------------------------------------------
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

    def __init__(self, decoder: nn.Module, value_range: tuple[float, float], one_hot_y: bool = False):
        super().__init__()
        self.decoder, self.to_unit, self.one_hot_y = decoder, ToUnit(value_range), one_hot_y

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.one_hot_y and y is not None:  # --one-hot-y: trained on the most probable class
            y = (y == y.max(1, keepdim=True).values).to(y.dtype)
        return self.to_unit(self.decoder(z, y))


def export_networks(run, nets: Nets) -> list[Network]:
    enc, dec = (nets[r] for r in roles(nets))
    cfg, k = enc.cfg, dec.y_dim
    prior = f"N(0, {cfg.prior_std:g}^2) per entry" if cfg.prior == "gaussian" else "the 2-D mixture prior"
    z = Port("z", ("N", cfg.z_dim), "any real", f"the code (style); the prior is {prior}")
    outputs = [z]
    if cfg.mode == "semi-supervised":
        outputs.append(Port("class_probabilities", ("N", k), "[0, 1], rows sum to 1", "as `disgen predict`"))
    inputs = [z]
    if k:
        y = "one-hot class" if cfg.mode == "supervised" else "class probabilities (the encoder's), or a one-hot class"
        if cfg.mode == "semi-supervised" and cfg.one_hot_y:
            y += "; the decoder draws the most probable class, as it was trained"
        inputs.append(Port("y", ("N", k), "[0, 1]", y))
    recon = image_port(run, "images", True, "decoded images, float32")
    return [
        Network(
            "encoder", AAEEncoder(enc), [input_images(run)], outputs, "images -> " + ", ".join(p.name for p in outputs)
        ),
        Network(
            "decoder",
            AAEDecoder(dec, run.spec.value_range, cfg.mode == "semi-supervised" and cfg.one_hot_y),
            inputs,
            [recon],
            " + ".join(p.name for p in inputs) + " -> images: `disgen reconstruct` after the encoder, "
            "`disgen sample` on prior draws",
        ),
    ]


def export_cases(run) -> list[Case]:
    from disgen.objectives.gan import latent

    enc, dec = run.nets["encoder"], run.nets["decoder"]
    cfg, k = enc.cfg, dec.y_dim
    x, y = digits(run)
    xf = run.as_batch(x)
    encoded = lambda r, s: r("encoder", {"images": xf[s]})
    expected = {"z": encode(run.nets, xf)[1]}
    if cfg.mode == "semi-supervised":
        expected["class_probabilities"] = run.predict(x)
    n = f"{len(x)} mnist-mini test digits"
    also = ", and its class_probabilities as predict" if cfg.mode == "semi-supervised" else ""
    out = [Case(f"encoder's z of {n}{also}", encoded, expected)]
    if cfg.mode == "supervised":  # the decoder takes each image's true label
        lo, hi = run.spec.value_range
        recon = (reconstruct_with(run.nets, xf, y) - lo) / (hi - lo)
        decode = lambda r, s: r("decoder", {"z": encoded(r, s)["z"], "y": one_hot(y[s], k)})
        out.append(Case(f"reconstruct {n} with their labels (encoder, then decoder)", decode, {"images": recon}))
    else:
        rename = {"z": "z", "class_probabilities": "y"}
        decode = lambda r, s: r("decoder", {rename[a]: t for a, t in encoded(r, s).items()})
        out.append(Case(f"reconstruct {n} (encoder, then decoder)", decode, {"images": run.reconstruct(x)}))
    # disgen sample: N(0, 1) noise shaped into the prior; classes cycle 0, 1, ..., 9 (mod k)
    eps = latent(dec, CHECK_IMAGES, torch.Generator().manual_seed(CHECK_SEED), "cpu")
    cycle = torch.arange(len(eps)) % 10
    inputs = {"z": shape_noise(cfg, eps[:, : cfg.z_dim], cycle)}
    if k:
        inputs["y"] = one_hot(cycle % k, k)
    what = f"sample --n {len(eps)} --seed {CHECK_SEED} (the decoder on prior draws)"
    out.append(
        Case(
            what,
            lambda r, s: r("decoder", {a: t[s] for a, t in inputs.items()}),
            {"images": run.sample(len(eps), CHECK_SEED, z=eps)},
        )
    )
    return out


EXPORT = ExportSpec(
    export_networks,
    export_cases,
    roles=roles,
    usage=lambda run: [
        f'logits, z = nets["{roles(run.nets)[0]}"](images)  # logits: None unless semi-supervised',
        "probabilities = logits.softmax(1)  # semi-supervised: as `disgen predict`",
        f'images = nets["{roles(run.nets)[1]}"](z, y)  # y: one-hot class or probabilities (None: unsupervised)',
    ],
    pipeline="image-to-image",
    tags=["autoencoder", "adversarial-autoencoder"],
    shows_classes=True,
)
