"""The explorer's ASGI app: routes, the JSON API's request reading (content types, body limits
and time limits) and its errors. :func:`make_app` builds it for one run directory; the model side
is :mod:`disgen.serve.explorer`, the server around it :mod:`disgen.serve.server`.

Bodies are limited before they are read in full, at most ``REQUEST_SLOTS`` requests hold a body at
once, and one model thread runs every decode and forward pass in inference mode, so many concurrent
requests queue instead of growing memory. Errors are JSON ``{"error": message}`` with a 4xx status.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import torch

from disgen.errors import DisgenError
from disgen.serve.explorer import MAX_UPLOAD_BYTES, Explorer, RequestError, features_of

try:  # the `serve` extra: `disgen serve` says how to install it when missing
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError:  # pragma: no cover - exercised only without the extra
    Starlette = None

STATIC = Path(__file__).with_name("static")
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


def make_app(run_dir: str | Path, checkpoint: str = "last",
             max_upload_bytes: int = MAX_UPLOAD_BYTES) -> "Starlette":
    """The explorer of ``run_dir`` as an ASGI app (serve it with uvicorn, test it with
    Starlette's TestClient). The run is loaded once, on the CPU."""
    from disgen.api import load

    require_stack()
    run = load(run_dir, checkpoint)
    explorer = Explorer(run, features_of(run), checkpoint, max_upload_bytes)
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
