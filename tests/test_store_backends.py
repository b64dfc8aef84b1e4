"""The two server store backends are interchangeable: for any set of decisions and any query, the
SQLite store and the PostgreSQL store answer the same rows in the same order (hypothesis)."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regua.server.ids import id_floor
from regua.server.store import DECISION_COLUMNS, Store, open_store
from regua.server.store_postgres import PostgresStore

BASE = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def test_both_backends_offer_the_same_methods_with_the_same_signatures():
    def public(cls):
        return {name: [(p.name, p.default) for p in inspect.signature(member).parameters.values()]
                for name, member in inspect.getmembers(cls) if not name.startswith("_") and callable(member)}

    sqlite_only = {"connect", "journal_mode"}  # SQLite's file and its per-thread connections
    shared = public(PostgresStore)
    assert {name: sig for name, sig in public(Store).items() if name not in sqlite_only} == shared


def decision(second: int, suffix: int, policy: str, document: int | None, request: int | None) -> tuple:
    moment = BASE + dt.timedelta(seconds=second)
    decision_id = id_floor(moment)[:10] + "".join(_CROCKFORD[(suffix >> (5 * i)) % 32] for i in range(16))
    values = {"id": decision_id, "policy": policy, "version": "1", "revision": 1, "outcome": "approve",
              "body": json.dumps({"n": second}), "input": "{}", "input_hash": None,
              "document_hash": f"doc-{document}" if document is not None else None, "document_masked": None,
              "request_id": f"req-{request}" if request is not None else None, "api_key": "k", "duration_ms": 0.25,
              "connector_answers": None}
    return tuple(values[c] for c in DECISION_COLUMNS)


decisions = st.lists(st.builds(decision, st.integers(0, 5 * 86400), st.integers(0, 2**40),
                               st.sampled_from(["a", "b"]), st.none() | st.integers(0, 3),
                               st.none() | st.integers(0, 5)), max_size=40)
queries = st.fixed_dictionaries({
    "policy": st.none() | st.sampled_from(["a", "b", "c"]),
    "document_hash": st.none() | st.sampled_from(["doc-0", "doc-1", "doc-9"]),
    "start_id": st.none() | st.integers(0, 5).map(lambda d: id_floor(BASE + dt.timedelta(days=d))),
    "end_id": st.none() | st.integers(0, 6).map(lambda d: id_floor(BASE + dt.timedelta(days=d))),
    "limit": st.integers(1, 50),
})


@pytest.fixture(scope="module")
def stores(postgres_server):
    url = postgres_server.new_database()
    with tempfile.TemporaryDirectory() as folder:
        yield Store(str(Path(folder) / "regua.db")), open_store(url)
    postgres_server.drop(url)


@settings(max_examples=40)
@given(rows=decisions, query=queries, by_request=st.integers(0, 5))
def test_any_query_answers_the_same_on_both_backends(stores, rows, query, by_request):
    for store in stores:
        _clear(store)
        store.insert_decisions(rows)
    sqlite, postgres = stores
    assert sqlite.count_decisions() == postgres.count_decisions()
    assert sqlite.find_decisions(**query) == postgres.find_decisions(**query)
    for policy in ("a", "b"):
        assert sqlite.decision_by_request(policy, f"req-{by_request}", "k") == \
            postgres.decision_by_request(policy, f"req-{by_request}", "k")
    if rows:
        assert sqlite.decision(rows[0][0]) == postgres.decision(rows[0][0])


def _clear(store) -> None:
    if isinstance(store, Store):
        store.db.execute("delete from decisions")
    else:
        with store.pool.connection() as conn:
            conn.execute("delete from decisions")
