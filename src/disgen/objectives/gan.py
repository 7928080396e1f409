"""``gan``: the adversarial game of Goodfellow et al. 2014 (gan2d, dcgan28, dcgan64).

Each step updates D then G with their own optimizers, as seeds 002 and 003 do. Discriminators
return logits and the losses are binary cross-entropy on logits: the same function as the seeds'
sigmoid + BCE, without its saturation at log(0). G uses the non-saturating loss -log D(G(z)) (both
seeds: "change the label of the fake data from 0 to 1 to avoid vanishing gradient").

A generator module exposes ``latent_dim`` and ``noise_std`` (seed 002 draws z ~ N(0, 0.3²)).
A model may add ``generator_ema``, an exponential moving average of G's weights (Yazıcı et al.
2019): GAN iterates circle the equilibrium, and their average sits closer to it. Samples and
evaluation then use the average.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from disgen.data.loader import batches
from disgen.evaluation import metrics
from disgen.models import Nets, inference, per_sample
from disgen.objectives import Context, Objective, minimize, register_objective

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


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def step(nets: Nets, opts, batch) -> dict[str, torch.Tensor]:
    x, _ = batch
    g, d = nets["generator"], nets["discriminator"]
    # One z for both updates, as seed 003 (G is unchanged between them, so G(z) is reused).
    fake = g(latent(g, len(x), device=x.device))
    gamma = getattr(d, "r1", 0.0)
    if gamma:  # the penalty needs D's gradient with respect to the real images
        x = x.detach().requires_grad_(True)
    if per_sample(d):  # one forward of 2B images instead of two of B: the same logits, faster
        real_logit, fake_logit = d(torch.cat([x, fake.detach()])).split([len(x), len(fake)])
    else:  # batch norm or a batch statistic: real and fake batches normalised apart, as the seeds
        real_logit, fake_logit = d(x), d(fake.detach())
    d_loss = (
        bce(real_logit, getattr(d, "real_label", 1.0)) + bce(fake_logit, 0.0)
    ) / 2  # mean over real and fake, as both seeds
    out = {}
    if gamma:  # R1 (Mescheder et al. 2018): gamma/2 E||grad_x D(x)||^2 on real images
        (grad,) = torch.autograd.grad(real_logit.float().sum(), x, create_graph=True)
        out["r1"] = grad.float().pow(2).flatten(1).sum(1).mean()
        d_loss = d_loss + gamma / 2 * out["r1"]
    minimize(opts, "discriminator", d_loss)

    d.requires_grad_(False)  # G's step needs gradients through D, not of D's weights
    g_loss = bce(d(fake), 1.0)
    minimize(opts, "generator", g_loss)
    d.requires_grad_(True)
    if "generator_ema" in nets:
        update_ema(nets["generator_ema"], g)
    d_acc = ((real_logit.detach() > 0).float().mean() + (fake_logit.detach() < 0).float().mean()) / 2
    return {
        "d_loss": d_loss.detach(),
        "g_loss": g_loss.detach(),
        "d_acc": d_acc,
        **{k: v.detach() for k, v in out.items()},
    }


@torch.no_grad()
def update_ema(ema: torch.nn.Module, g: torch.nn.Module) -> None:
    """ema <- decay * ema + (1 - decay) * g for weights; buffers (batch-norm statistics) copied.
    The decay warms up as min(decay, (1 + n) / (10 + n)) after n updates (TensorFlow's
    ExponentialMovingAverage), so the average does not drag G's random initial weights along."""
    n = ema.ema_updates.item()
    decay = min(ema.decay, (1 + n) / (10 + n))
    for pe, p in zip(ema.parameters(), g.parameters()):
        pe.lerp_(p, 1.0 - decay)
    ours = dict(ema.named_buffers())
    for name, b in g.named_buffers():
        ours[name].copy_(b)
    ema.ema_updates += 1


def sampler(nets: Nets) -> torch.nn.Module:
    return nets.get("generator_ema", nets["generator"])


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
        save_decision_surface(ctx.nets["discriminator"], ctx.train_x, fake, ctx.out_dir / f"decision_{tag}.png")
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
