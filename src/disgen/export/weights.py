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
from disgen.models.weights import tensor_problem
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
    roles = inference_roles(run)
    tensors = {
        f"{role}.{key}": value.detach().cpu().contiguous()
        for role in roles
        for key, value in run.nets[role].state_dict().items()
    }
    data = safetensors.torch.save(tensors, metadata(run, roles))
    atomic_write(path, lambda f: f.write(data))
    return roles


def rebuild(meta: dict[str, str]) -> tuple[Nets, list[str]]:
    """The networks a file's metadata describes, untrained, and the roles it holds weights of;
    every field checked (a ValueError, KeyError or DisgenError says which)."""
    spec = get_model(meta["model"])
    roles, shape, classes, options = (json.loads(meta[k]) for k in ("roles", "image_shape", "classes", "model_args"))
    if not (isinstance(roles, list) and roles and all(isinstance(r, str) for r in roles)):
        raise ValueError(f"its metadata's roles are {meta['roles'][:40]!r}, not a list of network names")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise ValueError(f"its metadata's classes are {meta['classes'][:40]!r}, not a list of names")
    if not isinstance(shape, list) or not isinstance(options, dict):
        raise ValueError(
            f"its metadata's image_shape {meta['image_shape'][:40]!r} or model_args are not a list and an object"
        )
    nets = spec.build(spec.model_config(options), tuple(shape), len(classes))
    unknown = [r for r in roles if r not in nets]
    if unknown:
        raise ValueError(f"{meta['model']} has no network {unknown[0]!r} (it has {', '.join(nets)})")
    return nets, roles


def load_networks(path: str | Path) -> tuple[Nets, dict[str, str]]:
    """The networks of an exported ``model.safetensors`` rebuilt in eval mode, by role, and the
    file's metadata (``model``, ``image_shape``, ``classes``, ``value_range``, ...)."""
    path = Path(path)
    try:
        with safetensors.safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        nets, roles = rebuild(meta)
    except DisgenError as err:  # an unknown model, options or a shape it refuses
        raise DisgenError(f"{path} cannot be rebuilt from its metadata: {err}; export it again") from None
    except (
        OSError,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        RecursionError,
        safetensors.SafetensorError,
    ) as err:
        raise DisgenError(
            f"{path} is not a safetensors file written by `disgen export` ({type(err).__name__}: {err}); "
            "export it again"
        ) from None
    out = {}
    for role in roles:
        prefix = f"{role}."
        theirs = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        ours = nets[role].state_dict()
        problems = [
            p for k, v in theirs.items() if k in ours and (p := tensor_problem(f"{role}.{k}", v, ours[k], True))
        ]
        try:
            if problems:
                raise RuntimeError("; ".join(problems[:5]))
            nets[role].load_state_dict(theirs)
        except (KeyError, RuntimeError) as err:
            raise DisgenError(f"{path}: the {role} weights do not fit {meta['model']}: {err}") from None
        out[role] = nets[role].to(torch.device("cpu")).eval()
    return out, meta
