"""The experiment worker: one thread that records which arm made each decision and has the shadow
challengers evaluated beside it (server.experiments routes the requests; server.shadow_process
evaluates the shadows off this process's GIL when it can)."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING

from regua.engine.connectors import ConnectorError, Connectors
from regua.engine.recorded import RecordedConnectors

from .experiment_store import BUCKETS, bucket
from .shadow_process import Batch, Job, ShadowProcess, arm_row, decision_row, record_jobs
from .store import utc_now

if TYPE_CHECKING:
    from .experiments import Arm, ExperimentService, Route, Running

log = logging.getLogger("regua.experiments")
REFRESH_S = 0.5  # how often the worker reloads the running experiments
MAX_BACKLOG = 10_000


class ExperimentWorker:
    """One thread: records which arm made each decision and has the shadow challengers evaluated, in
    batches: by a child process (server.shadow_process, `process` given: the serving process's GIL
    and core stay the answers') or, without one, on this thread.

    The queue is bounded for shadow work only: past `max_backlog` decisions waiting or in the
    child's hands, a decision's arm is still recorded but its shadow evaluations are dropped
    (counted in `regua_shadow_jobs_dropped`), so a slow shadow never delays an answer nor grows the
    memory without bound. The counters and the shadow latency go to the server's Prometheus metrics
    (server.metrics.ShadowMetrics) when given; the request path only appends to a deque.
    """

    def __init__(self, service: ExperimentService, interval: float = 0.05, max_backlog: int = MAX_BACKLOG,
                 metrics=None, process: ShadowProcess | None = None):
        self.service = service
        self.interval = interval
        self.max_backlog = max_backlog
        self.metrics = metrics
        self.process = process
        self._jobs: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0  # taken from the queue, not yet recorded (here or in the child)
        self._sent: dict[int, tuple] = {}  # batch number -> its jobs' (experiment, queued at, shadows), the batch
        self._replayers: dict[tuple[str, int], tuple] = {}  # shadows evaluated here from the child's strings
        self._seq = 0
        self.sent = 0  # batches the child process recorded or is recording
        self.dropped = 0
        self.failures = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="regua-experiments", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Jobs waiting or being recorded."""
        return len(self._jobs) + self._busy

    def submit(self, route: Route, decision_id: str, decision, inputs: dict, today, answers: str | None,
               document_hash: str | None, input_json: str | None = None, body: str | None = None) -> None:
        """On the request path: a deque append (and, only when behind, the dropped counter). With a
        child process and the answer's `body` and `input_json`, the job keeps only strings: the
        Decision and the validated input die with the request, as without an experiment (objects
        kept alive until the worker takes them are what the garbage collector scans)."""
        shadows = bool(route.experiment.shadows)
        if shadows and len(self._jobs) + self._busy >= self.max_backlog:
            shadows = False  # behind: the arm is recorded, the shadows are not evaluated
            self.dropped += 1
            if self.metrics is not None:
                self.metrics.dropped(route.experiment.name)
        if self.process is not None and body is not None and input_json is not None:
            decision = inputs = None  # the child reads the body and the input's text
        self._jobs.append((route, decision_id, decision, inputs, today, answers, document_hash, shadows,
                           input_json, body, time.perf_counter()))

    def _run(self) -> None:
        last_refresh = 0.0
        while not self._stop:
            self._wake.wait(self.interval)
            self._wake.clear()
            if time.monotonic() - last_refresh > REFRESH_S:
                last_refresh = time.monotonic()
                try:
                    self.service.refresh()
                except Exception:  # a store hiccup must not end the thread
                    log.exception("experiments: refresh failed")
                if self.process is not None and any(r.shadows for r in self.service.running.values()):
                    self.process.start()  # ready by the time shadows come (no-op when it runs)
            self._drain()

    def _drain(self) -> None:
        jobs = []
        while self._jobs:
            jobs.append(self._jobs.popleft())
        if not jobs:
            return
        with self._idle:
            self._busy += len(jobs)
        if self.metrics is not None:
            queued = collections.Counter(job[0].experiment.name for job in jobs if job[7])
            for name, count in queued.items():
                self.metrics.queued(name, count)
            self.metrics.backlog(len(self._jobs) + self._busy)
        if self.process is not None and any(job[7] for job in jobs):
            self.process.start()  # no-op when it runs; until it is ready, shadows are evaluated here
        if self.process is not None and all(job[2] is None for job in jobs) and self._send(jobs):
            return
        try:
            rows, now = [], utc_now()
            light = [_job(job) for job in jobs if job[2] is None]
            if light:  # the child is not there: the same work on this thread
                light_rows, times = record_jobs(light, now, self._arm_policy)
                rows.extend(light_rows)
                self._evaluated([(experiment, arm, seconds) for (experiment, arm), seconds in times.items()])
            for job in jobs:
                if job[2] is not None:
                    rows.extend(self._rows(*job[:-3], now))
                    time.sleep(0)  # let the event loop take the GIL between jobs: answers come first
            if rows:
                self.service.store.record(rows)
            self._completed([(job[0].experiment.name, job[-1], job[7]) for job in jobs])
        except Exception:  # counted and logged; the answers were already given
            self._failed([(job[0].experiment.name, job[-1], job[7]) for job in jobs])
            log.exception("experiments: recording %d decisions failed", len(jobs))
        finally:
            self._release(len(jobs))

    def _arm_policy(self, _arm: str, policy: str, revision: int):
        """A shadow arm's compiled policy (the service's) and connectors replaying recorded answers."""
        found = self._replayers.get((policy, revision))
        if found is None:
            prepared = self.service.compiled_arm(policy, revision)
            found = self._replayers[(policy, revision)] = (
                prepared, RecordedConnectors([spec.qualified_name for spec in prepared.meta.connectors]))
        return found

    def _send(self, jobs: list) -> bool:
        """The decisions as the strings we have, grouped in one batch: to the child."""
        self._seq += 1
        batch = Batch(self._seq, utc_now(), [_job(job) for job in jobs])
        self._sent[self._seq] = ([(job[0].experiment.name, job[-1], job[7]) for job in jobs], batch)
        if self.process.send(batch):
            self.sent += 1
            return True
        del self._sent[self._seq]
        return False

    def _acknowledged(self, seq: int, evaluated: list, error: str | None) -> None:
        """From the child (on the process's reader thread): the batch is recorded, or failed."""
        jobs, _batch = self._sent.pop(seq, ([], None))
        self._evaluated(evaluated)
        if error is None:
            self._completed(jobs)
        else:
            self._failed(jobs)
            log.error("experiments: the shadow process could not record %d decisions: %s", len(jobs), error)
        self._release(len(jobs))

    def _evaluated(self, evaluated: list) -> None:
        if self.metrics is not None:
            for experiment, arm, seconds in evaluated:
                self.metrics.evaluated_many(experiment, arm, seconds)

    def _lost(self, seqs: list[int]) -> None:
        """The child died holding these batches: their shadows are lost (failed), but which arm made
        each decision is recorded here."""
        for seq in seqs:
            batch = self._sent.get(seq, ([], None))[1]
            try:
                if batch is not None and batch.jobs:
                    self.service.store.record([arm_row(job, batch.now) for job in batch.jobs])
            except Exception:  # counted with the batch's failure below
                log.exception("experiments: recording %d arms after the shadow process ended failed", len(batch.jobs))
            self._acknowledged(seq, [], "the process ended")

    def _completed(self, jobs: list) -> None:
        if self.metrics is None:
            return
        done = time.perf_counter()
        lags: dict[str, list[float]] = {}
        for experiment, queued_at, shadows in jobs:
            if shadows:
                lags.setdefault(experiment, []).append(done - queued_at)
        for experiment, values in lags.items():
            self.metrics.completed_many(experiment, values)

    def _failed(self, jobs: list) -> None:
        self.failures += 1
        if self.metrics is not None:
            for experiment, _, shadows in jobs:
                if shadows:
                    self.metrics.failed(experiment)

    def _release(self, count: int) -> None:
        with self._idle:
            self._busy -= count
            self._idle.notify_all()
        if self.metrics is not None:
            self.metrics.backlog(len(self._jobs) + self._busy)

    def _rows(self, route: Route, decision_id, decision, inputs, today, answers, document_hash, shadows,
              now) -> list[tuple]:
        experiment = route.experiment
        rows = [_row(experiment.name, route.arm, 0, decision_id, decision, document_hash, now)]
        if not shadows:
            return rows
        replay = None
        for shadow in experiment.shadows:
            if not _sampled(experiment, shadow, decision_id):
                continue
            if replay is None:  # the deciding arm's answers: the shadow never makes a lookup of its own
                replay = _Replay(decision.connector_calls)
            started = time.perf_counter()
            shadowed = shadow.prepared.evaluate_validated(inputs, connectors=replay.connectors(shadow.prepared),
                                                          as_of=today)
            if self.metrics is not None:
                self.metrics.evaluated(experiment.name, shadow.name, time.perf_counter() - started)
            rows.append(_row(experiment.name, shadow, 1, decision_id, shadowed, document_hash, now))
        return rows

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Until everything submitted is recorded (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._jobs and not self._busy:
                return True
            self._wake.set()
            with self._idle:
                self._idle.wait(0.02)
        return False

    def close(self) -> None:
        self.wait_idle()
        self._stop = True
        self._wake.set()
        if self.process is not None:
            self.process.close()


def _job(job: tuple) -> Job:
    """A queued decision as the child takes it: strings, and the shadows sampled for it."""
    route, decision_id, _decision, _inputs, today, answers, document_hash, shadows, input_json, body, _ = job
    experiment, arm = route.experiment, route.arm
    arms = [(s.name, experiment.policy, s.revision) for s in experiment.shadows
            if _sampled(experiment, s, decision_id)] if shadows else []
    return Job(experiment.name, arm.name, arm.revision, decision_id, body, input_json, answers, today.isoformat(),
               document_hash, arms)


def _sampled(experiment: Running, shadow: Arm, decision_id: str) -> bool:
    return shadow.sample >= 1 or bucket(experiment.salt + ":sample", decision_id) < shadow.sample * BUCKETS


class _Replay:
    """Connectors answering a shadow's lookups with what the deciding arm's lookups got, matched by
    their arguments in memory (nothing is masked: nothing leaves the process). A lookup the deciding
    arm did not make fails with NOT_RECORDED: a shadow never queries a bureau itself."""

    def __init__(self, calls):
        self.calls = {(call.connector, call._args): call for call in calls}

    def connectors(self, prepared) -> Connectors:
        return Connectors({spec.qualified_name: _Answer(self.calls, spec.qualified_name)
                           for spec in prepared.meta.connectors})


class _Answer:
    inline = True
    __slots__ = ("calls", "name")

    def __init__(self, calls: dict, name: str):
        self.calls = calls
        self.name = name

    def __call__(self, *args):
        call = self.calls.get((self.name, args))
        if call is None:
            raise ConnectorError("NOT_RECORDED", f"{self.name}: the deciding arm did not make this lookup")
        if call.status != "ok":
            code = str(call.error or "FAILED")
            raise ConnectorError(code.removeprefix("CONNECTOR_"), "failed for the deciding arm")
        return call.answer


def _row(experiment: str, arm: Arm, shadow: int, decision_id: str, decision, document_hash, now) -> tuple:
    return decision_row(experiment, arm.name, arm.revision, shadow, decision_id, decision, document_hash, now)
