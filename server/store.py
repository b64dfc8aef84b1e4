"""The server's store: policy versions and activations, decisions (the idempotency keys are theirs),
the connector cache. Two backends behind one interface, chosen by `open_store(location)`:

- `Store` (this module): embedded SQLite through sqlite-utils, the default (`store.path`);
- `PostgresStore` (server/store_postgres.py): PostgreSQL through psycopg 3 and a connection
  pool, for several replicas sharing one database (`store.url = "postgresql://…"`).

Both have the same methods and return the same rows (dicts; instants as ISO 8601 text); the test
suites run against both (tests/store_backends.py). A method added to one is added to the other,
and a new table is one migration with a body for each backend (server/migrations.py,
regua/schema.py explains how).

SQLite: one file, WAL mode, so readers never wait for the decision writer and several worker
processes can share it. The schema is created and upgraded by `sqlite_utils.Migrations`
(see server/migrations.py), applied under a file lock so workers starting together do not
race. Each thread gets its own connection: SQLite connections are not shared across threads.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from regua import postgres, sqlite

from .migrations import MIGRATIONS
from .store_common import DECISION_COLUMNS, StoreError, text_row, utc_now

__all__ = ["DECISION_COLUMNS", "Store", "StoreError", "open_store", "utc_now"]

# At most 500 rows per statement, fewer when SQLite's bound-parameter limit is low (999 before 3.32).
_ROWS_PER_INSERT = 500
# Above 16 rows, a statement's row count is rounded up to a multiple of 16, the last row repeated
# to fill it (`insert or ignore` skips the repeats: same id). Preparing a multi-row INSERT costs
# about 6 µs of CPU per row, and the decision writer's batches vary in size flush after flush: with
# one statement per exact count, most batches of a run prepared a statement the connection had not
# seen yet. Rounded, at most 16 + 31 statements exist, and the connection's cache (128) keeps them.
_ROUND_ROWS_TO = 16


@functools.lru_cache(maxsize=64)
def _insert_sql(count: int) -> str:
    row = "(" + ", ".join("?" for _ in DECISION_COLUMNS) + ")"
    return f"insert or ignore into decisions ({', '.join(DECISION_COLUMNS)}) values " + ", ".join([row] * count)




def open_store(location: str):
    """The server store at `location`: a `postgresql://` URL (PostgresStore) or a SQLite file path
    (Store). Migrations are applied on opening, once whatever the number of processes opening it."""
    if postgres.is_url(location):
        from .store_postgres import PostgresStore

        return PostgresStore(location)
    return Store(location)


class Store:
    def __init__(self, path: str):
        if path == ":memory:" or path.startswith("file:"):
            # Threads and worker processes each open their own connection: they need a real file.
            raise StoreError(f"store.path must be a file path, not {path!r}")
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.migrate()

    # ---- connections ----
    def connect(self) -> sqlite_utils.Database:
        return sqlite.connect(self.path)

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection: SQLite connections are not shared across threads."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self.connect()
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    @property
    def location(self) -> str:
        return self.path

    @contextmanager
    def writer(self):
        """A connection of its own for the decision writer thread (handed to insert_decisions)."""
        db = self.connect()
        try:
            yield db
        finally:
            db.conn.close()

    def query(self, sql: str, params=()) -> list[dict]:
        """Rows of a read-only query written with `?` placeholders in SQL both backends accept."""
        return list(self.db.query(sql, list(params)))

    def insert_row(self, table: str, row: dict) -> None:
        """Insert one row into `table` (a table of the migrations), in its own transaction."""
        with self.transaction() as db:
            db[table].insert(row)

    def update_row(self, table: str, key: str, value, changes: dict) -> None:
        """Set `changes` (column -> value) on the row of `table` whose `key` column is `value`, in one transaction."""
        sets = ", ".join(f"{column} = ?" for column in changes)
        with self.transaction() as db:
            db.execute(f"update {table} set {sets} where {key} = ?", [*changes.values(), value])

    def delete_rows(self, table: str, where: str, params=()) -> int:
        """Delete the rows of `table` matching `where` (SQL with `?` placeholders), in one
        transaction; how many were deleted."""
        with self.transaction() as db:
            return db.execute(f"delete from {table} where {where}", list(params)).rowcount

    def wait_for_activation(self, timeout: float, stop: threading.Event) -> None:
        """Wait up to `timeout` s for an activation by another process (or `stop`). SQLite has no
        notifications: callers poll activation_generation() after each wait."""
        stop.wait(timeout)

    def transaction(self, db: sqlite_utils.Database | None = None):
        return sqlite.transaction(db or self.db)

    def lock_versions(self, db) -> None:
        """Inside `db`'s transaction, nothing more to do: BEGIN IMMEDIATE already serialises writers."""

    def activate_in(self, db, name: str, version_id: int, activated_by: str, reason: str) -> None:
        """Make a stored version active inside `db`'s transaction (an experiment's promotion)."""
        self._activate(db, name, version_id, activated_by, reason)

    def migrate(self) -> list[str]:
        return sqlite.migrate(self.path, MIGRATIONS)

    def applied_migrations(self) -> list[str]:
        return [m.name for m in MIGRATIONS.applied(self.db)]

    def journal_mode(self) -> str:
        return self.db.execute("pragma journal_mode").fetchone()[0]

    # ---- policy versions ----
    def policy_versions(self, name: str) -> list[dict]:
        return list(self.db.query(
            "select id, name, revision, version, source_hash, origin, created_at from policy_versions "
            "where name = ? order by revision", [name]))

    def policy_version(self, name: str, revision: int) -> dict | None:
        rows = list(self.db.query("select * from policy_versions where name = ? and revision = ?", [name, revision]))
        return rows[0] if rows else None

    def active_versions(self) -> dict[str, dict]:
        """The active version of every policy: name -> version row (with source)."""
        rows = self.db.query(
            "select v.*, a.activated_at, a.activated_by from policy_active a "
            "join policy_versions v on v.id = a.version_id")
        return {row["name"]: row for row in rows}

    def activation_generation(self) -> int:
        """Grows with every activation anywhere (any worker): cheap to poll."""
        return self.db.execute("select coalesce(max(id), 0) from policy_activations").fetchone()[0]

    def activations(self, name: str) -> list[dict]:
        return list(self.db.query(
            "select a.id, v.revision, v.version, a.activated_at, a.activated_by, a.reason "
            "from policy_activations a join policy_versions v on v.id = a.version_id "
            "where v.name = ? order by a.id", [name]))

    def publish_version(self, name: str, version: str, source: str, source_hash: str, origin: str,
                        activated_by: str, reason: str, only_if_changed: bool = False) -> tuple[dict, bool]:
        """Insert a new revision of `name` and make it active, in one transaction.

        With `only_if_changed`, nothing happens when the active version already has this source
        (several workers reloading the same edited file publish it once). Returns (row, created)."""
        with self.transaction() as db:
            active = list(db.query(
                "select v.* from policy_active a join policy_versions v on v.id = a.version_id where a.name = ?",
                [name]))
            if only_if_changed and active and active[0]["source_hash"] == source_hash:
                return active[0], False
            revision = db.execute("select coalesce(max(revision), 0) + 1 from policy_versions where name = ?",
                                  [name]).fetchone()[0]
            row = {"name": name, "revision": revision, "version": version, "source": source,
                   "source_hash": source_hash, "origin": origin, "created_at": utc_now()}
            row["id"] = db["policy_versions"].insert(row).last_pk
            self._activate(db, name, row["id"], activated_by, reason)
            return row, True

    def activate(self, name: str, revision: int, activated_by: str, reason: str) -> dict:
        with self.transaction() as db:
            rows = list(db.query("select * from policy_versions where name = ? and revision = ?", [name, revision]))
            if not rows:
                raise StoreError(f"policy {name} has no revision {revision}")
            self._activate(db, name, rows[0]["id"], activated_by, reason)
            return rows[0]

    @staticmethod
    def _activate(db, name: str, version_id: int, activated_by: str, reason: str) -> None:
        now = utc_now()
        db.execute("insert into policy_active (name, version_id, activated_at, activated_by) values (?, ?, ?, ?) "
                   "on conflict(name) do update set version_id = excluded.version_id, "
                   "activated_at = excluded.activated_at, activated_by = excluded.activated_by",
                   [name, version_id, now, activated_by])
        db.execute("insert into policy_activations (version_id, activated_at, activated_by, reason) values (?, ?, ?, ?)",
                   [version_id, now, activated_by, reason])

    def file_hash(self, path: str) -> str | None:
        rows = list(self.db.query("select file_hash from policy_files where path = ?", [path]))
        return rows[0]["file_hash"] if rows else None

    def file_policy_name(self, path: str, file_hash: str) -> str | None:
        """The policy a synced file declared: the name of the version published from it with this hash."""
        rows = list(self.db.query("select name from policy_versions where origin = ? and source_hash = ? "
                                  "order by id desc limit 1", [f"file:{path}", file_hash]))
        return rows[0]["name"] if rows else None

    def remember_file(self, path: str, file_hash: str) -> None:
        self.db["policy_files"].upsert({"path": path, "file_hash": file_hash, "synced_at": utc_now()}, pk="path")

    # ---- decisions ----
    def insert_decisions(self, rows: list[tuple], db: sqlite_utils.Database | None = None) -> None:
        """Insert decision rows (tuples in DECISION_COLUMNS order) in one transaction.

        Multi-row INSERTs, not executemany: sqlite3 releases the GIL around every statement it
        runs, and a thread that gives the GIL back to a busy event loop waits up to the switch
        interval (5 ms) to get it again; one statement per row made the writer fall behind."""
        db = db or self.db
        per_insert = min(_ROWS_PER_INSERT,
                         db.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(DECISION_COLUMNS))
        with self.transaction(db):
            for start in range(0, len(rows), per_insert):
                chunk = [text_row(row) for row in rows[start:start + per_insert]]
                values = [value for row in chunk for value in row]
                count = len(chunk)
                if count > _ROUND_ROWS_TO:
                    rounded = min(-(-count // _ROUND_ROWS_TO) * _ROUND_ROWS_TO, per_insert)
                    values += chunk[-1] * (rounded - count)  # repeats of the last row, ignored
                    count = rounded
                db.conn.execute(_insert_sql(count), values)

    def insert_decision_once(self, row: tuple) -> dict | None:
        """Insert one decision carrying a request_id. Returns the decision already stored under that
        request_id (and policy) instead, when there is one; None when this row was inserted."""
        placeholders = ", ".join("?" for _ in DECISION_COLUMNS)
        with self.transaction() as db:
            existing = self.decision_by_request(row[DECISION_COLUMNS.index("policy")],
                                                row[DECISION_COLUMNS.index("request_id")],
                                                row[DECISION_COLUMNS.index("api_key")], db)
            if existing is not None:
                return existing
            db.execute(f"insert into decisions ({', '.join(DECISION_COLUMNS)}) values ({placeholders})",
                       list(text_row(row)))
        return None

    def decision(self, decision_id: str) -> dict | None:
        rows = list(self.db.query("select * from decisions where id = ?", [decision_id]))
        return rows[0] if rows else None

    def decision_by_request(self, policy: str, request_id: str, api_key: str | None, db=None) -> dict | None:
        """Idempotency keys belong to the API key that used them: clients cannot see each other's."""
        rows = list((db or self.db).query(
            "select * from decisions where policy = ? and api_key is ? and request_id = ?",
            [policy, api_key, request_id]))
        return rows[0] if rows else None

    def find_decisions(self, policy: str | None = None, document_hash: str | None = None,
                       start_id: str | None = None, end_id: str | None = None, before_id: str | None = None,
                       limit: int = 50) -> list[dict]:
        """Newest first. Ids sort by creation time (server/ids.py): a time range is an id range,
        [start_id, end_id), and `before_id` pages."""
        where, params = [], []
        for clause, value in (("policy = ?", policy), ("document_hash = ?", document_hash),
                              ("id >= ?", start_id), ("id < ?", end_id), ("id < ?", before_id)):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = "select * from decisions" + (" where " + " and ".join(where) if where else "")
        return list(self.db.query(sql + " order by id desc limit ?", params + [limit]))

    def count_decisions(self) -> int:
        return self.db.execute("select count(*) from decisions").fetchone()[0]
