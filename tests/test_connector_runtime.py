"""plugins.runtime (deadlines, retries with backoff, the circuit breaker, failures as values)
and plugins.cache (the SQLite bureau cache), with real timing where timing is the point."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import msgspec
import pytest

from regua.engine.connectors import ConnectorError
from regua.plugins.cache import TABLE, BureauCache
from regua.plugins.connectors import BureauConnector, TransientError
from regua.plugins.contracts import BureauReport, Restriction, Score
from regua.plugins.runtime import CircuitBreaker, CircuitOpen, Resilient, call_with_deadline

DOCUMENT = "11222333000181"
REPORT = BureauReport(score=Score(value=742, bureau="serasa"),
                      restrictions=[Restriction(kind="pefin", amount=Decimal("3500.10"), date=dt.date(2026, 5, 2),
                                                creditor="Banco X")])


class Scripted(BureauConnector):
    """A connector whose fetch plays a script: each item is raised if an exception, else returned."""

    name = "scripted"
    timeout = 1.0
    retries = 2
    backoff = 0.2
    failure_threshold = 3
    reset_after = 0.2

    def __init__(self, *script, **settings):
        self.script = list(script)
        self.calls = 0
        for key, value in settings.items():
            setattr(self, key, value)

    def fetch(self, document: str):
        self.calls += 1
        item = self.script.pop(0) if self.script else REPORT
        if isinstance(item, BaseException):
            raise item
        return item


def resilient(connector) -> tuple[Resilient, list[float]]:
    delays: list[float] = []
    return Resilient(connector, connector.fetch, sleep=delays.append), delays


def raises(call, *args) -> tuple[ConnectorError, float]:
    started = time.perf_counter()
    with pytest.raises(ConnectorError) as caught:
        call(*args)
    return caught.value, time.perf_counter() - started


# ---- deadlines ----


def test_a_fast_sync_call_returns_its_value():
    assert call_with_deadline(lambda a, b: a + b, (2, 3), 1.0) == 5


def test_a_slow_sync_call_times_out_at_its_deadline():
    release = threading.Event()
    error, elapsed = raises(call_with_deadline, lambda: release.wait(5), (), 0.2)
    release.set()
    assert isinstance(error, TransientError) and error.code == "TIMEOUT"
    assert 0.18 <= elapsed < 0.6, elapsed


def test_a_fast_async_call_returns_its_value():
    async def fetch(x):
        await asyncio.sleep(0.01)
        return x * 2

    assert call_with_deadline(fetch, (21,), 1.0) == 42


def test_a_slow_async_call_times_out_and_is_cancelled():
    cancelled = threading.Event()

    async def fetch():
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    error, elapsed = raises(call_with_deadline, fetch, (), 0.2)
    assert isinstance(error, TransientError) and error.code == "TIMEOUT"
    assert 0.18 <= elapsed < 0.6, elapsed
    assert cancelled.wait(1.0), "the abandoned coroutine is cancelled, not left running"


def test_os_errors_are_transient_connection_failures():
    def fetch():
        raise ConnectionResetError(f"reset while asking about {DOCUMENT}")

    error, _ = raises(call_with_deadline, fetch, (), 1.0)
    assert isinstance(error, TransientError) and error.code == "CONNECTION"
    assert DOCUMENT not in str(error)


def test_resilient_runs_async_fetches():
    class Async(BureauConnector):
        name, timeout, retries = "async", 0.2, 1

        def __init__(self):
            self.calls = 0

        async def fetch(self, document):
            self.calls += 1
            if self.calls == 1:
                await asyncio.sleep(5)  # the first attempt hangs past the deadline
            return REPORT

    connector = Async()
    call, delays = resilient(connector)
    started = time.perf_counter()
    assert call(DOCUMENT) == REPORT
    assert connector.calls == 2 and delays == [0.2]
    assert time.perf_counter() - started < 0.6


# ---- retries ----


def test_transient_errors_are_retried_with_exponential_backoff():
    connector = Scripted(TransientError(), TransientError("UNAVAILABLE"), TransientError("TIMEOUT"), retries=3)
    call, delays = resilient(connector)
    assert call(DOCUMENT) == REPORT
    assert delays == pytest.approx([0.2, 0.4, 0.8])
    assert connector.calls == 4 and call.attempts == 4
    assert call.breaker.state == "closed" and call.breaker.failures == 0


def test_exhausted_retries_raise_the_last_transient_error_and_count_one_failure():
    connector = Scripted(*[TransientError("UNAVAILABLE")] * 5, retries=2, backoff=0.1)
    call, delays = resilient(connector)
    error, _ = raises(call, DOCUMENT)
    assert error.code == "UNAVAILABLE"
    assert delays == pytest.approx([0.1, 0.2])
    assert connector.calls == 3
    assert call.breaker.failures == 1  # one failed call, however many attempts


def test_real_backoff_sleeps():
    connector = Scripted(TransientError(), TransientError(), retries=2, backoff=0.05)
    call = Resilient(connector, connector.fetch)
    started = time.perf_counter()
    assert call(DOCUMENT) == REPORT
    assert 0.15 <= time.perf_counter() - started < 0.5  # 0.05 + 0.10


def test_timeouts_are_retried():
    class Slow(Scripted):
        def fetch(self, document):
            self.calls += 1
            time.sleep(0.5)
            return REPORT

    connector = Slow(timeout=0.1, retries=1, backoff=0.01)
    error, elapsed = raises(Resilient(connector, connector.fetch), DOCUMENT)
    assert error.code == "TIMEOUT" and connector.calls == 2
    assert elapsed < 0.5, elapsed  # two deadlines of 0.1 s, not two sleeps of 0.5 s


@pytest.mark.parametrize("code", ["NOT_FOUND", "UNAUTHORIZED", "BAD_ANSWER"])
def test_non_transient_errors_are_not_retried(code):
    connector = Scripted(ConnectorError(code, "no"))
    call, delays = resilient(connector)
    error, _ = raises(call, DOCUMENT)
    assert error.code == code and connector.calls == 1 and delays == []
    assert call.breaker.failures == 1


def test_a_bug_in_a_plugin_is_a_failed_call_without_its_traceback():
    connector = Scripted(KeyError(f"secret {DOCUMENT}"), retries=3)
    call, delays = resilient(connector)
    error, _ = raises(call, DOCUMENT)
    assert type(error) is ConnectorError and error.code == "FAILED"
    assert str(error) == "KeyError in scripted"
    assert connector.calls == 1 and delays == []
    assert error.__cause__ is None and error.__suppress_context__
    assert DOCUMENT not in "".join(traceback.format_exception(error))
    assert call.breaker.failures == 1


# ---- the circuit breaker ----


def test_breaker_closed_open_half_open_closed():
    breaker = CircuitBreaker(threshold=3, reset_after=0.2)
    assert breaker.state == "closed" and breaker.allow()
    breaker.record(False)
    breaker.record(False)
    assert breaker.state == "closed" and breaker.allow()
    breaker.record(False)
    assert breaker.state == "open" and not breaker.allow()
    time.sleep(0.25)
    assert breaker.state == "half-open"
    assert breaker.allow()  # one caller tries…
    assert not breaker.allow()  # …the others keep waiting
    breaker.record(True)
    assert breaker.state == "closed" and breaker.failures == 0 and breaker.allow()


def test_breaker_half_open_failure_opens_again():
    breaker = CircuitBreaker(threshold=2, reset_after=0.1)
    breaker.record(False)
    breaker.record(False)
    time.sleep(0.15)
    assert breaker.allow()
    breaker.record(False)
    assert breaker.state == "open" and not breaker.allow()


def test_a_success_resets_the_consecutive_failure_count():
    breaker = CircuitBreaker(threshold=3, reset_after=10)
    for _ in range(5):
        breaker.record(False)
        breaker.record(False)
        breaker.record(True)
    assert breaker.state == "closed"


def test_an_open_breaker_fails_fast_without_calling():
    connector = Scripted(*[ConnectorError("NOT_FOUND")] * 3, failure_threshold=3, reset_after=0.2)
    call, _ = resilient(connector)
    for _ in range(3):
        raises(call, DOCUMENT)
    assert call.breaker.state == "open"
    timings = []
    for _ in range(200):
        error, elapsed = raises(call, DOCUMENT)
        assert isinstance(error, CircuitOpen) and error.code == "CIRCUIT_OPEN"
        timings.append(elapsed)
    assert connector.calls == 3
    assert sorted(timings)[100] < 0.001  # microseconds (median), bounded generously
    time.sleep(0.25)
    assert call(DOCUMENT) == REPORT  # half-open: the try succeeds
    assert call.breaker.state == "closed" and connector.calls == 4


# ---- threads ----


def test_many_threads_share_one_resilient():
    class Counting(Scripted):
        def __init__(self, **settings):
            super().__init__(**settings)
            self.lock = threading.Lock()
            self.seen: list[str] = []

        def fetch(self, document):
            time.sleep(0.002)
            with self.lock:
                self.seen.append(document)
            if document.endswith("7"):
                raise ConnectorError("NOT_FOUND")
            return REPORT

    connector = Counting(failure_threshold=10_000, retries=0)
    call = Resilient(connector, connector.fetch)

    def worker(i: int):
        try:
            return call(f"doc{i}")
        except ConnectorError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(worker, range(640)))
    assert len(connector.seen) == 640 and len(set(connector.seen)) == 640
    assert results.count("NOT_FOUND") == 64 and results.count(REPORT) == 576
    assert call.breaker.state == "closed"


def test_the_breaker_opens_once_under_concurrent_failures():
    connector = Scripted(*[ConnectorError("UNAUTHORIZED")] * 200, failure_threshold=5, reset_after=60, retries=0)
    call = Resilient(connector, connector.fetch)

    def worker(_):
        try:
            call(DOCUMENT)
        except ConnectorError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(worker, range(200)))
    assert call.breaker.state == "open"
    assert codes.count("UNAUTHORIZED") >= 5 and codes.count("UNAUTHORIZED") + codes.count("CIRCUIT_OPEN") == 200


# ---- the cache ----


@pytest.fixture
def clock():
    return [1_000_000.0]


@pytest.fixture
def cache(tmp_path, clock):
    return BureauCache(str(tmp_path / "cache.db"), clock=lambda: clock[0])


def test_cache_put_then_get(cache):
    answer = msgspec.to_builtins(REPORT)
    cache.put("bureau.serasa", DOCUMENT, answer, ttl=60, cost="3.90")
    hit = cache.get("bureau.serasa", DOCUMENT)
    assert hit == answer
    assert msgspec.convert(hit, BureauReport) == REPORT  # money and dates come back exactly
    assert cache.get("bureau.spc", DOCUMENT) is None  # per connector
    assert cache.get("bureau.serasa", "11444777000161") is None


def test_cache_expiry(cache, clock):
    cache.put("bureau.serasa", DOCUMENT, {"score": {"value": 1}}, ttl=60, cost="1")
    clock[0] += 59.9
    assert cache.get("bureau.serasa", DOCUMENT) is not None
    clock[0] += 0.1
    assert cache.get("bureau.serasa", DOCUMENT) is None
    cache.put("bureau.serasa", DOCUMENT, {"score": {"value": 2}}, ttl=60, cost="1")  # refreshed
    assert cache.get("bureau.serasa", DOCUMENT) == {"score": {"value": 2}}


def test_a_zero_ttl_is_never_cached(cache):
    cache.put("bureau.sandbox", DOCUMENT, {"score": {"value": 1}}, ttl=0, cost="0")
    assert cache.get("bureau.sandbox", DOCUMENT) is None
    assert cache.db[TABLE].count == 0


def test_purge_removes_only_expired_entries(cache, clock):
    for i, ttl in enumerate((10, 20, 30, 40)):
        cache.put("bureau.serasa", f"doc{i}", {"i": i}, ttl=ttl, cost="1")
    clock[0] += 25
    assert cache.purge_expired() == 2
    assert cache.db[TABLE].count == 2
    assert cache.get("bureau.serasa", "doc3") == {"i": 3}


def test_the_cache_file_never_holds_the_document(tmp_path, cache):
    cache.put("bureau.serasa", DOCUMENT, msgspec.to_builtins(REPORT), ttl=60, cost="3.90")
    cache.db.conn.execute("pragma wal_checkpoint(FULL)")
    blob = b"".join(path.read_bytes() for path in tmp_path.glob("cache.db*"))
    assert b"Banco X" in blob and DOCUMENT.encode() not in blob
    key = BureauCache.key("bureau.serasa", DOCUMENT)
    assert len(key) == 64 and DOCUMENT not in key


def test_the_cache_survives_a_reopen_and_concurrent_writers(tmp_path, clock):
    path = str(tmp_path / "cache.db")
    first = BureauCache(path, clock=lambda: clock[0])

    def write(i):
        first.put("bureau.serasa", f"doc{i}", {"i": i}, ttl=60, cost="1")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(100)))
    second = BureauCache(path, clock=lambda: clock[0])
    assert all(second.get("bureau.serasa", f"doc{i}") == {"i": i} for i in range(100))
    assert sqlite3.connect(path).execute(f"select count(*) from {TABLE}").fetchone()[0] == 100


class _ThreadReporter(BureauConnector):
    name = "reporter"
    retries = 0

    def __init__(self, inline: bool):
        self.inline = inline
        self.threads: list[str] = []

    def fetch(self, document: str):
        self.threads.append(threading.current_thread().name)
        return {"document": document}


@pytest.mark.parametrize("inline", [True, False])
def test_inline_connectors_run_in_the_callers_thread_others_in_a_worker(inline):
    connector = _ThreadReporter(inline)
    Resilient(connector, connector.fetch)("11222333000181")
    caller = threading.current_thread().name
    assert (connector.threads == [caller]) is inline


def test_the_sandbox_is_inline_unless_it_simulates_a_slow_outage():
    from regua.plugins.builtin.sandbox_bureau import SandboxBureau
    from regua.plugins.manager import PluginSettings
    from regua.plugins.registry import Registry

    assert SandboxBureau().inline and not SandboxBureau(down_delay=0.5).inline
    registry = Registry.load(PluginSettings(allow=["sandbox_bureau"]), sandbox_aliases=True)
    assert registry.is_inline("bureau.sandbox") and registry.is_inline("bureau.serasa")  # aliased to the sandbox
    strict = Registry.load(PluginSettings(allow=["sandbox_bureau"]), sandbox_aliases=False)
    assert not strict.is_inline("bureau.serasa")  # not configured: nothing answers it


def test_a_success_after_a_failure_still_resets_the_count_and_a_clean_success_changes_nothing():
    breaker = CircuitBreaker(threshold=2, reset_after=10)
    breaker.record(True)  # closed and clean: stays so
    assert (breaker.state, breaker.failures) == ("closed", 0)
    breaker.record(False)
    breaker.record(True)
    breaker.record(False)
    assert breaker.state == "closed" and breaker.failures == 1  # the success in between reset the count


def test_the_sandbox_answers_a_document_the_same_all_day_and_anew_the_next_day(monkeypatch):
    import regua.plugins.builtin.sandbox_bureau as sandbox
    from regua.plugins.builtin.sandbox_bureau import SandboxBureau, sandbox_document

    day = [dt.date(2026, 11, 22)]
    bureau = SandboxBureau(today=lambda: day[0])
    document = sandbox_document("inquiries")
    first = bureau.fetch(document)
    assert bureau.fetch(document) == first
    assert first.inquiries[0].date == dt.date(2026, 11, 21)  # 1 day before `today`
    day[0] = dt.date(2026, 11, 23)
    assert bureau.fetch(document).inquiries[0].date == dt.date(2026, 11, 22)  # not yesterday's report
    assert bureau.fetch(sandbox_document("clean")) != bureau.fetch(sandbox_document("low_score"))
    monkeypatch.setattr(sandbox, "MAX_KEPT_REPORTS", 2)
    for n in range(5):  # bounded: kept reports never pass the limit
        bureau.fetch(sandbox_document("clean", n=n))
        assert len(bureau._reports) <= 2
    with pytest.raises(TransientError):  # the "down" profile is never kept as an answer
        bureau.fetch(sandbox_document("down"))
    with pytest.raises(TransientError):
        bureau.fetch(sandbox_document("down"))


# ---- inline connectors (answered from memory: Resilient's fast first attempt) ----


def _outcome(inline: bool, *script, **settings) -> tuple:
    """What a caller and the breaker see of two calls playing `script`, for an inline connector
    or one run in a worker thread."""
    connector = Scripted(*script, inline=inline, **settings)
    call, delays = resilient(connector)
    seen = []
    for _ in range(2):
        try:
            seen.append(("ok", call(DOCUMENT) == REPORT))
        except ConnectorError as error:
            seen.append(("failed", error.code))
    return seen, connector.calls, delays, call.attempts, call.breaker.state, call.breaker.failures


@pytest.mark.parametrize("script", [
    (),
    (TransientError("UNAVAILABLE"), TransientError("TIMEOUT")),
    (TransientError("UNAVAILABLE"),) * 6,
    (ConnectorError("NOT_FOUND", "no such document"),),
    (ValueError("a bug"), ValueError("another")),
])
def test_an_inline_connector_retries_fails_and_trips_the_breaker_as_any_other(script):
    inline = _outcome(True, *script, failure_threshold=2)
    assert inline == _outcome(False, *script, failure_threshold=2)
    assert inline[3] == inline[1]  # every attempt counted once


def test_an_inline_connector_behind_an_open_breaker_is_not_called():
    connector = Scripted(*[TransientError()] * 9, inline=True, retries=0, failure_threshold=2, reset_after=60)
    call, _ = resilient(connector)
    for _ in range(2):
        raises(call, DOCUMENT)
    error, _ = raises(call, DOCUMENT)
    assert error.code == "CIRCUIT_OPEN" and connector.calls == 2 and call.attempts == 2
