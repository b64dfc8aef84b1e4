"""Prometheus metrics (prometheus-client): decisions, latency, connector calls, errors, cache hits.

With several workers, `regua serve` sets PROMETHEUS_MULTIPROC_DIR before they start, and
/metrics aggregates every worker's numbers (prometheus_client multiprocess mode).
Labels carry policy, outcome and connector names only: never a document or a person.
"""

from __future__ import annotations

import bisect
import collections
import math
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # the *_created series double the output and nobody graphs them

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self):
        # A private registry per app: several apps in one process (tests) do not collide.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter("regua_decisions", "Decisions made, by policy and outcome",
                                 ["policy", "outcome"], registry=r)
        self.latency = Histogram("regua_evaluation_seconds", "Time to evaluate one request, by policy",
                                 ["policy"], buckets=LATENCY_BUCKETS, registry=r)
        self.connector_calls = Counter("regua_connector_calls", "Connector calls, by connector and status",
                                       ["connector", "status"], registry=r)
        self.connector_errors = Counter("regua_connector_errors", "Failed connector calls, by connector and code",
                                        ["connector", "code"], registry=r)
        self.cache_hits = Counter("regua_connector_cache_hits", "Connector answers served from the cache",
                                  ["connector"], registry=r)
        self.request_errors = Counter("regua_request_errors", "Rejected requests, by error code", ["code"],
                                      registry=r)
        self.policy_reloads = Counter("regua_policy_reloads", "Policy files reloaded, by result", ["result"],
                                      registry=r)
        self.evaluations_moved_to_thread = Counter(
            "regua_evaluations_moved_to_thread",
            "Evaluations begun on the event loop and made again on a worker thread (a lookup had to wait)",
            registry=r)
        # By route template (/decisions/{decision_id}), never the concrete path: no document or id
        # reaches a label, and the number of series stays the number of routes.
        self.http_latency = Histogram("regua_http_request_seconds",
                                      "Time from request to the end of the response, by method, route and status",
                                      ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.decision_backlog = Gauge("regua_decision_log_backlog", "Decisions waiting to be written",
                                      registry=r, multiprocess_mode="livesum")
        self.shadow = ShadowMetrics(r)
        self._children: dict = {}
        self._hits: dict = {}  # connector -> its cache-hit counter's adder

    def observe(self, policy: str, outcome: str, seconds: float, calls) -> None:
        key = (policy, outcome)
        children = self._children.get(key)
        if children is None:
            latency = self.latency.labels(policy)
            children = self._children[key] = (_adder(self.decisions.labels(policy, outcome)), *_histogram(latency))
        count, add_sum, bounds, buckets = children
        count(1)
        add_sum(seconds)
        buckets[bisect.bisect_left(bounds, seconds)](1)  # the first bucket whose bound is >= seconds
        for call in calls:
            key = (call.connector, call.status)
            counter = self._children.get(key)
            if counter is None:
                counter = self._children[key] = _adder(self.connector_calls.labels(call.connector, call.status))
            counter(1)
            if call.error:
                self.connector_errors.labels(call.connector, call.error).inc()
            if call.cached:
                hits = self._hits.get(call.connector)
                if hits is None:
                    hits = self._hits[call.connector] = _adder(self.cache_hits.labels(call.connector))
                hits(1)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = _histogram(self.http_latency.labels(method, route, str(status)))
        add_sum, bounds, buckets = child
        add_sum(seconds)
        buckets[bisect.bisect_left(bounds, seconds)](1)

    def render(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# One POST /evaluate observes a decision, its latency and each lookup: through prometheus-client's
# public inc()/observe(), five method calls, each with its checks, and a Python loop over the
# latency buckets. These give the same updates as bound methods of the children's values
# (the `_value`, `_sum`, `_buckets` and `_upper_bounds` prometheus-client has kept since 0.4),
# falling back to the public methods if a future version stores them otherwise
# (tests/test_server_observability.py checks the exposition).
def _adder(counter):
    value = getattr(counter, "_value", None)
    return value.inc if callable(getattr(value, "inc", None)) else counter.inc


def _histogram(histogram) -> tuple:
    """(add to the sum, bucket bounds, one adder per bucket): Histogram.observe(x) is add(x), then
    1 added to the first bucket whose bound is >= x (the last bound is +Inf)."""
    total, bounds, buckets = (getattr(histogram, name, None) for name in ("_sum", "_upper_bounds", "_buckets"))
    if callable(getattr(total, "inc", None)) and isinstance(bounds, list) and isinstance(buckets, list) \
            and len(bounds) == len(buckets) and bounds and bounds[-1] == math.inf:
        return total.inc, bounds, [bucket.inc for bucket in buckets]
    return histogram.observe, _NO_BUCKETS, [lambda _amount: None]


_NO_BUCKETS = [math.inf]  # _histogram without the internals: its "sum" is observe() itself


class ShadowMetrics:
    """The experiment worker's shadow jobs (server.experiment_worker.ExperimentWorker): one job is one
    decision whose shadow challengers are to be evaluated. Each such decision is either queued or
    dropped (the queue was full); a queued one ends completed or failed. Labels are experiment and
    arm names (operator-chosen, never personal data)."""

    def __init__(self, registry: CollectorRegistry):
        r = registry
        self._queued = Counter("regua_shadow_jobs_queued", "Decisions queued for their shadow challengers",
                               ["experiment"], registry=r)
        self._completed = Counter("regua_shadow_jobs_completed", "Decisions whose shadow challengers were "
                                  "evaluated and recorded", ["experiment"], registry=r)
        self._dropped = Counter("regua_shadow_jobs_dropped", "Decisions whose shadow challengers were not "
                                "evaluated because the shadow queue was full", ["experiment"], registry=r)
        self._failed = Counter("regua_shadow_jobs_failed", "Decisions whose shadow results could not be recorded",
                               ["experiment"], registry=r)
        self._backlog = Gauge("regua_shadow_backlog", "Decisions waiting for the experiment worker",
                              registry=r, multiprocess_mode="livesum")
        self._seconds = Histogram("regua_shadow_evaluation_seconds", "Time to evaluate one shadow challenger",
                                  ["experiment", "arm"], buckets=LATENCY_BUCKETS, registry=r)
        self._lag = Histogram("regua_shadow_lag_seconds", "Time from the answer to the shadow decisions being "
                              "recorded", ["experiment"], buckets=LATENCY_BUCKETS, registry=r)
        self._children: dict = {}

    def _child(self, metric, *labels):
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def queued(self, experiment: str, count: int = 1) -> None:
        self._child(self._queued, experiment).inc(count)

    def dropped(self, experiment: str) -> None:
        self._child(self._dropped, experiment).inc()

    def completed(self, experiment: str, lag: float) -> None:
        self.completed_many(experiment, [lag])

    def completed_many(self, experiment: str, lags: list[float]) -> None:
        """A batch's decisions (one call per batch: the worker's reader thread holds the GIL less)."""
        self._child(self._completed, experiment).inc(len(lags))
        observe_many(self._child(self._lag, experiment), lags)

    def failed(self, experiment: str) -> None:
        self._child(self._failed, experiment).inc()

    def evaluated(self, experiment: str, arm: str, seconds: float) -> None:
        self._child(self._seconds, experiment, arm).observe(seconds)

    def evaluated_many(self, experiment: str, arm: str, seconds: list[float]) -> None:
        observe_many(self._child(self._seconds, experiment, arm), seconds)

    def backlog(self, waiting: int) -> None:
        self._backlog.set(waiting)


def observe_many(histogram, values: list[float]) -> None:
    """`histogram.observe(v)` for each value, with one increment per bucket and one of the sum: the
    same counts, a few calls per batch instead of two per value (through _histogram)."""
    add_sum, bounds, buckets = _histogram(histogram)
    if bounds is _NO_BUCKETS:
        for value in values:
            add_sum(value)
        return
    counts = collections.Counter(bisect.bisect_left(bounds, value) for value in values)
    add_sum(sum(values))
    for index, count in counts.items():
        buckets[index](count)


class RequestTimingMiddleware:
    """Times every HTTP request into `regua_http_request_seconds`: a bare ASGI wrapper, outermost of
    the route's middleware, so authentication and error answers are timed too. Requests that match
    no route (404) never reach a route's middleware and are not timed."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except Exception as error:
            # Answered by the exception handlers outside this middleware: an ApiError carries its
            # status, Litestar's HTTPException its status_code; anything else becomes a 500.
            status = getattr(error, "status", None) or getattr(error, "status_code", None) or 500
            raise
        finally:
            self.metrics.observe_request(scope["method"], scope.get("path_template") or scope["path"], status,
                                         time.perf_counter() - started)
