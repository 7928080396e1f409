"""bench_speed.py's Keras baseline (benchmarks/keras_port.py) is seed 000's MLP: the same parameters
and, for the same weights, the same logits and training steps as the plain PyTorch port it is timed
beside. Skipped where Keras (an optional dependency) is not installed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_speed  # noqa: E402
import keras_port  # noqa: E402

from disgen.data import load_dataset  # noqa: E402

pytestmark = pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="keras is not installed")


@pytest.fixture(scope="module")
def keras():
    keras = keras_port.import_keras()  # sets KERAS_BACKEND=torch before the first import
    if keras is None:
        pytest.skip("keras is on another backend in this process")
    return keras


@pytest.fixture(scope="module")
def images():
    data = load_dataset("mnist-mini")
    x, y = keras_port.arrays(data.train.images[:300], data.train.labels[:300])
    return data, x, y


def twins(keras, eps: float = 1e-8) -> tuple[nn.Sequential, object]:
    """The torch port and the Keras model, the torch port's weights copied into Keras."""
    torch.manual_seed(0)
    port = bench_speed.seed000_mlp()
    model = keras_port.mlp_classifier(keras, eps=eps)
    linears = [m for m in port if isinstance(m, nn.Linear)]
    for layer, linear in zip(model.layers, linears, strict=True):
        layer.set_weights([linear.weight.detach().T.numpy(), linear.bias.detach().numpy()])
    return port, model


def keras_logits(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=100, verbose=0))


def test_keras_model_is_the_torch_port(keras, images):
    _, x, _ = images
    port, model = twins(keras)
    assert model.count_params() == sum(p.numel() for p in port.parameters()) == 84_060
    with torch.no_grad():
        expected = port(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(keras_logits(model, x), expected, rtol=0, atol=1e-5)
    fresh = keras_port.mlp_classifier(keras)  # its own init: U(-1, 1) weights, zero biases
    kernels = [w for w in fresh.get_weights() if w.ndim == 2]
    assert all(np.abs(k).max() <= 1 and np.abs(k).max() > 0.99 for k in kernels)
    assert all(not b.any() for b in fresh.get_weights() if b.ndim == 1)


def test_keras_trains_as_the_torch_port(keras, images):
    """Three Adam 0.002 steps on the same batches of 100, softmax cross-entropy, end at the same
    weights. Epsilon is 1e-14 here: Keras adds it before Adam's bias correction, torch after, which
    at the benchmark's 1e-8 moves the logits by about 1e-3 after three steps."""
    _, x, y = images
    port, model = twins(keras, eps=1e-14)
    opt = torch.optim.Adam(port.parameters(), lr=2e-3, eps=1e-14)
    for i in range(0, 300, 100):
        xb, yb = x[i : i + 100], y[i : i + 100]
        model.train_on_batch(xb, yb)
        opt.zero_grad()
        F.cross_entropy(port(torch.from_numpy(xb)), torch.from_numpy(yb)).backward()
        opt.step()
    with torch.no_grad():
        expected = port(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(keras_logits(model, x), expected, rtol=0, atol=1e-4)


def test_run_case_times_a_keras_side(keras, images, tmp_path):
    """bench_speed's mlp-classifier case adds Keras to the alternation: one time per repeat, the
    epoch inside fit no longer than the whole fit call, and the paired ratio to disgen recorded."""
    from common import subset

    data, _, _ = images
    r = bench_speed.run_case(bench_speed.CASES["mlp-classifier"], subset(data, 300), 2, tmp_path, keras)
    seconds, k = r["seconds"], r["keras"]
    assert set(seconds) == {"plain", "auto", "fp32", "keras"} and len(seconds["keras"]) == 2
    assert all(0 < inside <= whole for inside, whole in zip(k["inside_fit_seconds"], seconds["keras"], strict=True))
    ratios = [x / y for x, y in zip(seconds["keras"], seconds["auto"])]
    assert k["ratio"][0] == pytest.approx(sum(ratios) / 2) and k["ratio_fastest"] == pytest.approx(
        min(seconds["keras"]) / min(seconds["auto"])
    )
    assert r["samples_per_s"]["keras"][0] == pytest.approx(sum(300 / s for s in seconds["keras"]) / 2)
    assert k["backend"] == "torch" and "outside" in k["arrays"]
