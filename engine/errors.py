"""The error an evaluation fails with. A leaf module: the runtime, the calendar and the built-in
functions all raise it, and none of them needs the others for it."""

from __future__ import annotations


class EvalError(Exception):
    """An evaluation failure with a stable code. Policies handle it with `otherwise` and
    `available()`; unhandled, it makes the rule yield the policy's `on error` action."""

    def __init__(self, code: str, message: str, connector: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.connector = connector  # set when the failure comes from an unavailable connector
