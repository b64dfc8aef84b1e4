"""`portfolio.customer(document)`: the customer's limit and payment behaviour, for any policy.

The credit policy's order gate reads the current limit here. A document that is not in the
portfolio answers `known: false` (never a failure), so a policy can fall back to its own limit.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Callable

from regua import postgres
from regua.dsl.monitoring import ACCOUNT
from regua.engine.connectors import MUST_NOT_BLOCK, WouldBlock

from .account_cache import AccountCache
from .features import customer_behaviour
from .monitor import normalize_document
from .store import MonitoringStore, days_since

_UNKNOWN = {spec.name: spec.default for spec in ACCOUNT.fields}


class AccountLookup:
    """A connector implementation (engine.connectors): one store connection per thread.

    Every query is an index search (customers by document, limits and receivables by customer,
    payments by receivable). Measured on a 100k-receivable SQLite portfolio: ~20 µs for an
    unknown document, ~140 µs for a customer with 15 receivables; its cost grows with the
    customer's number of receivables.

    The answers are kept in memory (account_cache.AccountCache: ~1 µs a repeated lookup), never
    served once their version has moved on: on SQLite a counter the file's triggers bump, read on
    every lookup; on PostgreSQL a version moved on by NOTIFY (account_notify). Inline
    (engine.connectors.Connectors.is_inline) on both: on SQLite a miss is a local read; on
    PostgreSQL a miss must wait on the network, so where waiting is not allowed (a server's event
    loop, engine.connectors.MUST_NOT_BLOCK) it raises WouldBlock and the server evaluates the
    decision again on a worker thread. Without a cache on PostgreSQL it is not inline.
    """

    inline = True

    def __init__(self, path: str, today: Callable[[], dt.date], cache: bool = True):
        MonitoringStore(path).close()  # the tables exist before the first lookup
        self.path = path
        self.today = today
        self._local = threading.local()
        self._network = postgres.is_url(path)
        self.cache = AccountCache.for_location(path) if cache else None
        self.inline = not self._network or self.cache is not None

    def _store(self) -> MonitoringStore:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = MonitoringStore(self.path, migrate=False)
        return store

    def __call__(self, document: str) -> dict:
        compact = normalize_document(str(document))
        if not compact:
            return dict(_UNKNOWN)
        today = self.today()
        cache = self.cache
        if cache is None:
            return self._read(compact, today)
        version = cache.version()
        answer = cache.get(compact, today, version)
        if answer is None:
            if self._network and MUST_NOT_BLOCK.get():
                raise WouldBlock
            answer = self._read(compact, today)
            cache.put(compact, today, version, answer)
        return dict(answer)  # a copy: the cached one stays as read

    def _read(self, compact: str, today: dt.date) -> dict:
        store = self._store()
        customer = store.customer_by_document(compact)
        if customer is None:
            return dict(_UNKNOWN)
        limit = store.limit(customer["id"])
        answer = dict(_UNKNOWN, known=True, segment=customer["segment"] or "default", limit=limit.amount,
                      has_limit=limit.exists, limit_blocked=limit.blocked,
                      days_since_limit_change=days_since(limit.changed_at, today))
        answer.update(customer_behaviour(store.db, customer["id"], today))
        return answer

    def attach(self, loop) -> None:
        """Called on the server's event loop when it starts: lookups made on it then cost no system call."""
        cache = self.cache
        if cache is not None:
            cache.attach(loop)

    def close(self) -> None:
        """Stop caching (on PostgreSQL: the listening thread and its connection)."""
        cache, self.cache = self.cache, None
        if cache is not None:
            cache.close()
