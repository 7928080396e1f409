"""The explorer's ASGI app: routes, the JSON API's request reading (content types, body limits
and time limits) and its errors. :func:`make_app` builds it for one run directory; the model side
is :mod:`disgen.serve.explorer`, the server around it :mod:`disgen.serve.server`.

Bodies are limited in size before they are read in full and in time before a request waits for
the model (a stalled body cannot hold a place in that queue); at most ``REQUEST_SLOTS`` requests
are handed to the one model thread, which runs every decode and forward pass in inference mode.
Only requests naming this server in their Host header are answered (no DNS rebinding), each on a
connection of its own. Errors are JSON ``{"error": message}`` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import torch

from disgen.errors import DisgenError
from disgen.serve.explorer import MAX_UPLOAD_BYTES, Explorer, RequestError, features_of

try:  # the `serve` extra: `disgen serve` says how to install it when missing
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError:  # pragma: no cover - exercised only without the extra
    Starlette = None

STATIC = Path(__file__).with_name("static")
MAX_JSON_BYTES = 64 * 2**10  # a JSON request: a latent vector of a few hundred numbers
REQUEST_SLOTS = 8  # requests handed to the model thread at once; the rest wait, their bodies read
BODY_SECONDS = 30.0  # a body that takes longer to arrive (a stalled client) is refused with 408
LOOPBACK = ("127.0.0.1", "localhost", "::1")  # the names a server on this computer always answers to
HOST = re.compile(r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[^:\[\]]+))(?::[0-9]*)?")  # a Host header
PAGE_HEADERS = {  # the page may load only its own files: nothing from the network
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:",
    "X-Content-Type-Options": "nosniff",
}


async def read_body(request: Request, limit: int, seconds: float) -> bytes:
    """The request body, refused with 413 as soon as it is known to pass ``limit`` bytes: from
    Content-Length before reading, or while streaming a body sent without one; 408 when it takes
    over ``seconds``."""
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
        return await asyncio.wait_for(collect(), seconds)
    except asyncio.TimeoutError:
        raise RequestError(408, f"the request body did not arrive within {seconds:g} s") from None


async def read_payload(request: Request, kind: str, upload_limit: int, seconds: float) -> Any:
    """An image endpoint's bytes or a JSON endpoint's object, checked for type and size."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "image":
        if not (ctype.startswith("image/") or ctype == "application/octet-stream"):
            raise RequestError(
                415,
                f"send the image file's bytes as image/* or "
                f"application/octet-stream, not {ctype or 'no content type'!r}",
            )
        return await read_body(request, upload_limit, seconds)
    if ctype != "application/json":
        raise RequestError(415, f"send a JSON object as application/json, not {ctype or 'no content type'!r}")
    raw = await read_body(request, MAX_JSON_BYTES, seconds)
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
        return JSONResponse(
            {"error": err.message}, err.status, headers={"Connection": "close"} if err.status in (408, 413) else None
        )
    if isinstance(err, HTTPException):
        return JSONResponse({"error": err.detail}, err.status_code, headers=err.headers)
    if isinstance(err, DisgenError):  # the user's input, explained
        return JSONResponse({"error": str(err)}, 400)
    return JSONResponse(
        {"error": f"the server failed on this request ({type(err).__name__}); its log has the details"}, 500
    )


async def client_gone(request: Request, err: Exception) -> Response:
    """A client that left mid-request (it closed, or gave way to a newer connection): there is no
    one to answer and nothing wrong with the server, so no traceback and no log line."""
    return Response(status_code=400)  # goes nowhere: uvicorn drops what is sent to a closed connection


def canonical(name: str) -> tuple[str, bool]:
    """A host name as it is, or an IP address in its one written form (``0:0::1`` -> ``::1``);
    and whether it is an address."""
    try:
        return str(ipaddress.ip_address(name)), True
    except ValueError:
        return name, False


class ThisServerOnly:
    """ASGI middleware: answers only requests whose Host header names this server, whatever the
    path (page, static files, API). A page of another site can make its own name resolve to
    127.0.0.1 (DNS rebinding) and would then read the answers; its requests carry that name as
    Host, so they get 421. The names: ``LOOPBACK`` and ``host``, the address listened on, with or
    without a port; listening on every address (0.0.0.0, ::) also admits any IP address, which no
    other site can take as its name. Every answer also closes its connection: one request per
    connection keeps the server's count of open connections a count of clients at work."""

    def __init__(self, app, host: str = "127.0.0.1"):
        self.app = app
        self.any_address = host == "" or canonical(host.strip("[]"))[0] in ("0.0.0.0", "::")
        names = LOOPBACK if self.any_address else (*LOOPBACK, host.strip("[]").lower())
        self.names = list(dict.fromkeys(canonical(n)[0] for n in names))

    def refusal(self, hosts: list[bytes]) -> JSONResponse | None:
        if len(hosts) != 1:
            return JSONResponse({"error": "send one Host header naming this server"}, 400)
        value = hosts[0].decode("latin-1")
        match = HOST.fullmatch(value.strip().lower())
        name, is_address = canonical(match["ipv6"] or match["name"]) if match else ("", False)
        if name in self.names or (self.any_address and is_address):
            return None
        known = ", ".join(f"[{n}]" if ":" in n else n for n in self.names)
        return JSONResponse(
            {
                "error": f"the Host header {value[:80]!r} does not name this server "
                f"({known}{', or an IP address' if self.any_address else ''}): "
                "refused, so that pages of other sites cannot read its answers"
            },
            421,
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self.refusal([v for k, v in scope["headers"] if k == b"host"])
        if refusal is not None:
            return await refusal(scope, receive, send)

        async def closing(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"connection" for k, _ in headers):
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)


def require_stack() -> None:
    if Starlette is None:
        raise DisgenError("`disgen serve` needs Starlette and uvicorn: pip install 'disgen[serve]'")


def make_app(
    run_dir: str | Path,
    checkpoint: str = "auto",
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    host: str = "127.0.0.1",
    body_seconds: float = BODY_SECONDS,
) -> "Starlette":
    """The explorer of ``run_dir`` as an ASGI app (serve it with :mod:`disgen.serve.server`, test it
    with Starlette's TestClient on ``base_url="http://localhost"``), answering requests for
    ``host``, the address it is served on (see :class:`ThisServerOnly`). The run is loaded once,
    on the CPU."""
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
            payload = await read_payload(request, kind, max_upload_bytes, body_seconds)
            async with slots:  # only once the body is here: a stalled client never holds a slot
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

    routes = [
        Route("/", index),
        Route("/api/info", info),
        post("/api/predict", explorer.predict, "image"),
        post("/api/reconstruct", explorer.reconstruct, "image"),
        post("/api/sample", explorer.sample, "json"),
        post("/api/interpolate", explorer.interpolate, "json"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {kind: error_response for kind in (RequestError, DisgenError, HTTPException, Exception)}
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(ThisServerOnly, host=host)],
        exception_handlers={**handlers, ClientDisconnect: client_gone},
    )
    app.state.explorer = explorer
    return app
