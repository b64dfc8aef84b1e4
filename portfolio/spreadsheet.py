"""CSV files as Brazilian spreadsheets save them: Excel pt-BR writes `;`-separated Windows-1252
with decimal commas (`1.234,56`), dates as `dd/mm/aaaa` and booleans as VERDADEIRO/FALSO;
LibreOffice writes UTF-8 with the separator you pick. This module turns such a file into rows of
canonical text (`1234.56`, `2026-03-23`, `true`) for the importer, which then checks them like any
other input. Nothing here guesses silently: a value that fits no known format is left as it is,
and the importer's error names its row, column and value.
"""

from __future__ import annotations

import codecs
import csv
import re

DELIMITERS = (",", ";", "\t")
ENCODINGS = ("utf-8", "cp1252", "latin-1", "utf-16")

MONEY_FIELDS = {"amount"}
DATE_FIELDS = {"issue_date", "due_date", "paid_on", "created_on"}
BOOL_FIELDS = {"disputed"}

# 1.234,56 · 1234,56 · R$ 1.234,56 · -10,5 (pt-BR: dot for thousands, comma for decimals)
_BR_NUMBER = re.compile(r"^(-?)\s*(?:R\$\s*)?(\d{1,3}(?:\.\d{3})+|\d+)(?:,(\d+))?$")
_PLAIN_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_BR_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_TRUE = {"true", "sim", "s", "verdadeiro", "1", "yes"}
_FALSE = {"false", "não", "nao", "n", "falso", "0", "no"}


class SpreadsheetError(Exception):
    """The file cannot be read as CSV text in any of the encodings tried."""


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The file's text and the encoding used: the one given, else a byte-order mark's, else
    UTF-8 when it decodes, else Windows-1252 (what Excel pt-BR saves)."""
    if encoding:
        try:
            return data.decode(encoding).removeprefix("\ufeff"), encoding
        except LookupError:
            raise SpreadsheetError(f"unknown encoding '{encoding}'") from None
        except UnicodeDecodeError as error:
            raise SpreadsheetError(f"not {encoding} text (byte {error.start})") from None
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="strict"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if b"\0" in data:
        raise SpreadsheetError("a binary file, not CSV text")
    return data.decode("cp1252", errors="replace"), "cp1252"


def sniff_delimiter(header: str, known_fields: set[str]) -> str:
    """The separator that splits the header row into the most known field names (ties: the
    most columns): `;` for Excel pt-BR, `,` elsewhere, tab for "text" exports."""
    def score(delimiter: str) -> tuple[int, int]:
        names = [name.strip().lower() for name in next(csv.reader([header], delimiter=delimiter), [])]
        return sum(name in known_fields for name in names), len(names)

    return max(DELIMITERS, key=score)


def number_text(value: str, decimal_comma: bool) -> str:
    """`1.234,56` (and `R$ 1.234,56`, `1234,56`) as `1234.56`; anything else unchanged."""
    return _number(value, decimal_comma)


def date_text(value: str) -> str:
    """`23/03/2026` as `2026-03-23`; anything else unchanged."""
    if (match := _BR_DATE.match(value)):
        day, month, year = match.groups()
        return f"{year}-{int(month):02d}-{int(day):02d}"
    return value


def bool_text(value: str) -> str:
    """VERDADEIRO/FALSO, sim/não… as `true`/`false`; anything else unchanged."""
    lowered = value.strip().lower()
    return "true" if lowered in _TRUE else "false" if lowered in _FALSE else value


def canonical(field: str, value: str, decimal_comma: bool) -> str:
    """A cell in the importer's canonical text, when it is in a Brazilian format; else unchanged.
    `decimal_comma`: the file is pt-BR (`;` or tab separated), where `1.005` is one thousand and
    five; in a `,`-separated file a dot is the decimal point, and a comma only in `1234,56`."""
    if field in MONEY_FIELDS:
        return _number(value, decimal_comma)
    if field in DATE_FIELDS and (match := _BR_DATE.match(value)):
        day, month, year = match.groups()
        return f"{year}-{int(month):02d}-{int(day):02d}"
    if field in BOOL_FIELDS:
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return "true"
        if lowered in _FALSE:
            return "false"
    return value


def _number(value: str, decimal_comma: bool) -> str:
    text = value.strip().replace("\u00a0", " ")
    if _PLAIN_NUMBER.match(text) and not (decimal_comma and re.search(r"\.\d{3}$", text)):
        return text  # 1234.56 (in a pt-BR file, a dot before three digits separates thousands)
    if not decimal_comma and "," not in text:
        return value  # a `,` file: only a (quoted) cell with a comma can be in the pt-BR format
    if (match := _BR_NUMBER.match(text)):
        sign, whole, cents = match.groups()
        return f"{sign}{whole.replace('.', '')}" + (f".{cents}" if cents is not None else "")
    return value
