"""The hot path of POST /evaluate and POST /evaluate/{policy}: the request, already routed and
authenticated by the app's middleware, answered without Litestar's per-request handler work.

Litestar's handler machinery (signature model, dependency injection, the `before_request` body
check, which decodes the body once strictly and Litestar then again, and the Response object)
cost more per request than evaluating a small policy. `LeanEvaluate`, a middleware on the two
handlers, reads the body once, decodes it strictly into the handler's own request Struct and calls
the same `Evaluator.evaluate` the handler calls. Everything else is unchanged: routing, the
timing and API key middleware and the exception handlers (an ApiError raised here gets the one
error body, as from the handler), and the handlers stay declared, so the OpenAPI document is the
same.

Only a request the lean path is sure about is answered here. Any other (a Content-Type that is not
JSON, an empty, oversized, malformed or schema-breaking body, a NUL character in it) goes on to the
Litestar handler with its body replayed, so each error keeps the answer and code the handler path
gives it.
"""

from __future__ import annotations

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from .bodies import NUL_ESCAPE, _is_json, exact_decoder
from .schemas import EvaluateNamedRequest, EvaluateRequest

_JSON_HEADERS = [(b"content-type", b"application/json")]
# The handlers' strict, number-exact decoders (server.bodies; module level: Litestar deep-copies
# controller handlers, and their middleware with them, which a Decoder does not support).
_DECODERS = {False: exact_decoder(EvaluateRequest), True: exact_decoder(EvaluateNamedRequest)}
_REPLAYED = (b"idempotent-replayed", b"true")


class LeanEvaluate(ASGIMiddleware):
    """On the POST /evaluate handlers: answers requests whose body decodes strictly (see the module)."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, named: bool):
        self.named = named  # POST /evaluate/{policy} (EvaluateNamedRequest), else POST /evaluate

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        content_type = None
        length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        app = scope["litestar_app"]
        limit = app.request_max_body_size
        if (content_type is not None and not _is_json(content_type)) \
                or (length is not None and (not length.isdigit() or (limit is not None and int(length) > limit))):
            await next_app(scope, receive, send)
            return
        body, messages = await _read_body(receive, limit)
        data = None
        if body is not None and body.strip() and NUL_ESCAPE not in body:  # a NUL: the handler refuses it
            try:
                data = _DECODERS[self.named].decode(body)
            except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
                data = None
        if data is None:
            await next_app(scope, _replay(messages, receive), send)
            return
        services = app.state.services
        result = await services.evaluator.evaluate(
            data.policy, data.input, trace=data.trace, dry_run=data.dry_run, request_id=data.request_id,
            api_key=scope.get("regua_key"), path_name=scope["path_params"]["policy"] if self.named else None)
        payload = result.body
        headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
        if result.replayed:
            headers.append(_REPLAYED)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Receive, limit: int | None) -> tuple[bytes | None, list[Message]]:
    """The whole body and the messages it came in; None for the body past `limit` bytes or when
    the client went away (the handler path then answers as it would)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return None, messages
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0], messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands back the messages already read, then reads on."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
