"""Declarative field mappings: a provider's JSON answer -> the BureauReport contract.

A mapping is a dict from dotted *target* fields of plugins.contracts.BureauReport to *specs*
saying where each value is in the provider's JSON (the format is documented in the docstring
of plugins.builtin.http_bureau, "The mapping"). `compile_mapping` checks a mapping against the
contract once, at configuration time (ValueError when it is wrong); `map_answer` applies it to
each decoded answer (ConnectorError BAD_ANSWER when the answer does not fit, with paths in the
message, never values); `identity_mapping` reads each contract field from its own name.

`get_path` reads a value at a dotted path ("dados.itens.0.situacao") out of decoded JSON: the one
path reader of the built-in connectors (the mappings here, negativation, notification channels).
"""

from __future__ import annotations

import datetime as dt
import typing
from decimal import Decimal, InvalidOperation

import msgspec

from regua.engine.connectors import ConnectorError
from regua.plugins.contracts import BureauReport

__all__ = ["compile_mapping", "get_path", "identity_mapping", "map_answer", "split_path"]

_SPEC_KEYS = {"path", "map", "otherwise", "default", "const", "date_format", "number_format"}
_LIST_KEYS = {"from", "item"}
_MISSING = object()


# ---------------------------------------------------------------------------------------------
# The contract's shape, read from the Structs so the mapping follows the contract as it grows.


def _leaf_kind(tp) -> str | tuple:
    if tp is int:
        return "int"
    if tp is Decimal:
        return "decimal"
    if tp is dt.date:
        return "date"
    if tp is str:
        return "str"
    if typing.get_origin(tp) is typing.Literal:
        return ("literal", *typing.get_args(tp))
    raise TypeError(f"unsupported contract field type {tp!r}")  # pragma: no cover - contract changed


def _shape(struct) -> dict:
    """field name -> ("leaf", kind, required) | ("struct", shape, required) | ("list", shape)."""
    out = {}
    for field in msgspec.structs.fields(struct):
        required = field.required
        tp = field.type
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            out[field.name] = ("struct", _shape(tp), required)
        elif typing.get_origin(tp) is list:
            (item,) = typing.get_args(tp)
            out[field.name] = ("list", _shape(item), required)
        else:
            out[field.name] = ("leaf", _leaf_kind(tp), required)
    return out


_REPORT_SHAPE = _shape(BureauReport)
_REPORT_SHAPE.pop("version")  # ours, not the provider's


# ---------------------------------------------------------------------------------------------
# Compiling a mapping (once, at configuration time) and applying it (at each answer).


class _BadAnswer(Exception):
    """The answer does not fit the mapping; the message names paths, never values."""


class _Leaf:
    __slots__ = ("target", "path", "table", "otherwise", "default", "const", "date_format", "br", "kind")

    def __init__(self, target: str, spec, kind, label: str):
        if isinstance(spec, str):
            spec = {"path": spec}
        if not isinstance(spec, dict):
            raise ValueError(f"mapping for '{label}': expected a path or a dict, got {type(spec).__name__}")
        unknown = set(spec) - _SPEC_KEYS
        if unknown:
            raise ValueError(f"mapping for '{label}': unknown key(s) {', '.join(sorted(unknown))}")
        if ("path" in spec) == ("const" in spec):
            raise ValueError(f"mapping for '{label}': give exactly one of 'path' and 'const'")
        if "map" in spec and not isinstance(spec["map"], dict):
            raise ValueError(f"mapping for '{label}': 'map' must be a dict")
        if spec.get("number_format") not in (None, "br"):
            raise ValueError(f"mapping for '{label}': number_format must be \"br\"")
        self.target = target
        self.path = _split(spec["path"], label) if "path" in spec else None
        self.table = {str(k): v for k, v in spec["map"].items()} if "map" in spec else None
        self.otherwise = spec.get("otherwise", _MISSING)
        self.default = spec.get("default", _MISSING)
        self.const = spec.get("const", _MISSING)
        self.date_format = spec.get("date_format")
        self.br = spec.get("number_format") == "br"
        self.kind = kind

    def value(self, source, where: str):
        if self.const is not _MISSING:
            value = self.const
        else:
            value = get_path(source, self.path)
            if value is not None and value is not _MISSING and self.table is not None:
                key = _text_key(value)
                if key in self.table:
                    value = self.table[key]
                elif self.otherwise is not _MISSING:
                    value = self.otherwise
                else:
                    raise _BadAnswer(f"{where}{self.target}: value not in the mapping's table")
        if value is None or value is _MISSING:
            if self.default is _MISSING:
                return _MISSING
            value = self.default
        return self._coerce(value, where)

    def _coerce(self, value, where: str):
        kind, here = self.kind, f"{where}{self.target}"
        if isinstance(value, bool):
            raise _BadAnswer(f"{here}: expected {_kind_name(kind)}, got a boolean")
        if kind == "str":
            if isinstance(value, str):
                return value
            if isinstance(value, (int, Decimal)):
                return str(value)
        elif kind == "int":
            if isinstance(value, int):
                return value
            number = _decimal(value, self.br) if isinstance(value, (str, Decimal)) else None
            if number is not None and number == number.to_integral_value():
                return int(number)
        elif kind == "decimal":
            number = _decimal(value, self.br) if isinstance(value, (str, int, Decimal)) else None
            if number is not None:
                return number
        elif kind == "date":
            if isinstance(value, str):
                parsed = _date(value.strip(), self.date_format)
                if parsed is not None:
                    return parsed
        elif kind[0] == "literal":
            if isinstance(value, str) and value in kind[1:]:
                return value
            raise _BadAnswer(f"{here}: not one of {', '.join(kind[1:])}")
        raise _BadAnswer(f"{here}: expected {_kind_name(kind)}")


class _List:
    __slots__ = ("target", "path", "item")

    def __init__(self, target: str, spec, shape: dict, label: str):
        if not isinstance(spec, dict) or set(spec) != _LIST_KEYS:
            raise ValueError(f"mapping for '{label}': a list takes {{\"from\": path, \"item\": {{...}}}}")
        self.target = target
        self.path = _split(spec["from"], label)
        self.item = _Mapping(spec["item"], shape, f"{label}[]")

    def value(self, source, where: str):
        items = get_path(source, self.path)
        if items is None or items is _MISSING:
            return _MISSING
        if not isinstance(items, list):
            raise _BadAnswer(f"{where}{self.target}: expected a list")
        return [self.item.build(element, f"{where}{self.target}[{i}].") for i, element in enumerate(items)]


class _Mapping:
    """A compiled mapping for one Struct shape: targets grouped by field, checked up front."""

    def __init__(self, mapping, shape: dict, context: str = ""):
        if not isinstance(mapping, dict):
            raise ValueError(f"mapping{' for ' + context if context else ''}: expected a dict")
        # field -> compiled spec (leaf or list) or nested _Mapping (for dotted targets)
        self.fields: dict[str, object] = {}
        nested: dict[str, dict] = {}
        for target, spec in mapping.items():
            head, _, rest = str(target).partition(".")
            label = f"{context}.{target}" if context else str(target)
            if head not in shape:
                raise ValueError(f"mapping: '{label}' is not a field of the contract "
                                 f"(fields: {', '.join(shape)})")
            what = shape[head]
            if what[0] == "struct":
                if not rest:
                    raise ValueError(f"mapping: map the fields of '{label}' (e.g. '{label}.value')")
                nested.setdefault(head, {})[rest] = spec
            elif rest:
                raise ValueError(f"mapping: '{head}' has no subfields")
            elif what[0] == "list":
                self.fields[head] = _List(head, spec, what[1], label)
            else:
                self.fields[head] = _Leaf(head, spec, what[1], label)
        for head, sub in nested.items():
            self.fields[head] = _Nested(head, _Mapping(sub, shape[head][1], f"{context}.{head}" if context else head))
        for name, what in shape.items():
            if what[-1] is True and name not in self.fields:  # required and unmapped
                label = f"{context}.{name}" if context else name
                raise ValueError(f"mapping: the required field '{label}' is not mapped")

    def build(self, source, where: str = "") -> dict:
        out = {}
        for name, spec in self.fields.items():
            value = spec.value(source, where)
            if value is not _MISSING:
                out[name] = value
        return out

    def missing_required(self, built: dict, shape: dict, where: str = ""):
        for name, what in shape.items():
            if name not in built:
                if what[-1] is True:
                    return f"{where}{name}"
                continue
            if what[0] == "struct":
                found = self.fields[name].mapping.missing_required(built[name], what[1], f"{where}{name}.")
                if found:
                    return found
            elif what[0] == "list":
                item = self.fields[name].item
                for i, element in enumerate(built[name]):
                    found = item.missing_required(element, what[1], f"{where}{name}[{i}].")
                    if found:
                        return found
        return None


class _Nested:
    __slots__ = ("target", "mapping")

    def __init__(self, target: str, mapping: _Mapping):
        self.target = target
        self.mapping = mapping

    def value(self, source, where: str):
        return self.mapping.build(source, f"{where}{self.target}.")


def compile_mapping(mapping: dict | None) -> _Mapping:
    """Check a mapping against the contract and prepare it; raises ValueError when it is wrong.
    None: the provider answers in the contract's own shape (every field read from its own name)."""
    return _Mapping(identity_mapping() if mapping is None else mapping, _REPORT_SHAPE)


def identity_mapping(shape: dict | None = None) -> dict:
    """The mapping that reads each contract field from the same name in the answer."""
    out = {}
    for name, what in (shape or _REPORT_SHAPE).items():
        if what[0] == "struct":
            out.update({f"{name}.{k}": f"{name}.{v}" for k, v in identity_mapping(what[1]).items()})
        elif what[0] == "list":
            out[name] = {"from": name, "item": identity_mapping(what[1])}
        else:
            out[name] = name
    return out


def map_answer(compiled: _Mapping, data) -> BureauReport:
    """The provider's decoded JSON as a BureauReport; ConnectorError BAD_ANSWER when it does not fit."""
    try:
        if not isinstance(data, (dict, list)):
            raise _BadAnswer("the answer is not a JSON object")
        built = compiled.build(data)
        missing = compiled.missing_required(built, _REPORT_SHAPE)
        if missing:
            raise _BadAnswer(f"{missing}: required, and missing from the answer")
        return msgspec.convert(built, BureauReport)
    except _BadAnswer as error:
        raise ConnectorError("BAD_ANSWER", str(error)) from None
    except msgspec.ValidationError as error:
        # msgspec quotes offending values ('…'); keep the path, never the value.
        raise ConnectorError("BAD_ANSWER", _redact_quotes(str(error))) from None


# ---- dotted paths ----


def split_path(path: str | None) -> tuple:
    """"dados.itens.0.situacao" -> ("dados", "itens", 0, "situacao"); "" or None -> () (the root)."""
    return tuple(int(p) if p.isdigit() else p for p in path.split(".")) if path else ()


def get_path(data, path: str | tuple | None, default=_MISSING):
    """The value in `data` (decoded JSON) at a dotted path, or `default` when there is none.

    Keys select in dicts, numbers index lists ("itens.0.situacao"; a number is also a dict key,
    "0"); an empty path is `data` itself. `path` may be pre-split with `split_path` (hot loops)."""
    value = data
    for part in split_path(path) if not isinstance(path, tuple) else path:
        if isinstance(value, dict):
            key = part if isinstance(part, str) else str(part)
            if key not in value:
                return default
            value = value[key]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return default
    return value


# ---- helpers ----


def _split(path, target: str) -> tuple:
    if not isinstance(path, str) or not path:
        raise ValueError(f"mapping for '{target}': a path is a non-empty string")
    if path == "@":
        return ()
    return split_path(path)


def _text_key(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _decimal(value, br: bool) -> Decimal | None:
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        return Decimal(value)
    else:
        text = value.strip().replace("R$", "").strip()
        if br:
            text = text.replace(".", "").replace(",", ".")
        try:
            number = Decimal(text)
        except InvalidOperation:
            return None
    return number if number.is_finite() else None


def _date(text: str, fmt: str | None) -> dt.date | None:
    try:
        if fmt:
            return dt.datetime.strptime(text, fmt).date()
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _kind_name(kind) -> str:
    return {"str": "text", "int": "an integer", "decimal": "a number", "date": "a date"}.get(kind, str(kind))


def _redact_quotes(message: str) -> str:
    out, inside = [], False
    for char in message:
        if char == "'":
            inside = not inside
            out.append("'…'" if inside else "")
        elif not inside:
            out.append(char)
    return "".join(out)
