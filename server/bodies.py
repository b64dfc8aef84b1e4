"""JSON request bodies, held to their documented contract before Litestar converts them.

Litestar turns a body into the handler's `data` Struct with msgspec's lax conversion (`strict=False`),
which takes `"dry_run": 0` for false and `"revision": "2"` for 2, and it reads any body as JSON
whatever its Content-Type. This `before_request` hook checks, for every handler with a `data`
Struct (or list of them), that the Content-Type is JSON (415 UNSUPPORTED_MEDIA_TYPE otherwise; no
Content-Type at all is read as JSON) and that the body decodes *strictly* into that type (400
INVALID_REQUEST naming the field path otherwise). Bodies Litestar would refuse anyway (malformed,
empty, missing or unknown fields) are left to it, so every answer keeps its documented code.

`StrictStructSchemaPlugin` makes the OpenAPI document say what the server does: request Structs
declared with `forbid_unknown_fields` get `additionalProperties: false`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin

from .errors import ApiError

_BODY_METHODS = {"POST", "PUT", "PATCH"}
_MISSING = object()
_TYPES: dict[Any, Any] = {}  # route handler -> the type of its `data`, or None
_PATH = re.compile(r" - at `\$(.*)`$")


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


def _location(message: str) -> str:
    """msgspec's `- at `$.items[0].dry_run`` as `items[0].dry_run`."""
    match = _PATH.search(message)
    return match.group(1).lstrip(".") if match else ""


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
    body = await request.body()
    if not body.strip():
        return None  # Litestar answers EMPTY_BODY
    try:
        msgspec.json.decode(body, type=target)  # strict: no 0 for false, no "2" for 2
    except msgspec.ValidationError as error:
        try:  # what Litestar's lax conversion would refuse anyway, Litestar reports (with its codes)
            msgspec.convert(msgspec.json.decode(body), target, strict=False, str_keys=True)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            return None
        message = _PATH.sub("", str(error))
        raise ApiError(400, "INVALID_REQUEST", "the request does not match its schema",
                       [{"code": "TYPE" if re.match(r"Expected `?[\w\[\] |]+`?, got", message) else "INVALID_VALUE",
                         "message": message.replace("`", ""), "location": _location(str(error))}]) from None
    except (msgspec.DecodeError, RecursionError):
        return None  # Litestar answers MALFORMED_JSON
    return None


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Request Structs that refuse unknown fields say so: `additionalProperties: false`."""

    def to_openapi_schema(self, field_definition, schema_creator):
        schema = super().to_openapi_schema(field_definition, schema_creator)
        config = getattr(field_definition.type_, "__struct_config__", None)
        if config is not None and config.forbid_unknown_fields:
            schema.additional_properties = False
        return schema
