"""Worker processes that decode images, none of which outlives the command that started them.

:class:`Workers` forks a few processes, each with a pipe of its own to this one (no queue shared
between them, so no lock a killed worker could leave held: ``multiprocessing.Pool.terminate``
deadlocks when it kills a worker half-way through putting its result). :func:`imap` maps a
function over jobs in them, a chunk of jobs per message, the results in order. What could leave a
worker behind, or lose a signal, is closed off:

- each worker asks the kernel to kill it when its parent dies (``prctl(PR_SET_PDEATHSIG)``), so a
  SIGKILL of the run leaves none behind holding the run's inherited ``train.lock`` (Linux);
- SIGINT and SIGTERM are held back while the workers are forked and while they are stopped, so a
  signal never lands inside the fork handlers (where its exception is lost) nor half-way through
  the clean-up; it is delivered as soon as they are done;
- workers ignore Ctrl-C (the parent stops them) and die quietly on SIGTERM;
- a worker that dies (the out-of-memory killer) is one error, not a run waiting for ever;
- any way out (done, an error, Ctrl-C, SIGTERM) kills and reaps every worker.

May import: errors.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from typing import Callable, Iterable, Iterator

from disgen.errors import DisgenError

PR_SET_PDEATHSIG = 1
STOPS = {signal.SIGINT, signal.SIGTERM}
POLL_S = 1.0  # how often a wait for results looks for dead workers


def start_worker(parent: int) -> None:
    """In a new worker: die with the parent, no Ctrl-C of its own, quiet on SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)


def serve(conn, parent: int, others: list[int]) -> None:
    """A worker's loop: ``(fn, jobs)`` in, ``[fn(job) for job in jobs]`` out, until None or EOF."""
    start_worker(parent)
    for fd in others:  # the pipes of the workers forked before this one
        with contextlib.suppress(OSError):
            os.close(fd)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        fn, jobs = task
        try:
            reply = ("done", [fn(job) for job in jobs])
        except Exception as err:  # raised again in the parent, as a pool would
            reply = ("raised", err)
        try:
            conn.send(reply)
        except Exception as err:  # an exception that does not pickle
            conn.send(("raised", DisgenError(f"a worker process failed: {type(err).__name__}: {err}")))


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back (pending) inside, delivered after."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


class Workers:
    """``processes`` forked workers, each reached through its own pipe. Use it as a context
    manager: leaving it kills and reaps them all."""

    def __init__(self, processes: int):
        self.procs: list = []
        self.conns: list = []
        try:
            with signals_held():  # a signal held back here is delivered as this block ends
                context = multiprocessing.get_context("fork")
                for _ in range(processes):
                    ours, theirs = context.Pipe()
                    others = [c.fileno() for c in self.conns]
                    proc = context.Process(target=serve, args=(theirs, os.getpid(), others), daemon=True)
                    proc.start()
                    theirs.close()
                    self.procs.append(proc)
                    self.conns.append(ours)
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        with signals_held():
            for proc in self.procs:
                if proc.exitcode is None:
                    proc.kill()
            for proc in self.procs:
                proc.join()
            for conn in self.conns:
                conn.close()
            self.procs, self.conns = [], []

    def imap(self, fn: Callable, jobs: Iterable, chunksize: int = 64) -> Iterator:
        """``fn(job)`` for each job, in order: a chunk of ``chunksize`` jobs sent to each idle
        worker, only as many chunks held as there are workers."""
        it = iter(jobs)
        chunks = enumerate(iter(lambda: list(itertools.islice(it, chunksize)), []))
        idle, busy, done, ahead = list(self.conns), {}, {}, 0
        while True:
            for conn, (i, chunk) in zip(list(idle), chunks):
                idle.remove(conn)
                conn.send((fn, chunk))
                busy[conn] = i
            while ahead in done:
                yield from done.pop(ahead)
                ahead += 1
            if not busy:
                return
            for conn in multiprocessing.connection.wait(list(busy), timeout=POLL_S):
                try:
                    kind, value = conn.recv()
                except (EOFError, OSError):
                    raise self.died() from None
                if kind == "raised":
                    raise value
                done[busy.pop(conn)] = value
                idle.append(conn)
            if any(proc.exitcode is not None for proc in self.procs):
                raise self.died()

    def died(self) -> DisgenError:
        deadline = time.monotonic() + POLL_S  # its pipe closes as it dies: its status is a moment away
        while all(proc.exitcode is None for proc in self.procs) and time.monotonic() < deadline:
            time.sleep(0.01)
        code = next((proc.exitcode for proc in self.procs if proc.exitcode is not None), None)
        how = (
            "exit status unknown"
            if code is None
            else f"killed by signal {-code}"
            if code < 0
            else f"exit status {code}"
        )
        return DisgenError(
            f"a worker process decoding images died ({how}; the out-of-memory killer, or a signal sent to "
            "it): nothing was cached; run the command again, with more memory free"
        )


def imap(fn: Callable, jobs: Iterable, processes: int, chunksize: int = 64) -> Iterator:
    """``fn(job)`` for each job, in order, in ``processes`` workers (in this process where it is 1)."""
    if processes <= 1:
        yield from map(fn, jobs)
        return
    with Workers(processes) as workers:
        yield from workers.imap(fn, jobs, chunksize)
