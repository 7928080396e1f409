"""Each generator metric can fail: exact closed forms, identical sets at 0, and a one-class
"generator" (real digits of a single class) caught by every metric in a classifier's feature space."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from disgen.evaluation import metrics
from disgen.evaluation.reference import Reference
from disgen.objectives.gan import evaluate_images


def test_frechet_distance_closed_form_and_zero():
    # 1-D: (mu1 - mu2)² + s1² + s2² - 2 s1 s2 = 9 + 1 + 4 - 4 = 10
    assert metrics.frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) == pytest.approx(10.0)
    # Commuting 2-D covariances: sum over axes of (sqrt(a) - sqrt(b))²
    d = metrics.frechet_distance([1, 2], np.diag([1.0, 9.0]), [1, 2], np.diag([4.0, 1.0]))
    assert d == pytest.approx((1 - 2) ** 2 + (3 - 1) ** 2)
    x = torch.randn(500, 5, generator=torch.Generator().manual_seed(0))
    assert metrics.frechet_between(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_sees_a_covariance_difference_the_means_hide():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(4000, 2, generator=gen)
    b = torch.randn(4000, 2, generator=gen) * torch.tensor([1.0, 3.0])
    assert metrics.frechet_between(a, b) == pytest.approx(4.0, rel=0.1)  # (3 - 1)² on the 2nd axis


def mixture(n: int, classes: list[int], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    pick = torch.tensor(classes)[torch.randint(len(classes), (n,), generator=gen)]
    return torch.eye(10)[pick] * 6 + torch.randn(n, 10, generator=gen)


def test_kid_and_precision_recall_tell_one_mode_from_all():
    real, real2, one = mixture(1000, list(range(10)), 0), mixture(1000, list(range(10)), 1), mixture(1000, [3], 2)
    kid_same, kid_one = metrics.kid(real, real2), metrics.kid(real, one)
    assert abs(kid_same) < 0.01 * kid_one and kid_one > 10
    p_same, r_same = metrics.precision_recall(real, real2)
    p_one, r_one = metrics.precision_recall(real, one)
    assert p_same > 0.75 and r_same > 0.75
    assert p_one > 0.75  # one class drawn well is still "precise"...
    assert r_one < 0.2  # ...but covers about a tenth of the real data


def test_class_coverage_of_a_one_class_generator():
    real = torch.arange(10).repeat(100)
    class_cov = metrics.class_coverage(torch.full((1000,), 7), real, 10)
    assert class_cov["min_class_share"] == 0.0
    assert class_cov["classes_covered"] == 1.0
    assert class_cov["class_kl"] == pytest.approx(math.log(10))
    assert class_cov["class_entropy"] == pytest.approx(0.0)
    balanced = metrics.class_coverage(real.flip(0), real, 10)
    assert balanced["class_kl"] == pytest.approx(0.0, abs=1e-12)
    assert balanced["min_class_share"] == pytest.approx(0.1)


def test_modes_covered_on_the_ring():
    from disgen.data.gaussian2d import ring

    real, labels = ring(800, 0)
    all_modes = metrics.modes_covered(ring(800, 1)[0], real, labels)
    assert all_modes["modes_covered"] == 8 and all_modes["high_quality"] > 0.95
    one_mode = ring(800, 2)[0][:100]  # the first 100 points all belong to mode 0
    assert metrics.modes_covered(one_mode, real, labels)["modes_covered"] == 1
    far = torch.zeros(100, 2)  # the ring's centre: no mode, no quality
    assert metrics.modes_covered(far, real, labels) == {"modes_covered": 0.0, "modes_total": 8.0, "high_quality": 0.0}


def test_image_metrics_real_vs_real_and_one_class_generator(classifier_run, mnist_mini):
    """In the feature space of a trained classifier: real test digits against other real digits
    score near 0; real digits of one class only (a collapsed generator) score badly everywhere."""
    ref = Reference(classifier_run.nets["model"], (0.0, 1.0), 10, "test")
    x = mnist_mini.train.images.float() / 255
    y = mnist_mini.train.labels
    real, other = x[:1000], x[1000:2000]
    ones = x[y == 1][:400]
    good = evaluate_images(ref, other, real, y[:1000], (0.0, 1.0))
    bad = evaluate_images(ref, ones, real, y[:1000], (0.0, 1.0))
    assert evaluate_images(ref, real, real, y[:1000], (0.0, 1.0))["frechet_distance"] < 1e-6
    assert good["frechet_distance"] < 0.1 * bad["frechet_distance"]
    assert good["kid"] < 0.1 * bad["kid"]
    assert good["recall"] > 0.7 and bad["recall"] < 0.5 * good["recall"]
    assert good["min_class_share"] > 0.05 and bad["min_class_share"] < 0.01
    assert good["classes_covered"] == 10 and bad["classes_covered"] <= 2
    assert bad["class_kl"] > 1.5 and good["class_kl"] < 0.1


def test_frechet_distance_matches_the_general_eigenvalue_formula():
    """Against tr((S1 S2)^½) from the eigenvalues of the non-symmetric S1 S2 (the formula of
    torch-fidelity and torchmetrics), all in float64 numpy."""
    gen = np.random.default_rng(0)
    a = gen.standard_normal((2000, 16))
    b = gen.standard_normal((2000, 16)) @ (np.eye(16) + 0.3 * gen.standard_normal((16, 16))) + 0.2
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cross = np.sqrt(np.linalg.eigvals(s1 @ s2).astype(complex)).real.sum()
    want = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross
    assert metrics.frechet_between(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(
        want,
        rel=1e-6,  # the float32 inputs' rounding
    )
    assert metrics.frechet_between(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(want, rel=1e-10)


def plain_mmd(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD² with k(x, y) = (x·y / D + 1)³, pair by pair in float64."""
    m, d = len(a), a.shape[1]
    kxx, kyy, kxy = ((u @ v.T / d + 1) ** 3 for u, v in ((a, a), (b, b), (a, b)))
    off = ~np.eye(m, dtype=bool)
    return kxx[off].mean() + kyy[off].mean() - 2 * kxy.mean()


def test_kid_is_the_unbiased_mmd_averaged_over_its_subsets(monkeypatch):
    monkeypatch.setattr(metrics, "KID_ROWS", 64)  # 200 rows: blocks of 64, the last one of 8
    gen = torch.Generator().manual_seed(3)
    real = torch.randn(600, 16, generator=gen).double()
    fake = (torch.randn(500, 16, generator=gen) * 1.2 + 0.1).double()
    rows_real, rows_fake = metrics.kid_subsets(600, 500, subsets=4, subset_size=200, seed=5)
    assert rows_real.shape == rows_fake.shape == (4, 200)
    # without replacement, each subset drawing the real rows then the fake rows from one generator
    draws = torch.Generator().manual_seed(5)
    assert torch.equal(rows_real[0], torch.randperm(600, generator=draws)[:200])
    assert torch.equal(rows_fake[0], torch.randperm(500, generator=draws)[:200])
    assert all(len(r.unique()) == 200 for r in (*rows_real, *rows_fake))
    want = np.mean([plain_mmd(real[i].numpy(), fake[j].numpy()) for i, j in zip(rows_real, rows_fake)])
    assert want > 0.01
    assert metrics.kid(real, fake, subsets=4, subset_size=200, seed=5) == pytest.approx(want, rel=1e-12)
    # float32 inputs: float32 kernel products, float64 sums
    assert metrics.kid(real.float(), fake.float(), 4, 200, 5) == pytest.approx(want, rel=1e-5)
    # subsets no larger than the smaller set
    assert metrics.kid_subsets(600, 150, 2, 200)[0].shape == (2, 150)


def test_kid_of_one_distribution_is_near_zero_in_float32_too():
    """Where the three kernel means (each about 1) nearly cancel, to an MMD² of about 2e-4, float32
    products summed in float64 still agree with the all-float64 value."""
    gen = torch.Generator().manual_seed(4)
    real, fake = torch.randn(3000, 128, generator=gen), torch.randn(3000, 128, generator=gen)
    exact = metrics.kid(real.double(), fake.double(), subsets=3)
    assert 0 < abs(exact) < 1e-3
    assert metrics.kid(real, fake, subsets=3) == pytest.approx(exact, rel=1e-5)


def test_precision_recall_by_brute_force(monkeypatch):
    """Against every pairwise distance in float64 numpy, with the k-th neighbour from a full sort."""
    monkeypatch.setattr(metrics, "KNN_ROWS", 64)  # 300 real and 250 fake rows: partial last blocks
    gen = np.random.default_rng(1)
    real, fake = gen.standard_normal((300, 8)), gen.standard_normal((250, 8)) * 1.3 + 0.3
    dist = lambda u, v: np.sqrt(((u[:, None, :] - v[None, :, :]) ** 2).sum(-1))  # noqa: E731
    r_real, r_fake = np.sort(dist(real, real), 1)[:, 3], np.sort(dist(fake, fake), 1)[:, 3]  # k = 3
    d = dist(fake, real)  # (250, 300)
    want_p, want_r = (d <= r_real[None, :]).any(1).mean(), (d <= r_fake[:, None]).any(0).mean()
    assert 0.2 < want_p < 0.99 and 0.2 < want_r < 0.99
    p, r = metrics.precision_recall(torch.from_numpy(real).float(), torch.from_numpy(fake).float())
    assert p == pytest.approx(want_p, abs=1e-7) and r == pytest.approx(want_r, abs=1e-7)
