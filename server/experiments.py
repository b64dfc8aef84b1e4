"""Champion/challenger experiments: which arm decides a request, and shadow challengers beside it.

An experiment runs on one policy: the **champion** is the policy's active revision, each
**challenger** a stored revision with a traffic share (90/10), and a **shadow** challenger (share 0)
is evaluated beside the arm that decided, on a sampled fraction of requests, without touching the
answer. Assignment is deterministic: sha256(salt:key) of the input field the experiment names (the
CNPJ or CPF) picks one of 10,000 buckets, and each arm owns ranges of buckets; a customer meets the
same arm for the life of the experiment, and a change of shares moves only the buckets it must
(server.experiment_store.rebalance).

On the request path there is only a dictionary lookup, a hash (`route`; none when the champion has
every bucket) and a deque append. Recording which arm decided happens on one background thread
(`ExperimentWorker`); the shadows are evaluated by a child process (server.shadow_process: off this
process's GIL and core) or, until it is ready or when it is turned off, on that thread: each on the
same validated input, as of the same date, with the connector answers the deciding arm's lookups
got (engine.recorded), so the bureau is asked once, never twice. When the worker falls behind,
shadow evaluations are dropped (counted), never the answer delayed.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field

import msgspec

from regua.engine.connectors import ConnectorError, Connectors
from regua.engine.recorded import RecordedConnectors

from .experiment_store import BUCKETS, ExperimentConflict, ExperimentStore
from .policies import PolicyRejected, PolicyService, source_digest
from .schemas import DecisionExperiment, ShadowDecision
from .shadow_process import Batch, Job, ShadowProcess, arm_row, decision_row, record_jobs
from .store import utc_now

log = logging.getLogger("regua.experiments")
REFRESH_S = 0.5
MAX_BACKLOG = 10_000


def bucket(salt: str, key: str) -> int:
    digest = hashlib.sha256(f"{salt}:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True)
class Arm:
    name: str
    role: str  # champion or challenger
    revision: int | None  # None: the champion, the policy's active revision
    prepared: object | None
    share: int
    sample: float | None
    buckets: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Running:
    name: str
    policy: str
    key_field: str
    salt: str
    arms: tuple[Arm, ...]
    shadows: tuple[Arm, ...]
    # arm name -> its Route, made once (ExperimentService.refresh): a request allocates none
    routes: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def arm_for(self, key) -> Arm:
        if len(self.arms) == 1:  # the champion decides every request (shadows only): no hash to compute
            return self.arms[0]
        b = bucket(self.salt, str(key))
        for arm in self.arms:
            for start, end in arm.buckets:
                if start <= b < end:
                    return arm
        return self.arms[0]


@dataclass(frozen=True)
class Route:
    experiment: Running
    arm: Arm


class ExperimentService:
    def __init__(self, store, policies: PolicyService, worker: bool = True, metrics=None, shadow_process=None):
        """`shadow_process`: (store location, plugin settings, sandbox) to evaluate shadows in a child
        process (server.shadow_process); None: on the worker thread."""
        self.store = ExperimentStore(store)
        self.policies = policies
        self.running: dict[str, Running] = {}  # policy -> its running experiment
        self._generation = -1
        self._compiled: dict[tuple[str, int], object] = {}
        self._lock = threading.Lock()
        # The command line manages experiments without serving: no thread for it.
        self.worker = None
        if worker:
            self.worker = ExperimentWorker(self, metrics=metrics)
            if shadow_process is not None:
                location, plugin_settings, sandbox = shadow_process
                self.worker.process = ShadowProcess(location, plugin_settings, sandbox, self.worker._acknowledged,
                                                    self.worker._lost)

    # ---- the request path ----
    def route(self, policy: str, inputs: dict) -> Route | None:
        running = self.running.get(policy)
        if running is None:
            return None
        key = inputs.get(running.key_field)
        if key is None:
            return None
        arm = running.arm_for(key)
        return running.routes.get(arm.name) or Route(running, arm)

    def prepared_for(self, route: Route, active):
        """The PreparedPolicy that decides: the champion's is the active one."""
        return route.arm.prepared if route.arm.role == "challenger" else active.prepared

    # ---- loading ----
    def refresh(self, force: bool = False) -> None:
        generation = self.store.generation()
        if not force and generation == self._generation:
            return
        with self._lock:
            running = {}
            for experiment in self.store.live():
                if experiment["status"] != "running":
                    continue
                try:
                    arms = [self._arm(experiment, a) for a in experiment["arms"]]
                except PolicyRejected as rejected:  # a plugin function went away: the experiment waits
                    log.error("experiment %s: a challenger no longer compiles (%s)", experiment["name"], rejected)
                    continue
                live = running[experiment["policy"]] = Running(
                    experiment["name"], experiment["policy"], experiment["key_field"], experiment["salt"],
                    tuple(a for a in arms if a.share > 0), tuple(a for a in arms if a.share == 0))
                live.routes.update({arm.name: Route(live, arm) for arm in live.arms})
            self.running = running
            self._generation = generation

    def _arm(self, experiment: dict, row: dict) -> Arm:
        prepared = None
        if row["role"] == "challenger":
            key = (experiment["policy"], row["revision"])
            prepared = self._compiled.get(key)
            if prepared is None:
                version = self.store.store.policy_version(experiment["policy"], row["revision"])
                prepared = self._compiled[key] = self.policies.compile(version["source"], f"<{experiment['name']}:"
                                                                        f"{row['arm']}>")
        return Arm(row["arm"], row["role"], row["revision"], prepared, row["share"], row["sample"],
                   tuple(tuple(r) for r in row["buckets"]))

    def compiled_arm(self, policy: str, revision: int):
        """A challenger's PreparedPolicy, as compiled for the running experiments."""
        prepared = self._compiled.get((policy, revision))
        if prepared is None:
            version = self.store.store.policy_version(policy, revision)
            prepared = self._compiled[(policy, revision)] = self.policies.compile(version["source"],
                                                                                  f"<{policy}:{revision}>")
        return prepared

    # ---- management (validation, then one transaction) ----
    def create(self, request: dict, by: str) -> dict:
        name, policy = request["name"], request["policy"]
        active = self.policies.get(policy)
        if active is None:
            raise ExperimentConflict(404, "UNKNOWN_POLICY", f"no policy named '{policy}' is loaded", "policy")
        fields = {f.name: f.type for f in active.prepared.meta.input_type.fields}
        key_field = request.get("key")
        if key_field is None:
            key_field = next((n for n, t in fields.items() if str(t) in ("cpf", "cnpj")), None)
        if key_field not in fields:
            raise ExperimentConflict(400, "INVALID_KEY", f"'{key_field}' is not an input of policy '{policy}'", "key")
        arms = [{"arm": "champion", "role": "champion", "revision": None, "share": 0, "sample": None}]
        sources: dict[str, tuple[str, str, str]] = {}
        for index, challenger in enumerate(request["challengers"]):
            where = f"challengers[{index}]"
            arm_name = challenger["name"]
            if arm_name in {a["arm"] for a in arms}:
                raise ExperimentConflict(400, "DUPLICATE_ARM", f"two arms are named '{arm_name}'", f"{where}.name")
            prepared, revision = self._challenger(policy, challenger, where)
            if prepared.name != policy:
                raise ExperimentConflict(400, "CHALLENGER_POLICY", f"the challenger is policy '{prepared.name}', "
                                         f"not '{policy}'", f"{where}.source")
            differs = _input_difference(active.prepared, prepared)
            if differs:
                raise ExperimentConflict(400, "CHALLENGER_INPUTS", f"the challenger's inputs differ from the "
                                         f"champion's: {differs}", f"{where}")
            share = _basis_points(challenger.get("share", 0), f"{where}.share")
            sample = challenger.get("sample")
            if sample is None and share == 0:
                sample = 1.0  # a shadow sees every request unless sampled
            if sample is not None and not _is_fraction(sample):  # given to any arm, it must make sense
                raise ExperimentConflict(400, "INVALID_SAMPLE", "a shadow challenger's sample is a fraction in (0, 1]",
                                         f"{where}.sample")
            arms.append({"arm": arm_name, "role": "challenger", "revision": revision, "share": share,
                         "sample": sample if share == 0 else None})
            if revision is None:
                sources[arm_name] = (prepared.version, challenger["source"], source_digest(challenger["source"]))
        champion_share = request.get("champion_share")
        if champion_share is None:
            champion_share = 100 - sum(a["share"] for a in arms[1:]) / 100
        arms[0]["share"] = _basis_points(champion_share, "champion_share")
        _check_sum(arms)
        definition = {"name": name, "policy": policy, "key_field": key_field,
                      "salt": request.get("salt") or secrets.token_hex(8), "champion_revision": active.revision,
                      "arms": arms}
        experiment = self.store.create(definition, sources, by)
        self.refresh(force=True)
        return experiment

    def _challenger(self, policy: str, challenger: dict, where: str):
        if challenger.get("source") is not None:
            try:
                return self.policies.compile(challenger["source"], f"<{challenger['name']}>"), None
            except PolicyRejected as rejected:
                raise ExperimentConflict(422, "CHALLENGER_REJECTED", "the challenger failed its checks: "
                                         + "; ".join(f"{e['location']}: {e['message']}" for e in rejected.to_list()),
                                         f"{where}.source") from None
        revision = challenger.get("revision")
        version = self.store.store.policy_version(policy, revision) if revision is not None else None
        if version is None:
            raise ExperimentConflict(400, "UNKNOWN_REVISION", f"policy '{policy}' has no revision {revision}; give a "
                                     "`source` or an existing `revision`", f"{where}.revision")
        try:
            return self.policies.compile(version["source"], f"<{challenger['name']}>"), revision
        except PolicyRejected:
            raise ExperimentConflict(422, "CHALLENGER_REJECTED", f"revision {revision} no longer compiles",
                                     f"{where}.revision") from None

    def set_shares(self, name: str, shares: dict[str, float], samples: dict[str, float], by: str) -> dict:
        experiment = self.store.get(name)
        if experiment is None:
            raise ExperimentConflict(404, "UNKNOWN_EXPERIMENT", f"no experiment named '{name}'")
        arms = {a["arm"]: dict(a) for a in experiment["arms"]}
        for arm in list(shares) + list(samples):
            if arm not in arms:
                raise ExperimentConflict(400, "UNKNOWN_ARM", f"experiment '{name}' has no arm '{arm}'", f"shares.{arm}")
        points = {arm: _basis_points(value, f"shares.{arm}") for arm, value in shares.items()}
        for arm, value in points.items():
            arms[arm]["share"] = value
        for arm, sample in samples.items():
            if not _is_fraction(sample):
                raise ExperimentConflict(400, "INVALID_SAMPLE", "a sample is a fraction in (0, 1]", f"samples.{arm}")
        if arms["champion"]["share"] == 0:
            raise ExperimentConflict(400, "INVALID_SHARES", "the champion keeps a share: promote a challenger "
                                     "instead", "shares.champion")
        _check_sum(list(arms.values()))
        updated = self.store.set_shares(name, points, samples, by)
        self.refresh(force=True)
        return updated

    def set_status(self, name: str, status: str, by: str) -> dict:
        updated = self.store.set_status(name, status, by)
        self.refresh(force=True)
        return updated

    def promote(self, name: str, arm: str, by: str) -> dict:
        experiment = self.store.get(name)
        if experiment is not None:
            row = next((a for a in experiment["arms"] if a["arm"] == arm and a["role"] == "challenger"), None)
            if row is not None:  # compiled before the switch: a challenger that no longer compiles stays out
                version = self.store.store.policy_version(experiment["policy"], row["revision"])
                try:
                    self.policies.compile(version["source"], f"<{name}:{arm}>")
                except PolicyRejected:
                    raise ExperimentConflict(422, "CHALLENGER_REJECTED", "the challenger no longer compiles",
                                             "arm") from None
        updated = self.store.promote(name, arm, by)
        self.policies.refresh(force=True)
        self.refresh(force=True)
        return updated


def _basis_points(value, location: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise ExperimentConflict(400, "INVALID_SHARES", "a share is a percentage from 0 to 100", location)
    points = round(value * 100)
    if abs(points - value * 100) > 1e-6:
        raise ExperimentConflict(400, "INVALID_SHARES", "a share has at most two decimals (12.25)", location)
    return points


def _is_fraction(value) -> bool:
    """A sample: a number in (0, 1] (NaN and infinities are not)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= 1


def _check_sum(arms: list[dict]) -> None:
    total = sum(a["share"] for a in arms)
    if total != BUCKETS:
        raise ExperimentConflict(400, "INVALID_SHARES", f"the shares sum to {total / 100:g}%, not 100%", "shares")


def _input_difference(champion, challenger) -> str | None:
    mine = {f.name: (str(f.type), f.required) for f in champion.meta.input_type.fields}
    theirs = {f.name: (str(f.type), f.required) for f in challenger.meta.input_type.fields}
    if mine == theirs:
        return None
    missing = sorted(set(mine) - set(theirs))
    extra = sorted(set(theirs) - set(mine))
    changed = sorted(n for n in set(mine) & set(theirs) if mine[n] != theirs[n])
    parts = [f"missing {', '.join(missing)}" if missing else "", f"extra {', '.join(extra)}" if extra else "",
             f"different type or requiredness of {', '.join(changed)}" if changed else ""]
    return "; ".join(p for p in parts if p)


def decision_experiment(service: ExperimentService | None, row: dict) -> DecisionExperiment | None:
    """The arm that made a stored decision, as its answer named it (the `experiment` of the stored
    body), with the shadow decisions the worker recorded beside it; None when no experiment
    touched the decision (or the server runs none: a PostgreSQL store)."""
    if '"experiment":{' not in row["body"]:  # most decisions: no decoding
        return None
    arm = msgspec.json.decode(row["body"]).get("experiment")
    if not isinstance(arm, dict):  # the text was inside a value (a reason's message)
        return None
    shadows = []
    if service is not None:
        if service.worker is not None:
            service.worker.wait_idle(2.0)  # read your own writes, as for the decision log
        shadows = [ShadowDecision(s["arm"], s["revision"], s["outcome"], msgspec.json.decode(s["reasons"] or "[]"),
                                  s["outcome"] == row["outcome"])
                   for s in service.store.for_decision(row["id"]) if s["shadow"] and s["experiment"] == arm["experiment"]]
    return DecisionExperiment(arm["experiment"], arm["arm"], arm["role"], shadows)


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
