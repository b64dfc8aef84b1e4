"""Compiled coercers: one function per type, built once, that turns a JSON-like value (an input, a
fixture, a connector's answer) into the runtime value the generated code reads (dsl.values holds
the scalar rules each of them applies), raising CoercionError with a relative path."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from decimal import Decimal

from . import types as T
from .values import (
    _INT_LIMIT,
    _PLAIN_CENTS,
    CoercionError,
    _coerce_scalar,
    _float_in_range,
    _in_range,
    _kind,
    _whole_cents,
    normalize_cnpj,
    normalize_cpf,
)

# Validation runs on every input and every connector answer, so each type gets a function
# built once. Paths are relative and only assembled when an error travels up.

def coerce(value, typ: T.Type, path: str = "input", *, cents: bool = False):
    """Convert `value` (JSON-like or already a runtime value) to the runtime value of `typ`
    (`cents`: money must be a whole number of centavos, as for inputs — see coercer)."""
    try:
        return coercer(typ, cents=cents)(value)
    except CoercionError as error:
        raise error.prefixed(path) from None


_COERCERS: dict[tuple[int, bool, bool], tuple[T.Type, object]] = {}
_MAX_COERCERS = 512  # types come and go with policy publishes: a few per version, a few kB each; bounded


def coercer(typ: T.Type, strict: bool = True, *, cents: bool = False):
    """A function value -> runtime value for `typ`, raising CoercionError with a relative path.

    strict: unknown record fields are errors (inputs, fixtures: catches typos). Connector
    answers are read with strict=False: providers add fields, and that must not break decisions.
    cents: money must be a whole number of centavos (MONEY_PRECISION otherwise). What a caller
    sends is held to it; connector answers are not (a bureau's average ticket may have more places).
    """
    key = (id(typ), strict, cents)
    entry = _COERCERS.get(key)
    if entry is not None and entry[0] is typ:
        return entry[1]
    if len(_COERCERS) >= _MAX_COERCERS:
        _COERCERS.clear()
    function = _build_coercer(typ, strict, cents)
    if not getattr(function, "stand_in", False):  # a stand-in for a record being built is never cached
        _COERCERS[key] = (typ, function)
    return function


# Runtime type that needs no conversion, per scalar type name (the fast path).
_EXACT = {"int": int, "decimal": Decimal, "money": Decimal, "text": str, "date": dt.date, "bool": bool}


def _build_coercer(typ: T.Type, strict: bool = True, cents: bool = False):
    if isinstance(typ, T.RecordType):
        return _record_coercer(typ, strict, cents)
    if isinstance(typ, T.ListType):
        resolved: list = []  # the item coercer, looked up at first use (a record may contain itself)

        def coerce_list(value, element=typ.element):
            if not isinstance(value, (list, tuple)):
                raise CoercionError("", "TYPE", f"expected a list, got {_kind(value)}")
            if not resolved:
                resolved.append(coercer(element, strict, cents=cents))
            item_coercer = resolved[0]
            try:
                return [item_coercer(item) for item in value]
            except CoercionError:
                for index, item in enumerate(value):  # the slow path only finds where it failed
                    try:
                        item_coercer(item)
                    except CoercionError as error:
                        raise error.prefixed(f"[{index}]") from None
                raise
        return coerce_list
    exact = _EXACT.get(typ.name) if isinstance(typ, T.Prim) else None
    if exact is Decimal and cents and typ.name == "money":
        def coerce_money(value, typ=typ, limit=_INT_LIMIT):
            kind = type(value)
            if kind is int and -limit < value < limit:  # whole reais: nothing to check
                return Decimal(value)
            if kind is str and _PLAIN_CENTS(value):  # "1234.50": in range and whole centavos by its shape
                return Decimal(value)
            number = value if kind is Decimal and _in_range(value) else _coerce_scalar(value, typ)
            return _whole_cents(number, "")
        return coerce_money
    if exact is Decimal:
        def coerce_decimal(value, typ=typ, limit=_INT_LIMIT):
            # JSON numbers arrive as Decimal: still held to the limits of any number.
            kind = type(value)
            if kind is Decimal and _in_range(value):
                return value
            if kind is int and -limit < value < limit:  # JSON amounts are mostly whole numbers
                return Decimal(value)
            if kind is float:  # a Python caller's float (a fixture's answer): _decimal's reading of it
                number = Decimal(repr(value))
                if _float_in_range(number):
                    return number
            return _coerce_scalar(value, typ)
        return coerce_decimal
    if exact is int:
        def coerce_int(value, typ=typ, limit=_INT_LIMIT):
            if type(value) is int and -limit < value < limit:
                return value
            return _coerce_scalar(value, typ)
        return coerce_int
    if isinstance(typ, T.Prim) and typ.name in ("cpf", "cnpj"):
        def coerce_document(value, typ=typ, normalize=normalize_cpf if typ.name == "cpf" else normalize_cnpj):
            if type(value) is str:
                normalized = normalize(value)
                if normalized is not None:
                    return normalized
            return _coerce_scalar(value, typ)  # says what is wrong, never echoing the document
        return coerce_document
    if exact is dt.date:
        def coerce_date(value, typ=typ):
            kind = type(value)
            if kind is dt.date:
                return value
            if kind is str:  # ISO text, as JSON carries dates
                try:
                    return dt.date.fromisoformat(value)
                except ValueError:
                    pass  # _coerce_scalar says why
            return _coerce_scalar(value, typ)
        return coerce_date
    if exact is not None:
        def coerce_exact(value, exact=exact, typ=typ):
            if type(value) is exact:  # already the runtime type: nothing to convert
                return value
            return _coerce_scalar(value, typ)
        return coerce_exact
    return lambda value, typ=typ: _coerce_scalar(value, typ)


def _record_coercer(typ: T.RecordType, strict: bool, cents: bool):
    """Generate a specialised function for one record type (validation runs on every input and
    every connector answer). Field names only ever appear as repr() literals in the source."""
    building = _building()
    key = (id(typ), strict, cents)
    if key in building:
        # A record that refers to itself, met again while this thread builds it: resolve on first use.
        holder: dict = {}

        def first_call(value):
            if "function" not in holder:
                holder["function"] = coercer(typ, strict, cents=cents)
            return holder["function"](value)

        first_call.stand_in = True
        return first_call
    building.add(key)
    try:
        return _generate_record_coercer(typ, strict, cents)
    finally:
        building.discard(key)


# The records each thread is building. Per thread: with one shared set, a thread compiling a policy
# saw another thread's record "being built", got the stand-in, cached it as the record's coercer,
# and the stand-in then resolved to itself (RecursionError under concurrent publishes).
_THREAD = threading.local()


def _building() -> set[tuple[int, bool, bool]]:
    try:
        return _THREAD.building
    except AttributeError:
        _THREAD.building = set()
        return _THREAD.building


def _date_text(value):
    """Fast path for ISO dates given as text; anything else goes through the full coercion."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return _coerce_scalar(value, T.DATE)


def _generate_record_coercer(typ: T.RecordType, strict: bool, cents: bool):
    namespace: dict = {"Mapping": Mapping, "CoercionError": CoercionError, "_unknown": _unknown_field,
                       "_kind": _kind, "_copy": _copy, "Decimal": Decimal, "date": dt.date, "_date_text": _date_text}
    lines = [
        "def coerce_record(v):",
        "    if type(v) is not dict:",
        "        if not isinstance(v, Mapping):",
        "            raise CoercionError('', 'TYPE', 'expected an object, got ' + _kind(v))",
        "        v = dict(v)",
    ]
    if strict:
        lines += ["    if not KNOWN.issuperset(v):", "        _unknown(v, KNOWN, NAME)"]
    lines.append("    out = {}")
    namespace["KNOWN"] = frozenset(f.name for f in typ.fields)
    namespace["NAME"] = typ.name
    for n, spec in enumerate(typ.fields):
        key = repr(spec.name)
        namespace[f"C{n}"] = coercer(spec.type, strict, cents=cents)
        namespace[f"D{n}"] = spec.default
        exact = _EXACT.get(spec.type.name) if isinstance(spec.type, T.Prim) else None
        if exact is Decimal:
            fast = f"C{n}(x)"  # JSON numbers arrive as Decimal and are checked there (range, centavos)
        elif exact is dt.date:
            fast = f"x if type(x) is date else _date_text(x) if type(x) is str else C{n}(x)"
        elif isinstance(spec.type, T.EnumType):
            namespace[f"V{n}"] = frozenset(spec.type.values)
            fast = f"x if type(x) is str and x in V{n} else C{n}(x)"
        elif exact is not None:
            namespace[f"E{n}"] = exact
            fast = f"x if type(x) is E{n} else C{n}(x)"
        else:
            fast = f"C{n}(x)"
        lines.append(f"    x = v.get({key})")
        lines.append("    if x is None:")
        if spec.required:
            lines.append(f"        raise CoercionError({key}, 'REQUIRED', 'is required')")
        elif spec.default == [] and isinstance(spec.default, list):
            lines.append(f"        out[{key}] = []")
        elif isinstance(spec.default, (list, dict)):
            lines.append(f"        out[{key}] = _copy(D{n})")
        else:
            lines.append(f"        out[{key}] = D{n}")
        lines.append("    else:")
        lines.append("        try:")
        lines.append(f"            out[{key}] = {fast}")
        lines.append("        except CoercionError as error:")
        lines.append(f"            raise error.prefixed({key}) from None")
    lines.append("    return out")
    exec(compile("\n".join(lines), f"<coercer {typ.name}>", "exec"), namespace)  # noqa: S102 — generated here
    return namespace["coerce_record"]


def _unknown_field(value, known, name):
    import difflib

    for key in value:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise CoercionError(str(key), "UNKNOWN_FIELD", f"is not a field of {name}{hint}")


def _copy(value):
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


