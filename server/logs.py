"""Logging for the server: one format, and personal data masked before anything is written.

Handlers never log inputs, but URLs (GET /decisions?document=…), third-party messages and
exception texts could still carry a CPF, CNPJ, e-mail or phone number. `MaskingFilter` sits
on the root handler, so every logger (uvicorn's access log included) goes through it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys

from regua.engine.connectors import mask_documents_in

# Formatted CPF/CNPJ (alphanumeric CNPJ too, any case, "/" possibly URL-encoded as %2F), long
# digit runs (bare documents, phones; not ISO dates), e-mail addresses, and whatever follows
# "document=" in a URL.
_PATTERNS = [
    re.compile(r"\b[0-9A-Z]{2}\.?[0-9A-Z]{3}\.?[0-9A-Z]{3}(?:/|%2F)?[0-9A-Z]{4}-?\d{2}\b", re.IGNORECASE),
    re.compile(r"\b\d{3}\.\d{3}\.\d{3}-\d{2}\b"),
    re.compile(r"(?<![\w.])(?!\d{4}-\d{2}-\d{2}\b)\+?\d[\d ()-]{8,}\d\b"),
    re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"),
    re.compile(r"(?<=document=)[^&\s\"]+"),
]


def _mask(match: re.Match) -> str:
    text = match.group(0)
    return "***@***" if "@" in text else "*" * max(len(text) - 2, 1) + text[-2:]


def mask_text(text: str) -> str:
    text = mask_documents_in(text)  # CPF/CNPJ in any spelling, percent-encoded ones too
    for pattern in _PATTERNS:
        text = pattern.sub(_mask, text)
    return text


class MaskingFilter(logging.Filter):
    """Masks the message and any exception text (tracebacks quote exception messages)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (time, level, logger, message, and the exception when there is
    one), for log collectors. The masking filter has already run on the message and exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_text or record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds")


FORMATTERS = {"text": lambda: logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"),
              "json": JsonFormatter}


def configure_logging(level: str = "info", access_log: bool = False, fmt: str = "text") -> None:
    """Idempotent: one stderr handler on the root logger, with the masking filter; `fmt` is
    "text" (one readable line) or "json" (one JSON object per line)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "granian", "_granian", "granian.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = access_log or not name.endswith(".access")
    for handler in root.handlers:
        if getattr(handler, "_regua", False):
            handler.setFormatter(FORMATTERS[fmt]())
            return
    handler = logging.StreamHandler(sys.stderr)
    handler._regua = True  # type: ignore[attr-defined]
    handler.setFormatter(FORMATTERS[fmt]())
    handler.addFilter(MaskingFilter())
    root.addHandler(handler)
