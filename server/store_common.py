"""What both server store backends share: the decision row's columns, the error, the clock."""

from __future__ import annotations

import datetime as dt

DECISION_COLUMNS = ("id", "policy", "version", "revision", "outcome", "body", "input", "input_hash",
                    "document_hash", "document_masked", "request_id", "api_key", "duration_ms",
                    "connector_answers")


class StoreError(Exception):
    pass


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
