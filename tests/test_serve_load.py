"""``disgen serve`` under load: a real ``python -m disgen serve RUN`` process gets bursts of 200
requests fired at once from 127.0.0.1, a mix of real digits to classify and requests it must
refuse (oversized bodies, wrong content types, malformed JSON, bytes that are not an image,
unknown paths). Every answer must carry the right status and JSON body, the predictions must be
those of ``disgen.load(run).predict``, and the server's memory must stay bounded: its resident
size after each burst within ``RSS_GROWTH`` of its size after warm-up, and not climbing from
burst to burst. The requests are counted in build/reliability.json (see test_hardening.py)."""
from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import pytest
import torch
from PIL import Image

pytest.importorskip("starlette", reason="disgen serve needs the serve extra: pip install 'disgen[serve]'")

import disgen  # noqa: E402
from disgen import serve  # noqa: E402
from conftest import SUBPROCESS_ENV  # noqa: E402
from test_hardening import reliability  # noqa: E402,F401  (the fixture counting faults)

BURST = 200  # requests fired at once, each on its own connection
BURSTS = 6
MIB = 2**20
RSS_GROWTH = 200 * MIB  # the server's resident size over its size after warm-up, at most
RSS_DRIFT = 20 * MIB  # between the last two bursts: more would be a leak per request


@dataclass
class Answer:
    status: int
    headers: dict
    body: dict


def http(address: tuple[str, int], head: str, body: bytes = b"") -> Answer:
    """One request on its own connection (``Connection: close``); the answer read to its end."""
    with socket.create_connection(address, timeout=120) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    top, _, payload = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return Answer(int(lines[0].split()[1]), headers, json.loads(payload))


def request(method: str, path: str, ctype: str | None, body: bytes = b"", length: int | None = None,
            extra: str = "") -> Callable[[tuple[str, int]], Answer]:
    """A request to send later: ``length`` is the Content-Length to declare (``len(body)`` if None)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}"
    if ctype is not None:
        head += f"Content-Type: {ctype}\r\n"
    if "Transfer-Encoding" not in extra:
        head += f"Content-Length: {len(body) if length is None else length}\r\n"
    return lambda address: http(address, head, body)


def png(pixels: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels.numpy()).save(buf, format="PNG")
    return buf.getvalue()


# -- the mix: what is sent, what must come back ----------------------------------------------------
@dataclass
class Kind:
    fault: str  # the row of the reliability table
    make: Callable[[int], tuple[Callable, Callable[[Answer], bool]]]  # i -> (request, answer is right)
    outcome: str  # what a right answer is, for the table


def refused(status: int, *words: str) -> Callable[[Answer], bool]:
    return lambda a: (a.status == status and a.headers.get("content-type") == "application/json"
                      and set(a.body) == {"error"} and all(w in a.body["error"] for w in words))


MALFORMED_JSON = [b'{"seed": 1', b"{'seed': 1}", b'{"seed": \xff}', b"", b"[1, 2, 3]", b'"seed"', b"nan",
                  b'{"seed": 1}}']
UPLOAD_LIMIT = serve.MAX_UPLOAD_BYTES
CHUNK = serve.MAX_JSON_BYTES + 10


def kinds(digits: list[tuple[bytes, str, torch.Tensor]]) -> list[Kind]:
    def valid(i):
        data, label, probs = digits[i % len(digits)]
        return (request("POST", "/api/predict", "image/png", data),
                lambda a: (a.status == 200 and a.body["label"] == label
                           and torch.allclose(torch.tensor(a.body["probabilities"]), probs, atol=1e-5)))

    def oversized(i):  # declared over the limit; like curl, it waits for "100 Continue" to send it
        length = UPLOAD_LIMIT + 1 + i
        return (request("POST", "/api/predict", "image/png", length=length, extra="Expect: 100-continue\r\n"),
                refused(413, f"{length:,} bytes", f"{UPLOAD_LIMIT:,}"))

    def chunked(i):  # no length given: cut off once it passes the limit, the final chunk never sent
        body = b"%x\r\n%s\r\n" % (CHUNK, b" " * CHUNK)
        return (request("POST", "/api/sample", "application/json", body,
                        extra="Transfer-Encoding: chunked\r\n"),
                refused(413, f"{serve.MAX_JSON_BYTES:,}"))

    def wrong_type(i):
        path, ctype, want = [("/api/predict", "text/plain", "image/*"),
                             ("/api/predict", None, "no content type"),
                             ("/api/sample", "text/plain", "application/json"),
                             ("/api/sample", "image/png", "application/json")][i % 4]
        return request("POST", path, ctype, digits[0][0] if "predict" in path else b'{"seed": 1}'), \
            refused(415, want)

    def malformed(i):
        body = MALFORMED_JSON[i % len(MALFORMED_JSON)]
        words = "JSON object" if body in (b"[1, 2, 3]", b'"seed"') else "malformed JSON"
        return request("POST", "/api/sample", "application/json", body), refused(400, words)

    def not_an_image(i):
        data = [b"these bytes are not an image", digits[0][0][: len(digits[0][0]) // 2],
                b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4][i % 3]
        return request("POST", "/api/predict", "image/png", data), refused(400)

    def unknown(i):
        return [(request("GET", f"/api/nothing-{i}", None), refused(404, "Not Found")),
                (request("POST", "/api/../../etc/passwd", "image/png", b"x"), refused(404)),
                (request("GET", "/api/predict", None), refused(405)),
                (request("POST", "/api/sample", "application/json", b'{"seed": 1}'),
                 refused(404, "does not generate samples"))][i % 4]

    return [
        Kind("a real test digit's PNG to classify", valid,
             "200, the label and probabilities of disgen.load(run).predict"),
        Kind("upload declaring a body over the 4 MiB limit", oversized,
             "413 with a JSON error naming the size and limit, body never read"),
        Kind("JSON body sent chunked, without a length, past the 64 KiB limit", chunked,
             "413 with a JSON error naming the limit, the rest never waited for"),
        Kind("wrong or missing content type (image and JSON endpoints)", wrong_type,
             "415 with a JSON error naming the type to send"),
        Kind("malformed JSON: bad syntax, truncated, not UTF-8, empty, not an object", malformed,
             "400 with a JSON error"),
        Kind("bytes that are not an image (junk, a truncated PNG, a bad header) as image/png",
             not_an_image, "400 with a JSON error"),
        Kind("unknown path, wrong method, an endpoint this run lacks", unknown,
             "404 or 405 with a JSON error"),
    ]


WEIGHTS = [4, 1, 1, 1, 1, 1, 1]  # of every 10 requests: 4 digits to classify, 6 to refuse


def the_mix(all_kinds: list[Kind]) -> list[tuple[Kind, int]]:
    """``BURST`` requests, the kinds interleaved; each kind's n-th request gets n (its variant)."""
    order = [k for k, w in zip(all_kinds, WEIGHTS) for _ in range(w)]
    seen = Counter()
    mix = []
    for i in range(BURST):
        kind = order[i % len(order)]
        mix.append((kind, seen[kind.fault]))
        seen[kind.fault] += 1
    return mix


# -- the server ------------------------------------------------------------------------------------
class Server:
    """``python -m disgen serve RUN --port 0``; its stderr is kept (it must stay free of errors)."""

    def __init__(self, run_dir):
        self.proc = subprocess.Popen([sys.executable, "-m", "disgen", "serve", str(run_dir), "--port", "0"],
                                     stderr=subprocess.PIPE, text=True, env=SUBPROCESS_ENV)
        self.log: list[str] = []
        while " at http://" not in (line := self.proc.stderr.readline()):
            assert line, f"disgen serve exited: {''.join(self.log)}"
            self.log.append(line)
        host, port = line.split(" at http://", 1)[1].split("/", 1)[0].rsplit(":", 1)
        self.address = (host, int(port))
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def memory(self, field: str = "VmRSS") -> int:
        """The process's resident size (VmRSS) or its peak (VmHWM), in bytes."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            line = next(line for line in f if line.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def burst(address, mix: list[tuple[Kind, int]]) -> list[tuple[Kind, Answer | Exception, bool]]:
    """Every request of ``mix`` on its own thread, released together; the answers, each judged."""
    jobs = [(kind, *kind.make(i)) for kind, i in mix]
    start = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def one(j: int) -> None:
        kind, send, right = jobs[j]
        start.wait()
        try:
            answer = send(address)
            results[j] = (kind, answer, bool(right(answer)))
        except Exception as err:  # a reset or a hang: a wrong answer, reported below
            results[j] = (kind, err, False)

    threads = [threading.Thread(target=one, args=(j,)) for j in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    return results


@pytest.fixture(scope="module")
def digits(classifier_run, mnist_mini) -> list[tuple[bytes, str, torch.Tensor]]:
    """20 real test digits as PNGs, with the label and probabilities the loaded run predicts."""
    run = disgen.load(classifier_run.dir)
    images = mnist_mini.test.images[:20]  # (20, 1, 28, 28) uint8
    probs = run.predict(images)
    return [(png(x[0]), run.classes[int(p.argmax())], p) for x, p in zip(images, probs)]


def test_200_concurrent_requests_all_answered_right_with_bounded_memory(classifier_run, digits,
                                                                         reliability):
    t0 = time.monotonic()
    all_kinds = kinds(digits)
    mix = the_mix(all_kinds)
    server = Server(classifier_run.dir)
    try:
        for kind, i in the_mix(all_kinds)[:20]:  # warm-up, one at a time: every code path once
            send, right = kind.make(i)
            answer = send(server.address)
            assert right(answer), (kind.fault, answer)
        warm = server.memory()
        rss, wrong, seconds = [], [], []
        for b in range(BURSTS):
            t = time.monotonic()
            results = burst(server.address, mix)
            seconds.append(time.monotonic() - t)
            rss.append(server.memory())
            for kind, answer, right in results:
                status = answer.status if isinstance(answer, Answer) else type(answer).__name__
                reliability.record("server", f"among {BURST} requests at once: {kind.fault}",
                                   kind.outcome if right else f"wrong answer ({status})")
                if not right:
                    wrong.append((b, kind.fault, answer))
        peak = server.memory("VmHWM")
        alive = server.proc.poll() is None
    finally:
        server.stop()
    mib = [round((r - warm) / MIB, 1) for r in rss]
    statuses = Counter(a.status for _, a, _ in results if isinstance(a, Answer))
    print(f"\n{BURSTS} bursts of {BURST} (statuses of the last: {dict(sorted(statuses.items()))}), "
          f"{', '.join(f'{s:.1f}' for s in seconds)} s; RSS after warm-up {warm / MIB:.1f} MiB, "
          f"after each burst +{mib} MiB, peak {peak / MIB:.1f} MiB; test {time.monotonic() - t0:.1f} s")
    assert not wrong, wrong[:5]
    assert alive and not [line for line in server.log if "Traceback" in line or "ERROR" in line], server.log
    grew, drift = max(rss) - warm, abs(rss[-1] - rss[-2])
    reliability.record("server", f"server memory over {BURSTS} bursts of {BURST} requests at once",
                       f"RSS after each burst under {RSS_GROWTH // MIB} MiB over warm-up, the last two "
                       f"within {RSS_DRIFT // MIB} MiB" if grew < RSS_GROWTH and drift < RSS_DRIFT
                       else "grew too much")
    assert peak - warm < RSS_GROWTH and grew < RSS_GROWTH, (warm, rss, peak)
    assert drift < RSS_DRIFT, (warm, rss)
