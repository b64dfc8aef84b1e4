"""The server store on both backends, a real SQLite file and a real PostgreSQL database: migrations,
the batched decision log, durability across graceful and hard stops of a real `regua serve`
process, idempotency across restarts. (Replicas sharing PostgreSQL: tests/test_server_replicas.py.)"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import msgspec
import pytest
import sqlite_utils
from server_harness import ROOT, SANDBOX_HEADERS, ProcessServer, ThreadedServer, free_port, sandbox_settings

from regua import postgres
from regua.server.decision_log import DecisionLog
from regua.server.ids import new_decision_id
from regua.server.migrations import MIGRATIONS
from regua.server.store import DECISION_COLUMNS, Store, StoreError, open_store

ORDER = json.loads((ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8"))
ALL_MIGRATIONS = [m.name for m in MIGRATIONS.pending(sqlite_utils.Database(memory=True))]
TABLES = {"policy_versions", "policy_active", "policy_activations", "policy_files", "decisions", "connector_cache"}


def recorded_migrations(path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "select migration_set, name, applied_at from _sqlite_migrations order by rowid").fetchall()


def count_decisions(location) -> int:
    return len(stored_ids(location))


def stored_ids(location) -> dict[str, str | None]:
    """decision id -> request_id of every decision in the store at `location` (either backend)."""
    return {row["id"]: row["request_id"] for row in open_store(str(location)).query("select id, request_id from decisions")}


def run_sql(location, *statements: str) -> None:
    """Raw SQL on the store's database, behind the store's back (e.g. a trigger that refuses writes)."""
    if postgres.is_url(str(location)):
        with postgres.connect(str(location)) as conn:
            for statement in statements:
                conn.execute(statement)
    else:
        with sqlite3.connect(location) as connection:
            for statement in statements:
                connection.execute(statement)


# ---- migrations ----
def test_a_new_file_gets_every_migration_in_wal_mode(tmp_path):
    path = tmp_path / "deep" / "folder" / "regua.db"
    store = Store(str(path))
    assert ALL_MIGRATIONS[:3] == ["m001_policies", "m002_decisions", "m003_connector_cache"]
    assert [(s, n) for s, n, _ in recorded_migrations(path)] == [("regua.server", n) for n in ALL_MIGRATIONS]
    assert store.applied_migrations() == ALL_MIGRATIONS
    assert store.journal_mode() == "wal"
    with sqlite3.connect(path) as connection:  # WAL is a property of the file, not of one connection
        assert connection.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert TABLES <= set(sqlite_utils.Database(path).table_names())


def test_reopening_applies_nothing(tmp_path):
    path = str(tmp_path / "regua.db")
    Store(path)
    before = recorded_migrations(path)
    again = Store(path)
    assert again.migrate() == []
    assert recorded_migrations(path) == before


def test_an_older_file_gets_only_the_missing_migrations_and_keeps_its_data(tmp_path):
    path = str(tmp_path / "regua.db")
    old = sqlite_utils.Database(path)
    MIGRATIONS.apply(old, stop_before="m002_decisions")
    old["policy_versions"].insert({"name": "p", "revision": 1, "version": "1", "source": "s", "source_hash": "h"})
    old.conn.close()
    first = recorded_migrations(path)
    assert [n for _, n, _ in first] == ["m001_policies"]

    store = Store(path)
    assert recorded_migrations(path)[0] == first[0]
    assert store.applied_migrations() == ALL_MIGRATIONS
    assert [r["name"] for r in store.policy_versions("p")] == ["p"]


def test_threads_creating_the_same_new_store_together_all_succeed(tmp_path):
    path = str(tmp_path / "regua.db")
    barrier, errors = threading.Barrier(8), []

    def open_store():
        barrier.wait()
        try:
            Store(path).count_decisions()
        except Exception as error:  # noqa: BLE001 — asserted below
            errors.append(repr(error))

    threads = [threading.Thread(target=open_store) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert [n for _, n, _ in recorded_migrations(path)] == ALL_MIGRATIONS  # each exactly once


def test_processes_creating_the_same_new_store_together_all_succeed(tmp_path):
    path = str(tmp_path / "regua.db")
    start = time.time() + 1.5  # every process imports first, then they all open the store at once
    code = (f"import time; from server.store import Store, StoreError; time.sleep(max(0, {start} - time.time())); "
            f"print(Store({path!r}).count_decisions())")
    processes = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, [err for _, err in results]
    assert [out.strip() for out, _ in results] == ["0"] * 4
    assert [n for _, n, _ in recorded_migrations(path)] == ALL_MIGRATIONS


def test_both_backends_have_the_same_migrations_in_the_same_order():
    assert [name for name, _ in MIGRATIONS.postgres_steps] == MIGRATIONS.names() == ALL_MIGRATIONS
    assert all(sql.strip() for _, sql in MIGRATIONS.postgres_steps)


def recorded_postgres_migrations(url) -> list[str]:
    with postgres.connect(url) as conn:
        return [row["name"] for row in conn.execute(
            "select name from regua_migrations where migration_set = 'regua.server' order by applied_at")]


def test_a_new_postgres_database_gets_every_migration_once(postgres_url):
    store = open_store(postgres_url)
    assert store.applied_migrations() == ALL_MIGRATIONS == recorded_postgres_migrations(postgres_url)
    assert open_store(postgres_url).migrate() == []
    assert recorded_postgres_migrations(postgres_url) == ALL_MIGRATIONS
    tables = {row["table_name"] for row in store.query(
        "select table_name from information_schema.tables where table_schema = 'public'")}
    assert TABLES | {"purges", "regua_migrations"} <= tables


def test_postgres_keeps_exact_types(postgres_url):
    """Instants are timestamptz (read back as the ISO text SQLite holds), never naive or text."""
    store = open_store(postgres_url)
    types = {(row["table_name"], row["column_name"]): row["data_type"] for row in store.query(
        "select table_name, column_name, data_type from information_schema.columns where table_schema = 'public'")}
    for column in [("policy_versions", "created_at"), ("policy_active", "activated_at"), ("decisions", "purged_at"),
                   ("connector_cache", "expires_at"), ("policy_files", "synced_at"), ("experiments", "created_at"),
                   ("experiments", "updated_at"), ("experiment_audit", "at"), ("experiment_decisions", "created_at")]:
        assert types[column] == "timestamp with time zone", column
    assert types[("purges", "before")] == "date"
    row, _ = store.publish_version("p", "1", "source", "hash", "api", "tester", "first")
    assert row["created_at"].endswith("+00:00") and store.policy_version("p", 1)["created_at"] == row["created_at"]


def test_replicas_starting_together_on_one_postgres_migrate_once(postgres_url):
    start = time.time() + 1.5  # every process imports first, then they all open the store at once
    code = (f"import time; from regua.server.store import open_store; time.sleep(max(0, {start} - time.time())); "
            f"print(open_store({postgres_url!r}).count_decisions())")
    processes = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, [err for _, err in results]
    assert [out.strip() for out, _ in results] == ["0"] * 4
    assert recorded_postgres_migrations(postgres_url) == ALL_MIGRATIONS


@pytest.mark.parametrize("path", [":memory:", "file:regua?mode=memory"])
def test_the_store_needs_a_real_file(path):
    """Threads and worker processes open their own connections: an in-memory database would be
    a different, empty one for each of them, so it is refused up front."""
    with pytest.raises(StoreError, match="must be a file path"):
        Store(path)


# ---- the decision log ----
def decision_row(i: int, request_id: str | None = None) -> tuple:
    values = {"id": new_decision_id(), "policy": "credito_b2b", "version": "1", "revision": 1, "outcome": "approve",
              "body": "{}", "input": json.dumps({"n": i}), "input_hash": None, "document_hash": None,
              "document_masked": None, "request_id": request_id, "api_key": "test", "duration_ms": 0.1,
              "connector_answers": None}
    return tuple(values[c] for c in DECISION_COLUMNS)


class CountingStore(Store):
    """A real Store whose connections count the write transactions they begin."""

    def __init__(self, path: str):
        self.transactions = 0
        super().__init__(path)

    def connect(self):
        db = super().connect()
        db.conn.set_trace_callback(self._trace)
        return db

    def _trace(self, sql: str) -> None:
        if sql.lstrip().lower().startswith("begin immediate"):
            self.transactions += 1


@pytest.mark.parametrize("count", [1, 499, 500, 501, 1234])
def test_insert_decisions_writes_every_row_across_multi_row_statements(store_location, count):
    """Rows go in as multi-row INSERTs of at most 500 (SQLite) or one COPY (PostgreSQL): every row
    lands once, whatever the count."""
    store = open_store(store_location)
    rows = [decision_row(i) for i in range(count)]
    store.insert_decisions(rows)
    store.insert_decisions(rows[: count // 2])  # replays are ignored, not duplicated
    with store.writer() as db:  # the writer thread's own connection
        store.insert_decisions(rows[count // 2:], db)
    stored = [json.loads(r["input"])["n"] for r in store.query("select input from decisions")]
    assert sorted(stored) == list(range(count))


def test_batches_of_every_size_land_once_through_few_distinct_statements(tmp_path):
    """The SQLite store rounds a statement's row count up to a multiple of 16, repeating the last row
    (ignored: same id): each row is stored once, with its own values, and batch sizes from 1 to
    500 use at most 47 statements (the connection's statement cache keeps them all)."""
    from regua.server import store as store_module

    store = Store(str(tmp_path / "regua.db"))
    store_module._insert_sql.cache_clear()
    sizes = [1, 2, 15, 16, 17, 31, 32, 33, 100, 127, 129, 255, 257, 499, 500, 501, 777, *range(34, 100)]
    rows, n = [], 0
    for size in sizes:
        batch = [decision_row(n + i, request_id=f"r{n + i}" if i % 3 == 0 else None) for i in range(size)]
        n += size
        store.insert_decisions(batch)
        rows += batch
    stored = store.query("select * from decisions order by id")
    assert len(stored) == len(rows)
    assert [tuple(row[c] for c in DECISION_COLUMNS) for row in stored] == sorted(rows)
    assert store_module._insert_sql.cache_info().currsize <= 16 + 31


def test_an_idempotency_key_is_stored_once_per_policy_and_api_key(store_location):
    store = open_store(store_location)
    first = decision_row(1, request_id="pedido-1")
    assert store.insert_decision_once(first) is None
    again = store.insert_decision_once(decision_row(2, request_id="pedido-1"))
    assert again is not None and again["id"] == first[0] and json.loads(again["input"]) == {"n": 1}
    store.insert_decisions([decision_row(3, request_id="pedido-1")])  # the batched path yields too
    assert store.count_decisions() == 1
    assert store.decision_by_request("credito_b2b", "pedido-1", "test")["id"] == first[0]
    assert store.decision_by_request("credito_b2b", "pedido-1", "other-key") is None
    assert store.decision_by_request("credito_b2c", "pedido-1", "test") is None
    assert store.decision(first[0])["request_id"] == "pedido-1"


def test_many_submits_are_written_in_few_transactions(tmp_path):
    store = CountingStore(str(tmp_path / "regua.db"))
    store.transactions = 0
    log = DecisionLog(store, flush_interval_ms=50, flush_max=512)
    try:
        for i in range(3000):
            log.submit(decision_row(i))
        assert log.wait_flushed(10)
        assert store.count_decisions() == 3000 and log.written == 3000 and log.backlog == 0
        assert 1 <= store.transactions <= 20, store.transactions
    finally:
        log.close()


def test_the_log_writes_when_flush_max_rows_wait_not_before(store_location):
    store = open_store(store_location)
    log = DecisionLog(store, flush_interval_ms=60_000, flush_max=100)
    try:
        for i in range(99):
            log.submit(decision_row(i))
        time.sleep(0.3)
        assert store.count_decisions() == 0 and log.backlog == 99  # waiting for the interval
        log.submit(decision_row(99))
        deadline = time.monotonic() + 5
        while store.count_decisions() < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.count_decisions() == 100
    finally:
        log.close()


def test_close_flushes_everything_and_stops_the_writer(store_location):
    path = store_location
    log = DecisionLog(open_store(path), flush_interval_ms=60_000, flush_max=100_000)
    for i in range(1000):
        log.submit(decision_row(i))
    log.close()
    assert count_decisions(path) == 1000
    assert not log._thread.is_alive()


REFUSE = {"sqlite": ["create trigger refuse before insert on decisions begin select raise(abort, 'refused'); end"],
          "postgresql": ["create function refuse() returns trigger language plpgsql as "
                         "$$ begin raise exception 'refused by the test'; end $$",
                         "create trigger refuse before insert on decisions for each row execute function refuse()"]}
ACCEPT = {"sqlite": ["drop trigger refuse"], "postgresql": ["drop trigger refuse on decisions"]}


def test_rows_that_fail_to_insert_are_kept_and_retried(store_location):
    path = store_location
    store = open_store(path)
    backend = "postgresql" if postgres.is_url(path) else "sqlite"
    run_sql(path, *REFUSE[backend])
    log = DecisionLog(store, flush_interval_ms=20, flush_max=512)
    try:
        for i in range(10):
            log.submit(decision_row(i))
        deadline = time.monotonic() + 5
        while log.failures < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.failures >= 2 and log.backlog == 10 and count_decisions(path) == 0
        run_sql(path, *ACCEPT[backend])
        assert log.wait_flushed(5)
        assert count_decisions(path) == 10
    finally:
        log.close()


# ---- durability of a running server ----
def evaluate_many(url: str, count: int, request_ids: bool = False, threads: int = 4) -> list[str]:
    """`count` evaluations from `threads` concurrent connections; the decision ids answered."""
    def run(indexes):
        ids = []
        with httpx.Client(base_url=url, headers=SANDBOX_HEADERS, timeout=30) as client:
            for i in indexes:
                body = {"input": ORDER, **({"request_id": f"req-{i}"} if request_ids else {})}
                response = client.post("/evaluate/credito_b2b", json=body)
                assert response.status_code == 200, response.text
                ids.append(response.json()["decision_id"])
        return ids

    with ThreadPoolExecutor(threads) as pool:
        chunks = pool.map(run, [range(k, count, threads) for k in range(threads)])
    return [i for chunk in chunks for i in chunk]


HOLD_BACK = {"REGUA_STORE__FLUSH_INTERVAL_MS": "60000", "REGUA_STORE__FLUSH_MAX": "100000"}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_right_after_the_answers_loses_no_decision(tmp_path, workers, backend):
    # The log holds decisions back for a minute: only the graceful shutdown can have written them.
    with ProcessServer(tmp_path, "--workers", workers, env=HOLD_BACK) as server:
        ids = evaluate_many(server.url, 200)
        assert count_decisions(server.db) == 0
        assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert set(stored_ids(server.db)) == set(ids) and len(ids) == 200


def test_sync_durability_survives_sigkill(tmp_path, backend):
    with ProcessServer(tmp_path, env={**HOLD_BACK, "REGUA_STORE__DURABILITY": "sync"}) as server:
        ids = evaluate_many(server.url, 100)
        server.stop(signal.SIGKILL)
    assert server.process.returncode == -signal.SIGKILL
    assert set(stored_ids(server.db)) == set(ids) and len(ids) == 100


def test_what_batched_mode_can_lose_on_sigkill(tmp_path, backend):
    """Batched mode (the default) answers before the decision is written; the writer commits what
    waits every flush_interval_ms. A SIGKILL (or OOM kill, power loss) therefore loses the
    decisions answered since the last flush and nothing older; SIGTERM/SIGINT flush (above).
    Requests carrying a request_id are written before they are answered: never lost.
    Here the interval is a minute, so every decision without a request_id is in the lost window."""
    with ProcessServer(tmp_path, env=HOLD_BACK) as server:
        plain = evaluate_many(server.url, 50)
        durable = evaluate_many(server.url, 50, request_ids=True)
        server.stop(signal.SIGKILL)
    stored = stored_ids(server.db)
    assert set(stored) == set(durable) and not set(stored) & set(plain)
    assert sorted(stored.values()) == sorted(f"req-{i}" for i in range(50))


def test_batched_mode_loses_at_most_the_last_flush_window_on_sigkill(tmp_path, backend):
    """With flush_interval_ms=50, what a SIGKILL loses is the newest decisions only: the stored ones
    are a prefix of the answered ones (each flush writes everything waiting), and every decision
    answered more than the interval (plus generous scheduling slack) before the kill is on disk."""
    slack = 1.0
    with ProcessServer(tmp_path, env={"REGUA_STORE__FLUSH_INTERVAL_MS": "50"}) as server:
        answered = []  # (monotonic time, decision id), in answer order: one connection, one at a time
        with server.client() as client:
            started = time.monotonic()
            while time.monotonic() - started < 2.0:
                response = client.post("/evaluate/credito_b2b", json={"input": ORDER})
                answered.append((time.monotonic(), response.json()["decision_id"]))
        killed = time.monotonic()
        server.stop(signal.SIGKILL)
    stored = set(stored_ids(server.db))
    ids = [decision_id for _, decision_id in answered]
    assert set(ids[:len(stored)]) == stored  # a prefix: nothing older than a lost decision is lost
    recent = sum(1 for t, _ in answered if t > killed - 0.05 - slack)
    assert len(ids) - len(stored) <= recent < len(ids), (len(ids) - len(stored), recent, len(ids))


def test_idempotent_replays_survive_a_restart(tmp_path, backend):
    settings = sandbox_settings(tmp_path)
    body = {"input": ORDER, "request_id": "pedido-42"}
    with ThreadedServer(settings) as server, server.client() as client:
        first = client.post("/evaluate/credito_b2b", json=body)
        assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    settings = msgspec.structs.replace(settings, server=msgspec.structs.replace(settings.server, port=free_port()))
    with ThreadedServer(settings) as server, server.client() as client:
        again = client.post("/evaluate/credito_b2b", json=body)
        assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["decision_id"] == first.json()["decision_id"]
        assert again.json() == first.json()
        other = client.post("/evaluate/credito_b2b", json={**body, "input": {**ORDER, "valor_pedido": "1.00"}})
        assert other.status_code == 409 and other.json()["code"] == "IDEMPOTENCY_CONFLICT"
        assert server.services.store.count_decisions() == 1


def test_json_columns_handed_over_as_bytes_are_stored_as_text(store_location):
    """The server hands the decision log its JSON columns as the bytes it encoded (store_common.text_row):
    every way a row is written stores them as text, never as a blob, on both stores."""
    store = open_store(store_location)

    def as_bytes(row: tuple) -> tuple:
        return tuple(v.encode() if c in ("body", "input", "connector_answers") and v is not None else v
                     for c, v in zip(DECISION_COLUMNS, row))

    answers = '[{"connector":"bureau.serasa","args":["**81"],"status":"ok","answer":{"nome":"Açaí"}}]'
    rows = [decision_row(i) for i in range(3)]
    rows[0] = rows[0][:-1] + (answers,)
    once = decision_row(3, request_id="r-1")
    store.insert_decisions([as_bytes(row) for row in rows])
    assert store.insert_decision_once(as_bytes(once)) is None
    for row in [*rows, once]:
        stored = store.decision(row[0])
        for column in ("body", "input", "connector_answers"):
            expected = row[DECISION_COLUMNS.index(column)]
            assert stored[column] == expected and (expected is None or isinstance(stored[column], str)), column
    if not str(store_location).startswith("postgresql"):
        db = sqlite3.connect(store_location)
        try:
            kinds = set(db.execute("select typeof(body), typeof(input) from decisions"))
        finally:
            db.close()
        assert kinds == {("text", "text")}


def test_a_row_ending_with_the_document_is_stored_with_its_hash_and_mask_only(store_location):
    """The server leaves a decision's document hash and mask to the writer: the row it hands over
    ends with the document in clear (store_common.text_row). Every way a row is written stores the
    hash and the mask, and the document in clear nowhere; a row without a document stores neither."""
    store = open_store(store_location)
    document = "11222333000181"
    rows = [decision_row(0) + (document,), decision_row(1) + (None,)]
    once = decision_row(2, request_id="r-2") + (document,)
    store.insert_decisions(rows)
    assert store.insert_decision_once(once) is None
    digest = hashlib.sha256(document.encode()).hexdigest()
    for row, expected in ((rows[0], (digest, "************81")), (rows[1], (None, None)), (once, (digest, "************81"))):
        stored = store.decision(row[0])
        assert (stored["document_hash"], stored["document_masked"]) == expected
        assert document not in json.dumps(stored, default=str)
    assert {d["id"] for d in store.find_decisions(document_hash=digest)} == {rows[0][0], once[0]}
