"""The sizes a model is built within, checked before any memory is taken: the data shapes a model
can be built for, every size option's range, and the networks' parameter count and activations
against this machine's memory (the networks are built on the meta device first).

May import: data, config, errors.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import fields
from typing import Any

import torch
from torch import nn

from disgen.config import check_text
from disgen.data import MAX_CLASSES, machine_memory
from disgen.errors import DisgenError

# The largest data a model is built for: (C, H, W) images, or (D,) points. A side of 8192 pixels
# is 16 times ImageNet's crop; a bigger one is a corrupt or hostile header, not a dataset.
MAX_CHANNELS, MAX_SIDE, MAX_POINT_DIM = 4, 8192, 4096


def check_data_shape(shape: Any, what: str) -> tuple[int, ...]:
    """``shape`` as a tuple if it is one a model can be built for, else a DisgenError naming ``what``."""
    ints = isinstance(shape, (list, tuple)) and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape
    )
    ok = ints and (
        len(shape) == 3
        and shape[0] <= MAX_CHANNELS
        and max(shape[1:]) <= MAX_SIDE
        or len(shape) == 1
        and shape[0] <= MAX_POINT_DIM
    )
    if not ok:
        raise DisgenError(
            f"{what} {shape!r} is not a data shape a model can be built for: (C, H, W) with C in "
            f"1..{MAX_CHANNELS} and H, W in 1..{MAX_SIDE}, or (D,) points with D in 1..{MAX_POINT_DIM}"
        )
    return tuple(shape)


# Every size option (an int, or a tuple of ints) is a count of units, channels, layers or pixels.
# Layers are Python objects even on the meta device: a tuple of sizes (one per layer) and an
# option counting layers (named ``*depth`` or ``convs``) stop at MAX_LAYERS.
MAX_SIZE, MAX_LAYERS = 2**24, 100
# Training keeps 16 bytes per parameter (float32 weights, gradients and Adam's two averages); one
# input's activations past 2 GiB (resnet50 at 224 pixels: about 0.1 GiB) mean sizes gone wrong.
TRAIN_BYTES_PER_PARAM = 16
MAX_ACTIVATION_BYTES = 2**31


def check_options(name: str, cfg: Any) -> None:
    """Every size option a whole number in 0..MAX_SIZE (layer counts and the length of a tuple of
    sizes in 0..MAX_LAYERS) and every float option finite: a size of -5 or 10**9, a million
    layers or a NaN dropout is refused here with the option, not deep inside torch."""
    for f in fields(cfg):
        value, flag = getattr(cfg, f.name), "--" + f.name.replace("_", "-")
        sizes = value if isinstance(value, (tuple, list)) else [value]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in sizes):
            top = MAX_LAYERS if f.name.endswith(("depth", "convs")) else MAX_SIZE
            bad = [v for v in sizes if not 0 <= v <= top]
            if bad:
                raise DisgenError(
                    f"{name} {flag} {value!r}: {'a layer count' if top == MAX_LAYERS else 'a size'} "
                    f"must be a whole number in 0..{top:,} (got {bad[0]:,})"
                )
            if len(sizes) > MAX_LAYERS:
                raise DisgenError(f"{name} {flag}: {len(sizes):,} layers, over the limit of {MAX_LAYERS}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise DisgenError(f"{name} {flag} {value!r}: must be a finite number")
        elif isinstance(value, str):
            check_text(f"{name} {flag}", value)


def check_size(spec: Any, cfg: Any, image_shape: tuple[int, ...], num_classes: int) -> None:
    """Build ``spec``'s networks on the meta device (shapes only, nothing allocated), then refuse
    a parameter count that cannot be trained in this machine's memory, or activations of one
    input over MAX_ACTIVATION_BYTES, naming the number, the limit and the size options."""
    check_data_shape(tuple(image_shape), "the data shape")
    if not (isinstance(num_classes, int) and 1 <= num_classes <= MAX_CLASSES):
        raise DisgenError(f"{num_classes!r} classes: a model is built for 1..{MAX_CLASSES:,}")
    sizes = {
        f.name: getattr(cfg, f.name)
        for f in fields(cfg)
        if f.name.endswith(("hidden", "width", "widths", "dim", "depth", "size", "convs", "encoder", "decoder"))
    }
    options = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in sizes.items()) or "its options"
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")  # refused below, by name
            nets = spec.builder(cfg, tuple(image_shape), num_classes)
    except DisgenError:
        raise
    except Exception as err:  # e.g. a width of 0 where a layer needs one unit, a dropout of 5
        raise DisgenError(
            f"{spec.name} cannot be built with {options} for data {tuple(image_shape)}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from None
    empty = [
        f"{role}.{k} {tuple(p.shape)}" for role, m in nets.items() for k, p in m.named_parameters() if not p.numel()
    ]
    if empty:  # Linear(784, 0): a network that trains, and learns nothing
        raise DisgenError(
            f"{spec.name} with {options} has a layer of zero width ({empty[0]}): every layer needs at "
            "least one unit or channel; choose sizes of 1 or more"
        )
    params = sum(p.numel() for m in nets.values() for p in m.parameters())
    limit = machine_memory() // TRAIN_BYTES_PER_PARAM
    if params > limit:
        raise DisgenError(
            f"{spec.name} with {options} has {params:,} parameters, over the {limit:,} this "
            f"machine can train ({TRAIN_BYTES_PER_PARAM} bytes each: weights, gradients and Adam's "
            f"two averages, in the {machine_memory() / 2**30:.1f} GiB of memory this process may use: the "
            "machine's, or its cgroup's or address-space limit): choose smaller sizes"
        )
    activations = sum(activation_bytes(m, image_shape) for m in nets.values())
    if activations > MAX_ACTIVATION_BYTES:
        raise DisgenError(
            f"{spec.name} with {options} needs {activations / 2**30:,.1f} GiB of activations for one "
            f"input of shape {tuple(image_shape)}, over the limit of {MAX_ACTIVATION_BYTES / 2**30:g} "
            "GiB: choose smaller sizes"
        )


def activation_bytes(net: nn.Module, image_shape: tuple[int, ...], batch: int = 8) -> int:
    """Bytes of every layer's output for one input of a meta-device ``net`` (a generator gets
    its latent code, other networks an image); 0 if it takes another input (a latent
    discriminator's code)."""
    total = 0

    def count(module, inputs, output) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor) and not list(module.children()):
            total += output.numel() * output.element_size()

    shape = (net.latent_dim,) if hasattr(net, "latent_dim") else tuple(image_shape)
    hooks = [m.register_forward_hook(count) for m in net.modules()]
    try:
        with torch.no_grad():
            net.eval()(torch.empty(batch, *shape, device="meta"))
    except Exception:  # another input than an image or a code: its parameters are counted all the same
        return 0
    finally:
        for h in hooks:
            h.remove()
    return total // batch
