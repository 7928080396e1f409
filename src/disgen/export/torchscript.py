"""TorchScript files: each network traced (``torch.jit.trace``) and saved with ``torch.jit.save``;
the check loads them back with ``torch.jit.load``. Tracing records the operations of one call, so
a network whose control flow depends on its input would be caught by the check's two batch sizes.

May import: api and every layer below it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from disgen.export.check import Runner, module_runner
from disgen.export.networks import Network
from disgen.files import atomic_write


def write(net: Network, path: Path) -> None:
    with warnings.catch_warnings():  # TracerWarnings: what they warn of, the check measures
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(net.module, net.example(), check_trace=False)
    atomic_write(path, lambda f: torch.jit.save(traced, f))


def runner(paths: dict[str, Path], networks: list[Network]) -> Runner:
    """Runs the written files, loaded back with torch.jit.load."""
    modules = {name: torch.jit.load(str(path), map_location="cpu").eval() for name, path in paths.items()}
    return module_runner(modules, networks)
