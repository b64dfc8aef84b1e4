"""The decision log's inserts made by a child process (server/decision_process.py, on SQLite by
default): rows are committed by the child before they count as written, refused batches are kept
and retried, a killed child is replaced with nothing lost or doubled. Real SQLite files, real
child processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest
from test_server_store import decision_row

from regua.server.decision_log import DecisionLog
from regua.server.decision_process import DecisionWriteFailed, DecisionWriterProcess, decode_batch
from regua.server.store import DECISION_COLUMNS, Store, open_store


def stored(path: str) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("select id from decisions")]
    finally:
        db.close()


@pytest.fixture
def path(tmp_path) -> str:
    location = str(tmp_path / "regua.db")
    Store(location)  # migrated, as the server's store is before its log starts
    return location


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_the_child_writes_what_the_log_takes(path):
    process = DecisionWriterProcess(path)
    log = DecisionLog(Store(path), flush_interval_ms=20, flush_max=512, process=process)
    rows = [decision_row(i) for i in range(3000)]
    for row in rows:
        log.submit(row)
    assert log.wait_flushed(20)
    assert sorted(stored(path)) == sorted(row[0] for row in rows) and log.written == 3000
    child = process.pid
    assert child is not None and child != os.getpid()
    log.close()
    assert process.pid is None
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # reaped: it ended with the log


def test_a_refused_batch_is_kept_and_retried(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("create trigger refuse before insert on decisions begin select raise(abort, 'refused'); end")
    process = DecisionWriterProcess(path)
    with pytest.raises(DecisionWriteFailed, match="IntegrityError"):
        process.write([decision_row(0)])
    log = DecisionLog(Store(path), flush_interval_ms=20, flush_max=512, process=process)
    try:
        for i in range(10):
            log.submit(decision_row(i))
        assert wait_for(lambda: log.failures >= 2)
        assert log.backlog == 10 and stored(path) == []
        db.execute("drop trigger refuse")
        assert log.wait_flushed(10) and len(stored(path)) == 10
        assert process.starts == 1  # a refused batch is an answer, not a dead child
    finally:
        log.close()


def test_a_killed_child_is_replaced_with_nothing_lost_or_doubled(path):
    process = DecisionWriterProcess(path)
    log = DecisionLog(Store(path), flush_interval_ms=20, flush_max=512, process=process)
    try:
        first = [decision_row(i) for i in range(100)]
        for row in first:
            log.submit(row)
        assert log.wait_flushed(10)
        os.kill(process.pid, signal.SIGKILL)
        second = [decision_row(i) for i in range(100, 200)]
        for row in second:
            log.submit(row)
        assert log.wait_flushed(20)
        ids = stored(path)
        assert sorted(ids) == sorted(row[0] for row in first + second)  # each once
        assert process.starts == 2
    finally:
        log.close()


def test_ctrl_c_leaves_the_child_writing_until_the_log_closes(path):
    """Ctrl-C reaches the whole process group; the server flushes on its way out."""
    process = DecisionWriterProcess(path)
    log = DecisionLog(Store(path), flush_interval_ms=60_000, flush_max=100_000, process=process)
    log.submit(decision_row(0))
    assert log.wait_flushed(10)
    os.kill(process.pid, signal.SIGINT)
    time.sleep(0.2)
    for i in range(1, 50):
        log.submit(decision_row(i))
    log.close()
    assert len(stored(path)) == 50 and process.starts == 1


def test_both_stores_take_a_batch_again_without_doubling_it(store_location):
    """What a replaced child does with the batch in flight when its predecessor had committed it
    before dying: the same rows again, skipped by id (SQLite and PostgreSQL)."""
    open_store(store_location)  # migrated, as the server's store is before its log starts
    process = DecisionWriterProcess(store_location)
    try:
        rows = [decision_row(i) for i in range(300)]
        process.write(rows)
        process.write(rows[100:] + [decision_row(300)])
        ids = [row["id"] for row in open_store(store_location).query("select id from decisions")]
        assert len(ids) == len(set(ids)) == 301
    finally:
        process.close()


def test_rows_are_encoded_as_they_arrive_and_stored_as_submitted(path):
    """With the child and no sink the log keeps one buffer, not a tuple per decision; what the child
    stores is the row as submitted, the JSON columns handed over as bytes stored as text."""
    process = DecisionWriterProcess(path)
    log = DecisionLog(Store(path), flush_interval_ms=60_000, flush_max=100_000, process=process)
    try:
        rows = [decision_row(i)[:5] + (f'{{"b":{i}}}'.encode(),) + decision_row(i)[6:] for i in range(20)]
        for row in rows:
            log.submit(row)
        assert log.backlog == 20 and not log._pending
        assert log.wait_flushed(10) and log.written == 20
        db = sqlite3.connect(path)
        try:
            kept = {row[0]: row for row in db.execute("select " + ", ".join(DECISION_COLUMNS) + " from decisions")}
        finally:
            db.close()
        assert [kept[row[0]] for row in rows] == [row[:5] + (row[5].decode(),) + row[6:] for row in rows]
    finally:
        log.close()


def test_an_encoded_batch_decodes_to_its_rows():
    """What close() does with rows still encoded when the writer thread is gone."""
    import msgspec

    rows = [decision_row(i) for i in range(3)]
    batch = bytearray()
    for row in rows:
        msgspec.msgpack.Encoder().encode_into(row, batch, -1)
    assert decode_batch(3, batch) == rows
    assert decode_batch(0, b"") == []


def test_a_refused_encoded_batch_is_written_ahead_of_later_rows(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("create table seen (id text)")
    db.execute("create trigger refuse before insert on decisions begin select raise(abort, 'refused'); end")
    db.execute("create trigger note after insert on decisions begin insert into seen values (new.id); end")
    log = DecisionLog(Store(path), flush_interval_ms=20, flush_max=512, process=DecisionWriterProcess(path))
    try:
        first = [decision_row(i) for i in range(5)]
        for row in first:
            log.submit(row)
        assert wait_for(lambda: log.failures >= 1)
        later = [decision_row(i) for i in range(5, 8)]
        for row in later:
            log.submit(row)
        db.execute("drop trigger refuse")
        assert log.wait_flushed(10)
        assert [row[0] for row in db.execute("select id from seen order by rowid")] == [r[0] for r in first + later]
    finally:
        log.close()
        db.close()


def test_sinks_get_the_stored_row_with_the_documents_hash_and_mask(path):
    """With a plugin sink the log keeps rows as tuples; each sink record is the row as stored (the
    hash and mask made from the document at the end of the row), without input, body or answers."""
    import hashlib

    heard = []
    log = DecisionLog(Store(path), flush_interval_ms=20, flush_max=512, process=DecisionWriterProcess(path),
                      on_flush=lambda decision, record: heard.append((decision, record)))
    try:
        row = decision_row(0)[:5] + (b'{"b":1}',) + decision_row(0)[6:] + ("11222333000181",)
        log.submit(row, "the decision")
        assert log.wait_flushed(10) and wait_for(lambda: heard)
    finally:
        log.close()
    decision, record = heard[0]
    assert decision == "the decision"
    assert record["document_hash"] == hashlib.sha256(b"11222333000181").hexdigest()
    assert record["document_masked"] == "************81" and "11222333000181" not in repr(record)
    assert not {"input", "body", "connector_answers", "input_hash"} & set(record)
