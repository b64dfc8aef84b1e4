"""What a report is cut by (`--by`): input fields, connector facts, and bands of either.

- `uf`: an input field (replay: the stored input; backtest: a column of the dataset);
- `bureau.serasa.score.value`: a fact of a connector's answer: the connector's qualified name
  (`namespace.name`), then the path of the field in its answer (replay: the recorded answer the
  original decision got; backtest: the connector's column);
- `NAME:WIDTH` (`bureau.serasa.score.value:100`, `valor_pedido:10000`): numbers in bands of
  that width, `[700, 800)`.

A list cuts by its number of items (`bureau.serasa.restrictions`: 0, 1, 2…). No value (the
field is absent, the connector failed or was not asked, an object, a band of something that is
not a number) is the empty value "".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Context, Decimal, InvalidOperation
from typing import Any, Mapping

_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_CUT = re.compile(rf"^(?P<path>{_NAME}(?:\.{_NAME}){{0,11}})(?::(?P<width>[0-9]{{1,15}}(?:\.[0-9]{{1,6}})?))?$")


_WIDE = Context(prec=60)  # bands of any amount (below 10^18) at any width given (down to 10^-6), exactly


class CutError(ValueError):
    """A `--by` entry that cannot be read: the message names it and says what is expected."""


@dataclass(frozen=True)
class Cut:
    name: str  # as given: the report's key
    connector: str | None  # None: an input field / a dataset column
    path: tuple[str, ...]  # the field (input), or the path in the connector's answer
    width: Decimal | None = None

    def value(self, fields: Mapping[str, Any], answers: Mapping[str, Any]) -> str:
        """The group of one decision: `fields` its input (or row), `answers` connector -> answer."""
        if self.connector is None:
            value = fields.get(self.path[0])
        else:
            value = answers.get(self.connector)
            for key in self.path:
                value = value.get(key) if isinstance(value, dict) else None
        return group_text(value, self.width)


def group_text(value: Any, width: Decimal | None = None) -> str:
    if isinstance(value, list):
        value = len(value)
    if value is None or isinstance(value, dict):
        return ""
    if width is not None:
        if isinstance(value, bool):
            return ""
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return ""
        if not number.is_finite():
            return ""
        low = (number / width).to_integral_value(rounding=ROUND_FLOOR, context=_WIDE) * width
        low += 0  # -0 is 0
        return f"[{_plain(low)}, {_plain(low + width)})"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _plain(number: Decimal) -> str:
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_cuts(names: tuple[str, ...] | list[str]) -> list[Cut]:
    """The cuts of `--by` entries; CutError naming the first that cannot be read."""
    cuts = []
    for name in names:
        match = _CUT.match(name)
        if not match:
            raise CutError(f"'{name[:80]}': cut by an input field (uf), a connector's answer field "
                           "(bureau.serasa.score.value), either optionally in bands (bureau.serasa.score.value:100)")
        parts = match["path"].split(".")
        width = Decimal(match["width"]) if match["width"] else None
        if width is not None and not width:
            raise CutError(f"'{name}': a band's width is more than 0")
        if len(parts) == 1:
            cuts.append(Cut(name, None, (parts[0],), width))
        elif len(parts) == 2:
            raise CutError(f"'{name}': name a field of the connector's answer, e.g. {parts[0]}.{parts[1]}.score")
        else:
            cuts.append(Cut(name, f"{parts[0]}.{parts[1]}", tuple(parts[2:]), width))
    return cuts


def group_order(value: str):
    """Groups in a natural order: numbers and bands by their (lower) number, then the rest as text."""
    text = value[1:].split(",")[0] if value.startswith("[") else value
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        return (1, Decimal(0), value)
    return (0, number, value)
