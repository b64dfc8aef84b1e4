"""Monitoring settings (`[monitoring]` in the server configuration; docs/operating.md lists them)."""

from __future__ import annotations

import msgspec


class MonitoringSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: Poll the plugins' monitoring sources inside the server (one worker polls; the others skip).
    poll: bool = False
    #: Which monitoring policy decides: by customer segment first, then by person kind ("pf" / "pj").
    policies: dict[str, str] = msgspec.field(
        default_factory=lambda: {"pf": "monitoramento_credito", "pj": "monitoramento_credito"})
    #: HMAC-SHA256 secrets of POST /events, by bureau name; "env:NAME" reads an environment variable.
    webhook_secrets: dict[str, str] = {}
    #: A signed request older (or newer) than this many seconds is refused: a captured request cannot be replayed.
    signature_tolerance_seconds: int = 300
    #: Who hears about a customer whose record names no account manager.
    manager_email: str = ""
    #: Paid bureau queries one portfolio re-check may make unless told otherwise (`--budget`).
    recheck_budget: int = 100
    #: A notification that failed is tried again on the next pass, at most this many times in all.
    max_attempts: int = 3

    def problems(self) -> list[str]:
        """What is wrong with these settings, as `field: message` (empty: fine)."""
        found = []
        if self.signature_tolerance_seconds < 1:
            found.append("signature_tolerance_seconds: must be at least 1")
        if self.recheck_budget < 0:
            found.append("recheck_budget: cannot be negative")
        if self.manager_email and "@" not in self.manager_email:
            found.append("manager_email: is not an e-mail address")
        for bureau, secret in self.webhook_secrets.items():
            if not secret:
                found.append(f"webhook_secrets.{bureau}: is empty")
        return found
