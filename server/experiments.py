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
(server.experiment_worker); the shadows are evaluated by a child process (server.shadow_process:
off this process's GIL and core) or, until it is ready or when it is turned off, on that thread: each on the
same validated input, as of the same date, with the connector answers the deciding arm's lookups
got (engine.recorded), so the bureau is asked once, never twice. When the worker falls behind,
shadow evaluations are dropped (counted), never the answer delayed.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field

import msgspec

from .experiment_store import BUCKETS, ExperimentConflict, ExperimentStore, bucket
from .experiment_worker import ExperimentWorker
from .policies import PolicyRejected, PolicyService, source_digest
from .schemas import DecisionExperiment, ShadowDecision
from .shadow_process import ShadowProcess

log = logging.getLogger("regua.experiments")


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
