"""One run of the cadence as of a date: settle, plan, dispatch.

1. **Settle**: receivables paid in full (payments up to the run date) are closed, receivables in an
   active agreement stop being collected, and every open negative record whose debt is settled
   (or is 5 years past due) gets a removal step, due at once (Súmula 548: within 5 business days).
2. **Plan**: every open receivable is evaluated with its régua; the steps due are written to the
   outbox (a key already there is left alone: re-running the same date plans nothing new).
3. **Dispatch**: every outbox row that is due is carried out, legal guards first (dispatch.py).

A dry run plans without writing anything and without dispatching. On SQLite runs are serialised
by a file lock next to the database, so a scheduler in each server worker and a CLI run never
overlap; on PostgreSQL settling and planning are serialised by an advisory lock and runs dispatch
together, each carrying out the outbox rows it claims (store.py, `claim_due`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from regua import dialect
from regua.engine.brazil import BRASILIA
from regua.engine.prepared import PreparedPolicy

from . import planning_process
from .dispatch import Dispatcher
from .facts import CENTS, iter_facts
from .guards import record_expiry, removal_deadline
from .plan import Planner, PlanResult, summarize
from .plan_writes import PlanBatch
from .settings import CollectionSettings
from .store import CollectionStore, iso

CHUNK = 5000
# The work queue is written every QUEUE_CHUNK receivables, not every CHUNK: its priority index takes
# rows in no order, so a transaction rewrites pages all over it; ten times fewer transactions write
# ten times fewer of them (each row is ~100 bytes in memory until then).
QUEUE_CHUNK = 100_000
# Pages of WAL between checkpoints while a run writes its plan (4 KiB pages: ~200 MB; see _checkpoints_apart).
PLAN_CHECKPOINT_PAGES = 50_000


class RunLocked(Exception):
    """Another run holds the lock on this database."""


class CreditorNotIdentified(ValueError):
    """CDC art. 42-A: a run that may send collection messages needs the creditor's name, address and CNPJ."""

    def __init__(self, missing: list[str]):
        super().__init__(f"{', '.join(missing)} must be set: every collection document names the creditor "
                         "(name, address and CNPJ; CDC art. 42-A)")
        self.missing = missing


@dataclass
class RunSummary:
    as_of: dt.date
    dry_run: bool
    receivables: int = 0
    planned: dict = field(default_factory=dict)  # action -> steps planned in this run
    superseded: int = 0
    settled: int = 0  # receivables closed by payment or agreement
    removals: int = 0  # removal steps created
    outcomes: dict = field(default_factory=dict)  # sent/delivered/done/deferred/blocked/failed/... -> count
    reasons: dict = field(default_factory=dict)  # "blocked:NO_DELIVERED_NOTICE" -> count
    policy_errors: int = 0
    unrouted: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "dry_run": self.dry_run, "receivables": self.receivables,
                "planned": self.planned, "superseded": self.superseded, "settled": self.settled,
                "removals": self.removals, "outcomes": self.outcomes, "reasons": self.reasons,
                "policy_errors": self.policy_errors, "unrouted": self.unrouted, "seconds": round(self.seconds, 3)}


def run_time(as_of: dt.date, hour: int = 9) -> dt.datetime:
    """The moment a run for a past or future date happens: `hour` o'clock in Brasília time (runs are
    scheduled in Brasília time; a run started now is for `regua.engine.brazil.today()`)."""
    return dt.datetime.combine(as_of, dt.time(hour), BRASILIA)


def run_moment(as_of: dt.date, at: str | None, today: dt.date) -> dt.datetime | None:
    """When a run as of `as_of` happens: `at` ("HH:MM", São Paulo time) on that day when given;
    else 09:00 for a day other than `today`; else None (now). Raises ValueError for a bad `at`."""
    if at:
        parts = at.strip().split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts) or len(parts[0]) > 2 or len(parts[1]) != 2:
            raise ValueError(f"'{at}' is not a time of day: use HH:MM, e.g. 09:30")
        hour, minute = int(parts[0]), int(parts[1])
        if hour > 23 or minute > 59:
            raise ValueError(f"'{at}' is not a time of day: use HH:MM, e.g. 09:30")
        return dt.datetime.combine(as_of, dt.time(hour, minute), BRASILIA)
    return None if as_of == today else run_time(as_of)


@contextmanager
def run_lock(path: str, wait: bool = True, store: CollectionStore | None = None) -> Iterator[None]:
    """The whole run on SQLite (a file lock); settle and plan only on PostgreSQL (an advisory lock)."""
    if store is not None and store.postgres:
        with store.planning_lock(wait) as locked:
            if not locked:
                raise RunLocked("another collection run is planning on this database")
            yield
        return
    with open(path + ".collect-lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise RunLocked(f"another collection run is using {path}") from None
        yield


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class Runner:
    #: A real run over at least this many open receivables plans in a helper process while this
    #: one writes (planning_process.py), when this process may fork; a smaller one plans here.
    plan_helper_min = 50_000

    def __init__(self, path: str, policies: dict[str, PreparedPolicy], registry, settings: CollectionSettings):
        self.path = path
        self.store = CollectionStore(path)
        self.settings = settings
        self.planner = Planner(policies, settings)
        self.dispatcher = Dispatcher(self.store, registry, settings) if registry is not None else None
        self._queue: dict[str, list[tuple]] = {}  # work queue rows not written yet, by policy
        self._queued = 0

    def close(self) -> None:
        self.store.close()

    def run(self, as_of: dt.date, now: dt.datetime | None = None, dry_run: bool = False,
            progress: Callable[[str, int, int | None], None] | None = None, wait: bool = True) -> RunSummary:
        """`progress(phase, advance, total)` is called as the run goes (phase: plan, dispatch)."""
        missing = self.settings.creditor_missing()
        if missing and not dry_run and self.dispatcher is not None:
            raise CreditorNotIdentified(missing)  # refused before anything is written or sent
        now = now or dt.datetime.now(dt.timezone.utc)
        started = time.perf_counter()
        summary = RunSummary(as_of, dry_run)
        concurrent = self.store.postgres  # runs dispatch together: only settle and plan take the lock
        with _nothing() if concurrent else run_lock(self.path, wait):
            run_id = None if dry_run else self.store.start_run(as_of, dry_run)
            with run_lock(self.path, wait, self.store) if concurrent else _nothing():
                if not dry_run:
                    summary.settled, summary.removals = self.settle(as_of, now)
                with self._checkpoints_apart(dry_run):
                    self._plan(as_of, now, summary, dry_run, progress)
            if not dry_run and self.dispatcher is not None:
                counts: Counter = Counter()
                total = self._due_count(now)
                if progress:
                    progress("dispatch", 0, total)
                self.dispatcher.dispatch_due(now, counts, (lambda n: progress("dispatch", n, total)) if progress else None)
                for (outcome, code), count in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
                    summary.outcomes[outcome] = summary.outcomes.get(outcome, 0) + count
                    if code and outcome in ("blocked", "deferred", "failed", "retry", "cancelled"):
                        summary.reasons[f"{outcome}:{code}"] = summary.reasons.get(f"{outcome}:{code}", 0) + count
            summary.seconds = time.perf_counter() - started
            if run_id is not None:
                self.store.finish_run(run_id, summary.to_dict())
        return summary

    def _due_count(self, now: dt.datetime) -> int:
        return self.store.db.execute("select count(*) from outbox where status in ('pending', 'sending', 'blocked') "
                                     "and (not_before is null or not_before <= ?)", [iso(now)]).fetchone()[0]

    # ---- plan ----
    @contextmanager
    def _checkpoints_apart(self, dry_run: bool) -> Iterator[None]:
        """SQLite: while a run writes its plan, the WAL is checkpointed every PLAN_CHECKPOINT_PAGES
        pages instead of every 1,000 (SQLite's default, ~4 MB: after every batch of a first run).
        Each checkpoint copies the pages into the database and syncs both files; the same index
        pages are written by batch after batch, so fewer checkpoints write and sync far less.
        This connection only, for this phase only. A crash of the process loses nothing committed
        (WAL, synchronous = NORMAL, as always); a power loss may lose more of the plan's latest
        batches than before, and planning is idempotent: the next run plans them again."""
        if dry_run or self.store.postgres:
            yield
            return
        db = self.store.db
        before = db.execute("pragma wal_autocheckpoint").fetchone()[0]
        db.execute(f"pragma wal_autocheckpoint = {PLAN_CHECKPOINT_PAGES}")
        try:
            yield
        finally:
            db.execute(f"pragma wal_autocheckpoint = {int(before)}")

    def _plan(self, as_of: dt.date, now: dt.datetime, summary: RunSummary, dry_run: bool, progress) -> None:
        total = None
        if progress or (not dry_run and planning_process.usable()):
            total = self.store.db.execute("select count(*) from receivables where status = 'open' and issue_date <= ?",
                                          [as_of.isoformat()]).fetchone()[0]
        if progress:
            progress("plan", 0, total)
        self._queue, self._queued = {}, 0
        if not dry_run and total is not None and total >= self.plan_helper_min and planning_process.usable():
            results = planning_process.plans(self.path, self.planner, as_of, CHUNK)
        else:
            results = self._plans_here(as_of, dry_run)
        try:
            for result in results:
                self._flush(result, as_of, now, summary, dry_run)
                if progress:
                    progress("plan", len(result.unrouted) + len(result.failures) + result.evaluated, total)
        finally:
            results.close()  # a helper process still planning is stopped at once if writing failed
        if self._queue:
            self.store.write_queue(as_of.isoformat(), self._queue)
            self._queue, self._queued = {}, 0

    def _plans_here(self, as_of: dt.date, dry_run: bool) -> Iterator[PlanResult]:
        """The plan worked out in this process, one PlanResult per CHUNK receivables."""
        result, counted = PlanResult(), 0
        for fact in iter_facts(self.store.db, as_of, CHUNK):
            self.planner.plan_one(fact, as_of, result, materialize=not dry_run)
            counted += 1
            if counted % CHUNK == 0:
                yield result
                result = PlanResult()
        yield result

    def _flush(self, result: PlanResult, as_of: dt.date, now: dt.datetime, summary: RunSummary, dry_run: bool) -> None:
        counts = summarize(result)
        summary.receivables += counts["receivables"]
        for action, count in counts["by_action"].items():
            summary.planned[action] = summary.planned.get(action, 0) + count
        summary.superseded += counts["superseded"]
        if counts["futile"]:
            summary.reasons["cancelled:TOO_OLD"] = summary.reasons.get("cancelled:TOO_OLD", 0) + counts["futile"]
        summary.policy_errors += counts["policy_errors"]
        summary.unrouted += counts["unrouted"]
        if dry_run:
            return
        at, planned_on = iso(now), as_of.isoformat()
        events: dict[tuple[str, str | None], list[tuple]] = {("superseded", "NEWER_STEP_DUE"): result.superseded_events}
        for code, *row in result.cancelled_events:
            events.setdefault(("cancelled", code), []).append(tuple(row))
        for rid, cid, code, message in result.failures:
            events.setdefault(("policy_error", code), []).append(
                (rid, cid, None, json.dumps({"message": message}, ensure_ascii=False)))
        self.store.plan_batch(PlanBatch(planned_on, at, result.steps, events))
        queue = self._queue
        for name, rows in result.queue.items():
            queue.setdefault(name, []).extend(rows)
            self._queued += len(rows)
        if self._queued >= QUEUE_CHUNK:
            self.store.write_queue(planned_on, queue)
            self._queue, self._queued = {}, 0
        if self.dispatcher is not None:  # the plugins' sinks see each event as the history has it
            self._tell_plugins([{"at": at, "receivable_id": rid, "customer_id": cid, "key": key, "kind": kind,
                                 "code": code, "detail": json.loads(detail)}
                                for (kind, code), rows in events.items() for rid, cid, key, detail in rows])

    # ---- settle ----
    def settle(self, as_of: dt.date, now: dt.datetime) -> tuple[int, int]:
        db = self.store.db
        day = as_of.isoformat()
        events, settled = [], 0
        with dialect.transaction(db):
            paid = db.execute(f"""
                select r.id, r.customer_id, p.last_paid from receivables r join (
                    select receivable_id, sum({CENTS}) as cents, max(paid_on) as last_paid from payments
                    where paid_on <= ? group by receivable_id) p on p.receivable_id = r.id
                where r.status = 'open' and p.cents >= {CENTS.replace('amount', 'r.amount')}""", [day]).fetchall()
            for rid, cid, last_paid in paid:
                db.execute("update receivables set status = 'paid' where id = ?", [rid])
                events.append({"at": iso(now), "receivable_id": rid, "customer_id": cid, "kind": "paid",
                               "code": "FULL_PAYMENT", "detail": {"paid_on": last_paid}})
            for agreement_id, customer_id, ids in db.execute(
                    "select id, customer_id, receivable_ids from agreements where status = 'active' and created_on <= ?",
                    [day]).fetchall():
                for rid in json.loads(ids):
                    if db.execute("update receivables set status = 'renegotiated' where id = ? and status = 'open'",
                                  [rid]).rowcount:
                        events.append({"at": iso(now), "receivable_id": rid, "customer_id": customer_id,
                                       "kind": "renegotiated", "code": "AGREEMENT", "detail": {"agreement": agreement_id}})
            settled = len(events)
            removals = self._removals(as_of, now, events)
            self.store.write_events(events)
        self._tell_plugins(events)
        return settled, removals

    def _tell_plugins(self, events: list[dict]) -> None:
        if self.dispatcher is not None:
            for event in events:
                self.dispatcher.registry.event_recorded(event)

    def _removals(self, as_of: dt.date, now: dt.datetime, events: list) -> int:
        """Removal steps for open negative records of settled or too old debts (inside settle's transaction)."""
        db = self.store.db
        rows = db.execute("""
            select n.key, n.kind, r.id, r.customer_id, r.status, r.due_date, c.uf,
                   (select max(paid_on) from payments p where p.receivable_id = r.id) as last_paid
            from negative_records n join receivables r on r.id = n.receivable_id join customers c on c.id = r.customer_id
            where n.removed_at is null and n.removal_due is null""").fetchall()
        created = 0
        for key, kind, rid, cid, status, due, uf, last_paid in rows:
            if status != "open":
                # Súmula 548 counts from the payment; a debt settled otherwise, from the day it is seen settled.
                reason = "PAID" if status == "paid" else status.upper()
                since = dt.date.fromisoformat(last_paid) if status == "paid" and last_paid else as_of
                deadline = removal_deadline(since, uf, self.settings.guards())
            elif record_expiry(dt.date.fromisoformat(due), self.settings.guards()) <= as_of:
                reason, deadline = "EXPIRED", as_of
            else:
                continue
            db.execute("update negative_records set removal_due = ?, removal_reason = ? where key = ?",
                       [deadline.isoformat(), reason, key])
            step = f"__remove_{kind}"
            db.execute("insert or ignore into outbox (key, receivable_id, customer_id, step, action, settings, policy, "
                       "planned_on, status, attempts) values (?, ?, ?, ?, 'remove_record', ?, '', ?, 'pending', 0)",
                       [f"{rid}:{step}", rid, cid, step, json.dumps({"record": key, "reason": reason}), as_of.isoformat()])
            events.append({"at": iso(now), "receivable_id": rid, "customer_id": cid, "key": f"{rid}:{step}",
                           "kind": "removal_planned", "code": reason, "detail": {"deadline": deadline.isoformat()}})
            created += 1
        return created
