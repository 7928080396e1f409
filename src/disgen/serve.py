"""``disgen serve RUN_DIR``: a local web page to try a trained model (issue 7).

    disgen serve RUN_DIR [--host 127.0.0.1] [--port 8000] [--checkpoint auto|best|last]

What the page offers follows the run's objective: classifiers (and semi-supervised AAEs) show the
class probabilities of a digit drawn on a canvas or an image dropped on it; autoencoders show its
reconstruction; generators a sample button, a seed, latent sliders and an interpolation between two
seeds; supervised and semi-supervised AAEs also a digit selector. The page is static files shipped
in ``serve_static/`` (no CDN), talking to a small JSON API:

    GET  /api/info          what the run is and which of the endpoints below it offers
    POST /api/predict       image bytes -> class probabilities
    POST /api/reconstruct   image bytes -> the reconstruction
    POST /api/sample        {"seed": N} or {"z": [...]}, optional "label" -> image and its z (or points)
    POST /api/interpolate   {"seed_a": N, "seed_b": M, "steps": S, "label": L} -> images

The run directory is only read. Bodies are limited before they are read in full, at most
``REQUEST_SLOTS`` requests hold a body at once, and one model thread runs every decode and forward
pass in inference mode, so many concurrent requests queue instead of growing memory. Errors are
JSON ``{"error": message}`` with a 4xx status.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import torch

from disgen.cli import command, run_dir_args
from disgen.errors import DisgenError
from disgen.explorer import MAX_UPLOAD_BYTES, Explorer, RequestError, features_of

try:  # the `serve` extra: `disgen serve` says how to install it when missing
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError:  # pragma: no cover - exercised only without the extra
    Starlette = None

STATIC = Path(__file__).with_name("serve_static")
MAX_JSON_BYTES = 64 * 2**10  # a JSON request: a latent vector of a few hundred numbers
REQUEST_SLOTS = 8  # requests reading a body or waiting for the model at once; the rest wait unread
BODY_SECONDS = 30.0  # a body that takes longer (a stalled client) is refused, freeing its slot
PAGE_HEADERS = {  # the page may load only its own files: nothing from the network
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:",
    "X-Content-Type-Options": "nosniff",
}


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to pass ``limit`` bytes: from
    Content-Length before reading, or while streaming a body sent without one; 408 when it takes
    over ``BODY_SECONDS``."""
    length = request.headers.get("content-length")
    if length is not None and not length.isdigit():
        raise RequestError(400, f"bad Content-Length {length[:20]!r}")
    if length is not None and int(length) > limit:
        raise RequestError(413, f"the request body is {int(length):,} bytes; the limit is {limit:,}")

    async def collect() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the request body passes {limit:,} bytes, the limit")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(collect(), BODY_SECONDS)
    except asyncio.TimeoutError:
        raise RequestError(408, f"the request body did not arrive within {BODY_SECONDS:.0f} s") from None


async def read_payload(request: Request, kind: str, upload_limit: int) -> Any:
    """An image endpoint's bytes or a JSON endpoint's object, checked for type and size."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "image":
        if not (ctype.startswith("image/") or ctype == "application/octet-stream"):
            raise RequestError(415, f"send the image file's bytes as image/* or "
                                    f"application/octet-stream, not {ctype or 'no content type'!r}")
        return await read_body(request, upload_limit)
    if ctype != "application/json":
        raise RequestError(415, f"send a JSON object as application/json, not {ctype or 'no content type'!r}")
    raw = await read_body(request, MAX_JSON_BYTES)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as err:  # bad syntax or UTF-8, a 5000-digit number, deep nesting
        raise RequestError(400, f"malformed JSON: {err}") from None
    if not isinstance(body, dict):
        raise RequestError(400, "send a JSON object ({...})")
    return body


async def error_response(request: Request, err: Exception) -> JSONResponse:
    """Every refusal as JSON ``{"error": message}``, with its 4xx status."""
    if isinstance(err, RequestError):  # 408, 413: close, rather than wait for the rest of the body
        return JSONResponse({"error": err.message}, err.status,
                            headers={"Connection": "close"} if err.status in (408, 413) else None)
    if isinstance(err, HTTPException):
        return JSONResponse({"error": err.detail}, err.status_code, headers=err.headers)
    if isinstance(err, DisgenError):  # the user's input, explained
        return JSONResponse({"error": str(err)}, 400)
    return JSONResponse({"error": f"the server failed on this request ({type(err).__name__}); "
                                  "its log has the details"}, 500)


def require_stack() -> None:
    if Starlette is None:
        raise DisgenError("`disgen serve` needs Starlette and uvicorn: pip install 'disgen[serve]'")


def make_app(run_dir: str | Path, checkpoint: str = "auto",
             max_upload_bytes: int = MAX_UPLOAD_BYTES) -> "Starlette":
    """The explorer of ``run_dir`` as an ASGI app (serve it with uvicorn, test it with
    Starlette's TestClient). The run is loaded once, on the CPU."""
    from disgen.api import load

    require_stack()
    run = load(run_dir, checkpoint)
    explorer = Explorer(run, features_of(run), run.checkpoint, max_upload_bytes)  # auto: the one it chose
    worker = ThreadPoolExecutor(1, thread_name_prefix="disgen-serve-model")
    slots = asyncio.Semaphore(REQUEST_SLOTS)

    def in_inference(method: Callable, arg: Any) -> dict:
        with torch.inference_mode():
            return method(arg)

    def post(path: str, method: Callable, kind: str) -> Route:
        async def endpoint(request: Request) -> JSONResponse:
            async with slots:
                payload = await read_payload(request, kind, max_upload_bytes)
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(worker, in_inference, method, payload)
            return JSONResponse(result)

        return Route(path, endpoint, methods=["POST"])

    async def info(request: Request) -> JSONResponse:
        return JSONResponse(explorer.info())

    async def index(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        worker.shutdown(wait=False, cancel_futures=True)

    routes = [Route("/", index), Route("/api/info", info),
              post("/api/predict", explorer.predict, "image"),
              post("/api/reconstruct", explorer.reconstruct, "image"),
              post("/api/sample", explorer.sample, "json"),
              post("/api/interpolate", explorer.interpolate, "json"),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    handlers = {kind: error_response for kind in (RequestError, DisgenError, HTTPException, Exception)}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.explorer = explorer
    return app


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
