"""Importing portfolio records from CSV or JSON: every bad row is reported, nothing is partial in silence.

    report = import_file(portfolio, "receivables", "titulos.csv")
    report.imported, report.rejected   # rejected: [(where, RowError)], where = "titulos.csv:7"

By default an import is all or nothing: one bad row and nothing is written (the report says
which rows and why). With `skip_invalid=True` the valid rows are written and the rejected ones
are still listed. References are checked too: a receivable's customer must exist, in the store
or earlier in the same file set.

CSV: a header row with the field names; empty cells are absent values; lists (a customer's
`channels`, an agreement's `receivable_ids`) are separated by `|`. Agreements carry nested
instalments, so they are imported from JSON only. JSON: a list of objects.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

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


def _rows(kind: str, path: Path) -> list[tuple[str, dict]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise PortfolioFileError(f"{path}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}") from None
        if not isinstance(data, list):
            raise PortfolioFileError(f"{path}: expected a JSON list of {kind}")
        return [(f"{path}[{i}]", row if isinstance(row, dict) else {"": row}) for i, row in enumerate(data)]
    if path.suffix.lower() != ".csv":
        raise PortfolioFileError(f"{path}: expected a .csv or .json file")
    if kind == "agreements":
        raise PortfolioFileError(f"{path}: agreements have nested instalments; import them from JSON")
    reader = csv.DictReader(text.splitlines())
    rows = []
    for raw in reader:
        row = {}
        for key, value in raw.items():
            if key is None:
                row["(extra columns)"] = value
            elif value is not None and value.strip() != "":
                row[key.strip()] = [v.strip() for v in value.split("|") if v.strip()] \
                    if key.strip() in LIST_FIELDS else value.strip()
        rows.append((f"{path}:{reader.line_num}", row))
    return rows


def import_file(portfolio: Portfolio, kind: str, path: str | Path, skip_invalid: bool = False) -> ImportReport:
    if kind not in KINDS:
        raise PortfolioFileError(f"unknown kind '{kind}'; expected one of {', '.join(KINDS)}")
    return import_rows(portfolio, kind, _rows(kind, Path(path)), skip_invalid)


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


