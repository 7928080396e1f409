"""One process per run directory (``RUN_DIR/train.lock``, an exclusive flock), and Ctrl-C or
SIGTERM while training said as what to do next.

May import: config, files, errors.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

from disgen.config import TrainConfig
from disgen.errors import DisgenError, Interrupted
from disgen.files import write_error

LOCK = "train.lock"


@contextlib.contextmanager
def lock(run_dir: Path, enabled: bool = True) -> Iterator[None]:
    """Hold ``RUN_DIR/train.lock`` (an exclusive ``flock``) while a process trains in ``run_dir``,
    so a second one stops at once with an error naming the directory and the process that holds
    it. The kernel drops the lock when its process ends, a SIGKILL included: ``--resume`` after a
    kill finds it free. ``enabled=False`` (torchrun's other processes): nothing is locked."""
    if not enabled:
        yield
        return
    path = Path(run_dir) / LOCK
    made = [d for d in [path.parent, *path.parent.parents] if not d.exists()]  # the folders this makes
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise write_error(path, err) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DisgenError(
                f"run directory {run_dir} is in use: {holder(fd)} is training in it (it holds "
                f"{path}); wait for it to end, or stop it and continue with --resume, or choose "
                "another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            if made and os.listdir(path.parent) == [LOCK]:  # a run that stopped before writing anything
                with contextlib.suppress(OSError):
                    path.unlink()
                    for folder in made:  # innermost first; one holding anything else stays
                        folder.rmdir()
    finally:
        os.close(fd)  # drops the lock


def holder(fd: int) -> str:
    """The process holding a run's lock: its pid, written once it has the lock, and its command."""
    for _ in range(20):  # it writes its pid right after taking the lock
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if pid:
            break
        time.sleep(0.05)
    if not pid.isdigit():
        return "another process (pid unknown)"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        command = ""
    return f"process {pid}" + (f" ({command[:200]})" if command else "")


@contextlib.contextmanager
def resumable(cfg: TrainConfig, run_dir: Path) -> Iterator[None]:
    """Ctrl-C or SIGTERM while training becomes :class:`Interrupted`, saying which checkpoint is
    intact and the command that continues the run."""
    try:
        yield
    except KeyboardInterrupt as err:
        last = Path(run_dir) / "checkpoints" / "last.pt"
        state = f"the last checkpoint, {last}, is intact" if last.is_file() else "no checkpoint was written yet"
        raise Interrupted(
            f"{state}: continue with `disgen train {cfg.model} --run-dir {run_dir} --resume`", getattr(err, "signum", 2)
        ) from err
