"""The server around the explorer's app: the listening socket, uvicorn, and the ``disgen serve``
command. :func:`serving` runs an app in a background thread (the tests and the screenshot script).
"""
from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys

from disgen.cli import command, run_dir_args
from disgen.errors import DisgenError
from disgen.serve.app import make_app, require_stack


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port), refused with a clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise DisgenError(f"cannot listen on {host}:{port} ({err.strerror or err}): choose another "
                          "--port, or a --host of this computer") from None
    sock.listen(2048)  # uvicorn's default backlog: bursts of connections wait, not fail
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


@contextlib.contextmanager
def serving(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0):
    """Serve ``app`` with uvicorn in a background thread; yields its URL once it answers.

        with serving(make_app("runs/my-run")) as url:
            ...  # a browser (or urllib) talks to url
    """
    import threading
    import time

    import uvicorn

    sock = bind(host, port)
    url = url_of(sock)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise DisgenError(f"the server on {url} did not start within {timeout:.0f} s")
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def serve_args(p, argv) -> None:
    run_dir_args(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 opens "
                        "the page to your network)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")


@command("serve", "a local web page to try a trained model: draw digits, sample, interpolate",
         serve_args)
def cmd_serve(args) -> None:
    require_stack()
    import uvicorn

    if not 0 <= args.port <= 65535:
        raise DisgenError(f"--port {args.port}: choose a port from 0 to 65535")
    app = make_app(args.run_dir, args.checkpoint)
    sock = bind(args.host, args.port)
    if not ipaddress.ip_address(sock.getsockname()[0]).is_loopback:
        print(f"disgen serve: listening on {args.host}: other computers can reach this page",
              file=sys.stderr)
    print(f"disgen serve: {args.run_dir} at {url_of(sock)} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
