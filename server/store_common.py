"""What both server store backends share: the decision row's columns, the error, the clock."""

from __future__ import annotations

import datetime as dt
import hashlib

from regua.engine.connectors import mask_document

DECISION_COLUMNS = ("id", "policy", "version", "revision", "outcome", "body", "input", "input_hash",
                    "document_hash", "document_masked", "request_id", "api_key", "duration_ms",
                    "connector_answers")


_DOCUMENT_HASH = DECISION_COLUMNS.index("document_hash")


def document_hash(document: str) -> str:
    """How a decision's document is kept for finding a customer's decisions: never in clear."""
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def text_row(row: tuple) -> tuple:
    """A decision row as stored, from the row as the server hands it to the decision log.

    Work the event loop leaves to the writer (its process, by default), each measured on
    credito_b2b under load (benchmarks/bench_quick.py):
    - the JSON columns (body, input, connector_answers) come as the bytes the server encoded, and
      are decoded here: decoding ~3 KB of copies a decision on the event loop, and keeping them
      until written, cost ~10 % of peak req/s;
    - a row of one item more than DECISION_COLUMNS ends with the decision's document in clear,
      its `document_hash` and `document_masked` left None: both are made here from it (~4 µs of
      the loop's time a request under load), and the document itself is not stored."""
    if len(row) > len(DECISION_COLUMNS):
        document = row[-1]
        row = row[:_DOCUMENT_HASH] + (
            (document_hash(document), mask_document(document)) if document else (None, None)
        ) + row[_DOCUMENT_HASH + 2:-1]
    return tuple(value.decode() if value.__class__ is bytes else value for value in row)


class StoreError(Exception):
    pass


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
