"""Worker processes that decode images, none of which outlives the command that started them.

:func:`imap` maps a function over jobs in a pool of forked workers (``multiprocessing.Pool``: it
has a public ``terminate``). What could leave a worker behind, or lose a signal, is closed off:

- each worker asks the kernel to kill it when its parent dies (``prctl(PR_SET_PDEATHSIG)``), so a
  SIGKILL of the run leaves no worker blocked on its pipe, holding the run's inherited
  ``train.lock`` (Linux; elsewhere the pipe's end stops them);
- SIGINT and SIGTERM are blocked while the workers are forked and while they are stopped, so a
  signal never lands inside the fork handlers (where its exception is lost) nor half-way through
  the clean-up; it is delivered as soon as they are done;
- workers ignore Ctrl-C (the parent stops them) and die quietly on SIGTERM;
- any way out of the loop (done, an error, Ctrl-C, SIGTERM) terminates and joins the pool.

May import: errors.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import multiprocessing
import os
import signal
import sys
from typing import Callable, Iterable, Iterator

from disgen.errors import DisgenError

PR_SET_PDEATHSIG = 1
STOPS = {signal.SIGINT, signal.SIGTERM}


def start_worker(parent: int) -> None:
    """Pool initializer: die with the parent, no Ctrl-C of its own, quiet on SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back (pending) inside, delivered after."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def run_chunk(fn: Callable, jobs: list) -> list:
    return [fn(job) for job in jobs]


class Workers:
    """``processes`` forked workers; :meth:`imap` maps a function over jobs in them. Use it as a
    context manager: leaving it (done, an error, Ctrl-C, SIGTERM) terminates and joins them."""

    def __init__(self, processes: int):
        before = set(multiprocessing.active_children())
        self.pool = None
        try:
            with signals_held():  # a signal held back here is delivered as this block ends
                self.pool = multiprocessing.get_context("fork").Pool(processes, start_worker, (os.getpid(),))
        except BaseException:
            self.stop()
            raise
        self.members = set(multiprocessing.active_children()) - before

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.pool is not None:
            with signals_held():
                self.pool.terminate()
                self.pool.join()

    def imap(self, fn: Callable, jobs: Iterable, chunksize: int = 64) -> Iterator:
        """``fn(job)`` for each job, in order. A worker that dies (the out-of-memory killer, a
        signal) would leave its jobs unanswered for ever: it is one error instead."""
        chunks = iter(lambda it=iter(jobs): list(itertools.islice(it, chunksize)), [])
        results = self.pool.imap(functools.partial(run_chunk, fn), chunks)  # chunksize 1: next(timeout)
        while True:
            try:
                yield from results.next(timeout=1.0)
            except StopIteration:
                return
            except multiprocessing.TimeoutError:
                dead = [p for p in self.members if p.exitcode is not None]
                if dead:
                    code = dead[0].exitcode
                    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                    raise DisgenError(
                        f"a worker process decoding images died ({how}; the out-of-memory killer, or a signal "
                        "sent to it): nothing was cached; run the command again, with more memory free"
                    ) from None


def imap(fn: Callable, jobs: Iterable, processes: int, chunksize: int = 64) -> Iterator:
    """``fn(job)`` for each job, in order, in ``processes`` workers (in this process where it is 1)."""
    if processes <= 1:
        yield from map(fn, jobs)
        return
    with Workers(processes) as workers:
        yield from workers.imap(fn, jobs, chunksize)
