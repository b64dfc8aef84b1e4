"""Planning: which steps of its régua each open receivable is due for, as of a date.

A step is due once its day has come and until it has been planned (the policy reads `sent`, so
a step is planned once; engine.codegen adds that guard to every step). When several contact
steps are due at once — a receivable imported late, a run that did not happen — only the most
recent one is sent and the older ones are recorded as superseded: a debtor never receives a
burst of stale messages. Notices and escalations are never superseded: each happens, in order.
A notice of negativation that could never be followed by one (the debt reaches its 5-year limit
before the earliest day a record could open) is written as cancelled (`TOO_OLD`), never sent.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
from collections import Counter
from dataclasses import dataclass, field

from regua.dsl.collection import CONTACT_ACTIONS, PRIORITY
from regua.dsl.values import to_json
from regua.engine.prepared import PreparedPolicy

from .facts import Fact
from .guards import notice_is_futile
from .plan_writes import StepGroup
from .settings import CollectionSettings

# Contact steps that stand for one another: the latest due replaces the older ones.
REPLACEABLE = CONTACT_ACTIONS - {"notify_negativation"}


# The outbox statuses planning writes.
PENDING, SUPERSEDED, CANCELLED, DONE = "pending", "superseded", "cancelled", "done"


@dataclass
class PlanResult:
    """What planning found: the steps (unless counting only), per receivable its place in the
    collectors' queue and any evaluation failure; `counts` are kept either way. Plain values only
    (no Fact): a helper process sends it to the one that writes (planning_process.py).

    A first run over a large portfolio plans millions of steps, so they are kept grouped by what
    their outbox rows share (store.StepGroup: régua, version, step, action, day, template, status,
    block code), each row only (receivable, customer, settings JSON, priority): the store writes
    each group with one statement that binds just those four. The superseded and cancelled steps
    are also listed for their history events, in the order they were planned."""

    steps: dict[StepGroup, list[tuple]] = field(default_factory=dict)
    superseded_events: list[tuple[str, str, str, str]] = field(default_factory=list)  # receivable, customer, key, detail
    cancelled_events: list[tuple[str, str, str, str, str]] = field(default_factory=list)  # code, then as superseded
    queue: dict[str, list[tuple]] = field(default_factory=dict)  # policy -> rows of store.write_queue
    evaluated: int = 0  # receivables evaluated without error
    failures: list[tuple[str, str, str, str]] = field(default_factory=list)  # receivable, customer, code, message
    unrouted: list[str] = field(default_factory=list)  # receivables no régua applies to (by their customer)
    counts: Counter = field(default_factory=Counter)  # action -> steps to carry out
    superseded: int = 0
    futile: int = 0  # notices of negativation cancelled: the debt is too old for a negativation to follow


class _Step:
    """What planning needs of one step of a régua, computed once per planner."""

    __slots__ = ("name", "action", "replaceable", "suffix", "detail", "pending", "superseded", "done", "cancelled",
                 "settings")

    def __init__(self, policy: str, version: str, rule):
        self.name, self.action = rule.name, rule.action.verb
        self.replaceable = self.action in REPLACEABLE
        self.suffix = ":" + rule.name  # the outbox key is "{receivable}:{step}"
        self.detail = json.dumps({"step": rule.name}, ensure_ascii=False)  # a superseded step's event detail
        self.pending, self.superseded, self.done, self.cancelled = (
            StepGroup(policy, version, rule.name, self.action, rule.day, rule.action.code, status, code)
            for status, code in ((PENDING, None), (SUPERSEDED, None), (DONE, None), (CANCELLED, "TOO_OLD")))
        # The last settings this step set, with their JSON: a step that sets constants gets the very
        # same objects from the generated code at every evaluation (see Planner.settings_json).
        self.settings: tuple[tuple, tuple, str] | None = None


class Planner:
    def __init__(self, policies: dict[str, PreparedPolicy], settings: CollectionSettings):
        self.policies = policies
        self.settings = settings
        for name, policy in policies.items():
            if policy.meta.kind != "collection":
                raise ValueError(f"policy {name} is a {policy.meta.kind} policy, not a collection policy")
        # Per policy, per step (by rule index): what planning needs, computed once.
        self._steps = {name: [_Step(name, p.version, r) for r in p.meta.rules] for name, p in policies.items()}
        self._order = {name: [(r.day, i) for i, r in enumerate(p.meta.rules)] for name, p in policies.items()}
        # Steps fire in the order they are written; a régua written in day order needs no sorting.
        self._in_day_order = {name for name, order in self._order.items() if order == sorted(order)}
        self._routes: dict[tuple[str, str], str | None] = {}
        self._guards = settings.guards()
        # A step's settings as JSON, by their values: most steps of a régua set the same few values,
        # and a first run over a large portfolio plans millions of steps.
        self._settings_json: dict[tuple, str] = {}
        # Whether a notice is futile, by (due date, UF, bureau), for the date being planned: a
        # portfolio has a few hundred due dates, and each answer is a calendar computation.
        self._futile: dict[tuple, bool] = {}
        self._futile_on: dt.date | None = None

    def settings_json(self, sets: dict | None, step: _Step | None = None) -> str:
        if not sets:
            return "{}"
        if step is not None:
            # The same objects as last time for this step (a constant `set`): the same JSON. The
            # objects are held by the cache, so an identical object is never a new value.
            last = step.settings
            if last is not None:
                keys, values, text = last
                if len(values) == len(sets) and all(map(operator.is_, values, sets.values())) and \
                        all(map(operator.is_, keys, sets)):
                    return text
        # Keyed by repr, not value: Decimal("1.0") == 1 == True, but each is written its own way.
        key = (tuple(sets), tuple(map(repr, sets.values())))
        cached = self._settings_json.get(key)
        if cached is None:
            cached = json.dumps({k: to_json(v) for k, v in sets.items()}, ensure_ascii=False)
            if len(self._settings_json) < 10_000:  # bounded, whatever a régua computes into its settings
                self._settings_json[key] = cached
        if step is not None:
            step.settings = (tuple(sets), tuple(sets.values()), cached)
        return cached

    def _notice_is_futile(self, fact: Fact, as_of: dt.date, bureau: str) -> bool:
        if self._futile_on != as_of:
            self._futile, self._futile_on = {}, as_of
        key = (fact.due_date, fact.uf, bureau)
        futile = self._futile.get(key)
        if futile is None:
            futile = self._futile[key] = notice_is_futile(fact.due_date, as_of, fact.uf, bureau, self._guards)
        return futile

    def plan_one(self, fact: Fact, as_of: dt.date, result: PlanResult, materialize: bool = True) -> None:
        """Plan one receivable into `result`; with materialize=False (dry runs) only count."""
        route = (fact.segment, fact.person)
        name = self._routes.get(route, "")
        if name == "":
            name = self._routes[route] = self.settings.policy_for(fact.segment, fact.person)
        policy = self.policies.get(name) if name else None
        if policy is None:
            result.unrouted.append(fact.receivable_id)
            return
        inputs = fact.inputs
        fired, errors, outputs, output_errors = policy.evaluate_raw(inputs, as_of)
        if errors or output_errors:
            error = (errors or output_errors)[0][1]
            result.failures.append((fact.receivable_id, fact.customer_id, "POLICY_ERROR",
                                    f"{type(error).__name__}: {error}"[:200]))
            return
        priority = outputs.get(PRIORITY)
        priority = float(priority) if priority is not None else None
        result.evaluated += 1
        if materialize:
            rid, cid = fact.receivable_id, fact.customer_id
            queue = result.queue.get(name)
            if queue is None:
                queue = result.queue[name] = []
            queue.append((rid, cid, priority, inputs["days_late"], str(inputs["open_amount"])))
        if not fired:
            return
        steps = self._steps[name]
        if len(fired) > 1 and name not in self._in_day_order:
            order = self._order[name]
            fired.sort(key=lambda hit: order[hit[0]])
        latest_contact = None
        for index, _ in reversed(fired):
            if steps[index].replaceable:
                latest_contact = index
                break
        counts = result.counts
        groups = result.steps
        for index, sets in fired:
            step = steps[index]
            action = step.action
            if step.replaceable and index != latest_contact:
                status, group = SUPERSEDED, step.superseded
                result.superseded += 1
            elif action == "notify_negativation" and self._notice_is_futile(
                    fact, as_of, str((sets or {}).get("bureau") or self.settings.bureau)):
                status, group = CANCELLED, step.cancelled
                result.futile += 1
            elif action == "wait":
                status, group = DONE, step.done
            else:
                status, group = PENDING, step.pending
                counts[action] += 1
            if materialize:
                rows = groups.get(group)
                if rows is None:
                    rows = groups[group] = []
                rows.append((rid, cid, self.settings_json(sets, step) if sets else "{}", priority))
                if status is SUPERSEDED:
                    result.superseded_events.append((rid, cid, rid + step.suffix, step.detail))
                elif status is CANCELLED:
                    result.cancelled_events.append((group.block_code, rid, cid, rid + step.suffix, json.dumps(
                        {"step": step.name, "due_date": fact.due_date.isoformat()}, ensure_ascii=False)))

def summarize(result: PlanResult) -> dict:
    """Counts for a plan: by action, superseded, failures and unrouted receivables."""
    return {"receivables": result.evaluated + len(result.failures) + len(result.unrouted),
            "planned": sum(result.counts.values()), "by_action": dict(sorted(result.counts.items())),
            "superseded": result.superseded, "futile": result.futile, "policy_errors": len(result.failures),
            "unrouted": len(result.unrouted)}
