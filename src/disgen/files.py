"""Files written so that a kill never leaves half of one, and files read without trusting them.

:func:`atomic_write` writes to a temporary file in the same folder, flushes it to disk and renames
it over the old one, so a kill mid-write leaves the previous file intact; every run file, checkpoint,
decoded-dataset cache and submission is written through it. :func:`holds_code` tells a refused
pickle (code that would run on load) from bytes that are no pickle at all.

Test hook: ``DISGEN_FAULT=POINT:N`` makes the process kill itself with SIGKILL the N-th time it
reaches POINT, one of :data:`FAULT_POINTS`, so tests can interrupt a checkpoint write exactly
half-way through, just before the rename or just after it. Unset, it costs one dict lookup.

Imports nothing of disgen but its errors.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import re
import signal
import stat
import tempfile
from pathlib import Path
from typing import Callable

from disgen.errors import DisgenError

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


def write_error(path: Path, err: OSError) -> DisgenError:
    """A failed write of a run file (a full disk, a read-only folder) as one clear error."""
    return DisgenError(
        f"could not write {path}: {err.strerror or err}; free some disk space or check the "
        "folder's permissions (a training run then continues with --resume)"
    )


def plain_json(obj):
    """``obj`` with every NaN or infinite float replaced by None: JSON has no NaN, and a file
    holding a bare ``NaN`` is not JSON to other readers."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_json(v) for v in obj]
    return obj


def write_json(path: Path, obj: dict) -> None:
    text = json.dumps(plain_json(obj), indent=2, allow_nan=False) + "\n"
    try:
        atomic_write(path, lambda f: f.write(text.encode()))
    except OSError as err:
        raise write_error(path, err) from None


def special_file(path: Path) -> str | None:
    """What ``path`` is, in words, when it exists and is neither a regular file nor a folder: a
    FIFO (opening it waits for a writer for ever), a device (``/dev/zero`` never ends), a socket.
    None for a file, a folder or nothing."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, what in (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "neither a file nor a folder"


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: one starting as a formula does (``=1+1``,
    ``+``, ``-``, ``@``, a tab or carriage return; OWASP's CSV injection) gets a leading ``'``, and
    control characters (NUL...) are written as ``\\xNN``."""
    text = visible(text)
    return "'" + text if text.startswith(FORMULA_START) else text


def visible(text: str) -> str:
    """``text`` with its control characters (NUL, escape...; not tab or line ends) as ``\\xNN``."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def holds_code(err: pickle.UnpicklingError) -> bool:
    """Whether ``torch.load(weights_only=True)`` refused a Python object (code that would run when
    unpickled), rather than bytes that are no pickle at all. Its message would advise loading
    the file unsafely, so it is never shown."""
    why = str(err).partition("WeightsUnpickler error:")[2]  # torch's reason, after its advice
    return bool(re.search(r"global|reduce|build|class", why, re.IGNORECASE))  # not e.g. "Unsupported operand"
