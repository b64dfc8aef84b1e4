"""Decisions: the outcome of one evaluation, with ranked reasons, outputs, trace and connector calls.

The explanation is complete but paid for on demand: a reason's `values` (the facts that made
its rule fire) and `error` details are read from the finished evaluation the first time they
are asked for, so evaluating stays cheap and explaining costs only when someone explains.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import msgspec

from regua.dsl.values import to_json

from .connectors import mask_document, mask_documents_deep, mask_documents_in

# A reason's message is policy text (a rule's, `default`'s or `on error`'s): a few per policy,
# masked once each rather than on every decision that gives them.
_masked_message = functools.lru_cache(maxsize=4096)(mask_documents_in)


class Reason:
    __slots__ = ("code", "message", "rule", "outcome", "line", "_values", "_error", "_explain")

    def __init__(self, code: str | None, message: str | None, rule: str | None, outcome: str,
                 line: int | None = None, values: dict | None = None, error: dict | None = None,
                 explain: tuple[Callable[..., tuple[dict, dict | None]], tuple] | None = None):
        self.code = code
        self.message = message
        self.rule = rule
        self.outcome = outcome
        self.line = line
        self._values = values
        self._error = error
        self._explain = explain

    def _resolve(self) -> None:
        if self._explain is not None:
            function, args = self._explain
            values, error = function(*args)
            self._explain = None
            if self._values is None:
                self._values = values
            if self._error is None:
                self._error = error
        if self._values is None:
            self._values = {}

    @property
    def values(self) -> dict[str, Any]:
        """The facts (JSON-ready, personal data masked) that made the rule fire."""
        if self._values is None or self._explain is not None:
            self._resolve()
        return self._values

    @property
    def error(self) -> dict[str, Any] | None:
        """For a rule that failed: the stable error code, its message and the policy line."""
        if self._explain is not None:
            self._resolve()
        return self._error

    def to_dict(self) -> dict:
        # Documents are masked by type where they are read; a CPF typed into a `text` input (or a
        # message) is only recognisable by its shape.
        out = {"code": self.code, "message": _masked_message(self.message) if self.message else self.message,
               "rule": self.rule, "outcome": self.outcome, "line": self.line,
               "values": mask_documents_deep(self.values)}
        if self.error:
            out["error"] = mask_documents_deep(self.error)
        return out

    def __repr__(self) -> str:
        return f"Reason({self.code!r}, rule={self.rule!r}, outcome={self.outcome!r})"


class ConnectorCall(msgspec.Struct, eq=False, gc=False):
    """One lookup made during an evaluation. Its arguments (documents) are only ever shown masked.

    A msgspec Struct for its constructor, implemented in C: one is built per lookup (see
    Decision); not tracked by the garbage collector (gc=False), as what it holds (arguments, the
    connector's answer) never refers back to it. Never encode it as a Struct (its arguments would
    be written in clear): to_dict() is the wire form.
    """

    connector: str
    _args: tuple
    status: str
    duration_ms: float
    error: str | None = None
    cached: bool = False
    cost: str | None = None  # BRL, as text; "0" for cache hits
    # The answer as the connector gave it (before the contract's coercion), for the decision
    # log's recorded answers (engine.recorded) that the policy lab replays; never in to_dict().
    answer: Any = None

    @property
    def args(self) -> list[str]:
        return [mask_document(a) for a in self._args]

    def __repr__(self) -> str:
        return f"ConnectorCall({self.connector!r}, args={self.args!r}, status={self.status!r})"

    def to_dict(self, args: list[str] | None = None) -> dict:
        """The wire form; `args`, when given, are this call's arguments already masked (the server
        masks them once for the answer and the recorded answers, engine.recorded)."""
        return {"connector": self.connector, "args": self.args if args is None else args, "status": self.status,
                "duration_ms": round(self.duration_ms, 3), "error": self.error, "cached": self.cached,
                "cost": self.cost}


class Decision(msgspec.Struct, eq=False, gc=False):
    """outcome, outputs, ranked reasons, trace, connector calls and the policy that decided.

    Reason objects are built when first read (the `_combiner` ... `_today` fields hold what is
    needed); the ranking, the outcome and the outputs are settled when the decision is made.

    A msgspec Struct for its constructor, implemented in C: one is built per evaluation, and a
    Python __init__ of nine fields cost more than evaluating a small decision table
    (benchmarks/bench_quick.py). What reasons need is kept in fields of their own rather than in
    one tuple, and the struct is not tracked by the garbage collector (gc=False): both cost as
    much as a small table's rule (the tuple about a third of the constructor). Nothing a Decision
    holds refers back to it (outputs, trace and reasons are built for it; the combiner, inputs and
    slots belong to the evaluation), so it is never part of a reference cycle the collector would
    have to break. Compared by identity (eq=False), as before. Never encode it as a Struct
    (msgspec would write its fields as they are): to_dict() is the wire form, with documents masked.
    """

    policy: str
    version: str
    outcome: str
    outputs: dict
    #: The codes of the reasons, in rank order: settled with the ranking, so reading them builds
    #: no Reason (most callers read only these).
    reason_codes: list
    trace: Any
    connector_calls: list
    output_types: dict = {}
    # Until the reasons are first read: engine.evaluation.Combiner.reasons(entries, inputs, slots, today)
    _combiner: Any = None
    _entries: Any = None
    _inputs: Any = None
    _slots: Any = None
    _today: Any = None
    _reasons: Any = None  # list[Reason], or None while pending

    @property
    def reasons(self) -> list[Reason]:
        if self._reasons is None:
            self._reasons = self._combiner.reasons(self._entries, self._inputs, self._slots, self._today)
            self._combiner = self._entries = self._inputs = self._slots = self._today = None
        return self._reasons

    def __repr__(self) -> str:
        return f"Decision({self.policy!r}, outcome={self.outcome!r}, reasons={self.reason_codes!r})"

    def to_dict(self) -> dict:
        """The decision as JSON-ready data: `outcome`, `outputs`, `reasons`, `trace`, `policy`."""
        return {
            "policy": {"name": self.policy, "version": self.version},
            "outcome": self.outcome,
            "outputs": self.outputs_json(),
            "reasons": self.reasons_json(),
            "trace": self.trace_json(),
            "connector_calls": [c.to_dict() for c in self.connector_calls],
        }

    # to_dict's parts, for the server's answer (server.evaluator), which needs no `policy` dict and
    # masks each lookup's arguments once for the answer and the decision log.
    def outputs_json(self) -> dict:
        types = self.output_types
        return {k: to_json(v, types.get(k)) for k, v in self.outputs.items()}

    def reasons_json(self) -> list[dict]:
        return [r.to_dict() for r in self.reasons]

    def trace_json(self) -> Any:
        return mask_documents_deep(self.trace) if self.trace is not None else None
