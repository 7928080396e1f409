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
