"""Bureau answers cached in SQLite with a TTL per connector: a bureau query costs money.

Keys are sha256(connector, document): documents never appear in clear in the cache table.
Values are the report as JSON (money as text, dates ISO), which the engine validates like
any other answer.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from regua.plugins.lazy import lazy_module

sqlite_utils = lazy_module("sqlite_utils")


TABLE = "connector_cache"


class BureauCache:
    def __init__(self, path: str, clock=time.time):
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db = sqlite_utils.Database(connection)
        if path != ":memory:":
            self.db.enable_wal()
        self.clock = clock
        self._lock = threading.Lock()
        if TABLE not in self.db.table_names():
            self.db[TABLE].create({"key": str, "connector": str, "answer": str, "stored_at": float,
                                   "expires_at": float, "cost": str}, pk="key")

    @staticmethod
    def key(connector: str, document: str) -> str:
        return hashlib.sha256(f"{connector}\0{document}".encode()).hexdigest()

    def get(self, connector: str, document: str):
        """The cached answer (JSON-like) or None when absent or expired."""
        with self._lock:
            rows = list(self.db.query(f"select answer, expires_at from {TABLE} where key = ?",
                                      [self.key(connector, document)]))
        if not rows or rows[0]["expires_at"] <= self.clock():
            return None
        return json.loads(rows[0]["answer"])

    def put(self, connector: str, document: str, answer, ttl: float, cost: str) -> None:
        if ttl <= 0:
            return
        now = self.clock()
        with self._lock:
            self.db[TABLE].upsert({"key": self.key(connector, document), "connector": connector,
                                   "answer": json.dumps(answer, ensure_ascii=False), "stored_at": now,
                                   "expires_at": now + ttl, "cost": cost}, pk="key")

    def purge_expired(self) -> int:
        with self._lock:
            cursor = self.db.execute(f"delete from {TABLE} where expires_at <= ?", [self.clock()])
            return cursor.rowcount
