"""One error body for every error: {"code", "message", "errors": [{"code", "message", "location"}]}.

`ApiError` is what handlers raise; the exception handlers below turn it, Litestar's own HTTP
exceptions (validation, 404, 405, 413…) and anything unexpected into that body. Nothing ever
reaches a client as a traceback; an unexpected error is logged by type and place only (its
message could carry personal data) and answered 500 INTERNAL.
"""

from __future__ import annotations

import logging
import re
import sqlite3

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException

from regua.engine.connectors import mask_documents_in

from .schemas import ErrorBody, ErrorDetail

log = logging.getLogger("regua.server")
JSON = "application/json"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, errors: list[dict] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []
        self.headers = headers

    def body(self) -> ErrorBody:
        return error_body(self.code, self.message, self.errors)


def error_body(code: str, message: str, errors: list[dict] | None = None) -> ErrorBody:
    """The one error body, with every CPF/CNPJ-shaped value the client sent masked (messages and
    locations echo what was sent: unknown field names, bad values, names and ids not found)."""
    return ErrorBody(code, mask_documents_in(message),
                     [ErrorDetail(e.get("code", code), mask_documents_in(e.get("message", "")),
                                  mask_documents_in(e["location"]) if e.get("location") else e.get("location"))
                      for e in errors or []])


def error_response(status: int, code: str, message: str, errors: list[dict] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    body = error_body(code, message, errors)
    return Response(msgspec.json.encode(body), status_code=status, media_type=JSON, headers=headers)


# Litestar's own 4xx exceptions (routing, body size, content type) under our stable codes.
_STATUS_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(.*)`")
_MISSING_FIELD = re.compile(r"Object missing required field `(.*)`")


def _detail(item: dict) -> dict:
    """A Litestar/msgspec validation message as an error detail with a body-relative location."""
    message, key = str(item.get("message", "")), str(item.get("key") or "")
    location = "" if key == "data" else key
    if (match := _UNKNOWN_FIELD.search(message)):
        field = match.group(1)
        return {"code": "UNKNOWN_FIELD", "message": "is not a field of this request",
                "location": f"{location}.{field}" if location else field}
    if (match := _MISSING_FIELD.search(message)):
        field = match.group(1)
        return {"code": "REQUIRED", "message": "is required", "location": f"{location}.{field}" if location else field}
    if key == "data" and message.strip("'") == "data":
        return {"code": "EMPTY_BODY", "message": "the request body is empty; expected a JSON object", "location": ""}
    code = "TYPE" if message.startswith("Expected") else "INVALID_VALUE"
    return {"code": code, "message": message.replace("`", ""), "location": location}


def _respond(request: Request, status: int, code: str, message: str, errors: list[dict] | None = None,
             headers: dict[str, str] | None = None) -> Response:
    """The error response, counted in regua_request_errors_total by code."""
    services = getattr(request.app.state, "services", None)
    if services is not None:
        services.metrics.request_errors.labels(code).inc()
    return error_response(status, code, message, errors, headers)


def handle_api_error(request: Request, error: ApiError) -> Response:
    return _respond(request, error.status, error.code, error.message, error.errors, error.headers)


def handle_validation(request: Request, error: ValidationException) -> Response:
    extra = error.extra if isinstance(error.extra, list) else []
    details = [_detail(item) for item in extra if isinstance(item, dict)]
    if not details and "malformed" in str(error.detail).lower():
        return _respond(request, 400, "MALFORMED_JSON", f"the request body is not valid JSON: {_after_colon(error.detail)}")
    if not details and "content-type" in str(error.detail).lower():
        return _respond(request, 415, "UNSUPPORTED_MEDIA_TYPE", str(error.detail))
    if not details:
        return _respond(request, 400, "BAD_REQUEST", str(error.detail))
    if any(d["code"] == "EMPTY_BODY" for d in details):
        return _respond(request, 400, "EMPTY_BODY", "the request body is empty; expected a JSON object", details)
    return _respond(request, 400, "INVALID_REQUEST", "the request does not match its schema", details)


def _after_colon(text: str) -> str:
    return text.split(":", 1)[1].strip() if ":" in text else text


def handle_http(request: Request, error: HTTPException) -> Response:
    status = error.status_code
    if status >= 500:
        return handle_unexpected(request, error)
    code = _STATUS_CODES.get(status, "BAD_REQUEST")
    message = str(error.detail) if error.detail else code.replace("_", " ").lower()
    if status == 400 and "malformed" in message.lower():
        return _respond(request, 400, "MALFORMED_JSON", f"the request body is not valid JSON: {_after_colon(message)}")
    if status == 400 and isinstance(error.__cause__, SerializationException):  # "Input data was truncated", …
        return _respond(request, 400, "MALFORMED_JSON", f"the request body is not valid JSON: {message.replace('`', '')}")
    if status == 413:
        message = "the request body is larger than this server accepts"
    elif status == 404 and not isinstance(error, ApiError):
        message = f"no such endpoint: {request.method} {request.url.path}"
    return _respond(request, status, code, message, headers=getattr(error, "headers", None))


def handle_recursion(request: Request, error: RecursionError) -> Response:
    """msgspec gives up on JSON nested deeper than the interpreter's recursion limit: a client error."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name in ("decode_json", "decode_msgpack"):  # litestar.serialization
            return _respond(request, 400, "MALFORMED_JSON", "the request body is not valid JSON: nested too deeply")
        tb = tb.tb_next
    return handle_unexpected(request, error)


INTERNAL_MESSAGE = "an internal error occurred; it was logged"


def log_unexpected(error: Exception, request: Request) -> None:
    """Type and place only: the message or arguments could hold personal data."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
    log.error("internal error %s at %s on %s %s", type(error).__name__, where, request.method, request.url.path)


def handle_store_error(request: Request, error: sqlite3.OperationalError) -> Response:
    if "locked" in str(error) or "busy" in str(error):
        # Another worker held the write lock past the busy timeout: a retry will do.
        return _respond(request, 503, "STORE_BUSY", "the store is busy; retry shortly", headers={"Retry-After": "1"})
    return handle_unexpected(request, error)


def handle_store_unavailable(request: Request, error: Exception) -> Response:
    """PostgreSQL unreachable, or every pooled connection busy past the pool's timeout: retry later."""
    log.error("store unavailable: %s on %s %s", type(error).__name__, request.method, request.url.path)
    return _respond(request, 503, "STORE_UNAVAILABLE", "the store cannot be reached; retry shortly",
                    headers={"Retry-After": "1"})


def exception_handlers(postgres: bool = False) -> dict:
    """The handlers of an app; with a PostgreSQL store, its connection failures are 503 too."""
    if not postgres:
        return EXCEPTION_HANDLERS
    import psycopg

    return {**EXCEPTION_HANDLERS, psycopg.OperationalError: handle_store_unavailable}


def handle_unexpected(request: Request, error: Exception) -> Response:
    log_unexpected(error, request)
    return _respond(request, 500, "INTERNAL", INTERNAL_MESSAGE)


EXCEPTION_HANDLERS = {
    ApiError: handle_api_error,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    RecursionError: handle_recursion,
    sqlite3.OperationalError: handle_store_error,
    Exception: handle_unexpected,
}
