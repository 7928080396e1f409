"""safetensors files: the state dicts of the networks inference needs, in one file, keyed
``ROLE.PARAMETER`` (the run's network roles: ``model``; ``generator`` or ``generator_ema``;
``encoder`` and ``decoder``), with what rebuilds them in the file's metadata: the model's name,
its options (``model_args``), the image shape and the classes.

:func:`load_networks` rebuilds them with nothing but disgen and the file; the check runs the
rebuilt networks against the run's own outputs.

May import: api and every layer below it.
"""

from __future__ import annotations

import json
from pathlib import Path

import safetensors.torch
import torch

from disgen.api import Run
from disgen.errors import DisgenError
from disgen.export.networks import inference_roles
from disgen.files import atomic_write
from disgen.models import Nets, get_model
from disgen.version import __version__


def metadata(run: Run, roles: list[str]) -> dict[str, str]:
    """The file's metadata (safetensors keeps str -> str): enough to rebuild ``roles``."""
    return {
        "format": "pt",
        "library": "disgen",
        "disgen": __version__,
        "model": run.spec.name,
        "model_args": json.dumps(run.config.model_args),
        "image_shape": json.dumps(list(run.image_shape)),
        "classes": json.dumps(list(run.classes)),
        "value_range": json.dumps(list(run.spec.value_range)),
        "roles": json.dumps(roles),
        "checkpoint": run.checkpoint,
        "epoch": json.dumps(run.epoch),
    }


def write(run: Run, path: Path) -> list[str]:
    """The run's inference networks into ``path``; returns their roles."""
    roles = inference_roles(run.spec.objective, run.nets)
    tensors = {
        f"{role}.{key}": value.detach().cpu().contiguous()
        for role in roles
        for key, value in run.nets[role].state_dict().items()
    }
    data = safetensors.torch.save(tensors, metadata(run, roles))
    atomic_write(path, lambda f: f.write(data))
    return roles


def load_networks(path: str | Path) -> tuple[Nets, dict[str, str]]:
    """The networks of an exported ``model.safetensors`` rebuilt in eval mode, by role, and the
    file's metadata (``model``, ``image_shape``, ``classes``, ``value_range``, ...)."""
    path = Path(path)
    try:
        with safetensors.safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        spec = get_model(meta["model"])
        roles, shape = json.loads(meta["roles"]), tuple(json.loads(meta["image_shape"]))
        classes = json.loads(meta["classes"])
        nets = spec.build(spec.model_config(json.loads(meta["model_args"])), shape, len(classes))
    except (OSError, KeyError, ValueError, TypeError, safetensors.SafetensorError) as err:
        raise DisgenError(
            f"{path} is not a safetensors file written by `disgen export` ({type(err).__name__}: {err}); "
            "export it again"
        ) from None
    out = {}
    for role in roles:
        prefix = f"{role}."
        try:
            nets[role].load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        except (KeyError, RuntimeError) as err:
            raise DisgenError(f"{path}: the {role} weights do not fit {meta['model']}: {err}") from None
        out[role] = nets[role].to(torch.device("cpu")).eval()
    return out, meta
