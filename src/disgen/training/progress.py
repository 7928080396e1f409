"""Training progress on stderr: a live tqdm bar on a terminal; elsewhere (a notebook cell, nohup,
CI, ``| tee``) a plain line every ``DISGEN_PROGRESS_SECONDS`` seconds (default 10) with the epoch,
step/total, rate and ETA, so a long epoch never looks like a hang."""

from __future__ import annotations

import os
import sys
import time
from typing import Callable

from disgen.errors import DisgenError

DEFAULT_SECONDS = 10.0


def interval() -> float:
    """Seconds between progress lines: DISGEN_PROGRESS_SECONDS, else DEFAULT_SECONDS."""
    raw = os.environ.get("DISGEN_PROGRESS_SECONDS", "")
    if not raw:
        return DEFAULT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e6:
        raise DisgenError(f"DISGEN_PROGRESS_SECONDS={raw!r}: give a number of seconds above 0, e.g. 10")
    return value


class ProgressLines:
    """tqdm's ``update``/``set_postfix``/``close``, printing a line when ``every`` seconds have
    passed since the last (``clock`` and ``write`` replaceable for tests)."""

    def __init__(
        self,
        total: int,
        desc: str,
        every: float,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], None] | None = None,
    ):
        self.total, self.desc, self.every, self.clock = total, desc, every, clock
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.start = self.last = clock()
        self.done, self.postfix = 0, {}

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.every and self.done < self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate
            shown = "".join(f" {k}={v}" for k, v in self.postfix.items())
            self.write(
                f"{self.desc} step {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), "
                f"{rate:.3g} steps/s, ETA {duration(eta)}{shown}"
            )

    def set_postfix(self, values: dict) -> None:
        self.postfix = dict(values)

    def close(self) -> None:
        pass


def duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


def progress(total: int, desc: str, enabled: bool):
    """A tqdm bar when stderr is a terminal, progress lines when it is not, None when disabled."""
    if not enabled:
        return None
    if not sys.stderr.isatty():
        return ProgressLines(total, desc, interval())
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
