"""``vae``: the evidence lower bound of Kingma and Welling 2013, and what the tools need of a VAE.

Per image the loss is the negative ELBO, -E_q[log p(x|z)] + beta KL(q(z|x) || N(0, I)), with one
reparameterised draw z = mu + sigma * eps (the paper's estimator with L = 1) and the KL in closed
form (its appendix B): KL = 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2). p(x|z) is a Bernoulli per
pixel, so -log p(x|z) is the binary cross-entropy of the decoder's logits summed over pixels.

Reconstructions decode the posterior mean mu; samples decode z ~ N(0, I).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from disgen.data.loader import batches
from disgen.models import Nets, inference
from disgen.objectives import Context, Objective, minimize, register_objective
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
)
from disgen.viz import save_grid, save_pairs
from disgen.viz.aae import save_histograms, save_latent_scatter

EVAL_SEED = 0  # the draws of eps in the evaluation's ELBO: the same at every epoch
KL_COLLAPSED = 0.01  # nats per image: a KL this small means z carries nothing about x


def kl_to_prior(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(log_var)) || N(0, I)) per row, summed over the code's dimensions."""
    return 0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var).sum(1)


def recon_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) per image: Bernoulli pixels with means sigmoid(logits), x in [0, 1]."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def step(nets: Nets, opts, batch, cfg=None) -> dict[str, torch.Tensor]:
    """One update of encoder and decoder on the negative ELBO (``cfg.beta`` weighs the KL)."""
    x, _ = batch
    beta = getattr(cfg, "beta", 1.0)
    mu, log_var = nets["encoder"](x)
    mu, log_var = mu.float(), log_var.float()
    z = mu + (0.5 * log_var).exp() * torch.randn_like(mu)  # the reparameterisation trick
    recon_loss = recon_nll(nets["decoder"](z).float(), x.float()).mean()
    kl = kl_to_prior(mu, log_var).mean()
    loss = recon_loss + beta * kl
    minimize(opts, "vae", loss)
    return {"loss": loss.detach(), "recon_loss": recon_loss.detach(), "kl": kl.detach()}


def optimizers(nets: Nets, cfg, model_cfg) -> dict[str, torch.optim.Optimizer]:
    """One optimizer over both networks: the ELBO is one loss of both."""
    from disgen.objectives.optim import make_optimizer

    return {"vae": make_optimizer([*nets["encoder"].parameters(), *nets["decoder"].parameters()], cfg)}


# -- inference -----------------------------------------------------------------------------------
def encode(nets: Nets, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, log_var) of q(z|x) for images ``x``, in eval mode and in batches."""
    with inference(nets):
        parts = [nets["encoder"](x[s]) for s in batches(len(x), batch_size)]
    return torch.cat([p[0] for p in parts]).float(), torch.cat([p[1] for p in parts]).float()


def decode(nets: Nets, z: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Images in [0, 1] (the Bernoulli means) of codes ``z``."""
    with inference(nets):
        return torch.cat([nets["decoder"](z[s]).float().sigmoid() for s in batches(len(z), batch_size)])


def reconstruct(nets: Nets, x: torch.Tensor) -> torch.Tensor:
    """The decoded posterior means: decoder(mu(x))."""
    return decode(nets, encode(nets, x)[0])


def sample(nets: Nets, z: torch.Tensor) -> torch.Tensor:
    """Decoded prior draws z ~ N(0, I) (`disgen sample` draws them from the decoder's latent_dim)."""
    return decode(nets, z)


def evaluate(nets: Nets, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000) -> dict[str, float]:
    """``neg_elbo`` (nats per image, one draw of z per image, the same draws at every evaluation),
    its ``kl`` term, and ``mse`` per pixel of the reconstructions decoder(mu) (comparable with the
    aae's and mlp-autoencoder's)."""
    gen = torch.Generator(device=x.device).manual_seed(EVAL_SEED)
    nll = kl = se = 0.0
    with inference(nets):
        for s in batches(len(x), batch_size):
            xs = x[s].float()
            mu, log_var = (t.float() for t in nets["encoder"](xs))
            eps = torch.randn(mu.shape, generator=gen, device=mu.device)
            nll += recon_nll(nets["decoder"](mu + (0.5 * log_var).exp() * eps).float(), xs).sum().item()
            kl += kl_to_prior(mu, log_var).sum().item()
            se += (nets["decoder"](mu).float().sigmoid() - xs).pow(2).sum().item()
    n = len(x)
    return {"neg_elbo": (nll + kl) / n, "kl": kl / n, "mse": se / x[:1].numel() / n}


def warnings(history: list[dict]) -> list[str]:
    last = history[-1]
    if last.get("train_kl", 1.0) < KL_COLLAPSED:
        return [
            f"KL to the prior is {last['train_kl']:.2g} nats per image: the posterior collapsed to the prior and z "
            "carries nothing (lower --beta)"
        ]
    return []


def snapshot(ctx: Context, tag: str) -> None:
    """Reconstructions before and after training; after it also decoded prior draws, the codes of
    held-out images against the prior (latent_after.png, z_hist_after.png)."""
    if tag == "before":
        save_grid(ctx.train_x[:100], ctx.out_dir / "train_batch.png", 10, value_range=ctx.value_range)
    if tag not in ("before", "after"):
        return
    x = ctx.eval_x[:50]
    save_pairs(x, reconstruct(ctx.nets, x), ctx.out_dir / f"reconstructions_{tag}.png", 10, value_range=ctx.value_range)
    if tag != "after":
        return
    mu, _ = encode(ctx.nets, ctx.eval_x[:2000])
    gen = torch.Generator(device=mu.device).manual_seed(0)  # the same prior draws in every picture
    prior = torch.randn(len(mu), mu.shape[1], generator=gen, device=mu.device)
    save_latent_scatter(mu, ctx.eval_y[:2000], prior, ctx.out_dir / f"latent_{tag}.png", ctx.classes, ctx.eval_split)
    save_histograms(mu, prior, ctx.out_dir / f"z_hist_{tag}.png")
    save_grid(decode(ctx.nets, prior[:100]), ctx.out_dir / "samples.png", 10, value_range=ctx.value_range)


# -- export: the encoder (images -> mu, log_var) and the decoder (z -> images) ----------------------
class Means(nn.Module):
    """The decoder's logits made images in [0, 1]: :func:`decode` as one module."""

    def __init__(self, decoder: nn.Module, value_range: tuple[float, float]):
        super().__init__()
        self.decoder, self.to_unit = decoder, ToUnit(value_range)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_unit(self.decoder(z).float().sigmoid())


class Posterior(nn.Module):
    """images -> (mu, log_var) of q(z|x), as float32."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_var = self.encoder(images)
        return mu.float(), log_var.float()


def export_networks(run, nets: Nets) -> list[Network]:
    width = nets["decoder"].latent_dim
    z = Port("z", ("N", width), "any real", "the posterior mean mu (what `disgen reconstruct` decodes)")
    log_var = Port("z_log_var", ("N", width), "any real", "log sigma^2 of q(z|x) = N(mu, sigma^2)")
    recon = image_port(run, "images", True, "decoded images (the Bernoulli means), float32")
    return [
        Network("encoder", Posterior(nets["encoder"]), [input_images(run)], [z, log_var], "images -> z, z_log_var"),
        Network(
            "decoder",
            Means(nets["decoder"], run.spec.value_range),
            [Port("z", ("N", width), "any real", "a code; the prior is N(0, 1) per entry")],
            [recon],
            "z -> images: `disgen reconstruct` after the encoder's z, `disgen sample` on prior draws",
        ),
    ]


def export_cases(run) -> list[Case]:
    from disgen.objectives.gan import latent

    x, _ = digits(run)
    xf = run.as_batch(x)
    mu, log_var = encode(run.nets, xf)
    encoded = lambda r, s: r("encoder", {"images": xf[s]})
    n = f"{len(x)} mnist-mini test digits"
    eps = latent(run.nets["decoder"], CHECK_IMAGES, torch.Generator().manual_seed(CHECK_SEED), "cpu")
    return [
        Case(f"encoder's z and z_log_var of {n}", encoded, {"z": mu, "z_log_var": log_var}),
        Case(
            f"reconstruct {n} (encoder, then decoder)",
            lambda r, s: r("decoder", {"z": encoded(r, s)["z"]}),
            {"images": run.reconstruct(x)},
        ),
        Case(
            f"sample --n {len(eps)} --seed {CHECK_SEED} (the decoder on prior draws)",
            lambda r, s: r("decoder", {"z": eps[s]}),
            {"images": run.sample(len(eps), CHECK_SEED, z=eps)},
        ),
    ]


EXPORT = ExportSpec(
    export_networks,
    export_cases,
    roles=lambda nets: ["encoder", "decoder"],
    usage=lambda run: [
        'mu, log_var = nets["encoder"](images)',
        'images = nets["decoder"](mu).sigmoid()  # the Bernoulli means, in [0, 1]',
    ],
    pipeline="image-to-image",
    tags=["autoencoder", "variational-autoencoder"],
)

register_objective(
    Objective(
        "vae",
        step,
        evaluate,
        best=("neg_elbo", "min"),
        snapshot=snapshot,
        reconstruct=reconstruct,
        optimizers=optimizers,
        sample=sample,
        warnings=warnings,
        latent_net=lambda nets: nets["decoder"],
        export=EXPORT,
        pictures=(
            ("reconstructions_after.png", "rows of originals, each followed by their reconstructions"),
            ("samples.png", "decoded prior samples"),
            ("latent_after.png", "posterior means of {split} images coloured by class, beside the prior"),
            ("z_hist_after.png", "posterior means against the prior, per dimension"),
        ),
    )
)
