"""Delivery receipts as providers report them, checked the same way whether they come over HTTP
(`POST /collection/deliveries`) or from a file (`regua deliveries import`).

A receipt says what happened to a step that was sent: `delivered` (with `delivered_at`: proof
for a notice), or `bounced` / `failed` (with a `reason`, and `failed_at`, default: when it
arrives): a hard bounce, an invalid number. Files are CSV as providers export them (separator
and encoding detected like the portfolio's spreadsheets) or JSON Lines, one receipt per line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Literal

import msgspec

from regua.portfolio.spreadsheet import SpreadsheetError, decode, sniff_delimiter

from .store import Receipt

FIELDS = ("key", "status", "delivered_at", "failed_at", "reason", "provider_id")


class DeliveryRequest(msgspec.Struct, forbid_unknown_fields=True):
    key: str  # the step's key, "<receivable id>:<step>" (the idempotency key the channel received)
    status: Literal["delivered", "bounced", "failed"] = "delivered"
    delivered_at: dt.datetime | None = None  # required when delivered
    failed_at: dt.datetime | None = None  # when it bounced or failed (default: when the receipt arrives)
    reason: str = ""  # required when bounced or failed: the provider's reason (hard bounce, invalid number…)
    provider_id: str = ""  # the provider's message id: a bounce naming an earlier send changes nothing


class InvalidReceipt(Exception):
    """A receipt that is malformed: `field` names what is wrong."""

    def __init__(self, field: str, message: str, code: str = "VALUE"):
        super().__init__(message)
        self.field, self.message, self.code = field, message, code


def to_receipt(data: DeliveryRequest, now: dt.datetime) -> Receipt:
    """The store's Receipt for a request, or InvalidReceipt."""
    if not data.key.strip():
        raise InvalidReceipt("key", "the step's key is empty", "MISSING")
    if data.status == "delivered":
        if data.delivered_at is None:
            raise InvalidReceipt("delivered_at", "a delivered receipt needs delivered_at", "MISSING")
        if data.failed_at is not None or data.reason:
            raise InvalidReceipt("status", "failed_at and reason belong to bounced or failed receipts")
        at = data.delivered_at
        field = "delivered_at"
    else:
        if not data.reason.strip():
            raise InvalidReceipt("reason", f"a {data.status} receipt needs the provider's reason", "MISSING")
        if data.delivered_at is not None:
            raise InvalidReceipt("delivered_at", f"a {data.status} receipt has no delivered_at (use failed_at)")
        at = data.failed_at or now
        field = "failed_at"
    if at.tzinfo is None:
        raise InvalidReceipt(field, f"{field} needs a time zone: an ISO 8601 instant with an offset")
    return Receipt(data.key.strip(), at, data.status, data.provider_id.strip(), data.reason.strip())


def parse_row(raw: dict, now: dt.datetime) -> Receipt:
    """One row of a file (strings, empty cells left out), checked like the HTTP body."""
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise InvalidReceipt(unknown[0], f"unknown column; expected {', '.join(FIELDS)}", "UNKNOWN_FIELD")
    cleaned = {k: v for k, v in raw.items() if v not in (None, "")}
    try:
        data = msgspec.convert(cleaned, DeliveryRequest)
    except msgspec.ValidationError as error:
        text = str(error)
        field = text.rsplit("$.", 1)[-1].strip("`") if "$." in text else "(row)"
        if "missing required field" in text:
            raise InvalidReceipt(text.split("`")[1] if "`" in text else field, text, "MISSING") from None
        raise InvalidReceipt(field, text.split(" - at ")[0]) from None
    return to_receipt(data, now)


def read_file(data: bytes, name: str, fmt: str | None = None,
              encoding: str | None = None) -> list[tuple[str, dict | InvalidReceipt]]:
    """The rows of a receipts file, each with where it came from (`line N`): a dict of cells, or
    the reason the line cannot be read. `fmt`: csv or jsonl (default: from the file name)."""
    fmt = fmt or ("jsonl" if name.lower().endswith((".jsonl", ".ndjson", ".json")) else "csv")
    try:
        text, _ = decode(data, encoding)
    except SpreadsheetError as error:
        raise ValueError(str(error)) from None
    rows: list[tuple[str, dict | InvalidReceipt]] = []
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                rows.append((f"line {number}", InvalidReceipt("(row)", f"not JSON: {error.msg}", "INVALID_JSON")))
                continue
            if not isinstance(value, dict):
                rows.append((f"line {number}", InvalidReceipt("(row)", "expected a JSON object", "INVALID_JSON")))
                continue
            rows.append((f"line {number}", {k: v for k, v in value.items()}))
        return rows
    header = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(header, set(FIELDS)))
    names = None
    for row in reader:
        if names is None:
            names = [n.strip().lower() for n in row]
            continue
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {reader.line_num}"
        if len(row) != len(names):
            rows.append((where, InvalidReceipt("(row)", f"{len(row)} cells; the header has {len(names)}",
                                               "COLUMNS")))
            continue
        rows.append((where, {name: cell.strip() for name, cell in zip(names, row) if name}))
    return rows
