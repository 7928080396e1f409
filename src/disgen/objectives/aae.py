"""``aae``: the adversarial autoencoder's step, three phases per batch, each with its own optimizer
(Makhzani et al. 2015, section 2; seed 004):

1. reconstruction: encoder + decoder minimise the pixel MSE;
2. regularisation: d_gauss (and d_cat) learn prior samples as real (1) and encoder outputs as fake
   (0), encoder frozen; then the encoder, discriminators frozen, learns to make them say real (1);
3. semi-supervised classification: the encoder's y minimises cross-entropy on a labelled batch.

What reads a trained aae (its codes in eval mode, the exported networks) is in
:mod:`disgen.objectives.aae_codes`.

Discriminators return logits and the losses are BCE on logits (sigmoid + BCE without log(0)).
A batch is ``(x, y)`` or, with ``--labels N``, ``(x, y, x_lab, y_lab)``: x is used unlabelled and
only (x_lab, y_lab) is classified; ``(x, y)`` alone in semi-supervised mode classifies (x, y).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from disgen.data.augment import TRANSFORMS
from disgen.errors import DisgenError
from disgen.models import Nets, per_sample, update_ema
from disgen.models.aae import sample_categorical, sample_prior, shape_noise
from disgen.objectives import Context, Objective, minimize, register_objective
from disgen.objectives.aae_codes import EXPORT, decode, decoder_input, encode, reconstruct_with
from disgen.viz import save_grid, save_pairs
from disgen.viz.aae import save_histograms, save_latent_scatter


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def reconstruction_phase(nets: Nets, opts, x, y) -> torch.Tensor:
    dec = nets["decoder"]
    y_in, z, _ = decoder_input(nets, x, y, dec.y_dim)
    recon_loss = F.mse_loss(dec(z, y_in), x)  # mean over pixels and batch, as seed 001's "mse"
    minimize(opts, "autoencoder", recon_loss)
    return recon_loss.detach()


def accuracy(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """The discriminator's accuracy over prior (real) and encoded (fake) samples together."""
    return ((real_logit > 0).float().mean() + (fake_logit < 0).float().mean()) / 2


def label_of(nets: Nets, d: str, y: torch.Tensor | None, logits: torch.Tensor | None = None) -> torch.Tensor | None:
    """The one-hot label a label-conditioned discriminator ``d`` also sees (else None): the true
    label ``y`` in supervised mode, the encoder's predicted class (argmax of ``logits``) in
    semi-supervised mode, where unlabelled images' labels must not be used."""
    k = getattr(nets[d], "label_dim", 0)
    if not k:
        return None
    if logits is not None:
        return F.one_hot(logits.detach().argmax(1), k).float()
    if y is None:
        raise ValueError(f"{d} is label-conditioned: the phase needs the batch's labels y")
    return F.one_hot(y, k).float()


def discriminator_phase(nets: Nets, opts, x, y=None, *, cfg) -> dict[str, torch.Tensor]:
    """Regularisation, first half: d_gauss (and d_cat) learn prior samples as real (1) and the
    encoder's outputs as fake (0); the encoder's outputs are fixed data here. A label-conditioned
    d_gauss sees prior and encoded codes each beside the image's label. ``cfg``: the run's
    AAEConfig (the prior)."""
    enc = nets["encoder"]
    with torch.no_grad():
        logits, z = enc(x)
    fake = {"d_gauss": z, "d_cat": logits.softmax(1) if logits is not None else None}
    real = {"d_gauss": sample_prior(cfg, len(x), x.device)}
    if "d_cat" in nets:
        real["d_cat"] = sample_categorical(len(x), logits.shape[1], x.device)
    out, d_loss = {}, 0.0
    for d in discriminators(nets):
        label = label_of(nets, d, y, logits)
        if per_sample(nets[d]):  # one forward of prior and encoded codes together: same logits, faster
            both = nets[d](torch.cat([real[d], fake[d]]), None if label is None else torch.cat([label, label]))
            real_logit, fake_logit = both.split([len(real[d]), len(fake[d])])
        else:
            real_logit, fake_logit = nets[d](real[d], label), nets[d](fake[d], label)
        loss = (bce(real_logit, 1.0) + bce(fake_logit, 0.0)) / 2
        d_loss = d_loss + loss
        out[f"{d}_loss"] = loss.detach()
        out[f"{d}_acc"] = accuracy(real_logit.detach(), fake_logit.detach())
    minimize(opts, "discriminators", d_loss)
    return out


def generator_phase(nets: Nets, opts, x, y=None, *, cfg) -> dict[str, torch.Tensor]:
    """Regularisation, second half: the encoder learns to make the discriminators call its outputs
    real (1). Gradients flow through the discriminators but not into their weights; ``cfg`` (the
    run's AAEConfig) says whether d_gauss's loss reaches the encoder's body."""
    discs = discriminators(nets)
    for d in discs:
        nets[d].requires_grad_(False)
    try:
        logits, z = nets["encoder"](x, z_through_body=cfg.z_adversary_body)
        g_loss = bce(nets["d_gauss"](z, label_of(nets, "d_gauss", y, logits)), 1.0)
        if "d_cat" in nets:
            g_loss = g_loss + bce(nets["d_cat"](logits.softmax(1)), 1.0)
        minimize(opts, "generator", g_loss)
    finally:
        for d in discs:
            nets[d].requires_grad_(True)
    return {"g_loss": g_loss.detach()}


def discriminators(nets: Nets) -> list[str]:
    return [d for d in ("d_gauss", "d_cat") if d in nets]


def classification_phase(nets: Nets, opts, x_lab, y_lab, x=None, *, cfg) -> dict[str, torch.Tensor]:
    """Cross-entropy of y on the labelled batch; with ``--consistency W`` also W times the KL from
    the class probabilities of the unlabelled images ``x`` (fixed targets: the encoder's, or its
    weight average's with --consistency-teacher average; sharpened by --consistency-sharpen T) to
    those of a perturbed copy of them, over the images whose most probable class reaches
    --consistency-confidence (the others count 0)."""
    enc = nets["encoder"]
    logits, _ = enc(x_lab)
    ce_loss = F.cross_entropy(logits, y_lab)
    out = {"ce_loss": ce_loss.detach(), "label_acc": (logits.detach().argmax(1) == y_lab).float().mean()}
    loss, weight = ce_loss, cfg.consistency
    if weight and x is not None:
        teacher = nets["encoder_ema"] if cfg.consistency_teacher == "average" else enc
        with torch.no_grad():
            guess = teacher(x)[0].float()
            target = (guess / cfg.consistency_sharpen).softmax(1)
            counted = (guess.softmax(1).amax(1) >= cfg.consistency_confidence).float()
        augment = TRANSFORMS[cfg.consistency_augment]
        view = augment(x) if augment is not None else x
        per_image = F.kl_div(enc(view)[0].float().log_softmax(1), target, reduction="none").sum(1)
        cons = (per_image * counted).mean()
        loss = loss + weight * cons
        out["consistency_loss"] = cons.detach()
    minimize(opts, "classifier", loss)
    return out


def step(nets: Nets, opts, batch, cfg) -> dict[str, torch.Tensor]:
    """One batch through the phases in the paper's order; ``cfg`` is the run's AAEConfig, whose
    loss options (the prior, the consistency term, how far d_gauss's loss reaches) the phases read."""
    x, y = batch[0], batch[1]
    x_lab, y_lab = (batch[2], batch[3]) if len(batch) == 4 else (x, y)
    out = {"mse": reconstruction_phase(nets, opts, x, y)}
    out.update(discriminator_phase(nets, opts, x, y, cfg=cfg))
    out.update(generator_phase(nets, opts, x, y, cfg=cfg))
    if "classifier" in opts:
        out.update(classification_phase(nets, opts, x_lab, y_lab, x, cfg=cfg))
    update_ema(nets, cfg.ema)  # --ema: the weight averages that evaluation and the tools read
    return out


def optimizers(nets: Nets, cfg, model_cfg) -> dict[str, torch.optim.Optimizer]:
    """One optimizer per phase, as seed 004 (separate Adam states: the encoder's moments from the
    reconstruction, adversarial and classification losses do not mix)."""
    from disgen.objectives.optim import make_optimizer

    if cfg.labels and model_cfg.mode != "semi-supervised":
        raise DisgenError(
            f"--labels {cfg.labels} needs --mode semi-supervised (this run's mode is "
            f"{model_cfg.mode}: supervised uses every label, unsupervised none)"
        )
    enc = nets["encoder"]
    discs = [p for d in discriminators(nets) for p in nets[d].parameters()]
    opts = {
        "autoencoder": make_optimizer([*enc.parameters(), *nets["decoder"].parameters()], cfg),
        "discriminators": make_optimizer(discs, cfg, lr=model_cfg.d_lr or None),
        "generator": make_optimizer(enc.parameters(), cfg, lr=model_cfg.g_lr or None),
    }
    if model_cfg.mode == "semi-supervised":
        opts["classifier"] = make_optimizer(enc.parameters(), cfg)
    return opts


# -- evaluation ----------------------------------------------------------------------------------
def evaluate(nets: Nets, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> dict[str, float]:
    """Test ``mse`` of reconstructions (supervised mode decodes with the true labels) and, in
    semi-supervised mode, the encoder's classification ``accuracy``."""
    out = {"mse": F.mse_loss(reconstruct_with(nets, x, y, batch_size), x.float()).item()}
    logits, _ = encode(nets, x, batch_size)
    if logits is not None:
        out["accuracy"] = (logits.argmax(1) == y).float().mean().item()
    return out


def predict(nets: Nets, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, classes) from the encoder's y: semi-supervised runs only."""
    logits, _ = encode(nets, x)
    if logits is None:
        raise DisgenError(
            f"this aae run's mode is {nets['encoder'].cfg.mode}: only semi-supervised "
            "runs classify; train with --mode semi-supervised"
        )
    return logits.softmax(1)


def reconstruct(nets: Nets, x: torch.Tensor, label: int | None = None) -> torch.Tensor:
    """Reconstructions of ``x``; a supervised run's decoder also takes a label, ``label`` for every
    image (unsupervised and semi-supervised runs take none: the latter's encoder predicts it)."""
    supervised = nets["decoder"].y_dim and nets["encoder"].cfg.mode == "supervised"
    if supervised and label is None:
        raise DisgenError(
            "a supervised aae decodes an image's style with a label, and your images have none: give the "
            "class to decode them as, `disgen reconstruct RUN_DIR IMAGES --out GRID.png --label K` "
            "(run.reconstruct(images, label=K) in Python)"
        )
    if not supervised and label is not None:
        raise DisgenError(f"--label {label}: only a supervised aae decodes with a given label; leave it out")
    labels = torch.full((len(x),), label, device=x.device) if supervised else None
    return reconstruct_with(nets, x, labels)


def sample(nets: Nets, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Decoded prior draws. ``z`` is N(0, 1) noise from the caller, shaped here into the prior (so
    `disgen sample` needs no AAE-specific code); ``labels`` (N,) pick the digit of supervised and
    semi-supervised runs (default: cycling 0, 1, ..., 9)."""
    cfg, k = nets["encoder"].cfg, nets["decoder"].y_dim
    eps = z[:, : cfg.z_dim]
    cycle = torch.arange(len(z), device=z.device) % 10
    if labels is not None and not k:
        raise DisgenError("an unsupervised aae has no labels to draw: leave out --label")
    if labels is not None and not 0 <= int(labels.min()) <= int(labels.max()) < k:
        raise DisgenError(f"--label {int(labels[0])}: this run has classes 0 to {k - 1}")
    if labels is None and k:
        labels = cycle % k
    return decode(nets, shape_noise(cfg, eps, cycle), labels)


GRID_ROWS = 10


def style_grid(nets, z: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(rows * classes, C, H, W): row r decodes style z[r] with each class label in turn."""
    rows = len(z)
    zz = z.repeat_interleave(num_classes, 0)  # (rows * classes, z_dim)
    labels = torch.arange(num_classes, device=z.device).repeat(rows)
    return decode(nets, zz, labels)


def snapshot(ctx: Context, tag: str) -> None:
    """The pictures of an aae run (listed in :mod:`disgen.viz.aae`) before and after training."""
    if tag == "before":
        save_grid(ctx.train_x[:100], ctx.out_dir / "train_batch.png", 10, value_range=ctx.value_range)
    if tag not in ("before", "after"):
        return
    nets, cfg = ctx.nets, ctx.nets["encoder"].cfg
    x, y = ctx.eval_x[:2000], ctx.eval_y[:2000]
    _, z = encode(nets, x)
    gen = torch.Generator(device=z.device).manual_seed(0)  # the same prior draws in every picture
    prior = sample_prior(cfg, len(z), z.device, gen)
    save_latent_scatter(z, y, prior, ctx.out_dir / f"latent_{tag}.png", ctx.classes, ctx.eval_split)
    save_histograms(z, prior, ctx.out_dir / f"z_hist_{tag}.png")
    labels = y if cfg.mode == "supervised" else None
    save_pairs(
        x[:50],
        reconstruct_with(nets, x[:50], labels[:50] if labels is not None else None),
        ctx.out_dir / f"reconstructions_{tag}.png",
        10,
        value_range=ctx.value_range,
    )
    if tag != "after":
        return
    k = nets["decoder"].y_dim
    if k:
        save_grid(
            style_grid(nets, z[:GRID_ROWS], k),
            ctx.out_dir / "style_grid_test.png",
            k,
            value_range=ctx.value_range,
            scale=2,
        )
        save_grid(
            style_grid(nets, prior[:GRID_ROWS], k),
            ctx.out_dir / "style_grid_prior.png",
            k,
            value_range=ctx.value_range,
            scale=2,
        )
        labels = torch.arange(100, device=z.device) % k
    save_grid(
        decode(nets, prior[:100], labels[:100] if k else None),
        ctx.out_dir / "samples.png",
        10,
        value_range=ctx.value_range,
    )


def warnings(history: list[dict]) -> list[str]:
    """A discriminator at 100% or 50% for several epochs means the game is broken."""
    out = []
    for d in ("d_gauss", "d_cat"):
        accs = [h.get(f"train_{d}_acc") for h in history[-3:]]
        if len(accs) == 3 and all(a is not None for a in accs):
            if min(accs) >= 0.99:
                out.append(
                    f"{d} has been right {min(accs):.0%}+ of the time for 3 epochs: the "
                    "encoder gets no useful gradient (lower --d-lr)"
                )
            elif max(abs(a - 0.5) for a in accs) < 0.01:
                out.append(f"{d} has been at chance for 3 epochs: it no longer shapes the code")
    return out


# -- what the tools need of an aae run --------------------------------------------------------------
def held_steps(model_cfg, name: str) -> int:
    """``--classifier-warmup N``: every phase but the classification phase waits N steps."""
    if model_cfg.mode != "semi-supervised" or name == "classifier":
        return 0
    return model_cfg.classifier_warmup


def offers(model_cfg) -> dict[str, bool]:
    """Semi-supervised runs classify; supervised ones decode with a given label (so reconstruct
    only with one) and draw a chosen class, as semi-supervised ones do."""
    return {
        "predict": model_cfg.mode == "semi-supervised",
        "reconstruct": model_cfg.mode != "supervised",
        "labels": model_cfg.mode in ("supervised", "semi-supervised"),
    }


register_objective(
    Objective(
        "aae",
        step,
        evaluate,
        best=(("accuracy", "max"), ("mse", "min")),
        # Accuracy on a few hundred validation digits ties often, and the first of equal epochs can
        # be an early one whose codes do not yet fit the prior (samples of a class then read as
        # another): the lower reconstruction error decides.
        tie_break=("mse", "min"),
        snapshot=snapshot,
        predict=predict,
        reconstruct=reconstruct,
        optimizers=optimizers,
        sample=sample,
        warnings=warnings,
        needs_labelled=True,
        held_steps=held_steps,
        latent_net=lambda nets: nets["decoder"],  # an aae's decoder is its generator
        offers=offers,
        export=EXPORT,
        pictures=(
            ("latent_after.png", "encoded z of {split} images coloured by class, beside the prior"),
            ("z_hist_after.png", "encoded z against the prior, per dimension"),
            ("reconstructions_after.png", "rows of originals, each followed by their reconstructions"),
            ("samples.png", "decoded prior samples"),
            ("style_grid_test.png", "styles of {split} images (rows) decoded as each class (columns)"),
            ("style_grid_prior.png", "prior styles (rows) decoded as each class (columns)"),
        ),
    )
)
