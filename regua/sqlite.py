"""SQLite through sqlite-utils, the way every Régua store uses it: one file in WAL mode shared by
threads and worker processes, explicit transactions, migrations applied under a file lock."""

from __future__ import annotations

import fcntl
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlite_utils
from sqlite_utils import Migrations


def connect(path: str) -> sqlite_utils.Database:
    """A new connection (autocommit; transactions are explicit), 5 s busy timeout."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    connection.execute("pragma busy_timeout = 5000")
    # NORMAL is durable against a process crash in WAL mode; only an OS crash or power loss can
    # lose the last transactions.
    connection.execute("pragma synchronous = NORMAL")
    connection.execute("pragma foreign_keys = on")
    return sqlite_utils.Database(connection)


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """BEGIN IMMEDIATE … COMMIT: takes the write lock at once, so read-then-write is atomic."""
    db.execute("begin immediate")
    try:
        yield db
        db.execute("commit")  # inside: a failed COMMIT must not leave the connection in a transaction
    except BaseException:
        if db.conn.in_transaction:  # SQLite may already have rolled back on its own
            db.execute("rollback")
        raise


def migrate(path: str, migrations: Migrations) -> list[str]:
    """Apply pending migrations under an exclusive file lock (workers starting together do not
    race); the file is switched to WAL mode. Returns the names applied. A missing folder is made,
    so the default `var/regua.db` works on a fresh clone."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path + ".migrate-lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        db = connect(path)
        try:
            db.enable_wal()
            pending = [m.name for m in migrations.pending(db)]
            migrations.apply(db)
        finally:
            db.conn.close()
    return pending  # the lock goes with the file handle
