"""uvicorn's httptools protocol with a deadline for each request's headers (server.header_timeout);
see regua.server.slow_clients. Imported by `regua serve` only when it runs uvicorn."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from . import slow_clients

_BODY = b'{"code":"REQUEST_TIMEOUT","message":"the request headers took too long to arrive","errors":[]}'
_HEADERS_TOO_SLOW = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(_BODY), _BODY))


class HeaderTimeoutHttpTools(HttpToolsProtocol):
    """From a connection's (or the next request's) first byte to the end of the headers: at most
    slow_clients.HEADER_TIMEOUT seconds, or the connection is answered 408 and closed."""

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
        super().on_headers_complete()

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
