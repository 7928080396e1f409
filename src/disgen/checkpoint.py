"""Checkpoints: one dict of tensors and plain values, written atomically, checksummed, and loaded
without running pickled code.

``torch.load(..., weights_only=True)`` refuses arbitrary objects, so a checkpoint from someone else
cannot run code on load. A write goes to a temporary file in the same folder, is flushed to disk
and then renamed over the old one, so a kill mid-write leaves the previous checkpoint intact.

Each checkpoint carries a SHA-256 digest of its own contents (``sha256``: every tensor's dtype,
shape and bytes and every plain value, in key order), checked on load: a truncated file fails to
unzip, and a file damaged after it was written (a flipped bit, a bad copy) no longer matches its
digest. Either way the error names the file, and ``--resume`` falls back to the newest checkpoint
of the run that is still good (:func:`load_latest`).

Test hook: ``DISGEN_FAULT=POINT:N`` makes the process kill itself with SIGKILL the N-th time it
reaches POINT, one of :data:`FAULT_POINTS`, so tests can interrupt a checkpoint write exactly
half-way through, just before the rename or just after it. Unset, it costs one dict lookup.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from disgen import __version__
from disgen.errors import DisgenError

FORMAT = "disgen-checkpoint"
VERSION = 1  # the layout of the dict; bump it when a key changes meaning
FAULT_ENV = "DISGEN_FAULT"
FAULT_POINTS = ("checkpoint-half-written", "checkpoint-before-rename", "checkpoint-after-rename")
_fault_counts: dict[str, int] = {}


def fault(point: str) -> None:
    """Test hook: SIGKILL this process the N-th time ``point`` is reached if DISGEN_FAULT=POINT:N."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _fault_counts[point] = _fault_counts.get(point, 0) + 1
    if _fault_counts[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write(path: Path, write: Callable) -> None:
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


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files that :func:`atomic_write` left in ``folder`` when its process was killed
    mid-write (they are never renamed into place, so nothing reads them)."""
    stale = sorted(Path(folder).glob(".*.tmp")) if Path(folder).is_dir() else []
    for path in stale:
        with contextlib.suppress(OSError):
            path.unlink()
    return stale


def digest(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's contents, its own ``sha256`` entry left out."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "sha256"})
    return h.hexdigest()


def _feed(h, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f"{{{len(obj)};".encode())
        for key in sorted(obj, key=repr):  # keys may mix ints and strings (optimizer states)
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}{len(obj)};".encode())
        for item in obj:
            _feed(h, item)
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def save(path: Path, state: dict[str, Any]) -> None:
    """Save a checkpoint dict atomically, stamped with the format, this writer's versions and
    the digest of it all."""
    state = {**state, "format": FORMAT, "version": VERSION, "disgen": __version__,
             "torch": str(torch.__version__)}
    state["sha256"] = digest(state)

    def write(f) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getbuffer()
        f.write(data[: len(data) // 2])
        f.flush()
        fault("checkpoint-half-written")
        f.write(data[len(data) // 2:])
        f.flush()
        fault("checkpoint-before-rename")

    try:
        atomic_write(Path(path), write)
    except OSError as err:
        raise DisgenError(f"could not write checkpoint {path}: {err.strerror or err}; the previous "
                          "checkpoint is intact: free some disk space (or choose another --run-dir) "
                          "and continue with --resume") from None
    fault("checkpoint-after-rename")


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) and check its format, version and digest."""
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
    check_version(state, path)
    stored = state.get("sha256")  # None: written before checkpoints carried digests
    if stored is not None and stored != digest(state):
        raise DisgenError(f"checkpoint {path} is corrupt: its contents do not match the SHA-256 digest "
                          "stored in it (damaged on disk or in a copy); use another checkpoint of the run")
    return state


def check_version(state: dict[str, Any], path: Path) -> None:
    """Refuse another checkpoint format version, listing what differs from this disgen."""
    if state.get("version") == VERSION:
        return
    theirs = {"format version": state.get("version"), "disgen": state.get("disgen", "unknown"),
              "torch": state.get("torch", "unknown")}
    ours = {"format version": VERSION, "disgen": __version__, "torch": str(torch.__version__)}
    diff = "; ".join(f"{k} {theirs[k]} (this one: {ours[k]})" for k in ours if theirs[k] != ours[k])
    newer = isinstance(theirs["format version"], int) and theirs["format version"] > VERSION
    advice = "upgrade disgen to read it" if newer else "load it with the disgen version that wrote it"
    raise DisgenError(f"checkpoint {path} has format version {theirs['format version']}, this disgen reads "
                      f"version {VERSION}: {diff}; {advice}")


def load_latest(folder: Path, map_location: str | torch.device = "cpu",
                log: Callable[[str], None] = print) -> tuple[dict[str, Any], Path] | None:
    """The newest good checkpoint of a run's ``checkpoints/`` folder (``last.pt``, else ``best.pt``)
    and its path; None if the folder holds neither. A damaged one is named in a warning and skipped;
    if every one is damaged, a :class:`DisgenError` lists why each was refused."""
    folder = Path(folder)
    remove_stale_temps(folder)
    found = [folder / name for name in ("last.pt", "best.pt") if (folder / name).is_file()]
    if not found:
        return None
    good, problems = [], []
    for path in found:
        try:
            good.append((load(path, map_location), path))
        except DisgenError as err:
            problems.append(str(err))
            log(f"warning: {err}")
    if not good:
        raise DisgenError(f"no usable checkpoint in {folder}: " + " | ".join(problems) +
                          "; start the run again in a new --run-dir")
    state, path = max(good, key=lambda sp: sp[0].get("epoch", 0))  # max keeps last.pt on a tie
    if path.name != "last.pt" or problems:
        log(f"warning: continuing from {path} (epoch {state.get('epoch')}), the newest good checkpoint")
    return state, path
