"""Seed 000's MLP in Keras 3 on its torch backend, the baseline bench_speed.py times beside the
plain PyTorch port: the net, init, optimizer and batch of disgen's ``mlp-classifier --preset seed``
(784-100-50-10 sigmoid, weights U(-1, 1) and zero biases, Adam 0.002, batch 100, softmax
cross-entropy), trained the way Keras users do, ``model.fit(x, y, epochs=1, batch_size=100)`` on
shuffled float32 numpy arrays.

Optional: ``pip install keras`` (Keras 3 needs no TensorFlow; this module selects the torch backend
itself, ``KERAS_BACKEND=torch``, before importing it). Without it ``import_keras`` says so and
returns None, and the benchmark skips the Keras side.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from typing import Callable

from common import summary


def import_keras():
    """Keras 3 on the torch backend, or None (with a message) where it is missing or on another backend."""
    os.environ["KERAS_BACKEND"] = "torch"  # read once, at keras' first import
    try:
        import keras
    except ImportError:
        print("keras is not installed (pip install keras): skipping the Keras baseline", file=sys.stderr)
        return None
    if keras.backend.backend() != "torch":
        print(
            f"keras was imported with the {keras.backend.backend()} backend before this benchmark set "
            "KERAS_BACKEND=torch: skipping the Keras baseline",
            file=sys.stderr,
        )
        return None
    return keras


def mlp_classifier(keras, image_size: int = 784, classes: int = 10, hidden=(100, 50), lr=2e-3, eps=1e-8):
    """Seed 000's net, compiled with its loss and optimizer. Adam's epsilon is torch's (and MXNet's)
    1e-8, not Keras' 1e-7; Keras adds it before the bias correction of sqrt(v), torch after, so the
    steps differ where a gradient is near epsilon (at no difference in cost)."""
    uniform, zeros = keras.initializers.RandomUniform(-1.0, 1.0), keras.initializers.Zeros()
    dense = lambda units, act=None: keras.layers.Dense(
        units, activation=act, kernel_initializer=uniform, bias_initializer=zeros
    )
    model = keras.Sequential(
        [
            keras.Input((image_size,)),  # (B, 784)
            *(dense(units, "sigmoid") for units in hidden),  # (B, 100), (B, 50)
            dense(classes),  # (B, 10) logits; softmax is in the loss
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(lr, epsilon=eps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def arrays(images, labels):
    """float32 (N, 784) in [0, 1] and int64 labels as numpy arrays: what a Keras user passes to fit."""
    x = images.float().div(255).reshape(len(images), -1).numpy()
    return x, labels.long().numpy()


class EpochTimer:
    """A Keras callback keeping each epoch's seconds inside fit (without fit's own setup)."""

    def __init__(self):
        self.seconds: list[float] = []

    def as_callback(self, keras):
        timer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                timer.begin = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                timer.seconds.append(time.perf_counter() - timer.begin)

        return Callback()


def keras_mlp_classifier(keras, data, timer: EpochTimer | None = None) -> Callable[[], None]:
    """One shuffled epoch of ``model.fit`` per call on ``data``'s training split, its arrays converted
    once, here (outside the timed epochs)."""
    model = mlp_classifier(keras, math.prod(data.train.images.shape[1:]), classes=len(data.classes))
    x, y = arrays(data.train.images, data.train.labels)
    callbacks = [timer.as_callback(keras)] if timer else []

    def epoch():
        model.fit(x, y, epochs=1, batch_size=100, shuffle=True, verbose=0, callbacks=callbacks)

    return epoch


def keras_results(keras, seconds: dict[str, list[float]], inside_fit: list[float]) -> dict:
    """disgen (``auto``) against Keras from the paired epochs of one run: the speed ratio
    keras seconds / disgen seconds of each whole ``fit`` call, and of the epoch inside it."""
    k, a = seconds["keras"], seconds["auto"]
    return {
        "version": keras.__version__,
        "backend": keras.backend.backend(),
        "arrays": "float32 numpy, converted once outside the timed epochs",
        "ratio": summary([x / y for x, y in zip(k, a)]),
        "ratio_median": statistics.median(x / y for x, y in zip(k, a)),
        "ratio_fastest": min(k) / min(a),
        "inside_fit_seconds": inside_fit,
        "ratio_inside_fit": summary([x / y for x, y in zip(inside_fit, a)]),
    }
