"""How a run's plan is written: the planned steps into the outbox (a key already planned is left
alone), their history and the collectors' work queue, in bulk. This is the part of the collection
store tuned for a first run over millions of receivables (statements that bind only what differs
between rows, COPY on PostgreSQL), so it stands apart from the store's row-at-a-time reads and
writes; CollectionStore has these methods from PlanWrites.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from regua import dialect


class StepGroup(NamedTuple):
    """What the outbox rows of one group of planned steps share: every row of a group differs only
    in its receivable, customer, settings and priority (PlanBatch.steps)."""

    policy: str
    version: str
    step: str
    action: str
    day: int | None
    template: str | None
    status: str
    block_code: str | None


@dataclass
class PlanBatch:
    """One batch of a run's plan, grouped by what its rows share (see CollectionStore.plan_batch).

    steps: StepGroup -> rows of (receivable_id, customer_id, settings as JSON, priority); events:
    (kind, code) -> rows of (receivable_id, customer_id, key, detail as JSON)."""

    planned_on: str  # the run's date, ISO
    at: str  # the run's moment, ISO (the events' time)
    steps: dict[StepGroup, list[tuple]]
    events: dict[tuple[str, str | None], list[tuple]]


def _literal(value: str | None) -> str:
    """A text value as an SQL literal (quotes doubled; None is NULL): for values the same in every
    row of an executemany, so that they are not bound again for each row. Never for a NUL
    character, which a statement cannot hold."""
    if value is None:
        return "NULL"
    if not isinstance(value, str) or "\0" in value:
        raise ValueError(f"not a literal for a statement: {value!r}")
    return "'" + value.replace("'", "''") + "'"


def _integer(value: int | None) -> str:
    """An integer as an SQL literal (None is NULL); see _literal."""
    if value is None:
        return "NULL"
    if type(value) is not int:
        raise ValueError(f"not an integer literal for a statement: {value!r}")
    return str(value)


class PlanWrites:
    """The plan-writing methods of CollectionStore (which provides `db`, `postgres` and
    `write_events`)."""

    def plan(self, rows: list[dict], events: list[dict]) -> int:
        """Insert planned steps; a key already planned is left alone. Returns how many were new."""
        if not rows:
            return 0
        columns = list(rows[0])
        marks = ", ".join("?" for _ in columns)
        if self.postgres:
            return self._plan_postgres(columns, rows, events)
        with dialect.transaction(self.db):
            before = self.db.conn.total_changes
            self.db.conn.executemany(f"insert or ignore into outbox ({', '.join(columns)}) values ({marks})",
                                     [[row[c] for c in columns] for row in rows])
            added = self.db.conn.total_changes - before
            self.write_events(events)
        return added

    def _plan_postgres(self, columns: list[str], rows: list[dict], events: list[dict]) -> int:
        raw = self.db.conn.raw
        with raw.transaction():
            added = self._copy_outbox(columns, [[row[c] for c in columns] for row in rows])
            self.write_events(events)
        return added

    def _copy_outbox(self, columns, values: list) -> int:
        """PostgreSQL, inside the caller's transaction: the outbox in bulk, COPY straight into it.
        Keys already planned are the exception (runs plan one at a time and skip the steps they
        find, facts.py): when the COPY meets one, the batch goes again through a temp table and
        `insert … on conflict do nothing`, which leaves those keys alone, as SQLite's `insert or
        ignore` does. Returns how many rows were new."""
        import psycopg

        raw = self.db.conn.raw
        names = ", ".join(columns)
        with raw.cursor() as cursor:
            try:
                with raw.transaction(), cursor.copy(f"copy outbox ({names}) from stdin") as copy:
                    for row in values:
                        copy.write_row(row)
                return len(values)
            except psycopg.errors.UniqueViolation:
                cursor.execute("create temp table if not exists outbox_in (like outbox) on commit delete rows")
                with cursor.copy(f"copy outbox_in ({names}) from stdin") as copy:
                    for row in values:
                        copy.write_row(row)
                cursor.execute(f"insert into outbox ({names}) select {names} from outbox_in order by key "
                               "on conflict do nothing")
                return cursor.rowcount

    def plan_batch(self, batch: PlanBatch) -> int:
        """Write one batch of a run's plan in one transaction: the steps (a key already planned is
        left alone) and their history. Returns how many steps were new.

        A first run over a large portfolio writes millions of rows, so the statements bind only
        what differs between rows: what is the same for every row of a group (the run's date and
        moment, the step and its régua, status and settings it shares, an event's kind and code) is
        written into the statement as a literal (`_literal`), and the key is made by SQLite from
        the receivable (`"{receivable}:{step}"`). Four values are bound per planned step where
        eleven were. On PostgreSQL both go by COPY."""
        if self.postgres:
            return self._plan_batch_postgres(batch)
        db = self.db.conn
        with dialect.transaction(self.db):
            before = db.total_changes
            planned_on = _literal(batch.planned_on)
            for group, rows in batch.steps.items():
                db.executemany(
                    "insert or ignore into outbox (key, receivable_id, customer_id, settings, priority, step, action, "
                    "day, template, status, block_code, policy, policy_version, planned_on, attempts) values "
                    f"(?1 || {_literal(':' + group.step)}, ?1, ?2, ?3, ?4, {_literal(group.step)}, "
                    f"{_literal(group.action)}, {_integer(group.day)}, {_literal(group.template)}, "
                    f"{_literal(group.status)}, {_literal(group.block_code)}, {_literal(group.policy)}, "
                    f"{_literal(group.version)}, {planned_on}, 0)", rows)
            added = db.total_changes - before
            at = _literal(batch.at)
            for (kind, code), rows in batch.events.items():
                db.executemany(f"insert into collection_events (at, receivable_id, customer_id, key, kind, code, "
                               f"detail) values ({at}, ?, ?, ?, {_literal(kind)}, {_literal(code)}, ?)", rows)
        return added

    def _plan_batch_postgres(self, batch: PlanBatch) -> int:
        raw = self.db.conn.raw
        columns = ("key", "receivable_id", "customer_id", "step", "action", "day", "template", "settings", "priority",
                   "status", "block_code", "policy", "policy_version", "planned_on", "attempts")
        planned_on = batch.planned_on
        values = [(rid + suffix, rid, cid, step, action, day, template, settings, priority, status, code, policy,
                   version, planned_on, 0)
                  for (policy, version, step, action, day, template, status, code), rows in batch.steps.items()
                  for suffix in (":" + step,) for rid, cid, settings, priority in rows]
        with raw.transaction(), raw.cursor() as cursor:
            added = self._copy_outbox(columns, values) if values else 0
            if any(batch.events.values()):
                with cursor.copy("copy collection_events (at, receivable_id, customer_id, key, kind, code, detail) "
                                 "from stdin") as copy:
                    for (kind, code), rows in batch.events.items():
                        for rid, cid, key, detail in rows:
                            copy.write_row((batch.at, rid, cid, key, kind, code, detail))
        return added

    def write_queue(self, as_of: str, queue: dict[str, list[tuple]]) -> None:
        """Rank receivables in the collectors' work queue, in one transaction. `queue`: policy ->
        rows of (receivable_id, customer_id, priority, days_late, open_amount)."""
        if self.postgres:  # COPY into a temp table, then one upsert
            raw = self.db.conn.raw
            with raw.transaction(), raw.cursor() as cursor:
                cursor.execute("create temp table if not exists queue_in (like collection_queue) on commit delete rows")
                with cursor.copy("copy queue_in (receivable_id, customer_id, priority, days_late, open_amount, policy, "
                                 "as_of) from stdin") as copy:
                    for policy, rows in queue.items():
                        for row in rows:
                            copy.write_row((*row, policy, as_of))
                cursor.execute("insert into collection_queue select * from queue_in order by receivable_id "
                               "on conflict (receivable_id) do update set customer_id = excluded.customer_id, "
                               "priority = excluded.priority, days_late = excluded.days_late, "
                               "open_amount = excluded.open_amount, policy = excluded.policy, as_of = excluded.as_of")
            return
        with dialect.transaction(self.db):
            for policy, rows in queue.items():
                self.db.conn.executemany(
                    f"insert or replace into collection_queue (receivable_id, customer_id, priority, days_late, "
                    f"open_amount, policy, as_of) values (?, ?, ?, ?, ?, {_literal(policy)}, {_literal(as_of)})", rows)
