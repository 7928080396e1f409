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
    a = torch.as_tensor(x).detach().cpu().reshape(len(x), -1)
    a = a.numpy() if a.dtype in (torch.float32, torch.float64) else a.double().numpy()
    mu = a.mean(0, dtype=np.float64)
    if len(a) < 2:
        return mu, np.zeros((a.shape[1], a.shape[1]))
    c = a - mu  # float64, centred before the product (X'X - n mu mu' would cancel digits)
    # c.T @ c of one array is a symmetric rank-k update in numpy (BLAS syrk): half a general product
    return mu, c.T @ c / (len(a) - 1)


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


def kid_subsets(
    n_real: int, n_fake: int, subsets: int = 10, subset_size: int = 1000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows (subsets, m) of real and of fake samples in each of :func:`kid`'s subsets, m =
    min(subset_size, n_real, n_fake): each subset draws the real rows, then the fake rows, without
    replacement, from one generator seeded with ``seed``."""
    m = min(subset_size, n_real, n_fake)
    gen = torch.Generator().manual_seed(seed)
    rows_real, rows_fake = torch.empty(subsets, m, dtype=torch.long), torch.empty(subsets, m, dtype=torch.long)
    for s in range(subsets):
        rows_real[s] = torch.randperm(n_real, generator=gen)[:m]
        rows_fake[s] = torch.randperm(n_fake, generator=gen)[:m]
    return rows_real, rows_fake


KID_ROWS = 256  # rows of a kernel block: k(x, x) of 1000 rows takes 10 blocks of 256 where the whole is 16


def poly_excess(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """k(a_i, b_j) - 1 = s³ + 3s² + 3s with s = a_i·b_j / D, for all pairs (len(a), len(b)).

    The 1 of (s + 1)³ is left out: it adds exactly 1 + 1 - 2 = 0 to the MMD, and in float32 it
    would take the digits of each entry that the small differences between the means need."""
    s = torch.mm(a, b.T).mul_(1 / a.shape[1])
    return (s + 3).mul_(s).add_(3).mul_(s)


def poly_excess_sum_offdiag(a: torch.Tensor) -> torch.Tensor:
    """Sum of k(a_i, a_j) - 1 over i != j, in float64. The matrix is symmetric: each pair of row
    blocks is computed once (a block above the diagonal counts twice), 5/8 of the whole's work."""
    blocks = a.split(KID_ROWS)
    total = torch.zeros((), dtype=torch.float64)
    for p, u in enumerate(blocks):
        k = poly_excess(u, u)
        total += k.sum(dtype=torch.float64) - k.diagonal().sum(dtype=torch.float64)
        for v in blocks[p + 1 :]:
            total += 2 * poly_excess(u, v).sum(dtype=torch.float64)
    return total


def mmd_poly(a: torch.Tensor, b: torch.Tensor) -> float:
    """Unbiased MMD² between samples ``a`` and ``b`` (m, D each) with the cubic polynomial kernel
    (x·y / D + 1)³: the means of k(a, a) and k(b, b) over pairs i != j, less twice the mean of
    k(a, b) (Bińkowski et al. 2018, eq. 2). Sums are float64 whatever the inputs' type."""
    m = len(a)
    same = (poly_excess_sum_offdiag(a) + poly_excess_sum_offdiag(b)) / (m * (m - 1))
    return float(same - 2 * poly_excess(a, b).sum(dtype=torch.float64) / (m * m))


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 10, subset_size: int = 1000, seed: int = 0) -> float:
    """Mean unbiased MMD² over ``subsets`` random subsets (:func:`kid_subsets`), kernel
    k(x, y) = (x·y / D + 1)³.

    The kernel matrices are float32 products (float64 for float64 inputs) summed in float64: the
    rounding of single entries averages out over the m² of them, and the result is within about
    1e-6 relative of an all-float64 computation at a third of its time."""
    dtype = torch.float64 if real.dtype == torch.float64 else torch.float32
    x, y = real.detach().cpu().to(dtype), fake.detach().cpu().to(dtype)
    rows_real, rows_fake = kid_subsets(len(x), len(y), subsets, subset_size, seed)
    return float(np.mean([mmd_poly(x[i], y[j]) for i, j in zip(rows_real, rows_fake)]))


KNN_ROWS = 1024  # rows of a distance block: 1024 x 20,000 floats is 80 MB, where the whole matrix is 1.6 GB


def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row (in blocks of rows)."""
    # k + 1: the row itself is at distance 0. topk of a few, not kthvalue: about 9x faster on 10,000 columns
    return torch.cat(
        [
            torch.cdist(x[i : i + KNN_ROWS], x).topk(k + 1, dim=1, largest=False).values[:, -1]
            for i in range(0, len(x), KNN_ROWS)
        ]
    )


KNN_K = 3  # Kynkäänniemi et al. 2019's choice


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = KNN_K) -> tuple[float, float]:
    """Precision: share of ``fake`` inside the union of real k-NN balls; recall: share of ``real``
    inside the union of fake k-NN balls (Kynkäänniemi et al. 2019, k = 3 as in the paper)."""
    x, y = real.detach().float().cpu(), fake.detach().float().cpu()
    rx, ry = knn_radii(x, k), knn_radii(y, k)
    # one (fake, real) distance block serves both: its rows for precision, its columns for recall;
    # memory: blocks of KNN_ROWS rows, never the whole matrix (20,000 x 10,000: 800 MB)
    precise, recalled = [], torch.zeros(len(x), dtype=torch.bool)
    for i in range(0, len(y), KNN_ROWS):
        d = torch.cdist(y[i : i + KNN_ROWS], x)
        precise.append((d <= rx[None, :]).any(1))
        recalled |= (d <= ry[i : i + KNN_ROWS, None]).any(0)
    return torch.cat(precise).float().mean().item(), recalled.float().mean().item()


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
