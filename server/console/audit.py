"""The console's audit trail: who did what to which decision or review, and when."""

from __future__ import annotations

from ..store import Store, utc_now


def audit(store: Store, actor: str, action: str, target: str, detail: str, db=None) -> None:
    """One row of console_audit; inside the caller's transaction when `db` is given."""
    row = {"at": utc_now(), "actor": actor, "action": action, "target": target, "detail": detail}
    if db is not None:
        db["console_audit"].insert(row)
        return
    with store.transaction() as own:
        own["console_audit"].insert(row)
