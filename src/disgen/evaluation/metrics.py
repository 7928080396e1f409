"""Pure metrics that tell a good generator from a collapsed one. Every function takes tensors (or
arrays) and returns numbers; nothing here trains, prints or saves.

- :func:`frechet_distance`: squared 2-Wasserstein distance between two Gaussians (closed form,
  Dowson & Landau 1982); on classifier features it is the FID of Heusel et al. 2017, on 2-D points
  it is ``w2_squared``.
- :func:`kid`: kernel inception distance (Bińkowski et al. 2018), unbiased MMD² with the cubic
  polynomial kernel, averaged over subsets.
- :func:`precision_recall`: k-NN manifold precision and recall (Kynkäänniemi et al. 2019).
- :func:`class_coverage`: the class histogram of generated samples against the real one.
- :func:`modes_covered`: modes of a 2-D mixture that receive high-quality samples (Srivastava et
  al. 2017's criterion).
"""

from __future__ import annotations

import numpy as np
import torch


def gaussian_stats(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D), in float64, of samples ``x`` (N, D); a single
    sample has covariance 0."""
    a = torch.as_tensor(x).detach().double().cpu().reshape(len(x), -1).numpy()
    if len(a) < 2:
        return a.mean(0), np.zeros((a.shape[1], a.shape[1]))
    return a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))


def sqrtm_psd(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (tiny negative eigenvalues from
    rounding are clipped to 0)."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||² + tr(S1 + S2 - 2 (S1^½ S2 S1^½)^½).

    tr((S1 S2)^½) is computed from the eigenvalues of the symmetric S1^½ S2 S1^½, which avoids the
    complex intermediate results of a general ``sqrtm(S1 @ S2)``.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    if not all(np.isfinite(a).all() for a in (mu1, mu2, cov1, cov2)):
        return float("inf")  # e.g. a diverged generator's NaN outputs
    r1 = sqrtm_psd(cov1)
    eig = np.linalg.eigvalsh(r1 @ cov2 @ r1)
    cross = np.sqrt(np.clip(eig, 0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * cross)
    return max(value, 0.0)


def frechet_between(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between the Gaussians fitted to samples ``a`` and ``b`` (N, D)."""
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 10, subset_size: int = 1000, seed: int = 0) -> float:
    """Mean unbiased MMD² over ``subsets`` random subsets, kernel k(x, y) = (x·y / D + 1)³."""
    x, y = real.detach().double().cpu(), fake.detach().double().cpu()
    m = min(subset_size, len(x), len(y))
    d = x.shape[1]
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        a = x[torch.randperm(len(x), generator=gen)[:m]]
        b = y[torch.randperm(len(y), generator=gen)[:m]]
        kxx, kyy, kxy = (a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3
        off = m * (m - 1)  # unbiased: the diagonals k(x, x) are left out
        values.append(
            ((kxx.sum() - kxx.diag().sum()) / off + (kyy.sum() - kyy.diag().sum()) / off - 2 * kxy.mean()).item()
        )
    return float(np.mean(values))


KNN_ROWS = 1024  # rows of a distance block: 1024 x 20,000 floats is 80 MB, where the whole matrix is 1.6 GB


def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row (in blocks of rows)."""
    # +1: the row itself is at distance 0
    return torch.cat(
        [torch.cdist(x[i : i + KNN_ROWS], x).kthvalue(k + 1, dim=1).values for i in range(0, len(x), KNN_ROWS)]
    )


def inside_any(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Whether each of ``points`` lies inside at least one ball (``centres``, ``radii``), in blocks."""
    return torch.cat(
        [
            (torch.cdist(points[i : i + KNN_ROWS], centres) <= radii[None, :]).any(1)
            for i in range(0, len(points), KNN_ROWS)
        ]
    )


KNN_K = 3  # Kynkäänniemi et al. 2019's choice


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = KNN_K) -> tuple[float, float]:
    """Precision: share of ``fake`` inside the union of real k-NN balls; recall: share of ``real``
    inside the union of fake k-NN balls (Kynkäänniemi et al. 2019, k = 3 as in the paper)."""
    x, y = real.detach().float().cpu(), fake.detach().float().cpu()
    rx, ry = knn_radii(x, k), knn_radii(y, k)
    # memory: blocks of KNN_ROWS distances, never the (fake, real) matrix (20,000 x 10,000: 800 MB)
    precision = inside_any(y, x, rx).float().mean().item()
    recall = inside_any(x, y, ry).float().mean().item()
    return precision, recall


def class_coverage(
    pred: torch.Tensor, real_labels: torch.Tensor, num_classes: int, covered_share: float = 0.01
) -> dict[str, float]:
    """The histogram of predicted classes ``pred`` (N,) of generated samples against the real
    class distribution of ``real_labels``.

    ``class_kl`` is KL(generated || real) (finite even when classes are missing), ``min_class_share``
    the smallest class share, ``classes_covered`` the number of classes holding at least
    ``covered_share`` of the samples and ``class_entropy`` the histogram's entropy in nats.
    """
    p = torch.bincount(pred.cpu().long(), minlength=num_classes).double()
    p = p / p.sum()
    q = torch.bincount(real_labels.cpu().long(), minlength=num_classes).double()
    q = q / q.sum()
    nz = p > 0
    return {
        "class_kl": float((p[nz] * (p[nz] / q[nz].clamp_min(1e-12)).log()).sum()),
        "min_class_share": float(p.min()),
        "classes_covered": float((p >= covered_share).sum()),
        "class_entropy": float(-(p[nz] * p[nz].log()).sum()) + 0.0,  # + 0.0: no "-0"
    }


def modes_covered(
    fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor, sigmas: float = 3.0, min_share: float = 0.01
) -> dict[str, float]:
    """For a mixture whose real points ``real`` carry their mode in ``labels``: a generated point is
    high quality when within ``sigmas`` standard deviations of its nearest mode's centre; a mode is
    covered when at least ``min_share`` of the generated points are high quality and nearest to it."""
    modes = labels.unique()
    centres = torch.stack([real[labels == m].mean(0) for m in modes])  # (K, 2)
    spread = torch.stack(
        [(real[labels == m] - c).pow(2).sum(1).mean().sqrt() for m, c in zip(modes, centres)]
    )  # (K,) RMS distance to the centre
    d = torch.cdist(fake.float(), centres.float())  # (N, K)
    dist, nearest = d.min(1)
    good = dist <= sigmas * spread[nearest] / np.sqrt(real.shape[1])
    counts = torch.bincount(nearest[good], minlength=len(modes)).float()
    return {
        "modes_covered": float((counts >= min_share * len(fake)).sum()),
        "modes_total": float(len(modes)),
        "high_quality": float(good.float().mean()),
    }
