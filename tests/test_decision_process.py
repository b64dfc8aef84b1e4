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
from regua.server.decision_process import DecisionWriteFailed, DecisionWriterProcess
from regua.server.store import Store


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
