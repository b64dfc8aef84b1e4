"""The answers of `portfolio.customer` kept in memory, never older than the SQLite file.

Every answer is stored under the *version* of the portfolio it was read at: the counter in
`account_changes`, which the triggers of migration m003_account_changes bump in every transaction
that changes a table the lookup reads (store.ACCOUNT_TABLES), whichever process or connection
writes. An answer is served only while the version is still the one it was stored under.

Reading the counter is a query (a read lock on the file: ~15 µs on the benchmark machine, as much as
the lookup it saves), so it is read again only when the file has changed at all: the WAL-index
header (regua.wal_watch), read from memory, tells whether any connection committed since the
counter was last read. The decision log commits every few milliseconds under load; those commits
cost one counter read each and leave the answers in place.

Why an answer is never stale: a request reads the header, then (when the header moved) the
counter, then (on a miss) the customer's rows, each after the one before. A commit visible when
the request starts has rewritten the header, so the counter read after it includes the commit's
bump, and rows read after that include its changes. A commit landing between those reads makes
the stored answer newer than its version says, never older; the next request sees the header
move and the version change.

Used on SQLite only. On PostgreSQL (a lookup waits on the network anyway) every call reads the
database, as before.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading

from regua import sqlite
from regua.wal_watch import WalWatch

from .store import ACCOUNT_TABLES

log = logging.getLogger("regua.monitoring")

#: Answers kept (~1.2 KB each, ~5 MB in all): the oldest stored goes first past this.
MAX_ANSWERS = 4096

_TRIGGERS = {f"account_changes_{table}_{event}" for table in ACCOUNT_TABLES for event in ("insert", "update", "delete")}


class AccountCache:
    def __init__(self, path: str, max_answers: int = MAX_ANSWERS):
        self.max_answers = max_answers
        # A connection of its own, kept open for the cache's lifetime: it reads the counter, and
        # while it is open SQLite never rebuilds the -shm file the watch maps (see regua.wal_watch).
        self._db = sqlite.connect(path).conn
        self._lock = threading.Lock()  # the connection is shared by the threads that evaluate
        self._state: tuple[bytes | None, int] = (None, self._read_counter())  # (header, counter) read after it
        self._watch = WalWatch(path)
        self._generation: tuple[int, dict] = (self._state[1], {})  # (version, answers stored at it)
        self.hits = self.misses = 0

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

    def _read_counter(self) -> int:
        with self._lock:
            return self._db.execute("select counter from account_changes where id = 1").fetchone()[0]

    def version(self) -> int:
        """The portfolio's version now: from memory when nothing was committed since it was read."""
        header = self._watch.token()
        state = self._state
        if header is not None and header == state[0]:
            return state[1]
        counter = self._read_counter()  # read after the header: it includes every commit the header shows
        self._state = (header, counter)  # one assignment: other threads see the old pair or the new one
        return counter

    def get(self, document: str, today: dt.date, version: int) -> dict | None:
        generation = self._generation
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

    def put(self, document: str, today: dt.date, version: int, answer: dict) -> None:
        """Keep `answer`, read after `version` was: dropped if the portfolio has moved on since."""
        generation = self._generation
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

    def close(self) -> None:
        self._watch.close()
        try:
            self._db.close()
        except sqlite3.Error:
            pass
