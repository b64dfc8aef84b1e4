"""Bureau answers cached in the PostgreSQL store: what plugins.cache.BureauCache is on SQLite
(same keys, sha256 of connector and document; same values, the report as JSON), so replicas
share what one of them paid a bureau for. The table comes from the server's migrations
(m003_connector_cache); instants are timestamptz, the clock is the cache's (epoch seconds)."""

from __future__ import annotations

import json
import time

from regua import postgres
from regua.plugins.cache import BureauCache


class PostgresBureauCache:
    key = staticmethod(BureauCache.key)

    def __init__(self, url: str, clock=time.time):
        self.pool = postgres.pool(url)
        self.clock = clock

    def get(self, connector: str, document: str):
        with self.pool.connection() as conn:
            row = conn.execute("select answer from connector_cache where key = %s and expires_at > to_timestamp(%s)",
                               [self.key(connector, document), self.clock()]).fetchone()
        return json.loads(row["answer"]) if row else None

    def put(self, connector: str, document: str, answer, ttl: float, cost: str) -> None:
        if ttl <= 0:
            return
        now = self.clock()
        with self.pool.connection() as conn:
            conn.execute("insert into connector_cache (key, connector, answer, stored_at, expires_at, cost) "
                         "values (%s, %s, %s, to_timestamp(%s), to_timestamp(%s), %s) on conflict (key) do update set "
                         "connector = excluded.connector, answer = excluded.answer, stored_at = excluded.stored_at, "
                         "expires_at = excluded.expires_at, cost = excluded.cost",
                         [self.key(connector, document), connector, json.dumps(answer, ensure_ascii=False), now,
                          now + ttl, cost])

    def purge_expired(self) -> int:
        with self.pool.connection() as conn:
            return conn.execute("delete from connector_cache where expires_at <= to_timestamp(%s)",
                                [self.clock()]).rowcount
