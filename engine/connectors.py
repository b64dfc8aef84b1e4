"""The connector interface the engine calls for lookups such as `bureau.serasa(cnpj)`.

A connector implementation is any callable taking the lookup's arguments and returning
the answer as a mapping (JSON-like or typed); the engine validates the answer against
the connector's contract before a policy sees it. The plugin system registers real
connectors through this same interface; tests register fixtures.
"""

from __future__ import annotations

import contextvars
import re
from typing import Any, Callable, Mapping

Connector = Callable[..., Mapping[str, Any]]

# The decision's connector deadline (time.monotonic()), set around each lookup by the evaluation
# (engine.evaluation) for the connector layer (plugins.runtime), which cuts its attempts, retries
# and backoff to it: one budget for every lookup of a decision, not one per call.
DECISION_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("regua_decision_deadline",
                                                                                    default=None)


def decision_deadline() -> float | None:
    """When the current decision's lookups must have answered (time.monotonic()), or None."""
    return DECISION_DEADLINE.get()


# Set (True) while a server evaluates a decision on its event loop thread, where nothing may wait on
# the network: an inline connector that would have to (a cache miss on PostgreSQL) raises WouldBlock
# instead of waiting. Elsewhere (worker threads, the CLI, the lab) lookups wait as usual.
MUST_NOT_BLOCK: contextvars.ContextVar[bool] = contextvars.ContextVar("regua_must_not_block", default=False)


class WouldBlock(BaseException):
    """Raised by an inline connector that cannot answer from memory while MUST_NOT_BLOCK is set.

    The evaluation is abandoned and made again on a worker thread, where the connector waits.
    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way (a rule's
    error handling, a connector failure becoming a value) mistakes it for a failure. Making the
    evaluation again is safe because it is only attempted when every connector of the policy is
    inline (memory or local reads: nothing paid, nothing slow is asked twice)."""


class ConnectorError(Exception):
    """A connector could not answer. `code` is stable (e.g. TIMEOUT, NOT_FOUND, BAD_ANSWER)."""

    def __init__(self, code: str, message: str = ""):
        super().__init__(message or code)
        self.code = code


class Answer:
    """A connector answer with where it came from: the connector layer (plugins.runtime) returns
    this so that the decision can record cache hits and what the query cost."""

    __slots__ = ("value", "cached", "cost")

    def __init__(self, value, cached: bool = False, cost: str | None = None):
        self.value = value
        self.cached = cached
        self.cost = cost


class Connectors:
    """Implementations by qualified name (`bureau.serasa`).

    A connector is *inline* when it answers without waiting on the network: from memory (test
    fixtures, the sandbox bureau) or from a local SQLite file (portfolio.customer). Inline lookups
    run in the caller's thread; only lookups that wait on I/O are worth another thread (see
    engine.evaluation `EvalContext.prefetch`). By default an implementation is inline when it has
    a true `inline` attribute (engine.connectors.Fixture, plugins.connectors.Connector.inline);
    `register(..., inline=...)` says so explicitly. A name with no implementation is inline too:
    its lookup fails at once, with nothing to wait for.
    """

    def __init__(self, implementations: Mapping[str, Connector] | None = None):
        self._impls: dict[str, Connector] = dict(implementations or {})
        self._inline: dict[str, bool] = {}  # explicit flags, then answers of is_inline
        self._io_flags: dict[tuple, tuple] = {}  # io_flags answers, per tuple of names
        self._bindings: dict[tuple, tuple] = {}  # binding answers, per tuple of names

    def register(self, qualified_name: str, implementation: Connector, inline: bool | None = None) -> None:
        self._impls[qualified_name] = implementation
        self._inline.pop(qualified_name, None)
        self._io_flags.clear()
        self._bindings.clear()
        if inline is not None:
            self._inline[qualified_name] = bool(inline)

    def get(self, qualified_name: str) -> Connector | None:
        return self._impls.get(qualified_name)

    def is_inline(self, qualified_name: str) -> bool:
        """True when a lookup of this connector does not wait on I/O (see the class docstring)."""
        known = self._inline.get(qualified_name)
        if known is None:
            impl = self._impls.get(qualified_name)
            known = self._inline[qualified_name] = impl is None or bool(getattr(impl, "inline", False))
        return known

    def io_flags(self, names: tuple) -> tuple:
        """Per name: 1 when a lookup waits on I/O (not inline), else 0. Cached: evaluations ask for
        it on every run, so that generated code decides to prefetch with one sum."""
        flags = self._io_flags.get(names)
        if flags is None:
            flags = self._io_flags[names] = tuple(0 if self.is_inline(name) else 1 for name in names)
        return flags

    def binding(self, names: tuple) -> tuple[tuple, tuple]:
        """(io_flags(names), the implementation of each name or None): what an evaluation needs
        per connector index, resolved once per tuple of names rather than on every lookup."""
        bound = self._bindings.get(names)
        if bound is None:
            bound = self._bindings[names] = (self.io_flags(names), tuple(self._impls.get(name) for name in names))
        return bound

    def names(self) -> list[str]:
        return sorted(self._impls)


class Fixture:
    """A test double answering with a fixed value (or raising a fixed failure) for every call."""

    inline = True  # answers from memory

    def __init__(self, answer: Mapping[str, Any] | None = None, failure: ConnectorError | None = None):
        self.answer = answer
        self.failure = failure
        self.calls: list[tuple] = []

    def __call__(self, *args):
        self.calls.append(args)
        if self.failure is not None:
            raise self.failure
        return self.answer


def mask_document(value: Any) -> str:
    """Mask a CPF/CNPJ (or any identifier) for traces and logs: keep only the last two characters."""
    text = str(value)
    if len(text) <= 4:
        return "*" * len(text)
    return "*" * (len(text) - 2) + text[-2:]


# Document-shaped text: a CPF (ddd.ddd.ddd-dd) or a CNPJ (XX.XXX.XXX/XXXX-dd, alphanumeric allowed),
# formatted, partly formatted or bare, the separators possibly percent-encoded (%2E . %2D - %2F /)
# or spaces. Not part of a longer word or number.
_SEP = r"(?:[.\-/ ]|%2[EeDdFf]|%20)?"
_DOCUMENT_IN_TEXT = re.compile(
    rf"(?<![0-9A-Za-z])[0-9A-Za-z]{{2}}{_SEP}[0-9A-Za-z]{{3}}{_SEP}[0-9A-Za-z]{{3}}{_SEP}[0-9A-Za-z]{{4}}{_SEP}\d{{2}}"
    rf"(?![0-9A-Za-z])|(?<!\d)\d{{3}}{_SEP}\d{{3}}{_SEP}\d{{3}}{_SEP}\d{{2}}(?![0-9A-Za-z])")
_SEPARATORS = re.compile(r"[.\-/ ]|%2[EeDdFf]|%20")
# Every document the pattern matches ends in two check digits: text without two digits in a row
# holds none, and is answered without running the pattern (~10 µs on a reason's message).
_TWO_DIGITS = re.compile(r"\d\d")


def _mask_match(match: re.Match) -> str:
    text = match.group(0)
    compact = _SEPARATORS.sub("", text)
    if not compact.isdigit() and compact == text:
        # A bare alphanumeric word of 14 characters is a CNPJ only if its check digits say so.
        from regua.dsl.values import normalize_cnpj

        if normalize_cnpj(compact.upper()) is None:
            return text
    if compact.isalpha():
        return text
    return mask_document(text)


def mask_documents_in(text: str) -> str:
    """Every CPF/CNPJ-shaped value inside free text masked (the last two characters kept): for error
    messages, log lines and reasons, where a document may appear whatever the field's type."""
    if not isinstance(text, str) or len(text) < 11 or _TWO_DIGITS.search(text) is None:
        return text
    return _DOCUMENT_IN_TEXT.sub(_mask_match, text)


def mask_documents_deep(data: Any) -> Any:
    """mask_documents_in applied to every string (keys included) of JSON-like data."""
    if isinstance(data, str):
        return mask_documents_in(data)
    if isinstance(data, dict):
        return {mask_documents_in(k) if isinstance(k, str) else k: mask_documents_deep(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [mask_documents_deep(v) for v in data]
    return data
