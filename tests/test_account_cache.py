"""`portfolio.customer` answers kept in memory (portfolio/monitoring/account_cache.py): served
again only while no process has changed a table they were read from. Real SQLite files, real
second processes writing them."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regua.portfolio import Portfolio
from regua.portfolio.model import Customer, Receivable
from regua.portfolio.monitoring.account import AccountLookup
from regua.portfolio.monitoring.account_cache import SqliteVersion
from regua.portfolio.monitoring.store import ACCOUNT_TABLES, MonitoringStore

TODAY = dt.date(2026, 6, 15)
CNPJ = "11222333000181"


def lookup_at(path: str, today=lambda: TODAY, cache: bool = True) -> AccountLookup:
    return AccountLookup(path, today, cache=cache)


def with_customer(path: str) -> None:
    MonitoringStore(path).close()
    portfolio = Portfolio(path)
    portfolio.save([Customer(id="C1", document=CNPJ, name="Acme", uf="SP", segment="atacado")])
    portfolio.save([Receivable(id="R1", customer_id="C1", amount=Decimal("1000.00"), issue_date=dt.date(2026, 1, 1),
                               due_date=dt.date(2026, 2, 1), status="open")])
    portfolio.close()


def in_another_process(path: str, code: str) -> None:
    """Run `code` (with `db`, a sqlite3 connection to the file, and `path`) in a new Python process."""
    script = "import sqlite3, sys\npath = sys.argv[1]\ndb = sqlite3.connect(path, isolation_level=None)\n" + \
        textwrap.dedent(code) + "\ndb.close()\n"
    subprocess.run([sys.executable, "-c", script, path], check=True, timeout=60)


def test_a_repeated_lookup_is_served_from_memory(tmp_path):
    path = str(tmp_path / "regua.db")
    with_customer(path)
    lookup = lookup_at(path)
    first = lookup(CNPJ)
    assert first["known"] is True and first["open_receivables"] == 1
    assert lookup(CNPJ) == first == lookup_at(path, cache=False)(CNPJ)
    assert (lookup.cache.hits, lookup.cache.misses) == (1, 1)
    first["segment"] = "changed by the caller"  # answers are copies: the cached one stays as read
    assert lookup(CNPJ)["segment"] == "atacado"


def test_a_change_by_another_process_is_seen_at_once(tmp_path):
    path = str(tmp_path / "regua.db")
    with_customer(path)
    lookup = lookup_at(path)
    assert lookup(CNPJ)["has_limit"] is False
    assert lookup("45.723.174/0001-10")["known"] is False  # unknown documents are kept too

    in_another_process(path, """
        db.execute("insert into credit_limits (customer_id, amount, blocked, changed_at, change_id)"
                   " values ('C1', '50000.00', 0, '2026-06-01T12:00:00+00:00', 1)")
    """)
    answer = lookup(CNPJ)
    assert (answer["has_limit"], answer["limit"]) == (True, Decimal("50000.00"))

    in_another_process(path, "db.execute(\"insert into payments (id, receivable_id, amount, paid_on) "
                             "values ('P1', 'R1', '1000.00', '2026-02-11')\")")
    assert lookup(CNPJ)["open_balance"] == Decimal("0.00")

    in_another_process(path, """
        from regua.portfolio import Portfolio
        from regua.portfolio.model import Customer
        Portfolio(path).save([Customer(id="C2", document="45723174000110", name="Beta", uf="RJ")])
    """)
    assert lookup("45.723.174/0001-10")["known"] is True

    in_another_process(path, "db.execute(\"update customers set segment = 'varejo' where id = 'C1'\")")
    assert lookup(CNPJ)["segment"] == "varejo"
    in_another_process(path, "db.execute(\"delete from payments\")")
    assert lookup(CNPJ)["open_balance"] == Decimal("1000.00")
    assert lookup(CNPJ) == lookup_at(path, cache=False)(CNPJ)


def test_commits_to_other_tables_keep_the_answers(tmp_path):
    """The decision log commits every few milliseconds to the same file: the answers stay."""
    path = str(tmp_path / "regua.db")
    with_customer(path)
    lookup = lookup_at(path)
    lookup(CNPJ)
    in_another_process(path, "db.execute('create table elsewhere (x)'); db.execute('insert into elsewhere values (1)')")
    lookup(CNPJ)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("insert into elsewhere values (2)")
    lookup(CNPJ)
    assert (lookup.cache.hits, lookup.cache.misses) == (2, 1)


def test_a_new_day_is_a_new_answer(tmp_path):
    path = str(tmp_path / "regua.db")
    with_customer(path)
    day = [TODAY]
    lookup = lookup_at(path, today=lambda: day[0])
    assert lookup(CNPJ)["days_late_now"] == (TODAY - dt.date(2026, 2, 1)).days
    day[0] = TODAY + dt.timedelta(days=1)
    assert lookup(CNPJ)["days_late_now"] == (TODAY - dt.date(2026, 2, 1)).days + 1


def test_every_table_the_lookup_reads_bumps_the_counter(tmp_path):
    """If the lookup ever reads another table, this fails until that table has the triggers."""
    path = str(tmp_path / "regua.db")
    with_customer(path)
    lookup = lookup_at(path, cache=False)
    read: set[str] = set()

    def authorizer(action, table, *_):
        if action == sqlite3.SQLITE_READ and table:
            read.add(table)
        return sqlite3.SQLITE_OK

    lookup._store().db.conn.set_authorizer(authorizer)
    in_another_process(path, """
        db.execute("insert into credit_limits (customer_id, amount, blocked) values ('C1', '10.00', 0)")
        db.execute("insert into payments (id, receivable_id, amount, paid_on) values ('P1', 'R1', '1.00', '2026-02-11')")
    """)
    lookup(CNPJ)
    assert read and read <= set(ACCOUNT_TABLES)
    db = sqlite3.connect(path, isolation_level=None)
    for table in ACCOUNT_TABLES:
        before = db.execute("select counter from account_changes").fetchone()[0]
        db.execute(f"update {table} set rowid = rowid")
        assert db.execute("select counter from account_changes").fetchone()[0] > before, table


def test_without_its_triggers_the_file_is_read_every_time(tmp_path, caplog):
    """A migration that rebuilt a table without the triggers (sqlite-utils transform) turns the cache off."""
    path = str(tmp_path / "regua.db")
    with_customer(path)
    sqlite3.connect(path, isolation_level=None).execute("drop trigger account_changes_credit_limits_update")
    lookup = lookup_at(path)
    assert lookup.cache is None
    assert "account_changes_credit_limits_update" in caplog.text
    assert lookup(CNPJ)["known"] is True


def test_the_cache_leaves_sqlite_s_locks_in_place(tmp_path):
    """While this process has the file open, another process must not be able to take the -shm's
    "dead man switch" byte exclusively: if it could, its first connection would rebuild the -shm
    under this process's feet (SIGBUS on the next write). Closing any descriptor of the -shm in this
    process (as a memory-mapped watch of the WAL index once did) releases SQLite's locks on it."""
    path = str(tmp_path / "regua.db")
    with_customer(path)
    lookup = lookup_at(path)
    for _ in range(3):
        assert lookup(CNPJ)["known"] is True
    probe = textwrap.dedent("""
        import fcntl, os, struct, sys
        fd = os.open(sys.argv[1] + "-shm", os.O_RDWR)
        # SQLite's unix VFS: the DMS lock is the byte at 120 + 8 (UNIX_SHM_DMS) of the -shm file.
        lock = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 128, 1, 0)
        try:
            fcntl.fcntl(fd, fcntl.F_SETLK, lock)
        except OSError:
            sys.exit(0)  # held by the other process, as it must be
        sys.exit(1)
    """)
    result = subprocess.run([sys.executable, "-c", probe, path], timeout=60)
    assert result.returncode == 0, "the -shm was left unlocked while this process uses the file"
    lookup.cache.close()


_WRITES = st.sampled_from([
    "insert or replace into credit_limits (customer_id, amount, blocked) values ('C1', '{n}.00', {b})",
    "delete from credit_limits",
    "insert or replace into payments (id, receivable_id, amount, paid_on) values ('P{n}', 'R1', '{n}.00', '2026-02-{d}')",
    "delete from payments where id = 'P{n}'",
    "update receivables set status = case status when 'open' then 'paid' else 'open' end",
    "update customers set segment = 's{n}'",
    "insert into unrelated values ({n})",
])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.tuples(_WRITES, st.integers(1, 9), st.integers(10, 28), st.booleans()),
                          st.just(None)), max_size=12))
def test_cached_answers_are_always_the_file_s_answers(steps):
    """Writes by another connection interleaved with lookups: cached equals read afresh, every time."""
    path = str(Path(tempfile.mkdtemp(prefix="regua-account-")) / "regua.db")
    with_customer(path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("create table unrelated (x)")
    cached, fresh = lookup_at(path), lookup_at(path, cache=False)
    for step in steps:
        if step is not None:
            sql, n, d, b = step
            writer.execute(sql.format(n=n, d=d, b=int(b)))
        assert cached(CNPJ) == fresh(CNPJ)
    cached.cache.close()


def test_the_counter_is_read_only_after_a_write(tmp_path):
    """The version query runs after a file of the database was written, not at every lookup; a file
    beside the store (the outbox) written meanwhile costs no query. Answers stay exact (above)."""
    path = str(tmp_path / "regua.db")
    with_customer(path)
    lookup = lookup_at(path)
    version = lookup.cache.version
    lookup(CNPJ)
    before = version.queries
    for _ in range(5):
        lookup(CNPJ)
    sqlite3.connect(path + ".notifications.db", isolation_level=None).execute("create table o (x)")
    lookup(CNPJ)
    assert version.queries == before
    in_another_process(path, "db.execute('create table elsewhere (x)')")
    lookup(CNPJ)
    assert version.queries == before + 1
    assert (lookup.cache.hits, lookup.cache.misses) == (7, 1)  # a commit elsewhere keeps the answers
    lookup.cache.close()


def test_without_a_watch_the_counter_is_read_every_time(tmp_path):
    path = str(tmp_path / "regua.db")
    with_customer(path)
    version = SqliteVersion(path, watch=False)
    first = version()
    assert [version() for _ in range(3)] == [first] * 3 and version.queries == 4
    in_another_process(path, "db.execute(\"update customers set segment = 'x'\")")
    assert version() > first
    version.close()


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])  # `regua serve` runs uvicorn on uvloop
def test_on_the_event_loop_a_commit_made_before_a_request_is_seen(tmp_path, loop_kind):
    """With the loop reading the watch (attach, as the server does at start), its lookups ask the
    kernel nothing, and a commit completed before a request was sent over a socket is still seen:
    the loop reads the commit's event before it starts the request's task (regua/file_changes.py)."""
    path = str(tmp_path / "regua.db")
    with_customer(path)
    version = SqliteVersion(path)
    polls: list[int] = []

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        version.attach(loop)
        real = version._changes._poll

        class Counting:
            def poll(self, timeout):
                polls.append(threading.get_ident())
                return real.poll(timeout)

        version._changes._poll = Counting()

        class Ask(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport

            def data_received(self, data):
                async def answer():  # a request is a task of its own, as in uvicorn
                    self.transport.write(b"%d\n" % version())
                asyncio.ensure_future(answer())

        server = await loop.create_server(Ask, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def client() -> list[int]:
            seen = []
            with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
                answers = connection.makefile("rb")
                for n in range(8):
                    in_another_process(path, f"db.execute(\"update customers set segment = 's{n}'\")")
                    connection.sendall(b"?")
                    seen.append(int(answers.readline()))
            return seen

        try:
            return await loop.run_in_executor(None, client)
        finally:
            server.close()
            version.close()

    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
        try:
            seen = loop.run_until_complete(main())
        finally:
            loop.close()
    else:
        seen = asyncio.run(main())
    assert seen == sorted(set(seen)) and len(seen) == 8  # every request saw the commit before it
    assert polls == []
