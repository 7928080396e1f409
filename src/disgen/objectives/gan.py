"""``gan``: the adversarial game of Goodfellow et al. 2014 (gan2d, dcgan28, dcgan64).

Each step updates D then G with their own optimizers, as seeds 002 and 003 do. The losses come
from a table chosen by the model config's ``gan_loss`` (disgen.objectives.gan_losses), as
StudioGAN picks ``adv_loss``: ``bce`` (the default and the seeds') is binary cross-entropy on D's
logits, the seeds' sigmoid + BCE without its saturation at log(0), with G's non-saturating loss
-log D(G(z)) (both seeds: "change the label of the fake data from 0 to 1 to avoid vanishing
gradient"); ``hinge`` is the hinge loss of Lim and Ye 2017 and Miyato et al. 2018;
``wasserstein-gp`` the critic of Arjovsky et al. 2017 with the gradient penalty of Gulrajani et
al. 2017. Penalties on D (R1, GP; a second table there) are added by option with their weights. Every
option is read from the model config the step receives, never from the networks.

A generator module exposes ``latent_dim`` and ``noise_std`` (seed 002 draws z ~ N(0, 0.3²)).
A model may add ``generator_ema``, an exponential moving average of G's weights (Yazıcı et al.
2019): GAN iterates circle the equilibrium, and their average sits closer to it. Samples and
evaluation then use the average.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from disgen.data.loader import batches
from disgen.evaluation import metrics
from disgen.models import Nets, inference, per_sample, update_ema
from disgen.objectives import Context, Objective, minimize, register_objective
from disgen.objectives.exports import (
    CHECK_IMAGES,
    CHECK_SEED,
    Case,
    ExportSpec,
    Network,
    Port,
    ToUnit,
    image_port,
    to_unit_text,
)
from disgen.objectives.gan_losses import LOSSES, PENALTIES, diff_augment, settings

EVAL_POINTS = 100_000  # gan2d: generated points for mean, covariance and w2_squared
EVAL_IMAGES = 10_000  # image GANs: samples for `disgen eval` (the class histogram of the issue)
PER_EPOCH_IMAGES = 2_000  # image GANs: samples of the per-epoch evaluation (cheaper)
FIXED_NOISE_SEED = 1234  # the per-epoch sample grid always shows the same z
# Each split is compared with generator draws of its own: the validation split's choice of best.pt
# must not be a choice on the test split's draws (the same z would make val_* and test_* one sample).
DRAW_SEEDS = {"val": 0, "test": 1, "train": 2}
# Fréchet distance in the reference's 128 features needs a covariance of far more images than
# dimensions: below this many validation images, best.pt is not chosen by it (last.pt is used).
MIN_SELECT_IMAGES = 256


def latent(
    g: torch.nn.Module, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """z (n, latent_dim) ~ N(0, noise_std²) for generator ``g``."""
    device = device or next(g.parameters()).device
    return torch.randn(n, g.latent_dim, generator=generator, device=device) * g.noise_std


def fixed_latent(g: torch.nn.Module, n: int, seed: int = FIXED_NOISE_SEED) -> torch.Tensor:
    """The same z every call (drawn on the CPU, so the same on every device)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(n, g.latent_dim, generator=gen) * g.noise_std).to(next(g.parameters()).device)


def step(nets: Nets, opts, batch, cfg=None) -> dict[str, torch.Tensor]:
    """One update of D, then of G, with the losses and penalties ``cfg`` (the model config) names."""
    x, _ = batch
    s = settings(cfg)
    loss = LOSSES[s.loss]
    augment = diff_augment if s.diffaugment else (lambda t: t)
    g, d = nets["generator"], nets["discriminator"]
    # One z for both updates, as seed 003 (G is unchanged between them, so G(z) is reused).
    fake = g(latent(g, len(x), device=x.device))
    if any(name == "r1" for name, _ in s.penalties):  # R1 needs D's gradient with respect to the real images
        x = x.detach().requires_grad_(True)
    if per_sample(d):  # one forward of 2B images instead of two of B: the same logits, faster
        real_out, fake_out = d(augment(torch.cat([x, fake.detach()]))).split([len(x), len(fake)])
    else:  # batch norm or a batch statistic: real and fake batches normalised apart, as the seeds
        real_out, fake_out = d(augment(x)), d(augment(fake.detach()))
    d_loss = loss.d(real_out, fake_out, s.real_label)
    out = {}
    for name, weight in s.penalties:
        out[name] = PENALTIES[name](d, x, fake, real_out, augment)
        d_loss = d_loss + weight * out[name]
    minimize(opts, "discriminator", d_loss)

    d.requires_grad_(False)  # G's step needs gradients through D, not of D's weights
    g_loss = loss.g(d(augment(fake)))
    minimize(opts, "generator", g_loss)
    d.requires_grad_(True)
    update_ema(nets, s.ema)  # generator_ema, where the model keeps one
    result = {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}
    if loss.classifies:
        result["d_acc"] = ((real_out.detach() > 0).float().mean() + (fake_out.detach() < 0).float().mean()) / 2
    return {**result, **{k: v.detach() for k, v in out.items()}}


def sampler_role(nets: Nets) -> str:
    """The generator ``disgen sample`` draws from: the weight average where the run keeps one."""
    return "generator_ema" if "generator_ema" in nets else "generator"


def sampler(nets: Nets) -> torch.nn.Module:
    """The generator samples come from: the weight average where the run keeps one."""
    return nets[sampler_role(nets)]


def generate(nets: Nets, z: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """G(z) in eval mode, in batches (outputs in the model's value range); the weight average
    ``generator_ema`` when the model keeps one."""
    g = sampler(nets)
    with inference(nets):
        return torch.cat([g(z[s]).float() for s in batches(len(z), batch_size)])


def evaluate(
    nets: Nets,
    x: torch.Tensor,
    y: torch.Tensor,
    reference=None,
    n_samples: int | None = None,
    value_range=(-1.0, 1.0),
    draw_seed: int = DRAW_SEEDS["test"],
) -> dict[str, float]:
    """Generated samples against the real held-out images ``x`` (a validation or test split): for
    2-D points the closed-form ``w2_squared`` (and ring modes), for images the reference
    classifier's metrics. ``draw_seed``: the split's own latent draws (DRAW_SEEDS), the same at
    every evaluation of that split."""
    g = nets["generator"]
    gen = torch.Generator(device=x.device).manual_seed(draw_seed)
    if x.dim() == 2:
        fake = generate(nets, latent(g, n_samples or EVAL_POINTS, gen, x.device))
        return evaluate_points(fake, x, y)
    if reference is None:
        raise ValueError("image GAN evaluation needs a reference classifier (see disgen.evaluation.reference)")
    fake = Samples(nets, latent(g, n_samples or EVAL_IMAGES, gen, x.device))
    return evaluate_images(reference, fake, x, y, value_range)


class Samples:
    """G's samples of the latents ``z``, generated when sliced (``fake[a:b]``): the reference
    reads them a batch at a time, so 10,000 samples of 3x64x64 (490 MB as floats) are never held
    at once."""

    def __init__(self, nets: Nets, z: torch.Tensor):
        self.nets, self.z = nets, z
        self.shape = torch.Size((len(z), *generate(nets, z[:1]).shape[1:]))

    def __len__(self) -> int:
        return len(self.z)

    def __getitem__(self, s: slice) -> torch.Tensor:
        return generate(self.nets, self.z[s])


def evaluate_points(fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    mu, cov = metrics.gaussian_stats(fake)
    w2 = metrics.frechet_distance(mu, cov, *metrics.gaussian_stats(real))
    out = {
        "w2_squared": w2,
        "frechet_distance": w2,
        "mean_0": float(mu[0]),
        "mean_1": float(mu[1]),
        "cov_00": float(cov[0, 0]),
        "cov_01": float(cov[0, 1]),
        "cov_11": float(cov[1, 1]),
    }
    if len(labels.unique()) > 1:  # a mixture: count the modes the generator reaches
        out.update(metrics.modes_covered(fake, real.float(), labels))
    return out


def evaluate_images(
    reference, fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor, value_range
) -> dict[str, float]:
    """Fréchet distance, KID, k-NN precision/recall in the reference's feature space, and the class
    histogram of its predictions (when it has a classification head)."""
    f_real, f_fake = reference.features_of(real, value_range), reference.features_of(fake, value_range)
    out = {"frechet_distance": metrics.frechet_between(f_real, f_fake), "kid": metrics.kid(f_real, f_fake)}
    if min(len(f_real), len(f_fake)) > metrics.KNN_K:  # k-NN balls need k other points
        out["precision"], out["recall"] = metrics.precision_recall(f_real, f_fake)
    if reference.num_classes:
        pred = reference.predict_features(f_fake).argmax(1)
        out.update(metrics.class_coverage(pred, labels, reference.num_classes))
    return out


def eval_context(
    data,
    device,
    reference: str | None = None,
    n_samples: int | None = None,
    per_epoch: bool | str = False,
    split: str = "test",
) -> dict:
    """The reference classifier for image datasets (``reference``: a run directory; else the one
    trained once per dataset and cached, see disgen.evaluation.reference), and ``split``'s own
    generator draws. ``per_epoch``: fewer samples, for the evaluation after every training epoch;
    ``"final"``: for the test split after the last epoch."""
    images = data.train.images.dim() == 4
    # Per epoch at most PER_EPOCH_IMAGES, after training at most EVAL_IMAGES, and never more than
    # twice the split compared against (a tiny folder's split cannot tell more samples apart, and
    # generating them costs).
    held_out = {"val": data.val, "train": data.train}.get(split) or data.test
    cap = EVAL_IMAGES if per_epoch == "final" else PER_EPOCH_IMAGES
    auto_n = min(cap, max(128, 2 * len(held_out) if held_out is not None else 128)) if per_epoch and images else None
    kw = {"n_samples": n_samples or auto_n, "draw_seed": DRAW_SEEDS[split]}
    if images:
        from disgen.evaluation.reference import get_reference

        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            kw["reference"] = get_reference(data, device, reference)
    return kw


def warnings(history: list[dict]) -> list[str]:
    """Live signs of collapse or divergence after the latest epoch (from training and validation
    metrics only)."""
    last, out = history[-1], []
    if last.get("train_d_acc", 0) >= 0.99:
        out.append(
            f"D classified {last['train_d_acc']:.1%} of real and fake right over epoch "
            f"{last['epoch']}: G's gradient vanishes; training is diverging or collapsing"
        )
    entropies = [h["val_class_entropy"] for h in history if "val_class_entropy" in h]
    if len(entropies) >= 2 and entropies[-1] < 0.7 * max(entropies[:-1]):
        out.append(
            f"class-histogram entropy fell from {max(entropies[:-1]):.2f} to {entropies[-1]:.2f} "
            "nats: mode collapse (see val_min_class_share)"
        )
    modes = [h["val_modes_covered"] for h in history if "val_modes_covered" in h]
    if len(modes) >= 2 and modes[-1] < max(modes[:-1]):
        out.append(f"modes covered fell from {max(modes[:-1]):.0f} to {modes[-1]:.0f}: mode collapse")
    return out


def snapshot(ctx: Context, tag: str) -> None:
    g = ctx.nets["generator"]
    if ctx.train_x.dim() == 2:  # every tag, epochs too: `disgen report` animates the frames
        from disgen.viz.gan import save_decision_surface

        fake = generate(ctx.nets, fixed_latent(g, 1000))
        path = ctx.out_dir / f"decision_{tag}.png"
        save_decision_surface(ctx.nets["discriminator"], ctx.train_x, fake, path, probability=bce_logits(ctx.model_cfg))
        return
    from disgen.viz import save_grid

    if tag == "before":
        save_grid(ctx.train_x[:64], ctx.out_dir / "train_batch.png", 8, value_range=ctx.value_range)
    name = "final" if tag == "after" else tag
    save_grid(
        generate(ctx.nets, fixed_latent(g, 64)),
        ctx.out_dir.parent / "samples" / f"{name}.png",
        8,
        value_range=ctx.value_range,
    )


def optimizers(nets: Nets, cfg, model_cfg) -> dict[str, torch.optim.Optimizer]:
    """G at --lr, D at the model's ``d_lr`` (seed 003's gan2d: 0.05 for D, 0.005 for G)."""
    from disgen.objectives.optim import make_optimizer

    d_lr = getattr(model_cfg, "d_lr", None)
    return {
        "generator": make_optimizer(nets["generator"].parameters(), cfg),
        "discriminator": make_optimizer(nets["discriminator"].parameters(), cfg, lr=d_lr),
    }


def sample(nets: Nets, z: torch.Tensor) -> torch.Tensor:
    return generate(nets, z)


# -- what the tools need of a GAN run ---------------------------------------------------------------
def draw_points(nets: Nets, real: torch.Tensor, fake: torch.Tensor, path, model_cfg=None) -> None:
    """Generated 2-D points beside real ones, over D's decision surface."""
    from disgen.viz.gan import save_decision_surface

    save_decision_surface(nets["discriminator"], real, fake, path, probability=bce_logits(model_cfg))


def bce_logits(model_cfg) -> bool:
    """Whether D's output is a logit, sigmoid(D(x)) = P(real) (the bce loss), rather than a score."""
    return settings(model_cfg).loss == "bce"


def report_pictures(run, data, ctx: Context, log) -> None:
    """An image GAN's class coverage: the reference classifier's classes of generated images
    against the real held-out split's (drawn by disgen.report)."""
    if ctx.train_x.dim() != 4:  # gan2d's points: the decision surface says it
        return
    save_class_coverage(run, data, ctx.out_dir / "class_coverage.png")


def save_class_coverage(run, data, path: Path) -> Path | None:
    """Bars of the reference classifier's predicted classes of generated samples against the real
    validation split's classes (test split without one): the histogram behind val_classes_covered
    and val_class_kl."""
    from disgen.evaluation.reference import get_reference
    from disgen.viz import pyplot, save_figure

    ref = get_reference(data, torch.device("cpu"))  # the caller trained it where it was missing
    if not ref.num_classes:
        return None
    g = run.nets["generator"]
    fake = generate(run.nets, latent(g, PER_EPOCH_IMAGES, torch.Generator().manual_seed(0), "cpu"))
    pred = ref.predict_features(ref.features_of(fake, run.spec.value_range)).argmax(1)
    k = ref.num_classes
    gen_share = torch.bincount(pred, minlength=k).double() / len(pred)
    real = data.val if data.val is not None else data.test
    real_share = torch.bincount(real.labels, minlength=k).double() / max(1, len(real))
    cov = metrics.class_coverage(pred, real.labels, k)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 0.4 * k + 2), 3.0))  # ~540 px for 10 classes: beside the slider
    pos = torch.arange(k).numpy()
    ax.bar(
        pos - 0.2,
        real_share.numpy(),
        0.4,
        label=f"real {'validation' if data.val is not None else 'test'} images",
        color="0.6",
    )
    ax.bar(pos + 0.2, gen_share.numpy(), 0.4, label=f"{len(pred)} generated", color="tab:orange")
    ax.set_xticks(pos, [str(c) for c in run.classes[:k]], rotation=90 if k > 12 else 0)
    ax.set_ylabel("share")
    ax.set_title(f"classes covered {cov['classes_covered']:.0f}/{k}, KL(generated || real) {cov['class_kl']:.3f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


class Sampler(nn.Module):
    """G(z) mapped as Run.sample maps it: images to [0, 1] and clamped; points (gan2d) as they are."""

    def __init__(self, generator: nn.Module, value_range: tuple[float, float], points: bool):
        super().__init__()
        self.generator = generator
        self.to_unit = nn.Identity() if points else ToUnit(value_range, clamp=True)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_unit(self.generator(z).float())


def export_networks(run, nets: Nets) -> list[Network]:
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


def export_cases(run) -> list[Case]:
    z = latent(run.nets[sampler_role(run.nets)], CHECK_IMAGES, torch.Generator().manual_seed(CHECK_SEED), "cpu")
    name = "points" if len(run.image_shape) == 1 else "images"
    expected = {name: run.sample(len(z), CHECK_SEED, z=z)}
    what = f"sample --n {len(z)} --seed {CHECK_SEED}"
    return [Case(what, lambda r, s: r("generator", {"z": z[s]}), expected)]


def export_usage(run) -> list[str]:
    lo, hi = run.spec.value_range
    unit = "" if (lo, hi) == (0, 1) else f", mapped to [0, 1] as {to_unit_text(lo, hi)}"
    clamp = "" if len(run.image_shape) == 1 else f"  # images in [{lo:g}, {hi:g}]{unit}, clamped to [0, 1]"
    return [f'x = nets["{sampler_role(run.nets)}"](z){clamp}']


def export_note(run) -> str | None:
    if len(run.image_shape) != 3:
        return None
    return (
        "frechet_distance, kid, precision and recall are measured in the feature space of disgen's reference "
        "classifier for the dataset, not Inception's: they do not compare with published FID figures."
    )


EXPORT = ExportSpec(
    export_networks,
    export_cases,
    roles=lambda nets: [sampler_role(nets)],
    usage=export_usage,
    pipeline="unconditional-image-generation",
    tags=["gan", "image-generation"],
    note=export_note,
)

register_objective(
    Objective(
        "gan",
        step,
        evaluate,
        best=("frechet_distance", "min"),
        snapshot=snapshot,
        optimizers=optimizers,
        eval_context=eval_context,
        sample=sample,
        warnings=warnings,
        min_select=lambda x: MIN_SELECT_IMAGES if x.dim() == 4 else 0,
        latent_net=lambda nets: nets["generator"],
        export=EXPORT,
        pictures=(
            ("class_coverage.png", "classes of generated images (reference classifier) against the real {split} split"),
            ("samples_final.png", "samples after training (fixed z)"),
            ("decision_after.png", "after training: real and generated points over D(x)"),
        ),
        report_pictures=report_pictures,
        draw_points=draw_points,
    )
)


INTERPOLATION_STEPS = 10  # images in a row of `disgen sample --interpolate` and the explorer's walk


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` (R, D) at fractions ``t`` (S,) ->
    (R, S, D)."""
    cos = (a * b).sum(1, keepdim=True) / (a.norm(dim=1, keepdim=True) * b.norm(dim=1, keepdim=True))
    omega = cos.clamp(-1 + 1e-7, 1 - 1e-7).acos()[:, None]  # (R, 1, 1)
    t = t[None, :, None]
    so = omega.sin()
    return ((1 - t) * omega).sin() / so * a[:, None] + (t * omega).sin() / so * b[:, None]


def interpolation_latents(g, rows: int, seed: int) -> torch.Tensor:
    """(rows * INTERPOLATION_STEPS, latent_dim): each row walks from one random z to another."""
    gen = torch.Generator().manual_seed(seed)
    a, b = latent(g, rows, gen, "cpu"), latent(g, rows, gen, "cpu")
    return slerp(a, b, torch.linspace(0, 1, INTERPOLATION_STEPS)).reshape(-1, a.shape[1])
