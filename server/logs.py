"""Logging for the server: one format, and personal data masked before anything is written.

Handlers never log inputs, but URLs (GET /decisions?document=…), third-party messages and
exception texts could still carry a CPF, CNPJ, e-mail or phone number. `MaskingFilter` sits
on the root handler, so every logger (uvicorn's access log included) goes through it.
"""

from __future__ import annotations

import logging
import re
import sys

# Formatted CPF/CNPJ (alphanumeric CNPJ too), long digit runs (bare documents, phones),
# e-mail addresses, and digit runs after "document=" in URLs.
_PATTERNS = [
    re.compile(r"\b[0-9A-Z]{2}\.?[0-9A-Z]{3}\.?[0-9A-Z]{3}/?[0-9A-Z]{4}-?\d{2}\b"),
    re.compile(r"\b\d{3}\.\d{3}\.\d{3}-\d{2}\b"),
    re.compile(r"(?<![\w.])\+?\d[\d ()-]{8,}\d\b"),
    re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"),
    re.compile(r"(?<=document=)[^&\s\"]+"),
]


def mask_text(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: "*" * max(len(m.group(0)) - 2, 1) + m.group(0)[-2:]
                           if "@" not in m.group(0) else "***@***", text)
    return text


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(level: str = "info", access_log: bool = False) -> None:
    """Idempotent: one stderr handler on the root logger, with the masking filter."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "granian", "granian.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = access_log or not name.endswith(".access")
    for handler in root.handlers:
        if getattr(handler, "_regua", False):
            return
    handler = logging.StreamHandler(sys.stderr)
    handler._regua = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root.addHandler(handler)
