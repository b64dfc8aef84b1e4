"""The server store on PostgreSQL (psycopg 3, one connection pool per process): the same methods
and rows as the SQLite `Store` (server/store.py), for replicas that share one database.

Adding to it: a new table is a migration with both bodies (server/migrations.py, regua/schema.py);
a new method is added here and to `Store` with the same signature and rows (tests/test_server_store.py
runs on both through the `store_location` fixture); a new decision column goes in DECISION_COLUMNS
(server/store_common.py), in a migration, and in _COPY_TYPES below when it is not text.

What differs from SQLite, and why:
- activations are serialised by a transaction-scoped advisory lock: revisions are numbered
  `max + 1` and `activation_generation()` is `max(id)` of the activations, which must only grow
  in commit order for every replica to notice every change;
- each activation sends NOTIFY `regua_activations`: replicas LISTEN and reload at once
  (`wait_for_activation`), and still poll the generation in case a notification is lost;
- decisions are written with binary COPY; a batch holding a row already stored (a replay, an
  idempotency key) goes through a temp table and `insert … on conflict do nothing` instead, so
  those rows are skipped as SQLite's `insert or ignore` skips them;
- an idempotent request retried on another replica finds the decision the first one committed:
  the unique index on (policy, api key, request_id) makes the second insert wait and yield.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from regua import dialect, postgres

from .migrations import MIGRATIONS
from .store_common import DECISION_COLUMNS, StoreError, text_row, utc_now

CHANNEL = "regua_activations"
#: Transaction-scoped advisory lock taken by every activation (publish, reload, rollback).
ACTIVATION_LOCK = 0x52656775612D61  # "Regua-a"
_COLUMNS = ", ".join(DECISION_COLUMNS)
#: The PostgreSQL type of each decision column, for binary COPY (m002_decisions and later).
_COPY_TYPES = [{"revision": "integer", "duration_ms": "double precision"}.get(column, "text")
               for column in DECISION_COLUMNS]


class PostgresStore:
    def __init__(self, url: str, pool_size: int = 8):
        if not postgres.is_url(url):
            raise StoreError(f"not a postgresql:// URL: {url!r}")
        self.url = url
        self.migrate()
        self.pool = postgres.pool(url, pool_size)
        self._listener = None
        self._listener_thread = None
        self._listener_lock = threading.Lock()
        self._local = threading.local()

    # ---- connections ----
    @property
    def location(self) -> str:
        return self.url

    def migrate(self) -> list[str]:
        return postgres.migrate(self.url, MIGRATIONS)

    def applied_migrations(self) -> list[str]:
        with self.pool.connection() as conn:
            return postgres.applied(conn, MIGRATIONS)

    @property
    def db(self) -> dialect.PostgresDatabase:
        """This thread's connection with the sqlite-utils surface (regua.dialect), for the code
        written against `Store.db` (the console, experiments): one per thread, like SQLite's."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = dialect.PostgresDatabase(self.url)
        return db

    def transaction(self, db=None):
        return dialect.transaction(db or self.db)

    def lock_versions(self, db) -> None:
        """Inside `db`'s transaction: number revisions and activate one at a time (see the module docstring)."""
        db.execute("select pg_advisory_xact_lock(?)", [ACTIVATION_LOCK])

    def activate_in(self, db, name: str, version_id: int, activated_by: str, reason: str) -> None:
        """Make a stored version active inside `db`'s transaction (an experiment's promotion)."""
        self.lock_versions(db)
        self._activate(db.conn.raw, name, version_id, activated_by, reason)

    def close(self) -> None:
        """Close this thread's connections, as the SQLite store does: its `db`, and the listener
        when this thread opened it (the pool is the process's, shared by every store on this URL)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None
        with self._listener_lock:
            if self._listener is not None and self._listener_thread == threading.get_ident():
                self._listener.close()
                self._listener = None

    @contextmanager
    def writer(self):
        """A connection of its own for the decision writer thread: it never waits for the pool."""
        conn = postgres.connect(self.url)
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, params=()) -> list[dict]:
        with self.pool.connection() as conn:
            return conn.execute(sql.replace("?", "%s"), list(params)).fetchall()

    def _one(self, sql: str, params=(), conn=None):
        if conn is not None:
            return conn.execute(sql, list(params)).fetchone()
        with self.pool.connection() as conn:
            return conn.execute(sql, list(params)).fetchone()

    def _all(self, sql: str, params=()) -> list[dict]:
        with self.pool.connection() as conn:
            return conn.execute(sql, list(params)).fetchall()

    def insert_row(self, table: str, row: dict) -> None:
        """Insert one row into `table` (a table of the migrations), in its own transaction."""
        columns = ", ".join(row)
        with self.pool.connection() as conn:
            conn.execute(f"insert into {table} ({columns}) values ({', '.join('%s' for _ in row)})", list(row.values()))

    def update_row(self, table: str, key: str, value, changes: dict) -> None:
        """Set `changes` (column -> value) on the row of `table` whose `key` column is `value`, in one transaction."""
        sets = ", ".join(f"{column} = %s" for column in changes)
        with self.pool.connection() as conn:
            conn.execute(f"update {table} set {sets} where {key} = %s", [*changes.values(), value])

    def delete_rows(self, table: str, where: str, params=()) -> int:
        """Delete the rows of `table` matching `where` (SQL with `?` placeholders), in one
        transaction; how many were deleted."""
        with self.pool.connection() as conn:
            return conn.execute(f"delete from {table} where {where.replace('?', '%s')}", list(params)).rowcount

    def wait_for_activation(self, timeout: float, stop: threading.Event) -> None:
        """Return when another replica activates a version (NOTIFY), `timeout` passes, or `stop`.
        Without a listening connection (the database restarting) this is a plain wait: callers
        poll activation_generation() after each wait either way."""
        try:
            with self._listener_lock:
                if self._listener is None:
                    self._listener = postgres.connect(self.url)
                    self._listener.execute(f"listen {CHANNEL}")
                    self._listener_thread = threading.get_ident()
                listener = self._listener
            for _ in listener.notifies(timeout=timeout, stop_after=1):
                break
        except Exception:  # noqa: BLE001 — a broken listener falls back to polling; reconnect next time
            with self._listener_lock:
                if self._listener is not None:
                    self._listener.close()
                    self._listener = None
            stop.wait(timeout)

    # ---- policy versions ----
    def policy_versions(self, name: str) -> list[dict]:
        return self._all("select id, name, revision, version, source_hash, origin, created_at from policy_versions "
                         "where name = %s order by revision", [name])

    def policy_version(self, name: str, revision: int) -> dict | None:
        return self._one("select * from policy_versions where name = %s and revision = %s", [name, revision])

    def active_versions(self) -> dict[str, dict]:
        rows = self._all("select v.*, a.activated_at, a.activated_by from policy_active a "
                         "join policy_versions v on v.id = a.version_id")
        return {row["name"]: row for row in rows}

    def activation_generation(self) -> int:
        return self._one("select coalesce(max(id), 0) as generation from policy_activations")["generation"]

    def activations(self, name: str) -> list[dict]:
        return self._all(
            "select a.id, v.revision, v.version, a.activated_at, a.activated_by, a.reason "
            "from policy_activations a join policy_versions v on v.id = a.version_id "
            "where v.name = %s order by a.id", [name])

    def publish_version(self, name: str, version: str, source: str, source_hash: str, origin: str,
                        activated_by: str, reason: str, only_if_changed: bool = False) -> tuple[dict, bool]:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", [ACTIVATION_LOCK])
            active = conn.execute("select v.* from policy_active a join policy_versions v on v.id = a.version_id "
                                  "where a.name = %s", [name]).fetchone()
            if only_if_changed and active is not None and active["source_hash"] == source_hash:
                return active, False
            row = conn.execute(
                "insert into policy_versions (name, revision, version, source, source_hash, origin, created_at) "
                "select %s, coalesce(max(revision), 0) + 1, %s, %s, %s, %s, %s from policy_versions where name = %s "
                "returning *", [name, version, source, source_hash, origin, utc_now(), name]).fetchone()
            self._activate(conn, name, row["id"], activated_by, reason)
            return row, True

    def activate(self, name: str, revision: int, activated_by: str, reason: str) -> dict:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", [ACTIVATION_LOCK])
            row = conn.execute("select * from policy_versions where name = %s and revision = %s",
                               [name, revision]).fetchone()
            if row is None:
                raise StoreError(f"policy {name} has no revision {revision}")
            self._activate(conn, name, row["id"], activated_by, reason)
            return row

    @staticmethod
    def _activate(conn, name: str, version_id: int, activated_by: str, reason: str) -> None:
        now = utc_now()
        conn.execute("insert into policy_active (name, version_id, activated_at, activated_by) values (%s, %s, %s, %s) "
                     "on conflict (name) do update set version_id = excluded.version_id, "
                     "activated_at = excluded.activated_at, activated_by = excluded.activated_by",
                     [name, version_id, now, activated_by])
        conn.execute("insert into policy_activations (version_id, activated_at, activated_by, reason) "
                     "values (%s, %s, %s, %s)", [version_id, now, activated_by, reason])
        conn.execute("select pg_notify(%s, %s)", [CHANNEL, name])  # delivered at commit

    def file_hash(self, path: str) -> str | None:
        row = self._one("select file_hash from policy_files where path = %s", [path])
        return row["file_hash"] if row else None

    def file_policy_name(self, path: str, file_hash: str) -> str | None:
        row = self._one("select name from policy_versions where origin = %s and source_hash = %s "
                        "order by id desc limit 1", [f"file:{path}", file_hash])
        return row["name"] if row else None

    def remember_file(self, path: str, file_hash: str) -> None:
        with self.pool.connection() as conn:
            conn.execute("insert into policy_files (path, file_hash, synced_at) values (%s, %s, %s) "
                         "on conflict (path) do update set file_hash = excluded.file_hash, synced_at = excluded.synced_at",
                         [path, file_hash, utc_now()])

    # ---- decisions ----
    def insert_decisions(self, rows: list[tuple], db=None) -> None:
        """COPY the rows (tuples in DECISION_COLUMNS order) in one transaction; rows whose id or
        idempotency key is already stored are skipped."""
        if db is None:
            with self.pool.connection() as conn:
                return copy_decisions(conn, rows)
        return copy_decisions(db, rows)

    def insert_decision_once(self, row: tuple) -> dict | None:
        placeholders = ", ".join("%s" for _ in DECISION_COLUMNS)
        with self.pool.connection() as conn, conn.transaction():
            inserted = conn.execute(f"insert into decisions ({_COLUMNS}) values ({placeholders}) "
                                    "on conflict do nothing returning id", list(text_row(row))).fetchone()
            if inserted is not None:
                return None
            return self.decision_by_request(row[DECISION_COLUMNS.index("policy")],
                                            row[DECISION_COLUMNS.index("request_id")],
                                            row[DECISION_COLUMNS.index("api_key")], conn)

    def decision(self, decision_id: str) -> dict | None:
        return self._one("select * from decisions where id = %s", [decision_id])

    def decision_by_request(self, policy: str, request_id: str, api_key: str | None, db=None) -> dict | None:
        return self._one("select * from decisions where policy = %s and coalesce(api_key, '') = coalesce(%s, '') "
                         "and request_id = %s", [policy, api_key, request_id], db)

    def find_decisions(self, policy: str | None = None, document_hash: str | None = None,
                       start_id: str | None = None, end_id: str | None = None, before_id: str | None = None,
                       limit: int = 50) -> list[dict]:
        where, params = [], []
        for clause, value in (("policy = %s", policy), ("document_hash = %s", document_hash),
                              ("id >= %s", start_id), ("id < %s", end_id), ("id < %s", before_id)):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = "select * from decisions" + (" where " + " and ".join(where) if where else "")
        return self._all(sql + " order by id desc limit %s", params + [limit])

    def count_decisions(self) -> int:
        return self._one("select count(*) as n from decisions")["n"]


def copy_decisions(conn, rows: list[tuple]) -> None:
    """Binary COPY straight into `decisions`; when a row is already there (a replay, an
    idempotency key another replica stored) the whole batch goes again through a temp table
    and `insert … on conflict do nothing`, which skips exactly those rows. The fast path is
    the usual one: the slow one costs a quarter more."""
    import psycopg

    try:
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(f"copy decisions ({_COLUMNS}) from stdin (format binary)") as copy:
                copy.set_types(_COPY_TYPES)
                for row in rows:
                    copy.write_row(text_row(row))
        return
    except psycopg.errors.UniqueViolation:
        pass
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("create temp table if not exists decisions_in (like decisions) on commit delete rows")
        with cursor.copy(f"copy decisions_in ({_COLUMNS}) from stdin (format binary)") as copy:
            copy.set_types(_COPY_TYPES)
            for row in rows:
                copy.write_row(text_row(row))
        cursor.execute(f"insert into decisions ({_COLUMNS}) select {_COLUMNS} from decisions_in "
                       "on conflict do nothing")
