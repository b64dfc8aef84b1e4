"""A policy's typed contract for the systems that call it: JSON Schemas of its input and outputs,
and an OpenAPI document for `POST /evaluate/{policy}` in which `input` and `outputs` are those
types, so client generators produce a typed client per policy.

The app-wide OpenAPI document (/schema) describes every route once, with `input` free-form:
policies are published and reloaded while the server runs, so their types live here, read from
the active version each time they are asked for.
"""

from __future__ import annotations

from typing import Any

import msgspec

from regua.dsl.json_schema import input_schema, output_schema

from .schemas import ErrorBody, EvaluateNamedRequest, EvaluateResponse

_REF = "#/components/schemas/{name}"


def component_prefix(policy: str) -> str:
    """credito_b2b -> CreditoB2b: the prefix of the policy's component names."""
    return "".join(part[:1].upper() + part[1:] for part in policy.replace("-", "_").split("_") if part)


def schemas(meta) -> dict[str, Any]:
    """The input and outputs of the policy whose PolicyMeta is `meta`, as JSON Schemas."""
    return {"input": input_schema(meta.input_type),
            "output": {"type": "object", "properties": {name: output_schema(typ) for name, typ in meta.outputs},
                       "additionalProperties": False}}


def openapi(meta, revision: int, api_version: str) -> dict[str, Any]:
    """OpenAPI 3.1 for evaluating this one policy, with its types as components."""
    prefix = component_prefix(meta.name)
    _, components = msgspec.json.schema_components([EvaluateNamedRequest, EvaluateResponse, ErrorBody],
                                                   ref_template=_REF)
    request = dict(components.pop("EvaluateNamedRequest"))
    request["properties"] = {**request["properties"], "input": {"$ref": _REF.format(name=f"{prefix}Input")}}
    request["properties"].pop("policy", None)  # in the URL
    response = dict(components.pop("EvaluateResponse"))
    response["properties"] = {**response["properties"], "outputs": {"$ref": _REF.format(name=f"{prefix}Output")}}
    own = schemas(meta)
    components.update({f"{prefix}Input": own["input"], f"{prefix}Output": own["output"],
                       f"{prefix}EvaluateRequest": request, f"{prefix}EvaluateResponse": response})
    error = {"content": {"application/json": {"schema": {"$ref": _REF.format(name="ErrorBody")}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Régua: {meta.name}", "version": f"{meta.version} (revision {revision})",
                 "description": f"Evaluate the policy {meta.name} (API {api_version}). Generated from the "
                                "active version; see docs/http-api.md."},
        "paths": {f"/evaluate/{meta.name}": {"post": {
            "operationId": f"evaluate_{meta.name}",
            "summary": f"Evaluate {meta.name}" + (f": {meta.description}" if meta.description else ""),
            "security": [{"bearer": []}, {"apiKey": []}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": _REF.format(name=f"{prefix}EvaluateRequest")}}}},
            "responses": {"200": {"description": "the decision", "content": {"application/json": {
                "schema": {"$ref": _REF.format(name=f"{prefix}EvaluateResponse")}}}},
                **{status: {"description": text, **error} for status, text in (
                    ("400", "malformed request"), ("401", "no valid API key"), ("403", "the key lacks the scope"),
                    ("404", "unknown policy"), ("409", "request_id reused with a different input"),
                    ("413", "body over the size limit"), ("422", "input does not fit the policy"))}},
        }}},
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "name": "X-API-Key", "in": "header"}}},
    }
