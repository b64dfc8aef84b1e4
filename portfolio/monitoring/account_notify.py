"""The portfolio's version on PostgreSQL, kept in memory and moved on by NOTIFY.

Migration m004_account_notifications makes every statement that changes a table `portfolio.customer`
reads (store.ACCOUNT_TABLES) send a notification on store.ACCOUNT_CHANNEL at commit, in every
process and replica that writes. One thread per cache LISTENs on a connection of its own and adds
one to the version for each notification it receives, so the cache (account_cache.AccountCache)
learns that its answers are stale without a query per lookup.

The version is None ("cannot tell": nothing is served from memory) until the thread listens, and
again from the moment its connection fails until it listens anew; a new connection may have missed
notifications, so listening again moves the version on too. Notifications are delivered in commit
order; one received after an answer was read moves the version past the one that answer was kept
under, so an answer read before a change is never served after its notification.
"""

from __future__ import annotations

import logging
import threading

from regua import postgres

from .store import ACCOUNT_CHANNEL, ACCOUNT_TABLES

log = logging.getLogger("regua.monitoring")

#: Seconds between attempts to listen again after the connection failed.
RETRY_S = 1.0
#: Seconds before trying again when notifications do not come back at all (a pooler in the way).
UNHEARD_RETRY_S = 60.0
#: Longest wait for a notification before the thread looks at its stop flag.
POLL_S = 1.0


class NotifiedVersion:
    def __init__(self, url: str):
        self.url = url
        self._version = 0
        self._live = False
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._connection = None
        self._thread = threading.Thread(target=self._run, name="regua-account-notify", daemon=True)
        self._thread.start()
        self._listening.wait(5.0)  # most often listening before the first lookup; if not, lookups read the database

    @staticmethod
    def usable(url: str) -> bool:
        """Whether every table's notifying trigger is in place (a table rebuilt without it would leave
        cached answers stale)."""
        expected = {f"account_changes_{table}" for table in ACCOUNT_TABLES}
        connection = postgres.connect(url)
        try:
            rows = connection.execute("select tgname from pg_trigger where tgname = any(%s) and not tgisinternal",
                                      [sorted(expected)]).fetchall()
        finally:
            connection.close()
        missing = expected - {row["tgname"] for row in rows}
        if missing:
            log.warning("portfolio.customer answers are not cached: trigger(s) %s missing", ", ".join(sorted(missing)))
        return not missing

    @property
    def backend_pid(self) -> int | None:
        """The listening connection's server process (for operators and tests), or None."""
        connection = self._connection
        return None if connection is None else connection.info.backend_pid

    def __call__(self) -> int | None:
        """The version now, or None while not listening."""
        return self._version if self._live else None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                connection = self._connection = postgres.connect(self.url)
                connection.execute(f"listen {ACCOUNT_CHANNEL}")
                if not self._hears_itself(connection):
                    # Behind a pooler in transaction mode LISTEN and NOTIFY may go through different
                    # server connections: nothing would ever tell the answers are stale.
                    log.warning("portfolio.customer cache off: notifications do not come back on this "
                                "connection (a pooler in transaction mode?); lookups read the database")
                    self._stop.wait(UNHEARD_RETRY_S)
                    continue
                self._version += 1  # changes made while nobody listened: whatever was kept is stale
                self._live = True
                self._listening.set()
                while not self._stop.is_set():
                    for _ in connection.notifies(timeout=POLL_S):
                        self._version += 1  # only this thread writes it: readers see the old or the new int
            except Exception as error:  # noqa: BLE001 — lookups read the database until it listens again
                if not self._stop.is_set():
                    log.warning("portfolio.customer cache: not listening (%s); lookups read the database",
                                type(error).__name__)
            finally:
                self._live = False
                self._version += 1
                connection, self._connection = self._connection, None
                if connection is not None:
                    try:
                        connection.close()
                    except Exception:  # noqa: BLE001 — already broken
                        pass
            self._stop.wait(RETRY_S)

    @staticmethod
    def _hears_itself(connection) -> bool:
        """Whether a notification this connection sends comes back to it."""
        connection.execute("select pg_notify(%s, %s)", [ACCOUNT_CHANNEL, "regua-hello"])
        return any(True for _ in connection.notifies(timeout=2.0, stop_after=1))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(POLL_S + 5)
