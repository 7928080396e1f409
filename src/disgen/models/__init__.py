"""Models: one file per model family (its config dataclass, its ``nn.Module``s, its presets and a
builder registered under its CLI name), and what the families share:

    registry   ModelSpec, register_model, list_models, get_model, resolve (a run's TrainConfig), Nets
    limits     the data shapes and sizes a model is built within, checked before any memory is taken
    layers     shared layer helpers (init, activations, batch mixing, inference mode, weight averages)
    weights    pretrained weights from files and torchvision's checkpoints

May import: data, config, files, errors. Never runs, objectives or anything above.
"""

from __future__ import annotations

from disgen.models.layers import (
    ACTIVATIONS,
    BATCH_NORMS,
    GAN_LOSSES,
    activation,
    add_ema,
    gan_loss_option,
    inference,
    init_uniform,
    per_sample,
    update_ema,
)
from disgen.models.limits import (
    MAX_ACTIVATION_BYTES,
    MAX_CHANNELS,
    MAX_LAYERS,
    MAX_POINT_DIM,
    MAX_SIDE,
    MAX_SIZE,
    TRAIN_BYTES_PER_PARAM,
    activation_bytes,
    check_data_shape,
    check_options,
    check_size,
)
from disgen.models.registry import (
    Builder,
    ModelSpec,
    Nets,
    default_preset,
    get_model,
    list_models,
    register_model,
    resolve,
)

__all__ = [
    "ACTIVATIONS",
    "BATCH_NORMS",
    "GAN_LOSSES",
    "MAX_ACTIVATION_BYTES",
    "MAX_CHANNELS",
    "MAX_LAYERS",
    "MAX_POINT_DIM",
    "MAX_SIDE",
    "MAX_SIZE",
    "TRAIN_BYTES_PER_PARAM",
    "Builder",
    "ModelSpec",
    "Nets",
    "activation",
    "activation_bytes",
    "add_ema",
    "check_data_shape",
    "check_options",
    "check_size",
    "default_preset",
    "gan_loss_option",
    "get_model",
    "inference",
    "init_uniform",
    "list_models",
    "per_sample",
    "register_model",
    "resolve",
    "update_ema",
]
