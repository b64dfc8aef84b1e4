"""Brazilian formats for messages: Jinja2 filters shared by every notification channel.

| filter | input | output |
|---|---|---|
| `brl` | Decimal, int, str ("1234.5"), float | `R$ 1.234,50`, negative `-R$ 1.234,50` (exact, rounded half-up to cents) |
| `data` | date, datetime, ISO text | `dd/mm/aaaa` (an aware datetime is shown in Brasília time) |
| `documento` | CPF or CNPJ, with or without punctuation | `000.000.000-00` / `00.000.000/0000-00` (alphanumeric CNPJ too) |
| `pct` | percentage points (10.5) or a `dsl.values.Percent` fraction | `10,5%` |

    env = jinja2.Environment(...)
    register_filters(env)

Money is never turned into a float: values go through Decimal, and a float input is read from
its shortest repr (`0.1` -> `Decimal("0.1")`). Errors name the filter and the input's type but
never the value (values in messages are often personal data).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

from regua.dsl.values import Percent
from regua.engine.brazil import BRASILIA

__all__ = ["FILTERS", "brl", "data", "documento", "parse_brl", "pct", "register_filters", "to_decimal"]

_CENT = Decimal("0.01")



def to_decimal(value, what: str = "value") -> Decimal:
    """An exact, finite Decimal from a Decimal, int, numeric text or float (via its repr)."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{what}: expected a number, got {type(value).__name__}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what}: text that is not a number (use 1234.56, not 1.234,56)") from None
    else:
        raise TypeError(f"{what}: expected a number, got {type(value).__name__}")
    if not number.is_finite():
        raise ValueError(f"{what}: not a finite number")
    return number


def _quantize(number: Decimal, exponent: Decimal) -> Decimal:
    with localcontext() as ctx:  # enough digits for any magnitude: quantize never raises
        ctx.prec = max(28, number.adjusted() + 6)
        return number.quantize(exponent, rounding=ROUND_HALF_UP)


def _grouped(number: Decimal, places: int | None) -> str:
    """|number| with '.' thousands and ',' decimals (the number is already rounded)."""
    spec = f",.{places}f" if places is not None else ",f"
    text = format(abs(number), spec)
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def brl(value) -> str:
    """Money in reais: `R$ 1.234,56`; negative `-R$ 1.234,56`; rounded half-up to cents."""
    cents = _quantize(to_decimal(value, "brl"), _CENT)
    sign = "-" if cents < 0 else ""  # -0.004 rounds to zero: no sign
    return f"{sign}R$ {_grouped(cents, 2)}"


_BRL = re.compile(r"(-)?R\$[ \u00a0](\d{1,3}(?:\.\d{3})*),(\d{2})")


def parse_brl(text: str) -> Decimal:
    """The inverse of `brl`: `-R$ 1.234,56` -> Decimal('-1234.56')."""
    match = _BRL.fullmatch(text.strip())
    if match is None:
        raise ValueError("parse_brl: not an amount in the R$ 1.234,56 format")
    sign, whole, cents = match.groups()
    return Decimal(f"{sign or ''}{whole.replace('.', '')}.{cents}")


def _as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(BRASILIA)
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return dt.date.fromisoformat(text)
            return _as_date(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            raise ValueError("data: text that is not an ISO date (aaaa-mm-dd)") from None
    raise TypeError(f"data: expected a date, got {type(value).__name__}")


def data(value) -> str:
    """A date as `dd/mm/aaaa`. Aware datetimes are converted to Brasília time first."""
    day = _as_date(value)
    return f"{day.day:02d}/{day.month:02d}/{day.year:04d}"


def documento(value) -> str:
    """CPF as `000.000.000-00`, CNPJ as `00.000.000/0000-00` (alphanumeric CNPJ: `12.ABC.345/01DE-35`).

    Formats by shape (11 digits, or 12 upper-case alphanumerics + 2 digits); check digits are
    validated elsewhere (dsl.values.normalize_cpf / normalize_cnpj). Anything else is returned as given.
    """
    if value is None:
        raise TypeError("documento: expected a CPF or CNPJ, got NoneType")
    text = str(value).strip()
    compact = re.sub(r"[\s.\-/]", "", text)
    if re.fullmatch(r"\d{11}", compact):
        return f"{compact[:3]}.{compact[3:6]}.{compact[6:9]}-{compact[9:]}"
    if re.fullmatch(r"[0-9A-Z]{12}\d{2}", compact):
        return f"{compact[:2]}.{compact[2:5]}.{compact[5:8]}/{compact[8:12]}-{compact[12:]}"
    return text


def pct(value, casas: int | None = None) -> str:
    """A percentage: `10,5%`. Numbers are percentage points (10.5 -> 10,5%); a `Percent` (a policy's
    `10%`, stored as the fraction 0.10) is multiplied by 100. `casas`: fixed decimal places;
    by default up to 2, without trailing zeros. Rounded half-up."""
    number = to_decimal(value, "pct")
    if isinstance(value, Percent):
        number = number * 100
    if casas is None:
        rounded = _quantize(number, _CENT)
        places = max(0, -rounded.normalize().as_tuple().exponent) if rounded else 0
        rounded = _quantize(rounded, Decimal(1).scaleb(-places))
    else:
        places = int(casas)
        rounded = _quantize(number, Decimal(1).scaleb(-places))
    sign = "-" if rounded < 0 else ""
    return f"{sign}{_grouped(rounded, places)}%"


FILTERS = {"brl": brl, "data": data, "documento": documento, "pct": pct}


def _strict(function):
    """A filter that reports a missing template variable by its name ('valor' is undefined)."""
    import jinja2

    def apply(value, *args, **kwargs):
        if isinstance(value, jinja2.Undefined):
            str(value)  # StrictUndefined raises UndefinedError naming the variable
            raise jinja2.UndefinedError(f"{function.__name__}: a value is missing")
        return function(value, *args, **kwargs)

    apply.__name__ = function.__name__
    apply.__doc__ = function.__doc__
    return apply


def register_filters(env) -> None:
    """Add the Brazilian filters to a jinja2.Environment (a missing variable is an error)."""
    env.filters.update({name: _strict(function) for name, function in FILTERS.items()})
