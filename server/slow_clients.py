"""Slow clients: a connection may take at most `server.header_timeout` seconds to send a request's
headers and `server.body_timeout` seconds for its body, on both runners.

- Headers. granian has its own setting (`http1_settings.header_read_timeout`, given by `regua
  serve`). uvicorn has none (its keep-alive timer stops as soon as any byte arrives, so a client
  dripping a header byte now and then holds the connection forever): regua.server.uvicorn_protocol
  is uvicorn's httptools protocol with a timer from the connection's (or the next request's)
  first byte to the end of the headers; when it fires, the connection is answered 408 and closed.
- Body. Both runners hand the body to the application as it arrives: `body_timeout` (an ASGI
  middleware, the same for both) bounds the time from the request's headers to its last body
  byte. Past it the request is answered `408 REQUEST_TIMEOUT` (the usual error body) with
  `Connection: close`, so the runner drops the connection.
"""

from __future__ import annotations

import asyncio
import time

from .errors import ApiError

#: Set in each worker process from its settings (regua.server.app.create_app), before it serves;
#: read by regua.server.uvicorn_protocol at each connection.
HEADER_TIMEOUT = 10.0


def body_timeout(timeout: float):
    """ASGI middleware factory (Litestar `middleware=`): the body must have arrived `timeout`
    seconds after the request's headers, or the request is answered 408 REQUEST_TIMEOUT."""

    def middleware(app):
        async def guarded(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            deadline = time.monotonic() + timeout
            complete = False

            async def timed_receive():
                nonlocal complete
                if complete:  # the body is in: what follows (a disconnect) is waited for as usual
                    return await receive()
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    raise ApiError(408, "REQUEST_TIMEOUT", f"the request body took more than {timeout:g}s to arrive",
                                   headers={"Connection": "close"}) from None
                if message["type"] != "http.request" or not message.get("more_body", False):
                    complete = True
                return message

            return await app(scope, timed_receive, send)

        return guarded

    return middleware
