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
import types

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
            return await app(scope, timed_receive(receive, timeout), send)

        return guarded

    return middleware


def timed_receive(receive, timeout: float, started: float | None = None):
    """`receive` with a deadline `timeout` seconds from now (or from `started`, a time.monotonic()
    when reading began) for the body: past it, ApiError 408 REQUEST_TIMEOUT (body_timeout, and
    server.lean_evaluate's front of POST /evaluate)."""
    deadline = (time.monotonic() if started is None else started) + timeout
    complete = False

    async def timed():
        nonlocal complete
        if complete:  # the body is in: what follows (a disconnect) is waited for as usual
            return await receive()
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:  # as asyncio.wait_for(receive(), 0) did: no waiting, not even for a ready message
                raise TimeoutError
            message = await _within(receive(), remaining)
        except TimeoutError:
            raise _too_slow(timeout) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            complete = True
        return message

    return timed


async def first_body_message(receive, timeout: float):
    """timed_receive's first receive(), without its wrapper: at once (no timer armed) when the
    message is already in, as nearly always (the body comes with the headers). For the front of
    POST /evaluate (server.lean_evaluate), which reads on with timed_receive only when more follows."""
    try:
        return await _within(receive(), timeout)
    except TimeoutError:
        raise _too_slow(timeout) from None


def _too_slow(timeout: float) -> ApiError:
    return ApiError(408, "REQUEST_TIMEOUT", f"the request body took more than {timeout:g}s to arrive",
                    headers={"Connection": "close"})


async def _within(awaitable, seconds: float):
    """`await awaitable`, raising TimeoutError if it has not finished within `seconds`.

    asyncio.wait_for ran it in a task of its own (a task and an event-loop turn more on every
    request) and asyncio.timeout arms a timer; yet a request's body nearly always came in with its
    headers, and receive() answers it without waiting. So the awaitable is first stepped here: if it
    finishes at once, no timer is armed; only if it waits does the rest run under asyncio.timeout."""
    steps = awaitable.__await__()
    if not (hasattr(steps, "send") and hasattr(steps, "throw")):  # not a coroutine (granian's own futures)
        async with asyncio.timeout(seconds):
            return await _Awaiting(steps)
    try:
        waiting_on = steps.send(None)
    except StopIteration as finished:
        return finished.value
    async with asyncio.timeout(seconds):
        return await _rest(steps, waiting_on)


class _Awaiting:
    """An awaitable whose __await__() was already called (it may be called only once)."""

    __slots__ = ("steps",)

    def __init__(self, steps):
        self.steps = steps

    def __await__(self):
        return self.steps


@types.coroutine
def _rest(steps, waiting_on):
    """The rest of an awaitable whose iterator `steps` has yielded `waiting_on` (what `yield from
    steps` would do from there): yield to the task what it waits on, pass back what the task sends
    or throws (the timeout's cancellation included), return its result."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            steps.close()
            raise
        except BaseException as error:  # noqa: BLE001 — thrown by the task (a cancellation): handed on
            try:
                waiting_on = steps.throw(error)
            except StopIteration as finished:
                return finished.value
        else:
            try:
                waiting_on = steps.send(sent)
            except StopIteration as finished:
                return finished.value
