"""Runtime values of the language's types, and coercion of outside data into them.

Used for JSON input, defaults, test fixtures and connector answers alike, so that a
value is validated the same way wherever it comes from. Errors name the field path.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from functools import lru_cache

from stdnum.br import cnpj as _cnpj
from stdnum.br import cpf as _cpf

from . import types as T


@dataclass(frozen=True, order=True)
class BusinessDays:
    """A duration counted in business days on the Brazilian calendar (national holidays)."""

    days: int

    def __add__(self, other):
        if isinstance(other, BusinessDays):
            return BusinessDays(self.days + other.days)
        return NotImplemented

    def __sub__(self, other):
        if isinstance(other, BusinessDays):
            return BusinessDays(self.days - other.days)
        return NotImplemented

    def __neg__(self):
        return BusinessDays(-self.days)

    def __mul__(self, other):
        if isinstance(other, int) and not isinstance(other, bool):
            return BusinessDays(self.days * other)
        return NotImplemented

    __rmul__ = __mul__

    def __str__(self) -> str:
        return f"{self.days} business {'day' if self.days == 1 else 'days'}"


class Percent(Decimal):
    """A percentage written in a policy (10% -> Percent("0.10")): already a fraction. JSON numbers,
    by contrast, are percentage points (10 means 10%)."""

    __slots__ = ()


class CoercionError(ValueError):
    def __init__(self, path: str, code: str, message: str):
        self.path = path
        self.code = code
        self.message = message
        super().__init__(f"{path}: {message}")

    def prefixed(self, prefix: str) -> "CoercionError":
        """The same error seen from an enclosing value: `valor` inside `faturas[1]` -> `faturas[1].valor`."""
        if not self.path:
            path = prefix
        elif self.path.startswith("["):
            path = prefix + self.path
        else:
            path = f"{prefix}.{self.path}" if prefix else self.path
        return CoercionError(path, self.code, self.message)


_DOCUMENT_SEPARATORS = re.compile(r"[\s.\-/]").sub
_CPF_SHAPE = re.compile(r"\d{11}").fullmatch
_CNPJ_SHAPE = re.compile(r"[0-9A-Z]{12}\d{2}").fullmatch


@lru_cache(maxsize=4096)  # the same customers come back; check digits are pure
def normalize_cpf(text: str) -> str | None:
    """The 11-digit CPF, or None when the check digits or the format are wrong."""
    compact = _DOCUMENT_SEPARATORS("", text)
    # 111.111.111-11 and friends pass the check digits but are not issued.
    if not _CPF_SHAPE(compact) or len(set(compact)) == 1:
        return None
    if not compact.isascii():
        return compact if _cpf.is_valid(compact) else None
    digits = [ord(c) - 48 for c in compact]
    return compact if _check_digits(digits[:9], _CPF_WEIGHTS) == digits[9:] else None


@lru_cache(maxsize=4096)
def normalize_cnpj(text: str) -> str | None:
    """The 14-character CNPJ (alphanumeric allowed, upper-case letters only), or None."""
    compact = _DOCUMENT_SEPARATORS("", text)
    if not _CNPJ_SHAPE(compact) or len(set(compact)) == 1:
        return None
    if not compact.isascii():
        return compact if _cnpj.is_valid(compact) else None
    if compact.startswith("000000000000"):
        return None
    values = [ord(c) - 48 for c in compact]  # letters count from '0', as in the alphanumeric CNPJ (2026)
    return compact if _check_digits(values[:12], _CNPJ_WEIGHTS) == values[12:] else None


# The mod-11 check digits of CPF and CNPJ, the arithmetic python-stdnum does (tests/test_coercion_fast_paths.py
# holds them equal) without its generic cleaning, which cost more than the rest of an evaluation.
_CPF_WEIGHTS = (11, 10, 9, 8, 7, 6, 5, 4, 3, 2)
_CNPJ_WEIGHTS = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)


def _check_digits(values: list[int], weights: tuple[int, ...]) -> list[int]:
    """The two check digits of `values` (weights for the second digit; the first uses all but the first)."""
    first = (11 - sum(map(operator.mul, weights[1:], values))) % 11 % 10
    second = (11 - sum(map(operator.mul, weights, values + [first]))) % 11 % 10
    return [first, second]


_PERCENT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")
_DURATION = re.compile(r"^\s*(\d+)\s+(business\s+)?days?\s*$")


_MAX_NUMBER_TEXT = 64
_MAX_MAGNITUDE = 18


def _decimal(value, path: str) -> Decimal:
    if isinstance(value, bool):
        raise CoercionError(path, "TYPE", "expected a number, got a bool")
    if isinstance(value, Decimal):
        result = value  # JSON numbers arrive as Decimal, decoded from their text (server/bodies.py)
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        # A Python caller's float: its shortest round-trip text. JSON is never read through a float.
        result = Decimal(repr(value))
    elif isinstance(value, str):
        if len(value) > _MAX_NUMBER_TEXT:
            raise CoercionError(path, "OUT_OF_RANGE", f"a number of at most {_MAX_NUMBER_TEXT} characters is expected")
        try:
            result = Decimal(value.strip().replace("_", ""))
        except InvalidOperation:
            raise CoercionError(path, "TYPE", f"expected a number, got '{_clip(value)}'") from None
    else:
        raise CoercionError(path, "TYPE", f"expected a number, got {_kind(value)}")
    if not result.is_finite():
        raise CoercionError(path, "VALUE", "expected a finite number")
    # Inputs beyond any real amount (1e999999 is 240 bytes of JSON and a megabyte of digits once
    # printed) are refused: magnitude below 10^18, at most 18 decimal places.
    if result and (result.adjusted() >= _MAX_MAGNITUDE or result.as_tuple().exponent < -_MAX_MAGNITUDE):
        raise CoercionError(path, "OUT_OF_RANGE", f"expected a number below 10^{_MAX_MAGNITUDE} "
                            f"with at most {_MAX_MAGNITUDE} decimal places")
    return result


def _in_range(value: Decimal) -> bool:
    """Finite, below 10^18 and with at most 18 decimal places: what _decimal lets through."""
    return value.is_finite() and (not value or (value.adjusted() < _MAX_MAGNITUDE
                                                and value.as_tuple().exponent >= -_MAX_MAGNITUDE))


def _float_in_range(number: Decimal) -> bool:
    """_in_range for Decimal(repr(a float)), mostly without as_tuple() (about 0.45 µs, most of
    reading a float amount): repr() of a float has at most 17 significant digits, so its exponent
    is at least adjusted() - 16, and with adjusted() >= -2 there are at most 18 decimal places."""
    if number.is_finite() and (not number or -2 <= number.adjusted() < _MAX_MAGNITUDE):
        return True
    return _in_range(number)


#: Amounts as text that are certainly a whole number of centavos below 10^18 (others take the long way).
_PLAIN_CENTS = re.compile(r"-?[0-9]{1,17}(?:\.[0-9]{0,2})?").fullmatch

#: Money taken in (inputs, defaults, test values) is a whole number of centavos.
MONEY_PLACES = 2
_CENT = Decimal(1).scaleb(-MONEY_PLACES)


def _whole_cents(value: Decimal, path: str) -> Decimal:
    """`value` if it is a whole number of centavos: 10.5 and 10.500 are R$ 10,50; 10.505 is refused
    (rounding it would decide on an amount the caller never sent)."""
    if value.as_tuple().exponent < -MONEY_PLACES and value != value.quantize(_CENT, context=_WIDE):
        raise CoercionError(path, "MONEY_PRECISION",
                            f"money has at most {MONEY_PLACES} decimal places (centavos), got {_plain(value)}")
    return value


# Wide enough for any number _decimal accepts (18 integer and 18 decimal digits) scaled or quantized:
# percentage points become a fraction exactly, never rounded to the default 28 digits.
_WIDE = Context(prec=2 * _MAX_MAGNITUDE + 4)


def _percent(value, path: str) -> Decimal:
    """A percent input: a text "2.5%" or a number of percentage points (2.5), as the fraction 0.025."""
    if isinstance(value, Percent):
        return Decimal(value)
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if not match:
            raise CoercionError(path, "TYPE", f"expected a percentage such as \"10%\", got '{_clip(value)}'")
        value = match.group(1)  # the number before "%": held to the same limits as any number
    return _decimal(value, path).scaleb(-2, context=_WIDE)


_INT_LIMIT = 10 ** _MAX_MAGNITUDE
_INT_RANGE_MESSAGE = f"expected a whole number between -10^{_MAX_MAGNITUDE} and 10^{_MAX_MAGNITUDE} (exclusive)"


def _int(value, path: str) -> int:
    """A whole number of magnitude below 10^18 (like every other number a policy takes in)."""
    if isinstance(value, bool):
        raise CoercionError(path, "TYPE", "expected a whole number, got a bool")
    if isinstance(value, int):
        result = value
    elif isinstance(value, (float, Decimal)):
        number = value if isinstance(value, Decimal) else Decimal(repr(value))
        if not number.is_finite():
            raise CoercionError(path, "VALUE", "expected a finite number")
        if number and number.adjusted() >= _MAX_MAGNITUDE:  # 1e300: checked before int() builds it
            raise CoercionError(path, "OUT_OF_RANGE", _INT_RANGE_MESSAGE)
        if number != number.to_integral_value():
            raise CoercionError(path, "TYPE", f"expected a whole number, got {_kind(value)}")
        result = int(number)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_NUMBER_TEXT:  # before int(): Python refuses over 4300 digits with a ValueError
            raise CoercionError(path, "OUT_OF_RANGE", f"a number of at most {_MAX_NUMBER_TEXT} characters is expected")
        if not re.fullmatch(r"-?\d[\d_]*", text):
            raise CoercionError(path, "TYPE", f"expected a whole number, got {_kind(value)}")
        result = int(text.replace("_", ""))
    else:
        raise CoercionError(path, "TYPE", f"expected a whole number, got {_kind(value)}")
    if not -_INT_LIMIT < result < _INT_LIMIT:
        raise CoercionError(path, "OUT_OF_RANGE", _INT_RANGE_MESSAGE)
    return result


#: Durations: at most this many days (about 27,000 years; Python's own limit is 999,999,999).
MAX_DURATION_DAYS = 9_999_999


def _days(count: int, path: str) -> int:
    if not -MAX_DURATION_DAYS <= count <= MAX_DURATION_DAYS:
        raise CoercionError(path, "OUT_OF_RANGE", f"expected at most {MAX_DURATION_DAYS} days")
    return count


def _day_count(text: str, path: str) -> int:
    if len(text) > _MAX_NUMBER_TEXT:
        raise CoercionError(path, "OUT_OF_RANGE", f"a duration of at most {_MAX_NUMBER_TEXT} characters is expected")
    return _days(int(text), path)


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a text", bool: "a bool", type(None): "null",
            int: "a number", float: "a number", Decimal: "a number"}.get(type(value), type(value).__name__)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _coerce_scalar(value, typ: T.Type, path: str = ""):
    if value is None:
        raise CoercionError(path, "REQUIRED", "is required (null is not a value)")
    if T.is_unknown(typ):
        return value
    # Compare by name: types unpickled from the compile cache are equal but not identical.
    kind = typ.name if isinstance(typ, T.Prim) else None
    if kind == "int":
        return _int(value, path)
    if kind in ("decimal", "money"):
        return _decimal(value, path)
    if kind == "percent":
        return _percent(value, path)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise CoercionError(path, "TYPE", f"expected true or false, got {_kind(value)}")
    if kind == "text":
        if isinstance(value, str):
            return value
        raise CoercionError(path, "TYPE", f"expected a text, got {_kind(value)}")
    if kind == "date":
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise CoercionError(path, "TYPE", "expected a date as \"YYYY-MM-DD\"")
    if kind == "duration":
        if isinstance(value, dt.timedelta):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return dt.timedelta(days=_days(value, path))
        if isinstance(value, str) and (match := _DURATION.match(value)) and not match.group(2):
            return dt.timedelta(days=_day_count(match.group(1), path))
        raise CoercionError(path, "TYPE", "expected a duration such as \"30 days\" (or a number of days)")
    if kind == "business_days":
        if isinstance(value, BusinessDays):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return BusinessDays(_days(value, path))
        if isinstance(value, str) and (match := _DURATION.match(value)) and match.group(2):
            return BusinessDays(_day_count(match.group(1), path))
        raise CoercionError(path, "TYPE", "expected business days such as \"5 business days\" (or a number)")
    if kind in ("cpf", "cnpj"):
        if not isinstance(value, str):
            raise CoercionError(path, "TYPE", f"expected a {typ} as text, got {_kind(value)}")
        normalized = (normalize_cpf if kind == "cpf" else normalize_cnpj)(value)
        if normalized is None:
            # Never echo the document back: it is personal data.
            raise CoercionError(path, "INVALID_DOCUMENT", f"is not a valid {typ.name.upper()}")
        return normalized
    if isinstance(typ, T.EnumType):
        if isinstance(value, str) and value in typ.values:
            return value
        raise CoercionError(path, "ENUM", f"expected one of {', '.join(typ.values)}")
    raise CoercionError(path, "TYPE", f"cannot take a value of type {typ}")


def zero(typ: T.Type):
    """The neutral value of a summable type (the sum of an empty list)."""
    if typ == T.INT:
        return 0
    if typ == T.DURATION:
        return dt.timedelta(0)
    return Decimal(0)


# ---- output -------------------------------------------------------------------------


_MONEY_OUT = Context(prec=28)  # what to_json quantizes amounts below 10^24 in (most of them)


def to_json(value, typ: T.Type | None = None):
    """Runtime value -> JSON-friendly value. Money keeps two decimals as text: exact, never a float."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, Decimal):
        if typ is T.MONEY or typ == T.MONEY:
            # Same rounding as round(): half-up, the way amounts are rounded on Brazilian invoices;
            # huge amounts keep their cents.
            places = _MONEY_OUT if value.adjusted() < 24 else Context(prec=value.adjusted() + 4)
            cents = value.quantize(_CENT, rounding=ROUND_HALF_UP, context=places)
            return str(cents if cents else abs(cents))  # never "-0.00"
        if typ == T.PERCENT:
            return f"{_plain(value * 100)}%"
        return _plain(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"{value.days} {'day' if value.days == 1 else 'days'}"
    if isinstance(value, BusinessDays):
        return str(value)
    if isinstance(value, list):
        inner = typ.element if isinstance(typ, T.ListType) else None
        return [to_json(v, inner) for v in value]
    if isinstance(value, dict):
        fields = {f.name: f.type for f in typ.fields} if isinstance(typ, T.RecordType) else {}
        return {k: to_json(v, fields.get(k)) for k, v in value.items()}
    return str(value)


def out_of_range_paths(value, path: str = "", limit: int = 10**18) -> list[str]:
    """Paths of the whole numbers in a JSON-like value whose magnitude is `limit` or more."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [path] if not -limit < value < limit else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in out_of_range_paths(v, f"{path}.{k}" if path else str(k), limit)]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in out_of_range_paths(v, f"{path}[{i}]", limit)]
    return []


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text
