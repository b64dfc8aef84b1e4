"""The decision log's inserts made by a child process, so they never take the server's GIL.

The decision writer thread (server.decision_log) used to insert the rows itself. A thread of the
serving process shares its interpreter lock: binding a batch's parameters holds it, and every
hand-over of the lock between the writer and the event loop costs the loop. Measured on a 2-core
machine under wrk (credito_b2b, ~1.7 KB a row): the event loop spent 55–110 µs more CPU per
request with the writer thread inserting than with the rows built and dropped, while the same
inserts made by another process at the same rate cost it nothing measurable. Here the writer
thread only encodes each batch (msgpack, in C) and hands it to one child started with its own
interpreter (`python -m`: no fork of a threaded server), which inserts it in one transaction
(SQLite: `Store.insert_decisions`; PostgreSQL: the same binary COPY, `copy_decisions`) and
answers; the thread waits for that answer with the lock released. So everything the decision
log promises stays as it was: a batch counts as written when the child says it committed, a
failure is retried by the log, and sinks are called after the commit.

If the child dies, the batch in flight counts as failed (the log retries it: the insert skips
rows already stored, by id) and the next batch starts another child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import struct
import subprocess
import sys

import msgspec

from .frames import ChildProcess, read_frame, write_frame

log = logging.getLogger("regua.decisions")

_encode = msgspec.msgpack.Encoder().encode
_decode_rows = msgspec.msgpack.Decoder(list[tuple]).decode
_ARRAY32 = struct.Struct(">BI")  # a msgpack array header: 0xdd, then the number of items


def batch_header(rows: int) -> bytes:
    """What makes `rows` msgpack-encoded rows laid end to end one msgpack array of them, the
    frame the child decodes (server.decision_log encodes rows as they arrive)."""
    return _ARRAY32.pack(0xDD, rows)


def decode_batch(rows: int, batch: bytes) -> list[tuple]:
    """The rows of an encoded batch (`rows` of them laid end to end)."""
    return _decode_rows(batch_header(rows) + batch)


class DecisionWriteFailed(Exception):
    """The child could not write a batch (its exception's type is the message); nothing of it was committed."""


class DecisionWriterProcess(ChildProcess):
    """The server's side: `write(rows)` returns once the child has committed them, or raises."""

    module = "regua.server.decision_process"

    def __init__(self, location: str):
        super().__init__(os.fsencode(location))  # the child's setup: where the store is
        self.location = location

    def start(self) -> None:
        """Start the child now (the log's writer thread does, as it starts), so the first batch does not
        wait for it to import and open the store."""
        with self._lock:
            if not self._closed:
                self._running()

    def write(self, rows: list[tuple]) -> None:
        self._send(_encode(rows))

    def write_encoded(self, rows: int, batch: bytes) -> None:
        """write() of `rows` rows already encoded one after the other (msgpack) in `batch`."""
        self._send(batch_header(rows), batch)

    def _send(self, *frame: bytes) -> None:
        with self._lock:
            if self._closed:
                raise DecisionWriteFailed("closed")
            process = self._running()
        try:
            write_frame(process.stdin, *frame)
            answer = read_frame(process.stdout)
        except (OSError, ValueError):  # the pipe broke: the child is gone
            answer = None
        if answer is None:
            self._lost(process)
            raise DecisionWriteFailed("the decision writer process ended")
        if answer:
            raise DecisionWriteFailed(answer.decode())

    def _running(self) -> subprocess.Popen:
        """The child, started again if it is not running (call with the lock held)."""
        if self._process is None or self._process.poll() is not None:
            self._process = self._spawn()
        return self._process

    def _lost(self, process: subprocess.Popen) -> None:
        try:
            code = process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        with self._lock:
            if self._process is process:
                self._process = None
        log.error("decision log: the writer process ended (exit code %s); the batch will be written again", code)


# ---- the child ------------------------------------------------------------------------------------

def child_main(stdin, stdout) -> None:
    """Insert batches until the server closes the pipe; answer each with b"" (committed) or the
    exception's type name (not committed)."""
    # Ctrl-C reaches the whole process group: the server flushes its log on the way out and
    # closes the pipe when done, which is this process's signal to end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    location = read_frame(stdin)
    if location is None:
        return
    with _inserter(os.fsdecode(location)) as insert:
        while True:
            frame = read_frame(stdin)
            if frame is None:
                return
            try:
                insert(_decode_rows(frame))
                answer = b""
            except Exception as failure:  # noqa: BLE001 — the server logs, counts and retries it
                answer = type(failure).__name__.encode()
            write_frame(stdout, answer)


@contextlib.contextmanager
def _inserter(location: str):
    """insert(rows) on one connection of this process's own: the server's store is already migrated,
    so on PostgreSQL no store (and no pool) is made here, only the connection."""
    from regua import postgres

    if postgres.is_url(location):
        from .store_postgres import copy_decisions

        connection = postgres.connect(location)
        try:
            yield lambda rows: copy_decisions(connection, rows)
        finally:
            connection.close()
        return
    from .store import Store

    store = Store(location)
    with store.writer() as db:
        yield lambda rows: store.insert_decisions(rows, db)


if __name__ == "__main__":
    # The protocol owns the real stdout; anything printed goes to stderr (the server's log).
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    logging.basicConfig(level=logging.WARNING)
    child_main(sys.stdin.buffer, protocol_out)
