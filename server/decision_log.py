"""The decision log: every decision is written to the store, off the request's critical path.

Requests hand finished rows to `DecisionLog.submit()`; one writer thread inserts whatever is
waiting in a single transaction every `flush_interval_ms`, or sooner when `flush_max` rows are
waiting — by default through a child process that makes the inserts (server.decision_process),
so they never hold this process's GIL. With that child and no plugin sink, `submit` encodes the
row for the child at once (msgpack, appended to one buffer): the event loop then keeps no
objects per decision until the write, and the writer thread only hands the buffer over, with
the lock released. `close()` (graceful shutdown) drains everything.

What a crash can lose: rows submitted but not yet written, i.e. the backlog (the metric
`regua_decision_log_backlog`): normally what arrived in the last `flush_interval_ms` (50 ms by
default; each tick writes everything waiting), more only if the store cannot be written. Only a
hard kill (kill -9, OOM, power loss) loses them; SIGTERM/SIGINT shut down gracefully and flush.
Requests that carry a `request_id` are written before the response (the client asked for a
durable, idempotent decision), and `durability = "sync"` writes every decision
before responding, for deployments that prefer that guarantee to throughput.
After an insert failure (disk full, locked too long) rows are kept and retried, never dropped
silently; the failure is logged and counted.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time

import msgspec

from .decision_process import decode_batch
from .store import DECISION_COLUMNS, Store  # or a PostgresStore: the same interface
from .store_common import text_row

_encode_into = msgspec.msgpack.Encoder().encode_into

# What sinks receive: the stored row without the input and body (they hold personal data).
_SINK_COLUMNS = [(i, c) for i, c in enumerate(DECISION_COLUMNS) if c not in ("input", "body", "input_hash",
                                                                                   "connector_answers")]

log = logging.getLogger("regua.decisions")


class DecisionLog:
    def __init__(self, store: Store, flush_interval_ms: int = 50, flush_max: int = 512, on_flush=None,
                 process=None):
        self.store = store
        # server.decision_process.DecisionWriterProcess: the inserts made by a child process, off
        # this process's GIL (store.writer_process); None: by the writer thread itself.
        self.process = process
        self.interval = flush_interval_ms / 1000
        self.flush_max = flush_max
        self.on_flush = on_flush  # sink(decision, record) per decision written (plugin sinks)
        self._pending: collections.deque = collections.deque()
        # Rows encoded for the writer process as they arrive (see the module's docstring), when
        # nothing else needs them as tuples: plugin sinks read each written row.
        self._encoded = process is not None and on_flush is None
        self._batch = bytearray()
        self._batch_rows = 0
        self._batch_lock = threading.Lock()  # submit (event loop) against the writer taking the batch
        self._sink_only: collections.deque = collections.deque()  # written elsewhere, sinks still to call
        self._wake = threading.Event()
        self._stop = False
        self._flushed = threading.Condition()
        self.written = 0
        self.failures = 0
        self._inflight = 0  # rows taken from the queue but not yet committed
        self._thread = threading.Thread(target=self._run, name="regua-decision-writer", daemon=True)
        self._thread.start()

    def submit(self, row: tuple, decision=None) -> None:
        if self._encoded:
            with self._batch_lock:
                _encode_into(row, self._batch, -1)
                self._batch_rows += 1
                waiting = self._batch_rows
        else:
            self._pending.append((row, decision))
            waiting = len(self._pending)
        if waiting >= self.flush_max:
            self._wake.set()

    def notify_later(self, row: tuple, decision=None) -> None:
        """A decision already written (request_id, sync durability): the writer thread calls the
        sinks, so a slow sink never runs on the event loop, and sinks are called from one thread."""
        if self.on_flush is not None:
            self._sink_only.append((row, decision))
            self._wake.set()

    @property
    def backlog(self) -> int:
        """Decisions not yet committed (queued or being written)."""
        return len(self._pending) + self._batch_rows + self._inflight

    def _run(self) -> None:
        if self.process is not None:
            try:
                self.process.start()
            except OSError as error:  # the first write tries again, and counts a failure
                log.error("decision log: could not start the writer process: %s", type(error).__name__)
        # A connection of its own (SQLite: WAL; PostgreSQL: COPY), or the child's.
        with self.store.writer() if self.process is None else contextlib.nullcontext() as db:
            while True:
                self._wake.wait(self.interval)
                self._wake.clear()
                stopping = self._stop
                if self._batch_rows:
                    self._flush_batch()
                while self._pending and self._flush(db):  # everything waiting, in chunks
                    pass
                self._drain_sink_only()
                if stopping and not (self._pending or self._batch_rows):
                    return

    def _take_batch(self) -> tuple[int, bytearray]:
        """The encoded rows waiting, counted in flight from here: `_inflight` is set before the
        batch is emptied, so `backlog` never reads 0 while they are being written."""
        with self._batch_lock:
            rows, batch = self._batch_rows, self._batch
            self._inflight = rows
            self._batch_rows, self._batch = 0, bytearray()
        return rows, batch

    def _flush_batch(self) -> None:
        """Write the encoded rows waiting, in one transaction of the child; kept for the next tick
        after a failure, ahead of rows encoded since."""
        rows, batch = self._take_batch()
        try:
            self.process.write_encoded(rows, batch)
        except Exception as error:  # noqa: BLE001 — keep the rows, try again on the next tick
            self.failures += 1
            with self._batch_lock:
                self._batch[0:0] = batch
                self._batch_rows += rows
                self._inflight = 0
            log.error("decision log: could not write %d decision(s): %s; will retry", rows, type(error).__name__)
            time.sleep(min(self.interval * 4, 1.0))
            return
        self.written += rows
        self._inflight = 0
        with self._flushed:
            self._flushed.notify_all()

    def _flush(self, db) -> bool:
        """Write up to 5000 waiting decisions in one transaction. False after a failure."""
        # Counted in flight before they leave the queue: `backlog` never reads 0 in between.
        self._inflight = min(len(self._pending), 5000)
        items = [self._pending.popleft() for _ in range(self._inflight)]
        if not items:
            return False
        try:
            rows = [row for row, _ in items]
            if self.process is None:
                self.store.insert_decisions(rows, db)
            else:
                self.process.write(rows)
        except Exception as error:  # noqa: BLE001 — keep the rows, try again on the next tick
            self.failures += 1
            self._pending.extendleft(reversed(items))
            self._inflight = 0
            log.error("decision log: could not write %d decision(s): %s; will retry", len(items), type(error).__name__)
            time.sleep(min(self.interval * 4, 1.0))
            return False
        self.written += len(items)
        self._inflight = 0
        with self._flushed:
            self._flushed.notify_all()
        self.notify_sinks(items)
        return True

    def _drain_sink_only(self) -> None:
        items = []
        while self._sink_only:
            items.append(self._sink_only.popleft())
        self.notify_sinks(items)

    def notify_sinks(self, items: list[tuple]) -> None:
        """Hand each written decision to the sinks, with a record holding no input and masked documents."""
        if self.on_flush is None:
            return
        for row, decision in items:
            try:
                row = text_row(row)
                self.on_flush(decision, {column: row[i] for i, column in _SINK_COLUMNS})
            except Exception as error:  # noqa: BLE001 — a sink must never stop the log
                log.error("decision sink failed: %s", type(error).__name__)

    def wait_flushed(self, timeout: float = 5.0) -> bool:
        """Block until nothing is pending (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._flushed:
            while self.backlog and time.monotonic() < deadline:
                self._wake.set()
                self._flushed.wait(0.05)
        return not self.backlog

    def close(self, timeout: float = 30.0) -> None:
        """Flush everything and stop the writer (graceful shutdown)."""
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)
        if self.process is not None and not self._thread.is_alive():
            self.process.close()
        if self._thread.is_alive():
            log.error("decision log: the writer did not finish within %gs; %d decision(s) still waiting",
                      timeout, self.backlog)
            return
        if self._batch_rows:  # the writer died: last attempt from this thread
            rows, batch = self._take_batch()
            self._pending.extend((row, None) for row in decode_batch(rows, batch))
            self._inflight = 0  # back in the queue
        if self._pending:
            items = list(self._pending)
            try:
                self.store.insert_decisions([row for row, _ in items])
            except Exception as error:  # noqa: BLE001 — say how many, never silently
                log.error("decision log: %d decision(s) could not be written at shutdown: %s",
                          len(items), type(error).__name__)
                return
            self._pending.clear()
            self.written += len(items)
            self.notify_sinks(items)
