"""``reconstruct``: an autoencoder trained to reproduce its input under mean squared error."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from disgen.data.loader import batches
from disgen.errors import DisgenError
from disgen.models import Nets, inference
from disgen.objectives import Context, Objective, minimize, register_objective
from disgen.objectives.exports import Case, ExportSpec, Network, Port, ToUnit, digits, image_port, input_images
from disgen.viz import save_grid, save_pairs


def step(nets: Nets, opts, batch) -> dict[str, torch.Tensor]:
    x, _ = batch
    loss = F.mse_loss(nets["model"](x), x)  # mean over pixels and batch, seed 001's "mse"
    minimize(opts, "model", loss)
    return {"mse": loss.detach()}


def reconstruct(nets: Nets, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    with inference(nets):
        return torch.cat([nets["model"](x[s]).float() for s in batches(len(x), batch_size)])


def evaluate(nets: Nets, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000) -> dict[str, float]:
    """Test ``mse``: mean squared error per pixel between images and their reconstructions."""
    return {"mse": F.mse_loss(reconstruct(nets, x, batch_size), x.float()).item()}


def snapshot(ctx: Context, tag: str) -> None:
    if tag == "before":
        save_grid(ctx.train_x[:100], ctx.out_dir / "train_batch.png", 10, value_range=ctx.value_range)
    if tag in ("before", "after"):
        x = ctx.eval_x[:50]
        save_pairs(
            x, reconstruct(ctx.nets, x), ctx.out_dir / f"reconstructions_{tag}.png", 10, value_range=ctx.value_range
        )


# -- export: the encoder and the decoder, apart ----------------------------------------------------
class Part(nn.Module):
    """A method of an autoencoder (``encode`` or ``decode``) as a module of its own."""

    def __init__(self, model: nn.Module, method: str, after: nn.Module | None = None):
        super().__init__()
        self.model, self.method, self.after = model, method, after or nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.after(getattr(self.model, self.method)(x).float())


def export_networks(run, nets: Nets) -> list[Network]:
    model = nets["model"]
    if not (hasattr(model, "encode") and hasattr(model, "decode")):
        raise DisgenError(f"{run.spec.name}'s network has no encode/decode to export apart")
    with torch.no_grad():
        width = model.encode(torch.zeros(1, *run.image_shape)).shape[1]
    code = Port("z", ("N", width), "any real", "the code")
    recon = image_port(run, "images", True, "the reconstructions (decoder of the encoder's z), float32")
    return [
        Network("encoder", Part(model, "encode"), [input_images(run)], [code], "images -> z, the autoencoder's code"),
        Network(
            "decoder",
            Part(model, "decode", ToUnit(run.spec.value_range)),
            [code],
            [recon],
            "z -> images; decoder(encoder(x)) is `disgen reconstruct`",
        ),
    ]


def export_cases(run) -> list[Case]:
    x, _ = digits(run)
    xf = run.as_batch(x)
    with inference(run.nets):
        code = run.nets["model"].encode(xf).float()
    encode = lambda r, s: r("encoder", {"images": xf[s]})
    return [
        Case(f"encoder's z of {len(x)} mnist-mini test digits", encode, {"z": code}),
        Case(
            f"reconstruct {len(x)} mnist-mini test digits (encoder, then decoder)",
            lambda r, s: r("decoder", encode(r, s)),
            {"images": run.reconstruct(x)},
        ),
    ]


def export_usage(run) -> list[str]:
    lo, hi = run.spec.value_range
    return ['z = nets["model"].encode(images)', f'images = nets["model"].decode(z)  # in [{lo:g}, {hi:g}]']


PAIRS = "rows of originals, each followed by their reconstructions"

register_objective(
    Objective(
        "reconstruct",
        step,
        evaluate,
        best=("mse", "min"),
        snapshot=snapshot,
        reconstruct=reconstruct,
        export=ExportSpec(
            export_networks,
            export_cases,
            roles=lambda nets: ["model"],
            usage=export_usage,
            pipeline="image-to-image",
            tags=["autoencoder"],
        ),
        pictures=(
            ("reconstructions_before.png", f"before training: {PAIRS}"),
            ("reconstructions_after.png", f"after training: {PAIRS}"),
        ),
    )
)
