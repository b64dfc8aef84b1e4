"""JSON request bodies: decoded once, strictly, with every JSON number's text kept exact.

`decode_body(body, type)` is the one place a request body becomes its Struct:
- numbers with a fraction or an exponent (`30000.5`, `1e3`) in free-form places (an evaluation's
  `input`) become `Decimal` from their text, never a binary float: money is exact from the wire
  to the decision (the policy then refuses money that is not whole centavos, MONEY_PRECISION);
- the body must match its type strictly (no `"dry_run": 0` for false, no `"revision": "2"` for 2);
- every refusal is an ApiError with a stable code and the field path: EMPTY_BODY, MALFORMED_JSON,
  INVALID_REQUEST with details UNKNOWN_FIELD / REQUIRED / TYPE / INVALID_VALUE.

The `strict_json_body` before_request hook calls it for every handler with a `data` Struct (or list
of them), after checking the Content-Type is JSON (415 UNSUPPORTED_MEDIA_TYPE otherwise; none at all
is read as JSON), and leaves the result on the request; `JsonBodyRequest.json()` hands it to
Litestar, which passes a ready Struct through to `data` unchanged. A handler that reads the raw body
itself calls `decode_body` directly.

`StrictStructSchemaPlugin` makes the OpenAPI document say what the server does: request Structs
declared with `forbid_unknown_fields` get `additionalProperties: false`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin

from .errors import ApiError

_BODY_METHODS = {"POST", "PUT", "PATCH"}
_MISSING = object()
_TYPES: dict[Any, Any] = {}  # route handler -> the type of its `data`, or None
_DECODERS: dict[Any, msgspec.json.Decoder] = {}
_PATH = re.compile(r" - at `\$(.*)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(.*)`")
_MISSING_FIELD = re.compile(r"^Object missing required field `(.*)`")
_STATE_KEY = "regua_body"  # where the hook leaves the decoded body for JsonBodyRequest.json()

Body = TypeVar("Body")


def _is_json(media_type: str) -> bool:
    main = media_type.split(";", 1)[0].strip().lower()
    return main == "application/json" or (main.startswith("application/") and main.endswith("+json"))


def _data_type(handler) -> Any:
    found = _TYPES.get(handler, _MISSING)
    if found is _MISSING:
        found = None
        field = handler.parsed_fn_signature.parameters.get("data")
        if field is not None:
            annotation = field.annotation
            inner = getattr(annotation, "__args__", None)
            if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
                found = annotation
            elif getattr(annotation, "__origin__", None) is list and inner and isinstance(inner[0], type) \
                    and issubclass(inner[0], msgspec.Struct):
                found = annotation
        _TYPES[handler] = found
    return found


def exact_decoder(target) -> msgspec.json.Decoder:
    """The strict decoder of `target` that reads JSON numbers in untyped places as exact Decimals."""
    decoder = _DECODERS.get(target)
    if decoder is None:
        # float_hook: JSON numbers with a fraction or exponent in untyped places become Decimal from
        # their text (a typed `float` field stays a float). Strict: no lax conversions.
        decoder = _DECODERS[target] = msgspec.json.Decoder(target, float_hook=Decimal)
    return decoder


def _join(location: str, field: str) -> str:
    return f"{location}.{field}" if location else field


def _detail(error: msgspec.ValidationError) -> dict:
    """msgspec's message as an error detail whose location is the body-relative field path."""
    text = str(error)
    match = _PATH.search(text)
    location = match.group(1).lstrip(".") if match else ""
    message = _PATH.sub("", text)
    if (found := _UNKNOWN_FIELD.match(message)):
        return {"code": "UNKNOWN_FIELD", "message": "is not a field of this request",
                "location": _join(location, found.group(1))}
    if (found := _MISSING_FIELD.match(message)):
        return {"code": "REQUIRED", "message": "is required", "location": _join(location, found.group(1))}
    code = "TYPE" if re.match(r"Expected `?[\w\[\] |]+`?, got", message) else "INVALID_VALUE"
    return {"code": code, "message": message.replace("`", ""), "location": location}


def decode_body(body: bytes, target: type[Body]) -> Body:
    """The request body as `target` (a Struct, or a list of them), numbers exact; ApiError otherwise."""
    if not body.strip():
        raise ApiError(400, "EMPTY_BODY", "the request body is empty; expected a JSON object",
                       [{"code": "EMPTY_BODY", "message": "the request body is empty; expected a JSON object",
                         "location": ""}])
    try:
        decoded = exact_decoder(target).decode(body)
    except msgspec.ValidationError as error:
        raise ApiError(400, "INVALID_REQUEST", "the request does not match its schema", [_detail(error)]) from None
    except msgspec.DecodeError as error:
        text = str(error)
        detail = text.split(":", 1)[1].strip() if ":" in text else text
        raise ApiError(400, "MALFORMED_JSON", f"the request body is not valid JSON: {detail.replace('`', '')}") \
            from None
    except RecursionError:
        raise ApiError(400, "MALFORMED_JSON", "the request body is not valid JSON: nested too deeply") from None
    if NUL_ESCAPE in body:
        refuse_nul_in_body(body)
    return decoded


#: How JSON writes a NUL character (a raw one is not valid JSON): a body without it holds none.
NUL_ESCAPE = b"\\u0000"


def refuse_nul_in_body(body: bytes) -> None:
    """PostgreSQL cannot store or compare a NUL character in text (a decision log batch holding one
    would fail for ever), and no name, document or filter legitimately holds one: a 400 naming the
    first field that does, on every store alike, as for the URL (refuse_nul_characters)."""
    path = _nul_path(msgspec.json.decode(body), "")
    if path is not None:
        raise ApiError(400, "INVALID_REQUEST", "the request body holds a NUL character",
                       [{"code": "INVALID_REQUEST", "message": "a NUL character", "location": path}])


def _nul_path(value, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return path or "$"
            found = _nul_path(item, _join(path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


async def strict_request(request: Request) -> None:
    """The app's before_request hook: no NUL character in the URL, then the strict body decoding."""
    refuse_nul_characters(request)
    return await strict_json_body(request)


def refuse_nul_characters(request: Request) -> None:
    """No legitimate name, id or filter holds a NUL character, and PostgreSQL cannot store or
    compare one (a query with it fails): refuse it at the edge with a 400 on every store alike."""
    query = request.scope.get("query_string") or b""
    if b"%00" in query or b"\x00" in query:
        names = [name for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                 if "\x00" in name or "\x00" in value]
        where = f"query.{names[0]}" if names and "\x00" not in names[0] else "query"
        raise ApiError(400, "INVALID_REQUEST", "the URL holds a NUL character",
                       [{"code": "INVALID_REQUEST", "message": "a NUL character", "location": where}])
    if "\x00" in request.scope.get("path", ""):
        raise ApiError(400, "INVALID_REQUEST", "the URL holds a NUL character",
                       [{"code": "INVALID_REQUEST", "message": "a NUL character", "location": "path"}])


async def strict_json_body(request: Request) -> None:
    if request.method not in _BODY_METHODS:
        return None
    target = _data_type(request.route_handler)
    if target is None:
        return None
    content_type = request.headers.get("content-type")
    if content_type is not None and not _is_json(content_type):
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "the request body must be application/json",
                       [{"code": "UNSUPPORTED_MEDIA_TYPE", "message": "expected application/json",
                         "location": "Content-Type"}])
    request.state[_STATE_KEY] = decode_body(await request.body(), target)
    return None


class JsonBodyRequest(Request):
    """The app's request class: `data` is the body `strict_json_body` already decoded (one decoding
    per request, with exact numbers), not a second, float-based decoding by Litestar."""

    async def json(self) -> Any:
        decoded = self.state.get(_STATE_KEY, _MISSING)
        return await super().json() if decoded is _MISSING else decoded


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Request Structs that refuse unknown fields say so: `additionalProperties: false`."""

    def to_openapi_schema(self, field_definition, schema_creator):
        schema = super().to_openapi_schema(field_definition, schema_creator)
        config = getattr(field_definition.type_, "__struct_config__", None)
        if config is not None and config.forbid_unknown_fields:
            schema.additional_properties = False
        return schema
