"""How the engine calls connectors: deadline, retries with backoff, circuit breaker, cache.

Every call gets a deadline: the connector's `timeout` per attempt and `budget` for all attempts,
both cut to the decision's own deadline when the evaluation sets one (one budget for every
lookup of a decision: engine.connectors.decision_deadline). Sync implementations run in a worker thread and async ones on a
private event loop, so a hung provider costs at most `timeout` (its thread is abandoned, never
waited for). Transient errors are retried with exponential backoff. A circuit breaker per
connector stops calling a provider that keeps failing and tries again after `reset_after`.
Every failure reaches the policy as a value (engine.connectors.ConnectorError), never a crash.

Plugin authors: give your own client (httpx, SMTP…) the same timeout as the connector, so a
timed-out worker thread ends soon after the engine has given up on it.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from regua.engine.connectors import ConnectorError, decision_deadline

from .connectors import Connector, TransientError

if TYPE_CHECKING:
    import asyncio

# asyncio (~15 ms to import) only when an async connector is first called: `regua eval` and the
# other commands with sync connectors never need it.

# Generous: a timed-out call leaves its worker busy until the provider (or its own client timeout) ends it.
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="regua-connector")
_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    import asyncio

    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None:
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="regua-connector-loop", daemon=True).start()
        return _LOOP


def call_with_deadline(function, args: tuple, timeout: float):
    """Run a sync or async callable with a deadline; TimeoutError becomes a transient error."""
    try:
        if inspect.iscoroutinefunction(function):
            import asyncio

            future = asyncio.run_coroutine_threadsafe(function(*args), _event_loop())
        else:
            future = _POOL.submit(function, *args)
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TransientError("TIMEOUT", f"no answer within {timeout:g}s") from None
    except (ConnectionError, OSError) as error:
        raise TransientError("CONNECTION", type(error).__name__) from None


class CircuitOpen(ConnectorError):
    def __init__(self, name: str):
        super().__init__("CIRCUIT_OPEN", f"{name}: too many recent failures; not calling it for now")


@dataclass
class CircuitBreaker:
    """closed -> (threshold consecutive failures) -> open -> (reset_after) -> half-open -> one try."""

    threshold: int
    reset_after: float
    failures: int = 0
    opened_at: float | None = None

    def __post_init__(self):
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.reset_after else "open"

    def allow(self) -> bool:
        if self.opened_at is None:  # closed: nothing to change, no lock needed (the hot path)
            return True
        with self._lock:
            if self.opened_at is None:
                return True
            if time.monotonic() - self.opened_at >= self.reset_after:
                self.opened_at = time.monotonic()  # half-open: this caller tries; others wait again
                return True
            return False

    def record(self, ok: bool) -> None:
        if ok and self.failures == 0 and self.opened_at is None:  # already closed and clean
            return
        with self._lock:
            if ok:
                self.failures, self.opened_at = 0, None
            else:
                self.failures += 1
                if self.failures >= self.threshold:
                    self.opened_at = time.monotonic()


class Resilient:
    """Wraps one connector method with deadline, retries and a circuit breaker."""

    def __init__(self, connector: Connector, method, sleep=time.sleep):
        self.connector = connector
        self.method = method
        self.breaker = CircuitBreaker(connector.failure_threshold, connector.reset_after)
        self.sleep = sleep
        self.attempts = 0  # total attempts made, for tests and metrics
        self._count_lock = threading.Lock()

    def __call__(self, *args):
        breaker = self.breaker
        if breaker.opened_at is None and breaker.failures == 0 and getattr(self.connector, "inline", False):
            # An in-memory connector (the sandbox, on every request) with a closed, clean breaker:
            # its first attempt made here, without the deadline and retry bookkeeping that only a
            # failure reads (inline connectors have no decision deadline and no thread to wait
            # for; a success leaves a clean breaker as it is). A failure goes on as in _call.
            started = time.monotonic()
            with self._count_lock:
                self.attempts += 1
            try:
                return self.method(*args)
            except Exception as error:  # noqa: BLE001 — classified by _call, as any attempt's failure
                return self._call(args, started, error)
        return self._call(args)

    def _call(self, args: tuple, started: float | None = None, failed: BaseException | None = None):
        """Every attempt, or (with `failed`) the attempts after a first one made by __call__ at
        `started` that raised `failed`."""
        name = self.connector.name
        inline = getattr(self.connector, "inline", False)
        # The decision's deadline (engine.connectors.decision_deadline) bounds every attempt and
        # backoff: one budget for all the lookups of a decision. Inline connectors do not wait.
        decision = None if inline else decision_deadline()
        if failed is None:
            if decision is not None and time.monotonic() >= decision:
                raise TransientError("TIMEOUT", f"{name}: the decision's connector budget is spent")
            if not self.breaker.allow():
                raise CircuitOpen(name)
            started = time.monotonic()
        delay = self.connector.backoff
        deadline = started + getattr(self.connector, "budget", float("inf"))
        for attempt in range(self.connector.retries + 1):
            if failed is None:
                with self._count_lock:
                    self.attempts += 1
            timeout = self.connector.timeout
            if decision is not None:
                timeout = min(timeout, decision - time.monotonic())
            try:
                if failed is not None:  # the first attempt, already made
                    error, failed = failed, None
                    raise error
                if inline:
                    result = self.method(*args)
                elif timeout <= 0:
                    raise TransientError("TIMEOUT", f"{name}: the decision's connector budget is spent")
                else:
                    result = call_with_deadline(self.method, args, timeout)
            except TransientError as error:
                now = time.monotonic()
                out_of_time = now + delay + self.connector.timeout > deadline or \
                    (decision is not None and now + delay >= decision)
                if attempt == self.connector.retries or out_of_time:
                    # A timeout the decision's deadline cut short says nothing about the provider.
                    if not (error.code == "TIMEOUT" and timeout < self.connector.timeout):
                        self.breaker.record(False)
                    raise
                self.sleep(delay)
                delay *= 2
                continue
            except ConnectorError:
                self.breaker.record(False)
                raise
            except Exception as error:  # noqa: BLE001 — a bug in a plugin is a failed call, not a crash
                self.breaker.record(False)
                raise ConnectorError("FAILED", f"{type(error).__name__} in {name}") from None
            self.breaker.record(True)
            return result
        raise AssertionError("unreachable")  # pragma: no cover
