"""The server around the explorer's app: the listening socket, uvicorn with the connection limits
of :mod:`disgen.serve.connections`, and the ``disgen serve`` command. :func:`serving` runs an app
in a background thread (the tests and the screenshot script).
"""

from __future__ import annotations

import contextlib
import math
import socket

from disgen.errors import DisgenError

MAX_CONNECTIONS = 256  # open at once; a browser uses 6, the 200 requests of a load test fit
HEADER_SECONDS = 10.0  # for a request's head, from the moment its connection opens
SPARE_FILES = 64  # file descriptors besides the connections: the run's files, the listening socket


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port), refused with a clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise DisgenError(
            f"cannot listen on {host}:{port} ({err.strerror or err}): choose another "
            "--port, or a --host of this computer"
        ) from None
    sock.listen(2048)  # uvicorn's default backlog: bursts of connections wait, not fail
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def server(app, max_connections: int = MAX_CONNECTIONS, header_seconds: float = HEADER_SECONDS):
    """uvicorn serving ``app``, each connection watched (:class:`~disgen.serve.connections.Connections`)."""
    import uvicorn

    from disgen.serve.connections import HEAD_BYTES, Connections

    allow_files(max_connections + SPARE_FILES)
    connections = Connections(max_connections, header_seconds)
    return uvicorn.Server(
        uvicorn.Config(app, log_level="warning", http=connections.protocol, h11_max_incomplete_event_size=HEAD_BYTES)
    )


def allow_files(n: int) -> None:
    """Let this process open ``n`` files (sockets), raising its soft limit up to the hard one."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows: no such per-process limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            raise DisgenError(
                f"--max-connections {n - SPARE_FILES}: this process may open at most "
                f"{hard} files (ulimit -Hn); choose at most {hard - SPARE_FILES}"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


@contextlib.contextmanager
def serving(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0, **limits):
    """Serve ``app`` in a background thread; yields its URL once it answers. ``limits``: those of
    :func:`server`.

        with serving(make_app("runs/my-run")) as url:
            ...  # a browser (or urllib) talks to url
    """
    import threading
    import time

    sock = bind(host, port)
    url = url_of(sock)
    uv = server(app, **limits)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise DisgenError(f"the server on {url} did not start within {timeout:.0f} s")
        time.sleep(0.02)
    try:
        yield url
    finally:
        uv.should_exit = True
        thread.join(timeout)
        sock.close()


def seconds(text: str) -> float:
    """A time limit flag's value: a positive number of seconds."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(text)
    return value
