"""The playground's form, generated from a policy's typed inputs (the same types its JSON Schema
describes, server/policy_contract.py), and the way back: form text (Brazilian formats accepted,
"1.234,56", "12,5%") to the JSON input the API takes. The form is a GET form, so the page's URL
holds the inputs and can be shared."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from regua.dsl import types as T

_BR_DECIMAL = re.compile(r"^\s*-?[\d.]*\d(,\d+)?\s*$")


@dataclass
class Widget:
    name: str
    kind: str  # text, money, percent, int, decimal, date, bool, select, cpf, cnpj, json
    required: bool
    default: str
    options: list[str]
    hint: str


def _default_text(spec: T.FieldSpec) -> str:
    if spec.default is None:
        return ""
    value = spec.default
    try:
        return json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    except TypeError:
        return str(value)


def widgets(input_type: T.RecordType) -> list[Widget]:
    out = []
    for spec in input_type.fields:
        typ, options, hint = spec.type, [], ""
        if isinstance(typ, T.EnumType):
            kind, options = "select", list(typ.values)
        elif isinstance(typ, T.Prim):
            kind = {"money": "money", "percent": "percent", "int": "int", "decimal": "decimal", "number": "decimal",
                    "date": "date", "bool": "bool", "cpf": "cpf", "cnpj": "cnpj"}.get(typ.name, "text")
            hint = {"money": "R$, ex.: 1.234,56", "percent": "ex.: 12,5%", "cpf": "000.000.000-00",
                    "cnpj": "00.000.000/0000-00", "date": "dd/mm/aaaa"}.get(kind, "")
        else:  # lists and records: JSON
            kind, hint = "json", "JSON"
        out.append(Widget(spec.name, kind, spec.required, _default_text(spec), options, hint))
    return out


class FormError(Exception):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _decimal(text: str) -> str:
    """1.234,56 or 1234.56 -> "1234.56" (exact text for the engine)."""
    text = text.strip().replace("R$", "").strip()
    if "," in text:
        if not _BR_DECIMAL.match(text):
            raise ValueError(text)
        text = text.replace(".", "").replace(",", ".")
    float(text)  # refuses what is not a number at all; the engine checks the rest
    return text


def to_input(fields: list[Widget], values: dict[str, str]) -> dict[str, Any]:
    """The JSON input from the form's text; empty optional fields are left out (defaults apply)."""
    data, errors = {}, {}
    for field in fields:
        text = (values.get(field.name) or "").strip()
        if not text:
            continue
        try:
            if field.kind in ("money", "decimal"):
                data[field.name] = _decimal(text)
            elif field.kind == "percent":
                data[field.name] = _decimal(text.rstrip("%").strip()) + "%"
            elif field.kind == "int":
                data[field.name] = int(text.replace(".", ""))
            elif field.kind == "bool":
                data[field.name] = text in ("true", "sim", "1")
            elif field.kind == "json":
                data[field.name] = json.loads(text)
            else:
                data[field.name] = text
        except ValueError:
            errors[field.name] = "valor em formato inesperado"
    if errors:
        raise FormError(errors)
    return data
