"""Pictures of an adversarial autoencoder run, written into RUN_DIR/images by the ``aae`` objective's
snapshot (:func:`disgen.objectives.aae.snapshot`; the plots of codes are here):

- ``latent_<tag>.png``: encoded z of the held-out images the run shows (the validation split where it
  has one; the title says which), its first two dimensions, coloured by class, and the prior
  beside it; the paper's figures 2 and 4 (a 2-D z, ``--z-dim 2``, shows the whole code);
- ``z_hist_<tag>.png``: histograms of encoded z against prior samples, per dimension (up to 8);
- ``style_grid_test.png`` / ``style_grid_prior.png`` (supervised and semi-supervised): rows share a
  style z (of a held-out image, validation where there is a split, or drawn from the prior),
  columns are the classes 0-9;
- ``reconstructions_<tag>.png`` and ``samples.png`` (decoded prior draws).
"""

from __future__ import annotations

from pathlib import Path

import torch

from disgen.viz import pyplot, save_figure

MAX_HIST_DIMS = 8


def save_latent_scatter(
    z: torch.Tensor, labels: torch.Tensor, prior: torch.Tensor, path: Path, classes: list[str], split: str
) -> Path:
    """Encoded z (N, D) of ``split``'s images coloured by class, beside prior samples, on the same
    axes limits."""
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.6), sharex=True, sharey=True)
    z, prior = z[:, :2].cpu(), prior[:, :2].cpu()
    if z.shape[1] == 1:  # a 1-D code: plot it against zero
        z, prior = torch.cat([z, torch.zeros_like(z)], 1), torch.cat([prior, torch.zeros_like(prior)], 1)
    sc = a.scatter(z[:, 0], z[:, 1], c=labels.cpu(), cmap="tab10", s=4, vmin=-0.5, vmax=9.5)
    a.set_title(f"encoded z of {split} images (dims 0, 1)")
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
