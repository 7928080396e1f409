"""The model registry: every model family registers a :class:`ModelSpec` under its CLI name.

One file per model family in this package holds its config dataclass, its ``nn.Module``s, its
presets and a builder decorated with :func:`register_model`; the registry imports every module of
the package, so a new family is one new file. The registry drives the CLI's choices, ``disgen
models`` and the test suite's parametrisation, so a new model gets its tests for free.
:func:`resolve` makes a run's TrainConfig from a model's preset.

May import: data, config, errors and the sibling limits (the size checks of a build).
"""

from __future__ import annotations

import importlib
import pkgutil
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from torch import nn

from disgen.config import TrainConfig, coerce, from_dict, load_config_file, validate
from disgen.errors import DisgenError
from disgen.models.limits import check_data_shape, check_options, check_size

Nets = dict[str, nn.Module]  # a run's networks by role: "model", or "generator" and "discriminator", ...
# build(model config, (C, H, W) or (D,) of the data, number of classes) -> {role: module}
Builder = Callable[[Any, tuple[int, ...], int], dict[str, nn.Module]]


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
    ``short_budget`` names the preset whose network and settings a ``budget`` run takes where its
    budget holds under one epoch of the ``budget`` network (the model's own policy, found on its
    validation split; disgen.training.budget times the steps and applies it). None: no such switch.
    """

    name: str
    objective: str
    config_cls: type
    builder: Builder
    presets: dict[str, dict] = field(default_factory=dict)
    description: str = ""
    value_range: tuple[float, float] = (0.0, 1.0)  # pixel range the model sees; (-1, 1) for tanh GANs
    short_budget: str | None = None  # the preset a budget of under one epoch takes (see above)

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


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    objective: str,
    config: type,
    presets: dict[str, dict],
    description: str = "",
    value_range: tuple[float, float] = (0.0, 1.0),
    short_budget: str | None = None,
) -> Callable[[Builder], Builder]:
    """Register ``build(cfg, image_shape, num_classes) -> {role: module}`` under ``name``."""

    def wrap(build: Builder) -> Builder:
        if "default" not in presets:  # "seed" too where the model follows a source document
            raise ValueError(f"model {name} must define a 'default' preset")
        if short_budget is not None and not {"budget", short_budget} <= set(presets):
            raise ValueError(f"model {name}: short_budget {short_budget!r} needs the presets 'budget' and it")
        _REGISTRY[name] = ModelSpec(name, objective, config, build, presets, description, value_range, short_budget)
        return build

    return wrap


def _import_all() -> None:
    """Every module of this package, so each family's file registers itself: no list to keep."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"disgen.models.{module.name}")


def list_models() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def get_model(name: str) -> ModelSpec:
    _import_all()
    if name not in _REGISTRY:
        raise DisgenError(f"unknown model {name!r}: choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


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
