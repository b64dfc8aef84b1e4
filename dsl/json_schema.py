"""JSON Schema (2020-12, the dialect OpenAPI 3.1 uses) for a policy's input and output: the
contract a calling system codes against, derived from the same types the checker and the input
validation (values.py) use, so it cannot drift from what the engine accepts.

Input schemas describe what `coerce` accepts: money as exact text ("1234.56") or a JSON number,
percentages as "10%" or percentage points, documents formatted or not. Output schemas describe
what `to_json` writes: money always as text with two decimals, percentages as "10%".
"""

from __future__ import annotations

from typing import Any

from . import types as T
from .values import to_json

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_DECIMAL_TEXT = r"^-?\d+(\.\d+)?$"
_CPF = r"^\d{3}\.?\d{3}\.?\d{3}-?\d{2}$"
_CNPJ = r"^[0-9A-Za-z]{2}\.?[0-9A-Za-z]{3}\.?[0-9A-Za-z]{3}/?[0-9A-Za-z]{4}-?\d{2}$"

_INPUT: dict[str, dict] = {
    "int": {"type": "integer"},
    "decimal": {"anyOf": [{"type": "string", "pattern": _DECIMAL_TEXT}, {"type": "number"}],
                "description": "a decimal number; as text it is exact"},
    # Whole centavos (values.MONEY_PLACES). No `multipleOf: 0.01` on the number: validators and
    # generators work it out in binary floats, where 0.07 is not a multiple of 0.01.
    "money": {"anyOf": [{"type": "string", "pattern": r"^-?\d+(\.\d{1,2}0*)?$", "examples": ["1234.56"]},
                        {"type": "number"}],
              "description": "an amount in BRL in whole centavos (at most 2 decimal places): \"1234.56\" or "
                             "1234.56; a number is read exactly from its text"},
    "percent": {"anyOf": [{"type": "string", "pattern": r"^\s*-?\d+(\.\d+)?\s*%\s*$", "examples": ["12.5%"]},
                          {"type": "number"}],
                "description": "a percentage: \"12.5%\", or a number of percentage points (12.5)"},
    "bool": {"type": "boolean"},
    "text": {"type": "string"},
    "date": {"type": "string", "format": "date"},
    "duration": {"anyOf": [{"type": "string", "pattern": r"^\s*-?\d+\s+days?\s*$", "examples": ["30 days"]},
                           {"type": "integer"}],
                 "description": "calendar days: \"30 days\" or a number of days"},
    "business_days": {"anyOf": [{"type": "string", "pattern": r"^\s*-?\d+\s+business\s+days?\s*$"},
                                {"type": "integer"}],
                      "description": "business days: \"5 business days\" or a number"},
    "cpf": {"type": "string", "pattern": _CPF, "description": "a CPF (check digits verified), formatted or not"},
    "cnpj": {"type": "string", "pattern": _CNPJ,
             "description": "a CNPJ, numeric or alphanumeric (check digits verified), formatted or not"},
}

_OUTPUT: dict[str, dict] = {
    "int": {"type": "integer"},
    "decimal": {"type": "string", "pattern": _DECIMAL_TEXT, "description": "a decimal number, exact, as text"},
    "money": {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "description": "an amount in BRL, two decimals"},
    "percent": {"type": "string", "pattern": r"^-?\d+(\.\d+)?%$"},
    "bool": {"type": "boolean"},
    "text": {"type": "string"},
    "date": {"type": "string", "format": "date"},
    "duration": {"type": "string", "pattern": r"^-?\d+ days?$"},
    "business_days": {"type": "string", "pattern": r"^-?\d+ business days?$"},
    "cpf": {"type": "string", "description": "a CPF, masked"},
    "cnpj": {"type": "string", "description": "a CNPJ, masked"},
}


def input_schema(typ: T.Type) -> dict[str, Any]:
    """What the engine accepts for a value of `typ` (records refuse unknown fields)."""
    return _schema(typ, _INPUT, for_input=True)


def output_schema(typ: T.Type) -> dict[str, Any]:
    """What the engine writes for a value of `typ`."""
    return _schema(typ, _OUTPUT, for_input=False)


def policy_schemas(name: str, input_type: T.RecordType, outputs: list[tuple[str, T.Type]]) -> dict[str, Any]:
    """The input and output contract of one policy, as two standalone JSON Schemas."""
    return {
        "input": {"$schema": DIALECT, "title": f"{name} input", **input_schema(input_type)},
        "output": {"$schema": DIALECT, "title": f"{name} outputs", "type": "object",
                   "properties": {out: output_schema(typ) for out, typ in outputs},
                   "additionalProperties": False},
    }


def _schema(typ: T.Type, prims: dict[str, dict], for_input: bool) -> dict[str, Any]:
    if isinstance(typ, T.Prim):
        return dict(prims.get(typ.name, {}))
    if isinstance(typ, T.EnumType):
        return {"type": "string", "enum": list(typ.values)}
    if isinstance(typ, T.ListType):
        return {"type": "array", "items": _schema(typ.element, prims, for_input)}
    if isinstance(typ, T.RecordType):
        properties = {}
        for spec in typ.fields:
            schema = _schema(spec.type, prims, for_input)
            if for_input and not spec.required and spec.default is not None:
                schema["default"] = to_json(spec.default, spec.type)
            properties[spec.name] = schema
        schema = {"type": "object", "properties": properties, "additionalProperties": not for_input}
        required = [spec.name for spec in typ.fields if spec.required]
        if for_input and required:
            schema["required"] = required
        return schema
    return {}  # unknown: anything
