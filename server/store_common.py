"""What both server store backends share: the decision row's columns, the error, the clock."""

from __future__ import annotations

import datetime as dt

DECISION_COLUMNS = ("id", "policy", "version", "revision", "outcome", "body", "input", "input_hash",
                    "document_hash", "document_masked", "request_id", "api_key", "duration_ms",
                    "connector_answers")


def text_row(row: tuple) -> tuple:
    """A decision row with its JSON columns (body, input, connector_answers) as text. The server
    hands them to the decision log as the bytes it encoded: decoding ~3 KB of copies a decision
    on the event loop, and keeping them until the log is written, cost ~10 % of credito_b2b's
    peak req/s (benchmarks/bench_quick.py); the writer process decodes them instead."""
    return tuple(value.decode() if value.__class__ is bytes else value for value in row)


class StoreError(Exception):
    pass


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
