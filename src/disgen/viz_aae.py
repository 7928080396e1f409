"""Pictures of an adversarial autoencoder run (written into RUN_DIR/images by the ``aae`` snapshot):

- ``latent_<tag>.png``: encoded test z (its first two dimensions) coloured by class, and the prior
  beside it; the paper's figures 2 and 4 (a 2-D z, ``--z-dim 2``, shows the whole code);
- ``z_hist_<tag>.png``: histograms of encoded z against prior samples, per dimension (up to 8);
- ``style_grid_test.png`` / ``style_grid_prior.png`` (supervised and semi-supervised): rows share a
  style z (of a test image, or drawn from the prior), columns are the classes 0-9;
- ``reconstructions_<tag>.png`` and ``samples.png`` (decoded prior draws).
"""
from __future__ import annotations

from pathlib import Path

import torch

from disgen.models.aae import sample_prior
from disgen.objectives import Context
from disgen.viz import pyplot, save_figure, save_grid, save_pairs

MAX_HIST_DIMS = 8
GRID_ROWS = 10




def save_latent_scatter(z: torch.Tensor, labels: torch.Tensor, prior: torch.Tensor, path: Path,
                        classes: list[str]) -> Path:
    """Encoded z (N, D) coloured by class, beside prior samples, on the same axes limits."""
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.6), sharex=True, sharey=True)
    z, prior = z[:, :2].cpu(), prior[:, :2].cpu()
    if z.shape[1] == 1:  # a 1-D code: plot it against zero
        z, prior = torch.cat([z, torch.zeros_like(z)], 1), torch.cat([prior, torch.zeros_like(prior)], 1)
    sc = a.scatter(z[:, 0], z[:, 1], c=labels.cpu(), cmap="tab10", s=4, vmin=-0.5, vmax=9.5)
    a.set_title("encoded test z (dims 0, 1)")
    b.scatter(prior[:, 0], prior[:, 1], s=4, c="0.3")
    b.set_title("prior samples")
    cbar = fig.colorbar(sc, ax=[a, b], ticks=range(len(classes[:10])))
    cbar.ax.set_yticklabels(classes[:10])
    return save_figure(fig, path)


def save_histograms(z: torch.Tensor, prior: torch.Tensor, path: Path) -> Path:
    """One panel per z dimension (up to MAX_HIST_DIMS): encoded z against the prior."""
    plt = pyplot()
    dims = min(MAX_HIST_DIMS, z.shape[1])
    cols = min(4, dims)
    rows = -(-dims // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), squeeze=False)
    for d, ax in zip(range(dims), axes.flat):
        lo = float(torch.minimum(z[:, d].min(), prior[:, d].min()))
        hi = float(torch.maximum(z[:, d].max(), prior[:, d].max()))
        bins = torch.linspace(lo, hi, 41).tolist()
        ax.hist(prior[:, d].cpu().numpy(), bins=bins, alpha=0.5, density=True, label="prior")
        ax.hist(z[:, d].cpu().numpy(), bins=bins, alpha=0.5, density=True, label="encoded")
        ax.set_title(f"z[{d}]")
    axes.flat[0].legend(fontsize=7)
    for ax in list(axes.flat)[dims:]:
        ax.axis("off")
    return save_figure(fig, path)




def style_grid(nets, z: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(rows * classes, C, H, W): row r decodes style z[r] with each class label in turn."""
    from disgen.objectives.aae import decode

    rows = len(z)
    zz = z.repeat_interleave(num_classes, 0)  # (rows * classes, z_dim)
    labels = torch.arange(num_classes, device=z.device).repeat(rows)
    return decode(nets, zz, labels)


def snapshot(ctx: Context, tag: str) -> None:
    from disgen.objectives.aae import encode, reconstruct_with

    if tag == "before":
        save_grid(ctx.train_x[:100], ctx.out_dir / "train_batch.png", 10, value_range=ctx.value_range)
    if tag not in ("before", "after"):
        return
    nets, cfg = ctx.nets, ctx.nets["encoder"].cfg
    x, y = ctx.eval_x[:2000], ctx.eval_y[:2000]
    _, z = encode(nets, x)
    gen = torch.Generator(device=z.device).manual_seed(0)  # the same prior draws in every picture
    prior = sample_prior(cfg, len(z), z.device, gen)
    save_latent_scatter(z, y, prior, ctx.out_dir / f"latent_{tag}.png", ctx.classes)
    save_histograms(z, prior, ctx.out_dir / f"z_hist_{tag}.png")
    labels = y if cfg.mode == "supervised" else None
    save_pairs(x[:50], reconstruct_with(nets, x[:50], labels[:50] if labels is not None else None),
               ctx.out_dir / f"reconstructions_{tag}.png", 10, value_range=ctx.value_range)
    if tag != "after":
        return
    k = nets["decoder"].y_dim
    if k:
        save_grid(style_grid(nets, z[:GRID_ROWS], k), ctx.out_dir / "style_grid_test.png", k,
                  value_range=ctx.value_range, scale=2)
        save_grid(style_grid(nets, prior[:GRID_ROWS], k), ctx.out_dir / "style_grid_prior.png", k,
                  value_range=ctx.value_range, scale=2)
        labels = torch.arange(100, device=z.device) % k
    from disgen.objectives.aae import decode

    save_grid(decode(nets, prior[:100], labels[:100] if k else None), ctx.out_dir / "samples.png", 10,
              value_range=ctx.value_range)
