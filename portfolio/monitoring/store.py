"""Monitoring's tables, in the same SQLite file as the portfolio (migration set `regua.monitoring`).

- `credit_limits`: each customer's current limit (amount, blocked);
- `limit_changes`: the limit history — who or what changed it, when, why, under which policy version;
- `monitoring_alerts`: every alert received, keyed `bureau:id`, with the answer given (idempotency);
- `monitoring_reviews`: decisions a person must look at; a manual limit change closes them;
- `monitoring_outbox`: notifications, written with the decision and sent after it (exactly once:
  the key is the channel's idempotency key);
- `monitoring_cursors`: where each polled source's next poll starts.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

from sqlite_utils import Migrations

from regua import sqlite
from regua.engine.brazil import BRASILIA

from ..store import MIGRATIONS as PORTFOLIO_MIGRATIONS

MIGRATIONS = Migrations("regua.monitoring")


@MIGRATIONS()
def m001_monitoring(db):
    db["credit_limits"].create({"customer_id": str, "amount": str, "blocked": int, "changed_at": str,
                                "change_id": int}, pk="customer_id")
    db["limit_changes"].create({"id": int, "customer_id": str, "at": str, "previous_amount": str, "amount": str,
                                "previous_blocked": int, "blocked": int, "actor": str, "source": str,
                                "policy": str, "policy_version": str, "decision_id": str, "alert": str,
                                "reasons": str, "note": str}, pk="id")
    db["limit_changes"].create_index(["customer_id", "id"])
    db["monitoring_alerts"].create({"key": str, "bureau": str, "alert_id": str, "kind": str, "customer_id": str,
                                    "body_hash": str, "received_at": str, "status": str, "decision_id": str,
                                    "response": str}, pk="key")
    db["monitoring_reviews"].create({"id": int, "customer_id": str, "decision_id": str, "opened_at": str,
                                     "reasons": str, "closed_at": str, "closed_by": str}, pk="id")
    db["monitoring_reviews"].create_index(["customer_id", "closed_at"])
    db["monitoring_outbox"].create({"key": str, "decision_id": str, "customer_id": str, "role": str,
                                    "template": str, "context": str, "status": str, "attempts": int,
                                    "channel": str, "sent_at": str, "error": str}, pk="key")
    db["monitoring_outbox"].create_index(["status"])
    db["monitoring_cursors"].create({"source": str, "cursor": str, "polled_at": str}, pk="source")


class Limit(NamedTuple):
    amount: Decimal
    blocked: bool
    exists: bool
    changed_at: str | None = None

    def to_dict(self) -> dict:
        return {"amount": str(self.amount), "blocked": self.blocked, "set": self.exists,
                "changed_at": self.changed_at}


NO_LIMIT = Limit(Decimal("0.00"), False, False)


def now_iso(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def days_since(changed_at: str | None, today: dt.date) -> int:
    """Days from a limit change (stored in UTC) to `today`, both as dates in Brasília (0: never changed)."""
    if not changed_at:
        return 0
    return max((today - dt.datetime.fromisoformat(changed_at).astimezone(BRASILIA).date()).days, 0)


class MonitoringStore:
    def __init__(self, path: str, migrate: bool = True):
        if migrate:  # False for extra connections to a store already migrated
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            sqlite.migrate(path, PORTFOLIO_MIGRATIONS)
            sqlite.migrate(path, MIGRATIONS)
        self.path = path
        self.db = sqlite.connect(path)

    def close(self) -> None:
        self.db.conn.close()

    # ---- customers ----
    def customer(self, customer_id: str) -> dict | None:
        rows = list(self.db.query("select * from customers where id = ?", [customer_id]))
        return rows[0] if rows else None

    def customer_by_document(self, document: str) -> dict | None:
        # A plain read: sqlite-utils' query() wraps every statement in a savepoint (three statements),
        # and this runs on every evaluation of a policy that reads portfolio.customer.
        cursor = self.db.execute("select * from customers where document = ? order by id limit 1", [document])
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row)) if row else None

    # ---- limits ----
    def limit(self, customer_id: str, db=None) -> Limit:
        row = (db or self.db).execute("select amount, blocked, changed_at from credit_limits where customer_id = ?",
                                      [customer_id]).fetchone()
        return Limit(Decimal(row[0]), bool(row[1]), True, row[2]) if row else NO_LIMIT

    def change_limit(self, db, customer_id: str, amount: Decimal, blocked: bool, at: dt.datetime, *, actor: str,
                     source: str, reasons: list[str], policy: str | None = None, version: str | None = None,
                     decision_id: str | None = None, alert: str | None = None, note: str = "") -> int | None:
        """Write the new limit and its history row, inside the caller's transaction. None when the
        limit is already exactly this (nothing to record)."""
        current = self.limit(customer_id, db)
        amount = amount.quantize(Decimal("0.01"))
        if current.exists and current.amount == amount and current.blocked == blocked:
            return None
        when = now_iso(at)
        cursor = db.execute(
            "insert into limit_changes (customer_id, at, previous_amount, amount, previous_blocked, blocked, actor,"
            " source, policy, policy_version, decision_id, alert, reasons, note)"
            " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [customer_id, when, str(current.amount) if current.exists else None, str(amount),
             int(current.blocked), int(blocked), actor, source, policy, version, decision_id, alert,
             json.dumps(reasons), note])
        change_id = cursor.lastrowid
        db.execute("insert into credit_limits (customer_id, amount, blocked, changed_at, change_id)"
                   " values (?, ?, ?, ?, ?) on conflict (customer_id) do update set amount = excluded.amount,"
                   " blocked = excluded.blocked, changed_at = excluded.changed_at, change_id = excluded.change_id",
                   [customer_id, str(amount), int(blocked), when, change_id])
        return change_id

    def history(self, customer_id: str, limit: int = 100) -> list[dict]:
        rows = self.db.query("select * from limit_changes where customer_id = ? order by id desc limit ?",
                             [customer_id, limit])
        out = []
        for row in rows:
            row["blocked"], row["previous_blocked"] = bool(row["blocked"]), bool(row["previous_blocked"])
            row["reasons"] = json.loads(row["reasons"] or "[]")
            out.append(row)
        return out

    # ---- alerts ----
    def alert(self, key: str, db=None) -> dict | None:
        row = (db or self.db).execute("select key, body_hash, status, response from monitoring_alerts where key = ?",
                                      [key]).fetchone()
        return {"key": row[0], "body_hash": row[1], "status": row[2], "response": json.loads(row[3])} if row else None

    def record_alert(self, db, key: str, alert, customer_id: str | None, body_hash: str, at: dt.datetime,
                     status: str, decision_id: str | None, response: dict) -> None:
        db.execute("insert into monitoring_alerts (key, bureau, alert_id, kind, customer_id, body_hash, received_at,"
                   " status, decision_id, response) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [key, alert.bureau, alert.id, alert.kind, customer_id, body_hash, now_iso(at), status, decision_id,
                    json.dumps(response, ensure_ascii=False)])

    # ---- reviews ----
    def open_review(self, db, customer_id: str, decision_id: str, reasons: list[str], at: dt.datetime) -> None:
        db.execute("insert into monitoring_reviews (customer_id, decision_id, opened_at, reasons) values (?, ?, ?, ?)",
                   [customer_id, decision_id, now_iso(at), json.dumps(reasons)])

    def close_reviews(self, db, customer_id: str, by: str, at: dt.datetime) -> int:
        return db.execute("update monitoring_reviews set closed_at = ?, closed_by = ? where customer_id = ?"
                          " and closed_at is null", [now_iso(at), by, customer_id]).rowcount

    def reviews(self, open_only: bool = True, limit: int = 100, customer_id: str | None = None) -> list[dict]:
        conditions = (["closed_at is null"] if open_only else []) + (["customer_id = ?"] if customer_id else [])
        where = f"where {' and '.join(conditions)}" if conditions else ""
        rows = self.db.query(f"select * from monitoring_reviews {where} order by id limit ?",
                             [*([customer_id] if customer_id else []), limit])
        return [dict(row, reasons=json.loads(row["reasons"] or "[]")) for row in rows]

    # ---- notifications ----
    def add_notification(self, db, key: str, decision_id: str, customer_id: str, role: str, template: str,
                         context: dict) -> None:
        db.execute("insert or ignore into monitoring_outbox (key, decision_id, customer_id, role, template, context,"
                   " status, attempts) values (?, ?, ?, ?, ?, ?, 'pending', 0)",
                   [key, decision_id, customer_id, role, template, json.dumps(context, ensure_ascii=False)])

    def pending_notifications(self, max_attempts: int, keys: list[str] | None = None) -> list[dict]:
        sql = "select * from monitoring_outbox where status in ('pending', 'sending') and attempts < ?"
        params: list = [max_attempts]
        if keys is not None:
            if not keys:
                return []
            sql += f" and key in ({', '.join('?' for _ in keys)})"
            params += keys
        return list(self.db.query(sql + " order by key", params))

    def notification_update(self, key: str, **changes) -> None:
        sets = ", ".join(f"{name} = ?" for name in changes)
        self.db.execute(f"update monitoring_outbox set {sets} where key = ?", [*changes.values(), key])

    def notifications(self, decision_id: str) -> list[dict]:
        return list(self.db.query("select role, channel, status, error, sent_at from monitoring_outbox"
                                  " where decision_id = ? order by key", [decision_id]))

    # ---- polled sources ----
    def cursor(self, source: str) -> str | None:
        row = self.db.execute("select cursor from monitoring_cursors where source = ?", [source]).fetchone()
        return row[0] if row else None

    def set_cursor(self, db, source: str, cursor: str | None, at: dt.datetime) -> None:
        db.execute("insert into monitoring_cursors (source, cursor, polled_at) values (?, ?, ?) on conflict (source)"
                   " do update set cursor = excluded.cursor, polled_at = excluded.polled_at",
                   [source, cursor, now_iso(at)])
