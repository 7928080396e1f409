"""The model registry: every model family registers a :class:`ModelSpec` under its CLI name.

One file per model family holds its config dataclass, its ``nn.Module``s, its presets and a builder
decorated with :func:`register_model`. The registry drives the CLI's choices, ``disgen models`` and
the test suite's parametrisation, so a new model gets its tests for free. :func:`resolve` makes a
run's TrainConfig from a model's preset; ``models.weights`` fetches and reads pretrained weights.

May import: data, config, files, errors. Never runs, objectives or anything above.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import math
import pkgutil
import typing
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterator

import torch
from torch import nn

from disgen.config import (
    TrainConfig,
    check_text,
    coerce,
    from_dict,
    load_config_file,
    opt,
    validate,
)
from disgen.data import MAX_CLASSES, machine_memory
from disgen.errors import DisgenError

Nets = dict[str, nn.Module]  # a run's networks by role: "model", or "generator" and "discriminator", ...

# (C, H, W) of the training images and the number of classes: what a builder needs from the data.
DataInfo = tuple[tuple[int, int, int], int]
Builder = Callable[[Any, tuple[int, int, int], int], dict[str, nn.Module]]


@dataclass
class ModelSpec:
    """What the registry knows about one model.

    ``objective`` picks the step function the Trainer runs (see ``disgen.objectives``).
    ``presets`` maps a preset name to overrides: keys of ``TrainConfig`` plus ``model``, a dict of
    overrides of ``config_cls``. Every model has ``default`` (disgen's recommendation) and, where it
    follows a source document, ``seed`` (the document's hyperparameters, unchanged; ``default`` may
    improve on it). A model may add
    ``budget``: the preset a run given ``--time-budget`` and no ``--preset`` takes (settings that
    learn most in a short time, chosen on the validation split by benchmarks/bench_budget.py).
    """

    name: str
    objective: str
    config_cls: type
    builder: Builder
    presets: dict[str, dict] = field(default_factory=dict)
    description: str = ""
    value_range: tuple[float, float] = (0.0, 1.0)  # pixel range the model sees; (-1, 1) for tanh GANs

    def data_shape(self, model_cfg: Any) -> tuple[int, ...] | None:
        """The data shape the model is built for, as its config's ``data_shape()`` states it: (2,)
        for gan2d's points, (1, 28, 28) for dcgan28, (3, S, S) for resnet-transfer's --image-size S.
        Image folders are decoded to it. None (a config without ``data_shape``): the networks adapt
        to the dataset's (C, H, W)."""
        shape = getattr(model_cfg, "data_shape", None)
        return shape() if shape is not None else None

    def model_config(self, overrides: dict | None = None) -> Any:
        """The model config dataclass with ``overrides`` applied, checking the field names."""
        overrides = dict(overrides or {})
        known = {f.name for f in fields(self.config_cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise DisgenError(
                f"model {self.name!r} has no option {', '.join(unknown)}; its options are: {', '.join(sorted(known))}"
            )
        hints = typing.get_type_hints(self.config_cls)
        cfg = self.config_cls(**{k: coerce(k, v, hints[k]) for k, v in overrides.items()})
        for f in fields(cfg):
            allowed = f.metadata.get("choices")
            if allowed and getattr(cfg, f.name) not in allowed:
                raise DisgenError(
                    f"{self.name} --{f.name.replace('_', '-')} {getattr(cfg, f.name)!r}: choose one "
                    f"of {', '.join(allowed)}"
                )
        check_options(self.name, cfg)
        if self.data_shape(cfg) is not None:
            check_data_shape(self.data_shape(cfg), f"{self.name}'s data shape")
        return cfg

    def build(self, cfg: Any, image_shape: tuple[int, ...], num_classes: int) -> dict[str, nn.Module]:
        """The networks for ``image_shape`` and ``num_classes``, after :func:`check_size` has built
        them on the meta device (no memory) and found their size sane for this machine."""
        check_size(self, cfg, image_shape, num_classes)
        return self.builder(cfg, image_shape, num_classes)


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


def check_size(spec: ModelSpec, cfg: Any, image_shape: tuple[int, ...], num_classes: int) -> None:
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


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    objective: str,
    config: type,
    presets: dict[str, dict],
    description: str = "",
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Callable[[Builder], Builder]:
    """Register ``build(cfg, image_shape, num_classes) -> {role: module}`` under ``name``."""

    def wrap(build: Builder) -> Builder:
        if "default" not in presets:  # "seed" too where the model follows a source document
            raise ValueError(f"model {name} must define a 'default' preset")
        _REGISTRY[name] = ModelSpec(name, objective, config, build, presets, description, value_range)
        return build

    return wrap


def _import_all() -> None:
    """Every module of this package, so each family's file registers itself: no list to keep."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def list_models() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def get_model(name: str) -> ModelSpec:
    _import_all()
    if name not in _REGISTRY:
        raise DisgenError(f"unknown model {name!r}: choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def init_uniform(scale: float) -> Callable[[nn.Module], None]:
    """MXNet's ``initializer/uniform scale``: weights U(-scale, scale), biases 0.

    (MXNet initialises every parameter named ``*_bias`` to zero whatever the initializer.)
    """

    def apply(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.uniform_(m.weight, -scale, scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    return apply


ACTIVATIONS = ("sigmoid", "relu", "tanh", "gelu", "leaky_relu")  # the choices of every act option


def activation(name: str) -> nn.Module:
    """A fresh activation module by name: one of ACTIVATIONS (leaky_relu's slope is 0.2)."""
    table = dict(zip(ACTIVATIONS, (nn.Sigmoid, nn.ReLU, nn.Tanh, nn.GELU, lambda: nn.LeakyReLU(0.2))))
    if name not in table:
        raise DisgenError(f"unknown activation {name!r}: use one of {', '.join(table)}")
    return table[name]()


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def per_sample(net: nn.Module) -> bool:
    """Whether each output of ``net`` depends on its own input alone in training mode: no batch
    norm and no layer marked ``mixes_batch`` (e.g. dcgan28's minibatch-std channel)."""
    return not any(isinstance(m, BATCH_NORMS) or getattr(m, "mixes_batch", False) for m in net.modules())


@contextlib.contextmanager
def inference(nets: Nets) -> Iterator[None]:
    """Eval mode and no autograd for ``nets``, restoring each module's mode afterwards."""
    modes = {k: m.training for k, m in nets.items()}
    for m in nets.values():
        m.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        for k, m in nets.items():
            m.train(modes[k])


GAN_LOSSES = ("bce", "hinge", "wasserstein-gp")  # the keys of disgen.objectives.gan.GAN_LOSSES


def gan_loss_option():
    """A GAN config's ``gan_loss`` field: which losses the gan objective's step takes."""
    return opt(
        "bce",
        "D's and G's losses: bce (the seeds'), hinge, or wasserstein-gp (a critic with a gradient penalty)",
        choices=GAN_LOSSES,
    )


def add_ema(nets: Nets, decay: float) -> Nets:
    """``nets`` plus ``generator_ema``, a frozen copy of G averaged after every step (decay > 0,
    the model config's ``ema``, which the gan objective's step reads)."""
    if decay > 0:
        ema = copy.deepcopy(nets["generator"]).requires_grad_(False)
        ema.register_buffer("ema_updates", torch.zeros((), dtype=torch.int64))
        nets["generator_ema"] = ema
    return nets


def default_preset(spec: ModelSpec, settings: dict) -> str:
    """The preset a run takes when none is named: ``budget`` for a ``--time-budget`` run of a model
    that has one, else ``default``."""
    return "budget" if settings.get("time_budget") is not None and "budget" in spec.presets else "default"


def resolve(model: str, overrides: dict | None = None, config_file: str | None = None) -> TrainConfig:
    """A run's TrainConfig: defaults < the model's preset < ``config_file`` (JSON) < ``overrides``
    (e.g. CLI flags), its model options checked against the model's config."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    from_file = load_config_file(config_file, model) if config_file else {}
    spec = get_model(model)
    preset_name = overrides.get("preset", from_file.get("preset", default_preset(spec, {**from_file, **overrides})))
    if not isinstance(preset_name, str) or preset_name not in spec.presets:
        raise DisgenError(
            f"--preset {preset_name!r}: model {model!r} has no preset {preset_name!r}; choose one of "
            f"{', '.join(spec.presets)}"
        )
    merged: dict[str, Any] = {"model": model, "preset": preset_name}
    model_args: dict[str, Any] = {}
    for layer in (spec.presets[preset_name], from_file, overrides):
        layer = dict(layer)
        for key in ("model", "model_args"):
            value = layer.pop(key, None) or {}
            if not isinstance(value, dict):
                raise DisgenError(
                    f'{key} must be an object of model options, e.g. {{"hidden": [100, 50]}} (got {value!r})'
                )
            model_args.update(value)
        merged.update(layer)
    merged["model"] = model
    merged["model_args"] = model_args
    cfg = from_dict(merged)
    validate(cfg)
    typed = spec.model_config(cfg.model_args)  # fails early on unknown or ill-typed options
    cfg.model_args = {k: getattr(typed, k) for k in cfg.model_args}  # saved typed in config.json
    return cfg
