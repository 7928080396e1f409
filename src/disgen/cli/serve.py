"""`disgen serve`: the command that starts the explorer's web server (disgen.serve)."""

from __future__ import annotations

import ipaddress
import sys

from disgen.cli import command, run_dir_args
from disgen.errors import DisgenError
from disgen.serve.app import BODY_SECONDS, make_app, require_stack
from disgen.serve.server import (
    HEADER_SECONDS,
    MAX_CONNECTIONS,
    bind,
    seconds,
    server,
    url_of,
)


def serve_args(p, argv) -> None:
    run_dir_args(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 opens "
        "the page to your network). Requests must name it, localhost or 127.0.0.1 "
        "as their Host",
    )
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--max-connections",
        type=int,
        default=MAX_CONNECTIONS,
        metavar="N",
        help=f"connections open at once (default {MAX_CONNECTIONS}); one more closes the "
        "oldest still sending its request",
    )
    p.add_argument(
        "--header-timeout",
        type=seconds,
        default=HEADER_SECONDS,
        metavar="SECONDS",
        help=f"time for a request's headers to arrive (default {HEADER_SECONDS:g})",
    )
    p.add_argument(
        "--body-timeout",
        type=seconds,
        default=BODY_SECONDS,
        metavar="SECONDS",
        help=f"time for a request's body to arrive (default {BODY_SECONDS:g})",
    )


@command("serve", serve_args)
def cmd_serve(args) -> None:
    require_stack()
    if not 0 <= args.port <= 65535:
        raise DisgenError(f"--port {args.port}: choose a port from 0 to 65535")
    if args.max_connections < 1:
        raise DisgenError(f"--max-connections {args.max_connections}: choose at least 1")
    app = make_app(args.run_dir, args.checkpoint, host=args.host, body_seconds=args.body_timeout)
    uv = server(app, args.max_connections, args.header_timeout)
    sock = bind(args.host, args.port)
    if not ipaddress.ip_address(sock.getsockname()[0]).is_loopback:
        print(f"disgen serve: listening on {args.host}: other computers can reach this page", file=sys.stderr)
    print(f"disgen serve: {args.run_dir} at {url_of(sock)} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    uv.run(sockets=[sock])
