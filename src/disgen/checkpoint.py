"""Checkpoints: one dict of tensors and plain values, written atomically, loaded without pickle.

``torch.load(..., weights_only=True)`` refuses arbitrary objects, so a checkpoint from someone else
cannot run code on load. A write goes to a temporary file in the same folder, is flushed to disk
and then renamed over the old one, so a kill mid-write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from disgen.errors import DisgenError

FORMAT = "disgen-checkpoint"
VERSION = 1


def atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temp file next to ``path``, fsync it, and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save(path: Path, state: dict[str, Any]) -> None:
    """Save a checkpoint dict atomically (adds the format marker and version)."""
    state = {"format": FORMAT, "version": VERSION, **state}
    try:
        atomic_write(Path(path), lambda f: torch.save(state, f))
    except OSError as err:
        raise DisgenError(f"could not write checkpoint {path}: {err.strerror or err}; "
                          "free some disk space or choose another --run-dir") from None


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``), with a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DisgenError(f"checkpoint {path} does not exist; train first or pass the right run directory")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt zip, truncated file, or a pickle holding code
        raise DisgenError(f"checkpoint {path} cannot be loaded safely ({type(err).__name__}: "
                          f"{(str(err).splitlines() or [''])[0][:200]}); it may be truncated, corrupt or "
                          "not a disgen checkpoint") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DisgenError(f"{path} is not a disgen checkpoint")
    if state.get("version") != VERSION:
        raise DisgenError(f"checkpoint {path} has format version {state.get('version')}, "
                          f"this disgen reads version {VERSION}")
    return state
