"""The cadence's state, next to the portfolio (its SQLite file or its PostgreSQL database): the
outbox, the history and the negative records.

- `outbox`: one row per receivable and step, keyed `"{receivable}:{step}"`. A step is written here
  (planned) before anything is sent, and the key is the idempotency key every channel and bureau
  receives: a step can be planned once and carried out once, whatever crashes in between.
- `collection_events`: the history of every action taken (sent, delivered, deferred, blocked with
  its reason, negativated, removal requested…), personal data masked.
- `negative_records`: the negativations and protests opened for receivables, with their protocol
  and the removal deadline after full payment.
- `collection_runs`: one row per run with its counts.

On PostgreSQL several runs (`regua collect` on two hosts, schedulers in two replicas) may go at
once: each claims the outbox rows it carries out (`claim_due`: `for update skip locked`, then
`claimed_by` = the run's id while it works on them), and holds a session advisory lock on its
id for as long as it lives, so a run killed mid-way leaves claims everyone can see are dead.

The tables are made by migrations.py; a run's plan is written in bulk by plan_writes.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

from regua import dialect

from .migrations import MIGRATIONS
from .plan_writes import PlanWrites

# Outbox statuses. Waiting to be carried out: pending (from `not_before`), sending (claimed: a
# crash leaves it here and the next run carries it out again, with the same idempotency key),
# blocked (a legal guard holds it; checked again every run). Final: sent, delivered, done,
# failed, superseded, cancelled.
OPEN_STATUSES = ("pending", "sending", "blocked")
# Advisory lock keys (PostgreSQL): (RUNS_LOCK, run id) per live run, (CUSTOMERS_LOCK, hash) per debtor
# being contacted, PLANNING_LOCK while a run settles and plans.
RUNS_LOCK = 0x52677531
CUSTOMERS_LOCK = 0x52677532
PLANNING_LOCK = 0x5265677561_6370
FINAL_STATUSES = ("sent", "delivered", "done", "failed", "superseded", "cancelled")


def contact_ref(kind: str, recipient: str) -> str:
    """A debtor's contact for a channel kind, hashed (personal data is never stored in clear here)."""
    text = (recipient or "").strip().lower()
    if kind in ("sms", "whatsapp"):
        text = "".join(ch for ch in text if ch.isdigit())[-11:]
    return hashlib.sha256(f"{kind}\0{text}".encode()).hexdigest()[:32]


RECEIPT_STATUSES = ("delivered", "bounced", "failed")


@dataclass(frozen=True)
class Receipt:
    """A provider's receipt for a step that was sent: `delivered` (proof), or `bounced` / `failed`
    (the message did not reach the debtor: hard bounce, invalid number…; `reason` says why)."""

    key: str
    at: dt.datetime  # when it was delivered, or when it bounced / failed
    status: str = "delivered"
    provider_id: str = ""
    reason: str = ""


# A delivery receipt may be dated at most this far after the moment it reaches Régua (clocks drift).
RECEIPT_CLOCK_SKEW = dt.timedelta(minutes=5)


class ReceiptRefused(Exception):
    """A delivery receipt that cannot be proof: `code` is stable (UNKNOWN_STEP, STEP_NOT_SENT,
    RECEIPT_BEFORE_SEND, RECEIPT_IN_FUTURE)."""

    def __init__(self, code: str, message: str, row=None, event: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.row = row
        self.event = event


class _RollBack(Exception):
    pass


def scrub_reason(text: str) -> str:
    """A provider's reason for a bounce, safe for the history (no addresses, no long digit runs)."""
    from regua.plugins.builtin.notifications.common import scrub

    return scrub(text or "", 200)


def iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds") if moment else None


def parse_moment(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


_UNUSABLE_UPSERT = ("insert into unusable_contacts (customer_id, kind, contact, code, reason, key, at) "
                    "values (?, ?, ?, ?, ?, ?, ?) on conflict (customer_id, kind, contact) do update set "
                    "code = excluded.code, reason = excluded.reason, key = excluded.key, at = excluded.at")


class CollectionStore(PlanWrites):
    """Reads and writes of the cadence. Every write that must be atomic is one transaction."""

    def __init__(self, path: str):
        if path == ":memory:":
            raise ValueError("the collection store needs a file path")
        from ..store import MIGRATIONS as PORTFOLIO

        self.path = path
        dialect.migrate(path, PORTFOLIO)
        dialect.migrate(path, MIGRATIONS)
        self.db = dialect.connect(path)
        self.postgres = dialect.is_postgres(self.db)

    def close(self) -> None:
        self.db.conn.close()

    # ---- outbox ----
    def due(self, now: dt.datetime, limit: int = 500, after: str = "") -> list[dict]:
        """Outbox rows to carry out now, in key order (paged by `after`)."""
        return list(self.db.query(
            "select * from outbox where status in ('pending', 'sending', 'blocked') and key > ? "
            "and (not_before is null or not_before <= ?) order by key limit ?", [after, iso(now), limit]))

    # ---- claims (PostgreSQL: runs that go at the same time) ----
    def register_run(self) -> int:
        """A id for this run, held as a session advisory lock on this store's connection until
        the run ends or its process dies: a claim whose run holds no lock is dead."""
        while True:
            run_id = secrets.randbelow(2**31 - 1) + 1
            if self.db.execute("select pg_try_advisory_lock(?, ?)", [RUNS_LOCK, run_id]).fetchone()[0]:
                return run_id

    def end_run(self, run_id: int) -> None:
        self.db.execute("select pg_advisory_unlock(?, ?)", [RUNS_LOCK, run_id])

    def claim_due(self, now: dt.datetime, run_id: int, after: str = "", limit: int = 100,
                  orphans: bool = False) -> list[dict]:
        """Claim for `run_id` up to `limit` due rows (key order, after `after`) that no live run
        claims: `for update skip locked`, so two runs claiming at once take different rows. With
        `orphans`, only rows whose claim belongs to a run that died. Each row comes with
        `previous_claim`, the dead run's id when it was taken over."""
        orphan = "and claimed_by is not null" if orphans else ""
        return list(self.db.query(f"""
            with chosen as (
                select key, claimed_by as previous_claim from outbox
                where status in ('pending', 'sending', 'blocked') and key > ?
                  and (not_before is null or not_before <= ?) {orphan}
                  and (claimed_by is null or {dialect.unheld("claimed_by", RUNS_LOCK)})
                order by key limit ? for update skip locked)
            update outbox o set claimed_by = ? from chosen where o.key = chosen.key
            returning o.*, chosen.previous_claim""", [after, iso(now), limit, run_id]))

    def claimed_elsewhere(self, now: dt.datetime, run_id: int) -> int:
        """Due rows another run claims (alive or not): the ones a finishing run waits for or takes over."""
        return self.db.execute("select count(*) from outbox where status in ('pending', 'sending', 'blocked') "
                               "and (not_before is null or not_before <= ?) and claimed_by is not null "
                               "and claimed_by <> ?", [iso(now), run_id]).fetchone()[0]

    def release(self, key: str, run_id: int) -> None:
        self.db.execute("update outbox set claimed_by = null where key = ? and claimed_by = ?", [key, run_id])

    @contextmanager
    def customer_lock(self, customer_id: str) -> Iterator[None]:
        """Serialise the steps of one debtor across runs: the frequency cap counts what the other
        run sent (a session advisory lock; one debtor at a time per run, so no deadlock)."""
        self.db.execute("select pg_advisory_lock(?, hashtext(?))", [CUSTOMERS_LOCK, customer_id])
        try:
            yield
        finally:
            self.db.execute("select pg_advisory_unlock(?, hashtext(?))", [CUSTOMERS_LOCK, customer_id])

    @contextmanager
    def planning_lock(self, wait: bool) -> Iterator[bool]:
        """Settle and plan one run at a time (PostgreSQL); dispatching goes concurrently by claims.
        Yields False when `wait` is off and another run is planning."""
        if wait:
            self.db.execute("select pg_advisory_lock(?)", [PLANNING_LOCK])
        elif not self.db.execute("select pg_try_advisory_lock(?)", [PLANNING_LOCK]).fetchone()[0]:
            yield False
            return
        try:
            yield True
        finally:
            self.db.execute("select pg_advisory_unlock(?)", [PLANNING_LOCK])

    def update(self, key: str, changes: dict, events: Iterable[dict] = ()) -> None:
        changes = dict(changes, updated_at=iso(dt.datetime.now(dt.timezone.utc)))
        sets = ", ".join(f"{name} = ?" for name in changes)
        with dialect.transaction(self.db):
            self.db.execute(f"update outbox set {sets} where key = ?", [*changes.values(), key])
            self.write_events(events)

    def steps_of(self, receivable_id: str) -> list[dict]:
        return list(self.db.query("select * from outbox where receivable_id = ? order by day, key", [receivable_id]))

    def notices(self, receivable_id: str) -> list[dict]:
        """The notices of negativation of a receivable that were sent."""
        return list(self.db.query("select sent_at, delivered_at, deadline from outbox where receivable_id = ? and "
                                  "action = 'notify_negativation' and sent_at is not null", [receivable_id]))

    def contacts_since(self, customer_id: str, since: dt.datetime) -> list[dt.datetime]:
        """Messages sent to the debtor since then (negativations and hand-overs are not contacts)."""
        rows = self.db.execute("select sent_at from outbox where customer_id = ? and sent_at >= ? and action in "
                               "('remind', 'offer_agreement', 'notify_negativation')",
                               [customer_id, iso(since)]).fetchall()
        return [parse_moment(r[0]) for r in rows]

    def record_delivery(self, key: str, delivered_at: dt.datetime, provider_id: str = "",
                        now: dt.datetime | None = None) -> str:
        """A delivery receipt that arrived later (a provider callback): proof for a notice. See record_receipt."""
        return self.record_receipt(Receipt(key, delivered_at, "delivered", provider_id), now)

    def record_receipt(self, receipt: Receipt, now: dt.datetime | None = None) -> str:
        """A provider's receipt for a step that was sent. Returns what it did:

        - `first`: delivered; the row is now `delivered` at that moment (proof for a notice);
        - `later`: delivered, but the row was delivered already: the first delivery is kept, the
          later receipt is recorded as such;
        - `bounced`: the message did not reach the debtor: the contact is recorded as unusable for
          that debtor and channel, any delivery of the row is withdrawn (never negativate on a
          bounced notice), and the row is `pending` again (`BOUNCED`), so the next run sends the
          same step through the next channel of the debtor's preferences;
        - `stale`: a bounce about an earlier send of the row (another `provider_id`, or the row
          bounced already): recorded, nothing changes.

        A receipt that cannot be proof raises ReceiptRefused, with an event in the history when
        the step exists; it never changes a deadline."""
        now = now or dt.datetime.now(dt.timezone.utc)
        try:
            with dialect.transaction(self.db):
                return self._apply_receipt(receipt, now)
        except ReceiptRefused as refused:
            if refused.row is not None:
                with dialect.transaction(self.db):
                    self.write_events([refused.event])
            raise

    def record_receipts(self, receipts: list[tuple[str, Receipt]], now: dt.datetime | None = None,
                        write: bool = True) -> tuple[list[tuple[str, str]], list[tuple[str, ReceiptRefused]]]:
        """Many receipts (each with where it came from, e.g. `line 3`), all or nothing: when any is
        refused nothing at all is written (not even the refusals) and every refusal is returned;
        else all are recorded in one transaction. With write=False every receipt is checked (in
        order, each seeing the ones before) and nothing is written. Returns (results, refusals)."""
        now = now or dt.datetime.now(dt.timezone.utc)
        results, refusals = [], []
        try:
            with dialect.transaction(self.db):
                for where, receipt in receipts:
                    try:
                        results.append((where, self._apply_receipt(receipt, now)))
                    except ReceiptRefused as refused:
                        refusals.append((where, refused))
                if refusals or not write:
                    raise _RollBack
        except _RollBack:
            return ([], refusals) if refusals else (results, [])
        return results, []

    def _apply_receipt(self, receipt: Receipt, now: dt.datetime) -> str:
        """One receipt, inside the caller's transaction (raises ReceiptRefused before writing anything)."""
        key, at = receipt.key, receipt.at
        if receipt.status not in RECEIPT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(RECEIPT_STATUSES)}")
        if at.tzinfo is None:
            raise ValueError("the receipt's moment must be timezone-aware")
        row = self.db.execute("select receivable_id, customer_id, status, sent_at, delivered_at, channel, result, "
                              "block_code from outbox where key = ?", [key]).fetchone()
        if row is None:
            raise ReceiptRefused("UNKNOWN_STEP", f"no step with key '{key}'")
        receivable_id, customer_id, status, sent_at, _, channel, result, _ = row
        delivered = receipt.status == "delivered"
        detail = {"provider_id": receipt.provider_id, "delivered_at" if delivered else "at": iso(at)}
        if not delivered:
            detail.update(status=receipt.status, reason=scrub_reason(receipt.reason))
        sent = json.loads(result or "{}")
        was_sent = sent_at is not None or bool(sent.get("kind"))  # a bounced send leaves its channel in `result`
        earlier_send = (not delivered and receipt.provider_id and sent.get("provider_id")
                        and receipt.provider_id != sent["provider_id"])
        refusal = None
        if not was_sent or (delivered and status not in ("sent", "delivered")):
            refusal = ("STEP_NOT_SENT", f"step '{key}' is not waiting for a receipt (status {status})")
        elif sent_at is not None and at < parse_moment(sent_at) and not earlier_send:
            refusal = ("RECEIPT_BEFORE_SEND", f"the receipt says {iso(at)}, before the message was sent "
                                              f"({sent_at}): the provider's clock is wrong")
        elif at > now + RECEIPT_CLOCK_SKEW:
            refusal = ("RECEIPT_IN_FUTURE", f"the receipt says {iso(at)}, later than now ({iso(now)})")
        if refusal is not None:
            event = {"at": iso(now), "receivable_id": receivable_id, "customer_id": customer_id, "key": key,
                     "kind": "receipt_refused", "code": refusal[0], "detail": dict(detail, sent_at=sent_at)}
            raise ReceiptRefused(*refusal, row=row, event=event)
        event = {"at": iso(now), "receivable_id": receivable_id, "customer_id": customer_id, "key": key}
        if not delivered:
            if earlier_send or status not in ("sent", "delivered"):
                self.write_events([dict(event, kind="later_receipt", code=receipt.status.upper(), detail=detail)])
                return "stale"
            kind = sent.get("kind") or channel or ""
            if sent.get("contact"):
                self.db.execute(_UNUSABLE_UPSERT, [customer_id, kind, sent["contact"], receipt.status.upper(),
                                                   detail["reason"], key, iso(at)])
            withdrawn = self.db.execute("select delivered_at from outbox where key = ?", [key]).fetchone()[0]
            # Not sent as far as the guards go: no proof, no notice, no contact under the frequency cap.
            self.db.execute("update outbox set status = 'pending', not_before = null, sent_at = null, "
                            "delivered_at = null, block_code = 'BOUNCED', updated_at = ? where key = ?",
                            [iso(dt.datetime.now(dt.timezone.utc)), key])
            detail.update(channel=channel, kind=kind, sent_at=sent_at)
            if withdrawn:
                detail["withdrawn_delivery"] = withdrawn
            self.write_events([dict(event, kind="bounced", code=receipt.status.upper(), detail=detail)])
            return "bounced"
        # The waiting period counts from the first delivery: a later receipt never moves it
        # (the condition holds against two receipts arriving at once, too).
        changed = self.db.execute("update outbox set status = 'delivered', delivered_at = ?, updated_at = ? "
                                  "where key = ? and delivered_at is null",
                                  [iso(at), iso(dt.datetime.now(dt.timezone.utc)), key]).rowcount
        if changed:
            kind, outcome = "delivered", "first"
        else:
            first = self.db.execute("select delivered_at from outbox where key = ?", [key]).fetchone()[0]
            kind, outcome, detail = "later_receipt", "later", dict(detail, first_delivered_at=first)
        self.write_events([dict(event, kind=kind, code="RECEIPT", detail=detail)])
        return outcome

    def mark_unusable(self, customer_id: str, kind: str, recipient: str, code: str, reason: str, key: str,
                      at: dt.datetime) -> None:
        """A contact that failed for good at send time (an invalid number, a refused address)."""
        with dialect.transaction(self.db):
            self.db.execute(_UNUSABLE_UPSERT, [customer_id, kind, contact_ref(kind, recipient), code,
                                               scrub_reason(reason), key, iso(at)])

    def unusable_contacts(self, customer_id: str) -> set[tuple[str, str]]:
        """(channel kind, contact ref) pairs of the debtor's contacts that bounced or failed for good."""
        return {(k, c) for k, c in self.db.execute("select kind, contact from unusable_contacts where customer_id = ?",
                                                   [customer_id]).fetchall()}

    # ---- negative records ----
    def open_record(self, record: dict, event: dict) -> None:
        with dialect.transaction(self.db):
            self.db["negative_records"].upsert(record, pk="key")
            self.write_events([event])

    def records_of(self, receivable_id: str) -> list[dict]:
        return list(self.db.query("select * from negative_records where receivable_id = ?", [receivable_id]))

    # ---- history ----
    def write_events(self, events: Iterable[dict]) -> None:
        """Append to the history, inside the caller's transaction."""
        now = iso(dt.datetime.now(dt.timezone.utc))
        rows = [(e.get("at") or now, e["receivable_id"], e["customer_id"], e.get("key"), e["kind"], e.get("code"),
                 json.dumps(e.get("detail") or {}, ensure_ascii=False, default=str)) for e in events]
        if rows and self.postgres and len(rows) > 8:  # a plan's thousands of events: COPY, not a statement each
            with self.db.conn.raw.cursor() as cursor, cursor.copy(
                    "copy collection_events (at, receivable_id, customer_id, key, kind, code, detail) from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
        elif rows:
            self.db.conn.executemany("insert into collection_events (at, receivable_id, customer_id, key, kind, code, "
                                     "detail) values (?, ?, ?, ?, ?, ?, ?)", rows)

    def history(self, receivable_id: str) -> list[dict]:
        rows = self.db.query("select at, key, kind, code, detail from collection_events where receivable_id = ? "
                             "order by id", [receivable_id])
        return [dict(r, detail=json.loads(r["detail"])) for r in rows]

    def start_run(self, as_of: dt.date, dry_run: bool) -> int:
        with dialect.transaction(self.db):
            cursor = self.db.execute("insert into collection_runs (as_of, started_at, dry_run) values (?, ?, ?) "
                                     "returning id", [as_of.isoformat(), iso(dt.datetime.now(dt.timezone.utc)),
                                                      int(dry_run)])
            return cursor.fetchone()[0]

    def finish_run(self, run_id: int, summary: dict) -> None:
        with dialect.transaction(self.db):
            self.db.execute("update collection_runs set finished_at = ?, summary = ? where id = ?",
                            [iso(dt.datetime.now(dt.timezone.utc)), json.dumps(summary, default=str), run_id])
