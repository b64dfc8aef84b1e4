"""LGPD retention: what `regua purge --before DATE`, `store.retention_days` and
`store.replay_retention_days` remove.

A decision older than the cut-off keeps what statistics need (policy, version, outcome, the answer
as returned, with documents masked, and its timing) and loses what identifies the person: the input
as received, the connector answers recorded with it (the policy lab's replay), the hashes of the
input and of the document, and the masked document. Bureau answers cached before the cut-off are
deleted, and so are the policy lab's replay jobs created before it (their reports name decisions
and the values their changes were cut by; a job still running is left to the next purge). Every
purge, dry runs excepted, is recorded in `purges` (when, the cut-off, who ran it, how many rows)
so an auditor can see retention being applied. The cut-off is the start of DATE in
Brasília; decisions are found by id (ids are ULIDs, ordered by time), so a purge reads no more rows than it changes.
"""

from __future__ import annotations

import datetime as dt
import time

import msgspec

from regua import postgres
from regua.engine.brazil import BRASILIA
from regua.sqlite import connect, transaction

from .ids import id_floor
from .replays import STALE_AFTER_S
from .store import open_store, utc_now


class PurgeReport(msgspec.Struct, frozen=True):
    before: str  # the cut-off date (ISO); data from before its start in Brasília is purged
    decisions: int  # decisions anonymised (already purged ones are not counted again)
    cache_entries: int  # cached bureau answers deleted
    dry_run: bool = False
    replays: int = 0  # replay jobs (POST /replays) deleted with their reports


# Replay jobs created before the cut-off, unless still running (a fresh heartbeat: its thread would
# write a row that is gone; it is deleted by the next purge).
_OLD_REPLAYS = "from replays where created_at < ? and (status <> 'running' or heartbeat_at < ?)"


_ANONYMISE = ("update decisions set input = '{}', input_hash = null, document_hash = null, document_masked = null, "
              "connector_answers = null, purged_at = ? where id < ? and purged_at is null")


def purge(store_path: str, before: dt.date, by: str, dry_run: bool = False, audit_empty: bool = True,
          replays_only: bool = False) -> PurgeReport:
    """Anonymise decisions, delete cached bureau answers and replay jobs from before `before`,
    atomically; `replays_only`: the replay jobs alone (store.replay_retention_days).
    `audit_empty=False` (the scheduler) records a purge only when it removed something.
    `store_path`: the store's location, a SQLite path or a postgresql:// URL."""
    open_store(store_path).close()  # migrations applied: `purged_at` and `purges` exist
    start = dt.datetime.combine(before, dt.time(), BRASILIA)
    first_kept = id_floor(start)
    stale = time.time() - STALE_AFTER_S
    if postgres.is_url(store_path):
        return _purge_postgres(store_path, before, by, dry_run, audit_empty, start, first_kept, stale, replays_only)
    created = start.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")  # as utc_now() writes it
    db = connect(store_path)
    try:
        with transaction(db):
            decisions = cache = 0
            if not replays_only:
                decisions = db.execute("select count(*) from decisions where id < ? and purged_at is null",
                                       [first_kept]).fetchone()[0]
            has_cache = "connector_cache" in db.table_names() and not replays_only
            if has_cache:
                cache = db.execute("select count(*) from connector_cache where stored_at < ?",
                                   [start.timestamp()]).fetchone()[0]
            replays = db.execute(f"select count(*) {_OLD_REPLAYS}", [created, stale]).fetchone()[0]
            if not dry_run:
                if not replays_only:
                    db.execute(_ANONYMISE, [utc_now(), first_kept])
                if has_cache:
                    db.execute("delete from connector_cache where stored_at < ?", [start.timestamp()])
                db.execute(f"delete {_OLD_REPLAYS}", [created, stale])
                if audit_empty or decisions or cache or replays:
                    db.execute("insert into purges (at, before, by, decisions, cache_entries, replays) "
                               "values (?, ?, ?, ?, ?, ?)", [utc_now(), before.isoformat(), by, decisions, cache, replays])
    finally:
        db.conn.close()
    return PurgeReport(before.isoformat(), decisions, cache, dry_run, replays)


def _purge_postgres(url: str, before: dt.date, by: str, dry_run: bool, audit_empty: bool, start: dt.datetime,
                    first_kept: str, stale: float, replays_only: bool) -> PurgeReport:
    old_replays = _OLD_REPLAYS.replace("?", "%s")
    with postgres.connect(url) as conn, conn.transaction():
        # One purge at a time across replicas (each runs the retention loop): counts match what is changed.
        conn.execute("lock table purges in exclusive mode")
        decisions = cache = 0
        if not replays_only:
            decisions = conn.execute("select count(*) as n from decisions where id < %s and purged_at is null",
                                     [first_kept]).fetchone()["n"]
            cache = conn.execute("select count(*) as n from connector_cache where stored_at < %s",
                                 [start]).fetchone()["n"]
        replays = conn.execute(f"select count(*) as n {old_replays}", [start, stale]).fetchone()["n"]
        if not dry_run:
            if not replays_only:
                conn.execute(_ANONYMISE.replace("?", "%s"), [utc_now(), first_kept])
                conn.execute("delete from connector_cache where stored_at < %s", [start])
            conn.execute(f"delete {old_replays}", [start, stale])
            if audit_empty or decisions or cache or replays:
                conn.execute('insert into purges (at, "before", "by", decisions, cache_entries, replays) '
                             'values (%s, %s, %s, %s, %s, %s)', [utc_now(), before, by, decisions, cache, replays])
    return PurgeReport(before.isoformat(), decisions, cache, dry_run, replays)


def purges(store_path: str) -> list[dict]:
    """The audit trail of purges, newest first."""
    if postgres.is_url(store_path):
        with postgres.connect(store_path) as conn:
            return conn.execute("select * from purges order by id desc").fetchall()
    db = connect(store_path)
    try:
        if "purges" not in db.table_names():
            return []
        return list(db.query("select * from purges order by id desc"))
    finally:
        db.conn.close()


def retention_cutoff(today: dt.date, retention_days: int) -> dt.date | None:
    """The cut-off `store.retention_days` asks for today (None: keep everything)."""
    return today - dt.timedelta(days=retention_days) if retention_days > 0 else None
