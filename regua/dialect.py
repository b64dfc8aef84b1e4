"""One connection for the portfolio, collection and monitoring stores, on SQLite or PostgreSQL.

Those stores were written against sqlite-utils (`db.execute`, `db.query`, `db.conn.executemany`,
`db["table"].upsert`, explicit transactions). `connect(location)` gives them that same surface on
either backend: a SQLite file path opens a sqlite-utils Database (regua.sqlite); a `postgresql://`
URL opens `PostgresDatabase`, a psycopg connection of its own (not pooled: the stores keep session
state, temp tables and advisory locks, on it) behind the same methods.

The SQL they send is written once, in the dialect both accept (`insert … on conflict … do`,
`?` or `:name` placeholders). `translate` turns it into psycopg's: `%s` / `%(name)s` placeholders,
`[name]` quoting, `insert or ignore` as `on conflict do nothing`, and the SQLite cents expression
(portfolio.collection.facts.CENTS, which goes through a float there) as exact numeric arithmetic.
A query that only one backend understands (julianday, group_concat, temp tables `without rowid`)
has a PostgreSQL twin next to it, chosen with `is_postgres(db)`.

Rows read back look like SQLite's: instants and dates as ISO 8601 text (regua.postgres.plain);
money stays exact (numeric on PostgreSQL, read as Decimal; text on SQLite).
"""

from __future__ import annotations

import decimal
import functools
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from . import postgres, sqlite

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_QUOTED = re.compile(r"\[(\w+)\]")
_OR_IGNORE = re.compile(r"^\s*insert\s+or\s+ignore\s+into", re.IGNORECASE)
# facts.CENTS (and its `r.amount` variant): exact on numeric, no float in between.
_INSTR = re.compile(r"\binstr\(", re.IGNORECASE)  # instr(text, part) is strpos(text, part)
_REAL = re.compile(r"\bas real\)", re.IGNORECASE)  # SQLite's real is 8 bytes: PostgreSQL's double precision
# `x in (select value from json_each(?))`, a list passed as one JSON text: the same on PostgreSQL
_JSON_EACH = re.compile(r"\bjson_each\(\?\)", re.IGNORECASE)
_CENTS = re.compile(r"cast\(round\(cast\((\w+\.)?amount as real\) \* 100\) as integer\)")


@functools.lru_cache(maxsize=2048)
def translate(sql: str, named: bool) -> str:
    """SQL written for both backends, as psycopg wants it (see the module docstring)."""
    sql = _CENTS.sub(lambda m: f"round({m.group(1) or ''}amount * 100)::bigint", sql)
    sql = _JSON_EACH.sub("json_array_elements_text(?::json)", sql)
    sql = sql.replace("%", "%%")
    sql = _NAMED.sub(r"%(\1)s", sql) if named else sql.replace("?", "%s")
    sql = _QUOTED.sub(r'"\1"', sql)
    sql = _INSTR.sub("strpos(", sql)
    sql = _REAL.sub("as double precision)", sql)
    if _OR_IGNORE.match(sql):
        sql = _OR_IGNORE.sub("insert into", sql).rstrip().rstrip(";") + " on conflict do nothing"
    return sql


def _args(sql: str, params):
    if isinstance(params, dict):
        return translate(sql, True), params
    return translate(sql, False), list(params or ())


def plain_tuples(cursor):
    """Row factory: a tuple per row, instants and dates as ISO text (regua.postgres.plain)."""
    plain = postgres.plain

    def make(values):
        return tuple(plain(value) for value in values)

    return make


def record_rows(cursor):
    """Row factory of `query`: a dict per row as the SQLite stores return records, amounts as their
    exact text ('20000.00'); `execute`'s tuples keep numeric results as Decimal for arithmetic."""
    names = [column.name for column in cursor.description] if cursor.description else []
    plain = postgres.plain

    def make(values):
        return {name: str(value) if isinstance(value, decimal.Decimal) else plain(value)
                for name, value in zip(names, values)}

    return make


class PostgresConnection:
    """The `db.conn` of a PostgresDatabase: what the stores call on a sqlite3 connection."""

    def __init__(self, raw):
        self.raw = raw

    def execute(self, sql: str, params=()):
        sql, args = _args(sql, params)
        cursor = self.raw.cursor(row_factory=plain_tuples)
        cursor.execute(sql, args)
        return cursor

    def executemany(self, sql: str, rows):
        rows = list(rows)
        cursor = self.raw.cursor(row_factory=plain_tuples)
        if rows:
            cursor.executemany(_args(sql, rows[0])[0], rows)
        return cursor

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


class PostgresTable:
    def __init__(self, db: PostgresDatabase, name: str):
        self.db, self.name = db, name

    def exists(self) -> bool:
        return self.db.execute("select to_regclass(?) is not null", [self.name]).fetchone()[0]

    @property
    def count(self) -> int:
        return self.db.execute(f'select count(*) from "{self.name}"').fetchone()[0]

    def insert(self, row: dict):
        columns = ", ".join(f'"{c}"' for c in row)
        self.db.conn.raw.execute(f'insert into "{self.name}" ({columns}) values ({", ".join("%s" for _ in row)})',
                                 list(row.values()))
        return self

    def upsert(self, row: dict, pk: str | tuple):
        keys = (pk,) if isinstance(pk, str) else tuple(pk)
        columns = ", ".join(f'"{c}"' for c in row)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in row if c not in keys)
        action = f"do update set {updates}" if updates else "do nothing"
        self.db.conn.raw.execute(
            f'insert into "{self.name}" ({columns}) values ({", ".join("%s" for _ in row)}) '
            f'on conflict ({", ".join(keys)}) {action}', list(row.values()))
        return self


class PostgresDatabase:
    """A psycopg connection of its own with the sqlite_utils.Database methods the stores use."""

    postgres = True

    def __init__(self, url: str):
        self.url = url
        self.conn = PostgresConnection(postgres.connect(url))

    def execute(self, sql: str, params=()):
        return self.conn.execute(sql, params)

    def query(self, sql: str, params=()) -> Iterator[dict]:
        sql, args = _args(sql, params)
        cursor = self.conn.raw.cursor(row_factory=record_rows)
        cursor.execute(sql, args)
        yield from cursor

    def table_names(self) -> list[str]:
        return [r[0] for r in self.execute("select tablename from pg_tables where schemaname = current_schema()")]

    def __getitem__(self, table: str) -> PostgresTable:
        return PostgresTable(self, table)


def unheld(column: str, namespace: int) -> str:
    """PostgreSQL condition: no live session holds the advisory lock (namespace, `column`) now.

    A process that claims rows holds such a lock on its id for as long as it lives (session locks
    go with the connection, so with a killed process too); a row whose claim is unheld was left
    by a process that died. Written into the claiming statement, not passed in as a list read
    before it: the lock table is read when the row is, so a claim committed by a process that
    started a moment ago is never mistaken for a dead one."""
    return (f"not exists (select 1 from pg_locks l where l.locktype = 'advisory' and l.classid = {int(namespace)} "
            f"and l.objsubid = 2 and l.objid = {column}::oid and l.granted)")


def is_postgres(db) -> bool:
    return getattr(db, "postgres", False)


def connect(location: str):
    """A connection to the store at `location`: PostgresDatabase for a postgresql:// URL, else a
    sqlite-utils Database on the file."""
    if postgres.is_url(location):
        return PostgresDatabase(location)
    return sqlite.connect(location)


_MIGRATED: set[tuple[int, str, str]] = set()  # (pid, URL, migration set) this process brought up to date


def migrate(location: str, migrations) -> list[str]:
    """Apply `migrations` (regua.schema.Migrations) on the backend of `location`, under its lock.
    On PostgreSQL once per process and database: every store of a server opening the same
    database (portfolio, collection, monitoring, their lookups) costs one round of connections."""
    if postgres.is_url(location):
        key = (os.getpid(), location, migrations.name)
        if key in _MIGRATED:
            return []
        applied = postgres.migrate(location, migrations)
        _MIGRATED.add(key)
        return applied
    Path(location).parent.mkdir(parents=True, exist_ok=True)
    return sqlite.migrate(location, migrations)


@contextmanager
def transaction(db):
    """One transaction: SQLite's BEGIN IMMEDIATE (regua.sqlite.transaction), or a PostgreSQL one
    (a savepoint when already inside one)."""
    if is_postgres(db):
        with db.conn.raw.transaction():
            yield db
    else:
        with sqlite.transaction(db):
            yield db


def _sqlite_value(value):
    """A PostgreSQL value as the SQLite stores hold it: money as text, flags as 0/1, days as ISO text."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    return postgres.plain(value)


def copy_to_sqlite(url: str, path: str, migration_sets: list) -> None:
    """Every table of `migration_sets` from the PostgreSQL store at `url` into a new SQLite file
    (a simulation's throwaway copy): the same tables, made by the same migrations."""
    for migrations in migration_sets:
        sqlite.migrate(path, migrations)
    target = sqlite.connect(path)
    source = postgres.connect(url)
    try:
        with sqlite.transaction(target):
            for table in [t for t in target.table_names() if not t.startswith("_")]:
                exists = source.execute("select to_regclass(%s) is not null as present", [table]).fetchone()
                if not exists["present"]:
                    continue
                columns = [c.name for c in target[table].columns]
                quoted = ", ".join(f'"{c}"' for c in columns)
                with source.cursor(row_factory=lambda cursor: tuple) as cursor:
                    cursor.execute(f'select {quoted} from "{table}"')
                    marks = ", ".join("?" for _ in columns)
                    while batch := cursor.fetchmany(5000):
                        target.conn.executemany(f"insert into [{table}] ({quoted}) values ({marks})",
                                                [[_sqlite_value(v) for v in row] for row in batch])
    finally:
        source.close()
        target.conn.close()
