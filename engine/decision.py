"""Decisions: the outcome of one evaluation, with ranked reasons, outputs, trace and connector calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsl.values import to_json


@dataclass
class Reason:
    code: str | None
    message: str | None
    rule: str | None
    outcome: str
    line: int | None = None
    values: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict:
        out = {"code": self.code, "message": self.message, "rule": self.rule, "outcome": self.outcome,
               "line": self.line, "values": self.values}
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class ConnectorCall:
    connector: str
    args: list[str]  # masked: documents never leave in clear
    status: str  # ok / failed
    duration_ms: float
    error: str | None = None
    cached: bool = False

    def to_dict(self) -> dict:
        return {"connector": self.connector, "args": self.args, "status": self.status,
                "duration_ms": round(self.duration_ms, 3), "error": self.error, "cached": self.cached}


@dataclass
class Decision:
    policy: str
    version: str
    outcome: str
    outputs: dict[str, Any]
    reasons: list[Reason]
    trace: Any
    connector_calls: list[ConnectorCall]
    output_types: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def reason_codes(self) -> list[str]:
        return [r.code for r in self.reasons if r.code]

    def to_dict(self) -> dict:
        """The decision as JSON-ready data: `outcome`, `outputs`, `reasons`, `trace`, `policy`."""
        return {
            "policy": {"name": self.policy, "version": self.version},
            "outcome": self.outcome,
            "outputs": {k: to_json(v, self.output_types.get(k)) for k, v in self.outputs.items()},
            "reasons": [r.to_dict() for r in self.reasons],
            "trace": self.trace,
            "connector_calls": [c.to_dict() for c in self.connector_calls],
        }
