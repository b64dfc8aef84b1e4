"""PostgreSQL through psycopg 3, the way every Régua store uses it (the `postgres` extra).

- `is_url(location)`: a store location is PostgreSQL when it is a `postgresql://` (or `postgres://`)
  URL; anything else is a SQLite file path (`regua.sqlite`).
- `pool(url)`: one connection pool per URL and process (psycopg_pool), autocommit connections whose
  rows are dicts, session time zone UTC. Transactions are explicit: `with conn.transaction():`.
- `migrate(url, migrations)`: pending migrations (regua.schema) applied under a session advisory
  lock, so replicas starting together migrate once; each migration and its record commit together.
- `plain(row)`: timestamptz and date values read back as the ISO 8601 text the SQLite stores hold,
  so a store's callers see the same rows from either backend.

psycopg is imported lazily: `make serve` (SQLite) never needs it.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from .schema import Migrations

SCHEMES = ("postgresql://", "postgres://")
MIGRATIONS_TABLE = "regua_migrations"
#: The advisory lock every migration run takes (any 64-bit number unlikely to clash with an application's).
MIGRATION_LOCK = 0x5265677561  # "Regua"

_pools: dict[tuple[int, str], ConnectionPool] = {}
_pools_lock = threading.Lock()


class PostgresUnavailable(RuntimeError):
    """A PostgreSQL store cannot be used: psycopg is not installed (pip install 'regua[postgres]'),
    or the server cannot be reached. The message never holds the password."""


def is_url(location: str | None) -> bool:
    return bool(location) and location.startswith(SCHEMES)


def redacted(url: str) -> str:
    """The URL without its password, for logs and banners."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        info = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 — a malformed URL is shown as its scheme only
        return url.split("://", 1)[0] + "://…"
    if "password" in info:
        info["password"] = "***"
    return make_conninfo(**info)


def _psycopg():
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        raise PostgresUnavailable("a postgresql:// store needs psycopg: pip install 'regua[postgres]'") from None
    return psycopg, psycopg_pool


def plain(value):
    if isinstance(value, dt.datetime):
        # As written: the server's stores write microseconds, collection and monitoring whole seconds.
        return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds" if value.microsecond else "seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def plain_rows(cursor):
    """Row factory: a dict per row, instants and dates as ISO text (see the module docstring)."""
    names = [column.name for column in cursor.description] if cursor.description else []

    def make(values):
        return {name: plain(value) for name, value in zip(names, values)}

    return make


def _configure(connection) -> None:
    connection.execute("set time zone 'UTC'")


def connect(url: str, autocommit: bool = True):
    """A connection of its own (not from the pool): LISTEN, the decision writer, migrations."""
    psycopg, _ = _psycopg()
    try:
        connection = psycopg.connect(url, autocommit=autocommit, row_factory=plain_rows, connect_timeout=10)
    except psycopg.OperationalError as error:
        raise PostgresUnavailable(f"cannot connect to {redacted(url)}: {str(error).strip().splitlines()[-1]}") from None
    _configure(connection)
    return connection


def pool(url: str, max_size: int = 8) -> ConnectionPool:
    """This process's pool for `url` (made on first use; a forked worker makes its own)."""
    key = (os.getpid(), url)
    found = _pools.get(key)
    if found is not None:
        return found
    _, psycopg_pool = _psycopg()
    with _pools_lock:
        found = _pools.get(key)
        if found is None:
            found = _pools[key] = psycopg_pool.ConnectionPool(
                url, min_size=1, max_size=max_size, open=True, configure=_configure, name="regua",
                kwargs={"autocommit": True, "row_factory": plain_rows})
            found.wait(30)
    return found


def close_pools(url: str | None = None) -> None:
    """Close this process's pools (for `url`, or all): tests, shutdown."""
    with _pools_lock:
        for key in [k for k in _pools if k[0] == os.getpid() and url in (None, k[1])]:
            _pools.pop(key).close()


def applied(connection, migrations: Migrations) -> list[str]:
    exists = connection.execute("select to_regclass(%s) is not null as present", [MIGRATIONS_TABLE]).fetchone()
    if not exists["present"]:
        return []
    rows = connection.execute(f"select name from {MIGRATIONS_TABLE} where migration_set = %s order by applied_at, name",
                              [migrations.name]).fetchall()
    return [row["name"] for row in rows]


def migrate(url: str, migrations: Migrations) -> list[str]:
    """Apply the pending PostgreSQL migrations of `migrations` under an advisory lock: a replica
    that starts while another migrates waits, then finds nothing left to do. Returns the names applied."""
    with connect(url) as connection:
        connection.execute("select pg_advisory_lock(%s)", [MIGRATION_LOCK])
        try:
            connection.execute(f"create table if not exists {MIGRATIONS_TABLE} (migration_set text not null, "
                               "name text not null, applied_at timestamptz not null default clock_timestamp(), "
                               "primary key (migration_set, name))")
            done = set(applied(connection, migrations))
            pending = [(name, sql) for name, sql in migrations.postgres_steps if name not in done]
            for name, sql in pending:
                with connection.transaction():
                    connection.execute(sql)
                    connection.execute(f"insert into {MIGRATIONS_TABLE} (migration_set, name) values (%s, %s)",
                                       [migrations.name, name])
        finally:
            connection.execute("select pg_advisory_unlock(%s)", [MIGRATION_LOCK])
    return [name for name, _ in pending]
