"""The model registry: every model family registers a :class:`ModelSpec` under its CLI name.

One file per model family holds its config dataclass, its ``nn.Module``s, its presets and a builder
decorated with :func:`register_model`. The registry drives the CLI's choices, ``disgen models`` and
the test suite's parametrisation, so a new model gets its tests for free.
"""
from __future__ import annotations

import importlib
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from torch import nn

from disgen.errors import DisgenError

# (C, H, W) of the training images and the number of classes: what a builder needs from the data.
DataInfo = tuple[tuple[int, int, int], int]
Builder = Callable[[Any, tuple[int, int, int], int], dict[str, nn.Module]]


@dataclass
class ModelSpec:
    """What the registry knows about one model.

    ``objective`` picks the step function the Trainer runs (see ``disgen.objectives``).
    ``presets`` maps a preset name to overrides: keys of ``TrainConfig`` plus ``model``, a dict of
    overrides of ``config_cls``. Every model has ``seed`` (the source document's hyperparameters,
    unchanged) and ``default`` (disgen's recommendation, which may improve on it).
    """

    name: str
    objective: str
    config_cls: type
    build: Builder
    presets: dict[str, dict] = field(default_factory=dict)
    description: str = ""
    value_range: tuple[float, float] = (0.0, 1.0)  # pixel range the model sees; (-1, 1) for tanh GANs
    # The data shape the model needs, e.g. (2,) for 2-D points or (3, 64, 64); image folders are
    # resized to it. None: the networks adapt to the dataset's (C, H, W).
    input_shape: tuple[int, ...] | None = None

    def data_shape(self, model_cfg: Any) -> tuple[int, ...] | None:
        """The shape image folders are decoded to: ``input_shape``, unless the model config sizes
        it itself (``data_shape()``, e.g. resnet-transfer's ``--image-size``)."""
        return model_cfg.data_shape() if hasattr(model_cfg, "data_shape") else self.input_shape

    def model_config(self, overrides: dict | None = None) -> Any:
        """The model config dataclass with ``overrides`` applied, checking the field names."""
        overrides = dict(overrides or {})
        known = {f.name for f in fields(self.config_cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise DisgenError(
                f"model {self.name!r} has no option {', '.join(unknown)}; "
                f"its options are: {', '.join(sorted(known))}"
            )
        from disgen.config import coerce

        hints = typing.get_type_hints(self.config_cls)
        return self.config_cls(**{k: coerce(k, v, hints[k]) for k, v in overrides.items()})


# The largest data a model is built for: (C, H, W) images, or (D,) points. A side of 8192 pixels
# is 16 times ImageNet's crop; a bigger one is a corrupt or hostile header, not a dataset.
MAX_CHANNELS, MAX_SIDE, MAX_POINT_DIM = 4, 8192, 4096


def check_data_shape(shape: Any, what: str) -> tuple[int, ...]:
    """``shape`` as a tuple if it is one a model can be built for, else a DisgenError naming ``what``."""
    ints = isinstance(shape, (list, tuple)) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                                                     for n in shape)
    ok = ints and (len(shape) == 3 and shape[0] <= MAX_CHANNELS and max(shape[1:]) <= MAX_SIDE
                   or len(shape) == 1 and shape[0] <= MAX_POINT_DIM)
    if not ok:
        raise DisgenError(f"{what} {shape!r} is not a data shape a model can be built for: (C, H, W) with C in "
                          f"1..{MAX_CHANNELS} and H, W in 1..{MAX_SIDE}, or (D,) points with D in 1..{MAX_POINT_DIM}")
    return tuple(shape)


_REGISTRY: dict[str, ModelSpec] = {}
_MODULES = ("mlp_classifier", "mlp_autoencoder", "cnn_classifier", "gan2d", "dcgan28", "dcgan64", "aae",
            "resnet_transfer")


def register_model(
    name: str, *, objective: str, config: type, presets: dict[str, dict], description: str = "",
    value_range: tuple[float, float] = (0.0, 1.0), input_shape: tuple[int, ...] | None = None,
) -> Callable[[Builder], Builder]:
    """Register ``build(cfg, image_shape, num_classes) -> {role: module}`` under ``name``."""

    def wrap(build: Builder) -> Builder:
        if "seed" not in presets or "default" not in presets:
            raise ValueError(f"model {name} must define 'seed' and 'default' presets")
        _REGISTRY[name] = ModelSpec(name, objective, config, build, presets, description, value_range,
                                    input_shape)
        return build

    return wrap


def _import_all() -> None:
    for module in _MODULES:
        importlib.import_module(f"disgen.models.{module}")


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


def activation(name: str) -> nn.Module:
    """A fresh activation module by name: sigmoid, relu, tanh, gelu or leaky_relu (slope 0.2)."""
    table = {
        "sigmoid": nn.Sigmoid,
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
        "leaky_relu": lambda: nn.LeakyReLU(0.2),
    }
    if name not in table:
        raise DisgenError(f"unknown activation {name!r}: use one of {', '.join(table)}")
    return table[name]()
