"""Importing portfolio records from CSV or JSON: every bad row is reported, nothing is partial in silence.

    report = import_file(portfolio, "receivables", "titulos.csv")
    report.imported, report.rejected   # rejected: [(where, RowError)], where = "titulos.csv:7"

By default an import is all or nothing: one bad row and nothing is written (the report says
which rows and why). With `skip_invalid=True` the valid rows are written and the rejected ones
are still listed. References are checked too: a receivable's customer must exist, in the store
or earlier in the same file set.

CSV: a header row with the field names; empty cells are absent values; lists (a customer's
`channels`, an agreement's `receivable_ids`) are separated by `|`. Files as Excel pt-BR and
LibreOffice save them are read as they are (spreadsheet.py): `;`, `,` or tab separators, UTF-8
or Windows-1252, amounts like `1.234,56`, dates like `23/03/2026`, VERDADEIRO/FALSO or sim/não;
`delimiter` and `encoding` override the detection. Agreements carry nested instalments, so they
are imported from JSON only. JSON: a list of objects.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from . import spreadsheet
from .model import KINDS, RowError, parse
from .store import REFERENCES, Portfolio

LIST_FIELDS = {"channels", "receivable_ids"}


class PortfolioFileError(Exception):
    """The file itself cannot be read (not CSV/JSON, wrong kind): no row was considered."""


@dataclass
class ImportReport:
    kind: str
    read: int = 0
    imported: int = 0
    rejected: list[tuple[str, RowError]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


# Cells whose value an error may repeat: never documents, names or contacts (personal data).
_ECHOED = spreadsheet.MONEY_FIELDS | spreadsheet.DATE_FIELDS | spreadsheet.BOOL_FIELDS | {"status", "uf", "segment"}


def _rows(kind: str, path: Path, delimiter: str | None = None,
          encoding: str | None = None) -> tuple[list[tuple[str, dict]], dict[str, dict]]:
    """The rows of a file, each with where it came from, and (CSV) the cells as written, by row."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PortfolioFileError(f"{path}: {error.strerror or error}") from None
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            where = f":{error.lineno}:{error.colno}: not valid JSON: {error.msg}" if isinstance(error, json.JSONDecodeError) \
                else ": not UTF-8 text"
            raise PortfolioFileError(f"{path}{where}") from None
        if not isinstance(rows, list):
            raise PortfolioFileError(f"{path}: expected a JSON list of {kind}")
        return [(f"{path}[{i}]", row if isinstance(row, dict) else {"": row}) for i, row in enumerate(rows)], {}
    if path.suffix.lower() != ".csv":
        raise PortfolioFileError(f"{path}: expected a .csv or .json file")
    if kind == "agreements":
        raise PortfolioFileError(f"{path}: agreements have nested instalments; import them from JSON")
    try:
        text, _ = spreadsheet.decode(data, encoding)
    except spreadsheet.SpreadsheetError as error:
        raise PortfolioFileError(f"{path}: {error}") from None
    lines = text.splitlines()
    fields = set(KINDS[kind].__struct_fields__)
    delimiter = delimiter or spreadsheet.sniff_delimiter(lines[0] if lines else "", fields)
    reader = csv.DictReader(lines, delimiter=delimiter)
    if lines and not {name.strip() for name in reader.fieldnames or []} & fields:
        shown = "tab" if delimiter == "\t" else delimiter
        raise PortfolioFileError(f"{path}:1: the header names no field of {kind} when split by '{shown}' "
                                 f"(expected {', '.join(sorted(fields))}); is the separator one of , ; or tab?")
    rows, written = [], {}
    for raw in reader:
        row, cells = {}, {}
        for key, value in raw.items():
            if key is None:
                row["(extra columns)"] = value
            elif value is not None and value.strip() != "":
                name = key.strip()
                cells[name] = value.strip()
                row[name] = [v.strip() for v in value.split("|") if v.strip()] \
                    if name in LIST_FIELDS else spreadsheet.canonical(name, value.strip(), delimiter != ",")
        where = f"{path}:{reader.line_num}"
        rows.append((where, row))
        written[where] = cells
    return rows, written


def import_file(portfolio: Portfolio, kind: str, path: str | Path, skip_invalid: bool = False,
                delimiter: str | None = None, encoding: str | None = None) -> ImportReport:
    if kind not in KINDS:
        raise PortfolioFileError(f"unknown kind '{kind}'; expected one of {', '.join(KINDS)}")
    rows, written = _rows(kind, Path(path), delimiter, encoding)
    report = import_rows(portfolio, kind, rows, skip_invalid)
    report.rejected = [(where, _with_value(error, written.get(where, {}))) for where, error in report.rejected]
    return report


def _with_value(error: RowError, cells: dict) -> RowError:
    """The error, naming the value as written in the cell when it is not personal data."""
    if error.field in _ECHOED and error.field in cells:
        return RowError(error.field, error.code, f"{error.message} (got '{cells[error.field][:40]}')")
    return error


def import_rows(portfolio: Portfolio, kind: str, rows: list[tuple[str, dict]], skip_invalid: bool = False) -> ImportReport:
    """Check raw rows, each with where it came from (`file:line`, `[3]`), and save them all, or
    none unless `skip_invalid`. The report names every rejected row and field."""
    report = ImportReport(kind)
    report.read = len(rows)
    parsed = []
    for where, raw in rows:
        record, errors = parse(kind, raw)
        if errors:
            report.rejected.extend((where, e) for e in errors)
        else:
            parsed.append((where, record))
    parsed = _check_references(portfolio, kind, parsed, report)
    seen: dict[str, str] = {}
    unique = []
    for where, record in parsed:
        if record.id in seen:
            report.rejected.append((where, RowError("id", "DUPLICATE", f"'{record.id}' already appears at {seen[record.id]}")))
        else:
            seen[record.id] = where
            unique.append(record)
    if report.rejected and not skip_invalid:
        return report  # all or nothing: the report says why nothing was written
    report.imported = portfolio.save(unique)
    return report


def _check_references(portfolio: Portfolio, kind: str, parsed: list, report: ImportReport) -> list:
    kept = parsed
    for field_name, table in REFERENCES.get(kind, []):
        wanted = {getattr(record, field_name) for _, record in kept}
        found = portfolio.existing_ids(table, wanted)
        still = []
        for where, record in kept:
            if getattr(record, field_name) in found:
                still.append((where, record))
            else:
                report.rejected.append((where, RowError(field_name, "UNKNOWN_REFERENCE",
                                                        f"no {table[:-1]} with id '{getattr(record, field_name)}'")))
        kept = still
    if kind == "agreements":
        wanted = {rid for _, record in kept for rid in record.receivable_ids}
        found = portfolio.existing_ids("receivables", wanted)
        still = []
        for where, record in kept:
            missing = [rid for rid in record.receivable_ids if rid not in found]
            if missing:
                report.rejected.append((where, RowError("receivable_ids", "UNKNOWN_REFERENCE",
                                                        f"no receivable with id {', '.join(missing)}")))
            else:
                still.append((where, record))
        kept = still
    return kept


