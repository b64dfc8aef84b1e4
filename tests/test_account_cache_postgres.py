"""`portfolio.customer` answers kept in memory on PostgreSQL (portfolio/monitoring/account_notify.py):
served again only until the NOTIFY of a change to a table they were read from arrives. A real
PostgreSQL, real second connections writing, a real server over a socket."""

from __future__ import annotations

import time

import psycopg
import pytest
import server_harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_harness import ThreadedServer, b2b_order, metric, sandbox_settings, scrape
from test_account_cache import CNPJ, TODAY, lookup_at, with_customer

from regua.engine.connectors import MUST_NOT_BLOCK, WouldBlock
from regua.portfolio.monitoring.account_notify import NotifiedVersion


def moved_on(version: NotifiedVersion, since: int | None, timeout: float = 10.0) -> int:
    """Wait until the version is known and past `since` (the notification of a change has come)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = version()
        if now is not None and (since is None or now > since):
            return now
        time.sleep(0.005)
    raise AssertionError("no notification arrived")


def write(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)


def test_a_repeated_lookup_is_served_from_memory_until_a_change_is_notified(postgres_url):
    with_customer(postgres_url)
    lookup, fresh = lookup_at(postgres_url), lookup_at(postgres_url, cache=False)
    try:
        assert lookup.inline and not fresh.inline  # answers from memory: worth evaluating on the event loop
        first = lookup(CNPJ)
        assert first["known"] is True and first["has_limit"] is False
        assert lookup(CNPJ) == first == fresh(CNPJ)
        assert (lookup.cache.hits, lookup.cache.misses) == (1, 1)
        before = lookup.cache.version()
        write(postgres_url, "insert into credit_limits (customer_id, amount, blocked) values ('C1', 10, 0)")
        moved_on(lookup.cache.version, before)
        assert lookup(CNPJ)["has_limit"] is True
        assert lookup(CNPJ) == fresh(CNPJ)
    finally:
        lookup.close()


_WRITES = st.sampled_from([
    "insert into credit_limits (customer_id, amount, blocked) values ('C1', {n}, {b}) "
    "on conflict (customer_id) do update set amount = excluded.amount, blocked = excluded.blocked",
    "delete from credit_limits",
    "insert into payments (id, receivable_id, amount, paid_on) values ('P{n}', 'R1', {n}, '2026-02-{d}') "
    "on conflict (id) do update set amount = excluded.amount",
    "delete from payments where id = 'P{n}'",
    "update receivables set status = case status when 'open' then 'paid' else 'open' end",
    "update customers set segment = 's{n}'",
])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(st.tuples(_WRITES, st.integers(1, 9), st.integers(10, 28), st.booleans()),
                                st.just(None)), max_size=8))
def test_once_its_notification_came_a_change_is_in_every_answer(postgres_url, steps):
    """Writes by another connection interleaved with lookups: once a write's notification has
    arrived, the cached answer equals the one read afresh, for every kind of write."""
    with_customer(postgres_url)
    cached, fresh = lookup_at(postgres_url), lookup_at(postgres_url, cache=False)
    try:
        for step in steps:
            if step is not None:
                sql, n, d, b = step
                before = cached.cache.version()
                write(postgres_url, sql.format(n=n, d=d, b=int(b)))
                moved_on(cached.cache.version, before)
            assert cached(CNPJ) == fresh(CNPJ)
    finally:
        cached.close()


def test_while_not_listening_every_lookup_reads_the_database(postgres_url):
    with_customer(postgres_url)
    lookup = lookup_at(postgres_url)
    version = lookup.cache.version
    try:
        assert lookup(CNPJ)["has_limit"] is False
        before = version()
        # The listening connection dies (a database restart, a network cut): nothing is served from memory.
        write(postgres_url, f"select pg_terminate_backend({version.backend_pid})")
        deadline = time.monotonic() + 10
        while version() is not None and time.monotonic() < deadline:
            time.sleep(0.0005)
        write(postgres_url, "insert into credit_limits (customer_id, amount, blocked) values ('C1', 10, 0)")
        if version() is None:  # not listening yet: the change is read from the database
            assert lookup(CNPJ)["has_limit"] is True
        # Listening again: the version moved on when it came back, past every answer kept before.
        again = moved_on(version, before)
        assert lookup(CNPJ)["has_limit"] is True
        write(postgres_url, "update credit_limits set blocked = 1")
        moved_on(version, again)
        assert lookup(CNPJ)["limit_blocked"] is True
    finally:
        lookup.close()


def test_on_the_event_loop_a_miss_would_block_and_a_hit_answers(postgres_url, tmp_path):
    with_customer(postgres_url)
    lookup = lookup_at(postgres_url)
    sqlite_path = str(tmp_path / "regua.db")
    with_customer(sqlite_path)
    local = lookup_at(sqlite_path)
    token = MUST_NOT_BLOCK.set(True)
    try:
        with pytest.raises(WouldBlock):
            lookup(CNPJ)  # not in memory: answering would wait on the network
        assert local(CNPJ)["known"] is True  # SQLite: a local read, never refused
    finally:
        MUST_NOT_BLOCK.reset(token)
    try:
        answer = lookup(CNPJ)  # a worker thread may wait
        token = MUST_NOT_BLOCK.set(True)
        try:
            assert lookup(CNPJ) == answer  # from memory, on the event loop too
        finally:
            MUST_NOT_BLOCK.reset(token)
    finally:
        lookup.close()
        local.cache.close()


def test_the_server_evaluates_on_its_event_loop_once_the_answer_is_in_memory(postgres_url, tmp_path):
    """POST /evaluate of credito_b2b on PostgreSQL: the first evaluation of a customer is begun on the
    event loop, abandoned at the lookup and made on a worker thread; the next is made on the event
    loop. Both decide as the engine does, with the same connector calls."""
    server_harness.STORE_URL = postgres_url
    try:
        settings_ = sandbox_settings(tmp_path)
    finally:
        server_harness.STORE_URL = None
    order = b2b_order()
    with ThreadedServer(settings_, today=lambda: TODAY) as server, server.client() as client:
        answers = [client.post("/evaluate/credito_b2b", json={"input": order}) for _ in range(3)]
        assert all(a.status_code == 200 for a in answers), answers[0].text
        first, *others = [a.json() for a in answers]
        assert first["outcome"] in {"approve", "review", "deny"}
        for other in others:
            assert (other["outcome"], other["reasons"], other["outputs"]) == \
                (first["outcome"], first["reasons"], first["outputs"])
            assert [c["connector"] for c in other["connector_calls"]] == \
                [c["connector"] for c in first["connector_calls"]]
        assert "portfolio.customer" in [c["connector"] for c in first["connector_calls"]]
        assert metric(scrape(client), "regua_evaluations_moved_to_thread_total") == 1
