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

`EvaluateFront` goes one step further for the common case, in front of Litestar itself
(server.app.ReguaApp): a POST that Litestar's own router sends to one of the two handlers, with a
valid Host (Litestar's own check), a key that may evaluate and a JSON body that arrives within
`server.body_timeout` (else the same 408), is answered without
Litestar's app, exception, routing, timing, body-timeout and key middleware layers, which cost
more than a credito_b2b evaluation over a socket (~20 % of peak req/s under wrk,
benchmarks/bench_quick.py). It does what those layers do for such a request: the route's
path parameters and template, the key's name, the request's timing into the metrics, and an
exception turned into the answer by the route's own exception handlers. Every other request,
and every request it is unsure of, goes to Litestar unchanged, with the messages already read
handed back.
"""

from __future__ import annotations

import inspect
import time

import msgspec
from litestar._asgi.utils import is_valid_host
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils import normalize_path

from .auth import authorize
from .bodies import NUL_ESCAPE, _is_json, exact_decoder
from .errors import ApiError
from .schemas import EvaluateNamedRequest, EvaluateRequest
from .slow_clients import first_body_message, timed_receive

#: In a handler's `opt`: the handlers the lean path answers (False: POST /evaluate; True: POST
#: /evaluate/{policy}, the policy named by the path).
LEAN = "lean_evaluate"

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
        app = scope["litestar_app"]
        limit = app.request_max_body_size
        if not _acceptable_headers(scope["headers"], limit):
            await next_app(scope, receive, send)
            return
        body, messages = await _read_body(receive, limit)
        data = _decoded(body, self.named)
        if data is None:
            await next_app(scope, _replay(messages, receive), send)
            return
        await _answer(app.state.services, data, scope.get("regua_key"),
                      scope["path_params"]["policy"] if self.named else None, send)


class EvaluateFront:
    """In front of Litestar (see the module): `await front(scope, receive, send)` for an HTTP POST;
    what it does not answer, `litestar(scope, receive, send)` does."""

    def __init__(self, app, litestar: ASGIApp):
        self.app = app
        self.litestar = litestar
        self.routing = app.asgi_router.handle_routing  # Litestar's own router, its cache included
        # Read once: each app.state attribute is a Python-level __getattr__ call.
        self.services = app.state.services
        self.limit = app.request_max_body_size
        self.body_timeout = self.services.settings.server.body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        services = self.services
        headers = scope["headers"]
        handler = None
        path = scope["path"]
        if not scope.get("root_path"):
            if path.endswith("/") or "//" in path:  # what normalize_path would change
                path = normalize_path(path)
            try:
                _, handler, path, params, template = self.routing(path, "POST")
            except Exception:  # noqa: BLE001 — no route (404, 405…): Litestar answers it
                handler = None
        named = None if handler is None else handler.opt.get(LEAN)
        limit = self.limit
        if named is None or not _coroutine(receive) or not _acceptable_headers(headers, limit, check_host=True):
            await self.litestar(scope, receive, send)
            return
        try:
            key = authorize(services.keyring, handler.opt, headers)
        except ApiError:  # 401 or 403: Litestar's key middleware answers it, the same way
            await self.litestar(scope, receive, send)
            return
        # The body, within server.body_timeout from here, as Litestar's layers would read it.
        data = failure = None
        try:
            reading = time.monotonic()
            message = await first_body_message(receive, self.body_timeout)
            # A body in parts is read on under the same deadline; a whole one needs no more receive().
            rest = timed_receive(receive, self.body_timeout, started=reading) if message.get("more_body") else receive
            body, messages = await _read_body(rest, limit, message)
        except ApiError as error:  # 408: answered below, by the route's exception handlers
            failure = error
        else:
            data = _decoded(body, named)
            if data is None:  # Litestar's handler path answers it, from the messages already read
                await self.litestar(scope, _replay(messages, receive), send)
                return
        scope["app"] = scope["litestar_app"] = self.app  # as Litestar sets them, for the exception handlers
        scope.setdefault("state", {})
        scope["route_handler"], scope["path"], scope["path_params"], scope["path_template"] = \
            handler, path, params, template
        scope["regua_key"] = key.name
        status = 500
        try:
            try:
                if failure is not None:
                    raise failure
                headers, payload = await _evaluated(services, data, key.name, params["policy"] if named else None)
            except Exception as error:  # noqa: BLE001 — nothing sent yet: the route's handlers answer it
                status = await self._answer_error(scope, receive, send, handler, error)
                return
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            status = 200
            await send({"type": "http.response.body", "body": payload})
        finally:
            services.metrics.observe_request("POST", template, status, time.perf_counter() - started)

    async def _answer_error(self, scope: Scope, receive: Receive, send: Send, handler, error: Exception) -> int:
        """The answer the route's exception handlers give `error` (server.errors), as Litestar would send it."""
        handlers = handler.resolve_exception_handlers()
        answer = None
        if isinstance(error, HTTPException):
            answer = handlers.get(error.status_code)
        for kind in type(error).__mro__:
            if answer is not None:
                break
            answer = handlers.get(kind)
        request = self.app.request_class(scope=scope, receive=receive, send=send)
        response = answer(request, error)
        await response.to_asgi_response(app=None, request=request, type_encoders=handler.resolve_type_encoders())(
            scope, receive, send)
        return response.status_code


_COROUTINE_METHODS: dict = {}  # a server's receive method's function -> whether it is a coroutine


def _coroutine(receive: Receive) -> bool:
    """Whether receive() is a coroutine (uvicorn's). Granian's is its own awaitable: its requests go
    through Litestar, where a body timeout is known to end the connection (with the front's own
    timeout, granian sent the 408 and kept the connection open; tests/test_slow_clients.py)."""
    function = getattr(receive, "__func__", None)  # uvicorn: a bound method, the same function each time
    if function is None:
        return inspect.iscoroutinefunction(receive)
    known = _COROUTINE_METHODS.get(function)
    if known is None:
        known = _COROUTINE_METHODS[function] = inspect.iscoroutinefunction(function)
    return known


# Content-Type and Host values already judged: a client sends the same few again and again.
_JSON_TYPES: dict[bytes, bool] = {}
_VALID_HOSTS: dict[bytes, bool] = {}
_JUDGED_MAX = 256  # each cleared when full


def _judged(cache: dict, value: bytes, judge) -> bool:
    verdict = cache.get(value)
    if verdict is None:
        if len(cache) >= _JUDGED_MAX:
            cache.clear()
        verdict = cache[value] = judge(value)
    return verdict


def _acceptable_headers(headers: list[tuple[bytes, bytes]], limit: int | None, check_host: bool = False) -> bool:
    """Whether the lean path may read the body: JSON (or no Content-Type), a Content-Length within
    `limit`, and (in front of Litestar, whose router checks it) a valid Host."""
    for name, value in headers:
        if name == b"content-type":
            if not _judged(_JSON_TYPES, value, _is_json_header):
                return False
        elif name == b"content-length":
            if not value.isdigit() or (limit is not None and int(value) > limit):
                return False
        elif name == b"host" and check_host and not _judged(_VALID_HOSTS, value, is_valid_host):
            return False
    return True


def _is_json_header(value: bytes) -> bool:
    return _is_json(value.decode("latin-1"))


def _decoded(body: bytes | None, named: bool):
    """The request decoded strictly into the handler's Struct; None for anything the handler must answer."""
    if body is None or not body.strip() or NUL_ESCAPE in body:  # a NUL: the handler refuses it
        return None
    try:
        return _DECODERS[named].decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None


async def _evaluated(services, data, key_name: str | None, path_name: str | None) -> tuple[list, bytes]:
    """Evaluate: the 200 answer's headers and body."""
    result = await services.evaluator.evaluate(
        data.policy, data.input, trace=data.trace, dry_run=data.dry_run, request_id=data.request_id,
        api_key=key_name, path_name=path_name)
    payload = result.body
    headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
    if result.replayed:
        headers.append(_REPLAYED)
    return headers, payload


async def _answer(services, data, key_name: str | None, path_name: str | None, send: Send) -> None:
    headers, payload = await _evaluated(services, data, key_name, path_name)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Receive, limit: int | None, first: Message | None = None
                     ) -> tuple[bytes | None, list[Message]]:
    """The whole body and the messages it came in (starting with `first`, already received); None
    for the body past `limit` bytes or when the client went away (the handler path then answers
    as it would)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message, first = (first, None) if first is not None else (await receive(), None)
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

