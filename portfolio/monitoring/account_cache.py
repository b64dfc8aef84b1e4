"""The answers of `portfolio.customer` kept in memory, never older than the SQLite file.

Every answer is stored under the *version* of the portfolio it was read at: the counter in
`account_changes`, which the triggers of migration m003_account_changes bump in every transaction
that changes a table the lookup reads (store.ACCOUNT_TABLES), whichever process or connection
writes. An answer is served only while the version is still the one it was stored under.

The counter is read by one indexed query on the cache's own connection, and only when a file of
the database may have been written since the last read (regua.file_changes: inotify on Linux; every
lookup elsewhere). The query alone costs ~5 µs on a quiet machine, but on a busy server it ran on
the event loop after each decision-log commit had emptied the connection's page cache, beside the
writer thread: ~40 µs of loop CPU a request (credito_b2b over HTTP ~12 % more requests a second
without it). Asking inotify costs ~1 µs. An earlier version read
SQLite's WAL-index header from a memory map of the `-shm` file instead, to save even that; but
opening and closing a file descriptor on `-shm` releases every POSIX lock the process holds on it
(fcntl semantics), SQLite's own locks included: another process then found the file unlocked,
rebuilt the `-shm` and the server died of SIGBUS writing its decision log. Nothing in this module
opens a database file except through SQLite.

Why an answer is never stale: a request reads the counter, then (on a miss) the customer's rows,
one after the other. A commit visible when the request starts has bumped the counter, so rows read
after it include its changes. A commit landing between those reads makes the stored answer newer
than its version says, never older; the next request reads the new version.

On PostgreSQL (account_notify.NotifiedVersion) the version is a number kept in memory, moved on
by every NOTIFY the statement triggers of migration m004 send at commit: no query per lookup, so
a repeated lookup never waits on the network. The price is a short window: a change is seen when
PostgreSQL delivers its notification to this process (well under a millisecond on one host), not
at its commit. While the listening connection is down the version is unknown (None) and every
lookup reads the database.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading

from regua import postgres, sqlite
from regua.file_changes import FileChanges

from .store import ACCOUNT_TABLES

log = logging.getLogger("regua.monitoring")

#: Answers kept (~1.2 KB each, ~5 MB in all): the oldest stored goes first past this.
MAX_ANSWERS = 4096

_TRIGGERS = {f"account_changes_{table}_{event}" for table in ACCOUNT_TABLES for event in ("insert", "update", "delete")}


class SqliteVersion:
    """The counter of `account_changes`, read on the cache's own connection when the file may have
    changed (regua.file_changes: inotify, no query while nothing was written), else every time."""

    def __init__(self, path: str, watch: bool = True):
        self._db = sqlite.connect(path).conn  # its own, kept for the cache's lifetime
        self._cursor = self._db.cursor()  # reused: a new cursor per lookup cost ~10 % of the read
        # The connection, the watch and the last value are shared by the threads that evaluate.
        self._lock = threading.Lock()
        self._changes = FileChanges.open(path) if watch else None
        self._last = 0
        self.queries = 0  # counter reads (tests and benchmarks)

    @staticmethod
    def usable(path: str) -> bool:
        """Whether the file has the counter and every trigger bumping it (a migration that rebuilt a
        table without them, e.g. sqlite-utils' transform(), would make cached answers stale)."""
        db = sqlite.connect(path).conn
        try:
            found = {name for (name,) in db.execute("select name from sqlite_master where type = 'trigger'")}
        finally:
            db.close()
        missing = _TRIGGERS - found
        if missing:
            log.warning("portfolio.customer answers are not cached: trigger(s) %s missing", ", ".join(sorted(missing)))
        return not missing

    def __call__(self) -> int:
        """The portfolio's version now: every commit of any process that completed before the call is
        counted. Read from the file unless no file of the database was written since the last read."""
        # The lock is held across the check and the read: another thread must not take the old
        # value while this one, told of a change, reads the new.
        with self._lock:
            changes = self._changes
            if changes is None or changes.changed():
                self.queries += 1
                self._last = self._cursor.execute("select counter from account_changes where id = 1").fetchone()[0]
            return self._last

    def attach(self, loop) -> None:
        """Let `loop` (call from its thread) watch the file: its lookups then ask the kernel nothing."""
        if self._changes is not None:
            self._changes.attach(loop, self._lock)

    def close(self) -> None:
        with self._lock:
            if self._changes is not None:
                self._changes.close()
        try:
            self._db.close()
        except sqlite3.Error:
            pass


class AccountCache:
    """Answers by (document, day), each generation of them stored under the version it was read at.
    `version` is SqliteVersion or account_notify.NotifiedVersion: a callable answering the
    portfolio's version now, or None when it cannot tell (then nothing is served or kept)."""

    def __init__(self, version, max_answers: int = MAX_ANSWERS):
        self.max_answers = max_answers
        self.version = version
        self._generation: tuple[int, dict] = (version() or 0, {})  # (version, answers stored at it)
        self.hits = self.misses = 0

    @classmethod
    def for_location(cls, location: str) -> "AccountCache | None":
        """The cache for a SQLite file or a PostgreSQL URL, or None when its triggers are missing."""
        if postgres.is_url(location):
            from .account_notify import NotifiedVersion

            return cls(NotifiedVersion(location)) if NotifiedVersion.usable(location) else None
        return cls(SqliteVersion(location)) if SqliteVersion.usable(location) else None

    def get(self, document: str, today: dt.date, version: int | None) -> dict | None:
        generation = self._generation
        if version is None:
            self.misses += 1
            return None
        if generation[0] != version:
            if version > generation[0]:
                self._generation = (version, {})
            self.misses += 1
            return None
        answer = generation[1].get((document, today))
        if answer is None:
            self.misses += 1
        else:
            self.hits += 1
        return answer

    def put(self, document: str, today: dt.date, version: int | None, answer: dict) -> None:
        """Keep `answer`, read after `version` was: dropped if the portfolio has moved on since."""
        generation = self._generation
        if version is None:
            return
        if generation[0] != version:
            if version < generation[0]:
                return
            generation = self._generation = (version, {})
        answers = generation[1]
        if len(answers) >= self.max_answers:
            try:
                del answers[next(iter(answers))]  # the oldest stored
            except (StopIteration, KeyError, RuntimeError):  # another thread got there first
                pass
        answers[(document, today)] = answer

    def attach(self, loop) -> None:
        """Hand `loop` (call from its thread) what it can watch for the version (SqliteVersion)."""
        attach = getattr(self.version, "attach", None)
        if attach is not None:
            attach(loop)

    def close(self) -> None:
        self.version.close()
