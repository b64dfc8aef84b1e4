"""uvicorn's httptools protocol, with two changes for `regua serve`:

- a deadline for each request's headers (server.header_timeout; see regua.server.slow_clients);
- a response's headers and body leave in one write (see `_HeadersWithBody`).

Imported by `regua serve` only when it runs uvicorn."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from . import slow_clients

_BODY = b'{"code":"REQUEST_TIMEOUT","message":"the request headers took too long to arrive","errors":[]}'
_HEADERS_TOO_SLOW = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(_BODY), _BODY))


class _HeadersWithBody:
    """The transport one request's cycle writes through: it holds the headers of a response that
    has a Content-Length until the body's first bytes, and writes both at once.

    uvicorn writes the status line and headers when the app sends `http.response.start`, and the
    body when it sends `http.response.body`: two system calls, two TCP segments and two wake-ups
    of the client for every answer. Measured under wrk (credito_b2b, 2 cores): the second write
    cost the server ~20 µs of CPU a request and ~20 % of its peak throughput
    (benchmarks/bench_quick.py). A chunked (streaming) response's headers go at once, as the
    app may take its time before the first chunk; so does the `100 Continue` interim answer.
    The headers held are written by the next write, by `close()`, or when the response completes
    without another write (a HEAD answer has no body): the cycle's `on_response` is `completed`."""

    __slots__ = ("transport", "cycle", "held", "headers_seen", "on_response")

    def __init__(self, transport: asyncio.Transport, cycle):
        self.transport = transport
        self.cycle = cycle
        self.held: bytes | None = None
        self.headers_seen = False
        self.on_response = cycle.on_response
        cycle.transport = self
        cycle.on_response = self.completed

    def write(self, data: bytes) -> None:
        if self.held is not None:
            data, self.held = self.held + data, None
        elif not self.headers_seen and self.cycle.response_started:
            # uvicorn marks the response started before it writes the status line and headers.
            self.headers_seen = True
            if self.cycle.chunked_encoding is False:
                self.held = data
                return
        self.transport.write(data)

    def flush(self) -> None:
        if self.held is not None:
            data, self.held = self.held, None
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def completed(self) -> None:
        self.flush()
        self.on_response()

    def __getattr__(self, name: str):
        return getattr(self.transport, name)  # is_closing, get_extra_info…: the connection's


class HeaderTimeoutHttpTools(HttpToolsProtocol):
    """From a connection's (or the next request's) first byte to the end of the headers: at most
    slow_clients.HEADER_TIMEOUT seconds, or the connection is answered 408 and closed. Each
    request's answer is written through `_HeadersWithBody`."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:  # a new request (not an upgrade, which makes no cycle)
            _HeadersWithBody(self.transport, self.cycle)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(slow_clients.HEADER_TIMEOUT, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_HEADERS_TOO_SLOW)
            self.transport.close()
