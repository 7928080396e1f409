"""What uvicorn leaves unbounded: how long a client may take over its request's head, and how many
connections are open at once. Its options cover neighbouring cases only:

- ``timeout_keep_alive`` times the idle gap after a response, and the first byte of a next request
  cancels it; a connection that sends half a head, one byte a second, or nothing, stays forever.
- ``limit_concurrency`` answers 503 to every new request once that many connections are open, the
  stalled ones included: it would lock real requests out rather than protect them.
- ``h11_max_incomplete_event_size`` bounds the bytes of an unfinished head (``HEAD_BYTES`` here,
  uvicorn's 16 KiB default), not its time.

So each connection uvicorn accepts is a :class:`Watched`: uvicorn's own h11 protocol (an
``asyncio.Protocol``) behind a second h11 parser that only follows the request's framing, in three
phases: sending its head, sending its body, sent (waiting for or reading its answer).

- A head must arrive within ``header_seconds`` of the connection opening (408, or a plain close
  for a connection that sent nothing), however slowly it trickles.
- At most ``limit`` connections are open. One more closes the oldest still sending its head, or
  failing that the oldest still sending its body; if every one has sent its request, the newcomer
  is answered 503. A stalled client thus loses its place to a real one instead of taking it.
- A body's own time limit is the app's (``read_body``), counted before a request waits for the
  model, and the app closes each connection after one answer, so no idle kept-alive connection
  holds a place either.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import h11
from uvicorn.protocols.http.h11_impl import (
    H11Protocol,  # what uvicorn's documented --http h11 runs
)

HEAD_BYTES = 16 * 2**10  # a request head's size limit (uvicorn's h11 default), here and in uvicorn
HEAD, BODY, SENT = 0, 1, 2  # a connection's phases, in the order they are evicted
WARN_EVERY = 60.0  # seconds between two log lines about a full server
LINGER_SECONDS = 1.0  # after a 408 or 503, for the client to read it before its connection is dropped


def raw_response(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP response with a JSON error, for a connection no request of which reached the app."""
    body = json.dumps({"error": message}).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class Connections:
    """The open connections of one server, oldest first; ``protocol`` is uvicorn's ``http``."""

    def __init__(self, limit: int, header_seconds: float):
        self.limit, self.header_seconds = limit, header_seconds
        self.open: dict[Watched, None] = {}  # insertion order: the order they opened
        self.ending = 0  # connections past the limit or their time, given LINGER_SECONDS to leave
        self.warned = -WARN_EVERY

    def protocol(self, *args, **kwargs) -> Watched:
        return Watched(self, H11Protocol(*args, **kwargs))

    def admit(self, conn: Watched) -> bool:
        """Make room for ``conn`` if the server is full; False if no connection could give way."""
        if len(self.open) >= self.limit:
            sending = [c for c in self.open if c.phase != SENT]
            if not sending:
                self.warn(
                    f"{len(self.open)} connections open (--max-connections), each waiting for "
                    "its answer: new ones get 503"
                )
                return False
            self.warn(
                f"{len(self.open)} connections open (--max-connections): closing the oldest "
                "still sending its request for each new one"
            )
            min(sending, key=lambda c: (c.phase, c.since)).close()
        self.open[conn] = None
        return True

    def warn(self, message: str) -> None:
        """One line, at most every ``WARN_EVERY`` seconds: a flood must not flood the log too."""
        if time.monotonic() - self.warned >= WARN_EVERY:
            self.warned = time.monotonic()
            print(f"disgen serve: {message}", file=sys.stderr, flush=True)


class Watched(asyncio.Protocol):
    """One connection: uvicorn's protocol ``inner``, with the head's deadline and the phase that
    decides which connection gives way when the server is full."""

    def __init__(self, connections: Connections, inner: asyncio.Protocol):
        self.connections, self.inner = connections, inner
        self.framing = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_BYTES)
        self.phase, self.since, self.received = HEAD, time.monotonic(), 0
        self.transport: asyncio.Transport | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.admitted = self.ending = self.lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        if not self.connections.admit(self):
            return self.end(
                raw_response(
                    503,
                    "Service Unavailable",
                    f"{self.connections.limit} requests are waiting for their "
                    "answers, the most this server holds: try again shortly",
                )
            )
        self.admitted = True
        self.deadline = asyncio.get_running_loop().call_later(self.connections.header_seconds, self.head_timed_out)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.ending:  # read and dropped: unread bytes would make the close a reset, losing the answer
            return
        if self.phase != SENT:
            self.follow(data)
        self.inner.data_received(data)

    def follow(self, data: bytes) -> None:
        """Move through the phases as the request's head and body end (h11 frames them)."""
        self.received += len(data)
        self.framing.receive_data(data)
        while True:
            try:
                event = self.framing.next_event()
            except h11.RemoteProtocolError:  # uvicorn answers this one 400 and closes
                return self.enter(SENT)
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self.enter(BODY)
            elif isinstance(event, h11.EndOfMessage):
                return self.enter(SENT)

    def enter(self, phase: int) -> None:
        self.phase, self.since = phase, time.monotonic()
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def head_timed_out(self) -> None:
        self.deadline = None
        if self.phase != HEAD or self.transport.is_closing():
            return
        if not self.received:  # an idle connection: nothing to answer
            self.connections.open.pop(self, None)
            return self.transport.close()
        self.end(
            raw_response(
                408,
                "Request Timeout",
                f"the request's headers did not arrive within {self.connections.header_seconds:g} s",
            )
        )

    def end(self, answer: bytes) -> None:
        """Send ``answer`` (no request of this connection reached the app) and close: at once if
        many connections are ending already, else once the client has read it and closed, or
        after LINGER_SECONDS."""
        self.connections.open.pop(self, None)
        self.ending = True
        if self.connections.ending >= self.connections.limit:
            return self.transport.abort()
        self.connections.ending += 1
        self.lingering = True
        self.transport.write(answer)
        self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.abort)

    def close(self) -> None:
        """Give way to a newer connection: drop this one at once (the app sees a disconnect)."""
        self.connections.open.pop(self, None)
        self.transport.abort()

    def eof_received(self) -> bool | None:
        if self.ending:
            return False  # the client has read the answer and left: close
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.enter(SENT)
        self.connections.open.pop(self, None)
        if self.lingering:
            self.connections.ending -= 1
            self.lingering = False
        if self.admitted:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.admitted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.admitted:
            self.inner.resume_writing()
