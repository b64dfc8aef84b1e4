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
from collections import Counter
from dataclasses import dataclass, field

from regua.dsl.collection import CONTACT_ACTIONS, PRIORITY
from regua.dsl.values import to_json
from regua.engine.prepared import PreparedPolicy

from .facts import Fact
from .guards import notice_is_futile
from .settings import CollectionSettings

# Contact steps that stand for one another: the latest due replaces the older ones.
REPLACEABLE = CONTACT_ACTIONS - {"notify_negativation"}


@dataclass
class PlanResult:
    """What planning found: the steps (unless counting only), and per receivable the priority and
    any evaluation failure; `counts` are kept either way.

    The steps are kept as the outbox rows they become (a first run over a large portfolio plans
    millions): by (policy, version), tuples in the order of store.PLANNED_COLUMNS. The superseded
    and cancelled ones are also listed for their history events."""

    rows: dict[tuple[str, str], list[tuple]] = field(default_factory=dict)
    superseded_steps: list[tuple[str, str, str, str]] = field(default_factory=list)  # receivable, customer, key, step
    cancelled_steps: list[tuple[Fact, str, str, str]] = field(default_factory=list)  # fact, key, step, code
    priorities: list[tuple[Fact, float | None, str]] = field(default_factory=list)
    failures: list[tuple[Fact, str, str]] = field(default_factory=list)  # fact, code, message
    unrouted: list[Fact] = field(default_factory=list)  # no régua applies to the customer
    counts: Counter = field(default_factory=Counter)  # action -> steps to carry out
    superseded: int = 0
    futile: int = 0  # notices of negativation cancelled: the debt is too old for a negativation to follow


class Planner:
    def __init__(self, policies: dict[str, PreparedPolicy], settings: CollectionSettings):
        self.policies = policies
        self.settings = settings
        for name, policy in policies.items():
            if policy.meta.kind != "collection":
                raise ValueError(f"policy {name} is a {policy.meta.kind} policy, not a collection policy")
        # Per policy, per step (by rule index): what planning needs, computed once.
        self._steps = {name: [(r.name, r.action.verb, r.day, r.action.code, r.action.verb in REPLACEABLE)
                              for r in p.meta.rules] for name, p in policies.items()}
        self._order = {name: [(r.day, i) for i, r in enumerate(p.meta.rules)] for name, p in policies.items()}
        self._routes: dict[tuple[str, str], str | None] = {}
        self._guards = settings.guards()
        # A step's settings as JSON, by their values: most steps of a régua set the same few values,
        # and a first run over a large portfolio plans millions of steps.
        self._settings_json: dict[tuple, str] = {}

    def settings_json(self, sets: dict | None) -> str:
        if not sets:
            return "{}"
        # Keyed by repr, not value: Decimal("1.0") == 1 == True, but each is written its own way.
        key = (tuple(sets), tuple(map(repr, sets.values())))
        cached = self._settings_json.get(key)
        if cached is None:
            cached = json.dumps({k: to_json(v) for k, v in sets.items()}, ensure_ascii=False)
            if len(self._settings_json) < 10_000:  # bounded, whatever a régua computes into its settings
                self._settings_json[key] = cached
        return cached

    def plan_one(self, fact: Fact, as_of: dt.date, result: PlanResult, materialize: bool = True) -> None:
        """Plan one receivable into `result`; with materialize=False (dry runs) only count."""
        route = (fact.segment, fact.person)
        name = self._routes.get(route, "")
        if name == "":
            name = self._routes[route] = self.settings.policy_for(fact.segment, fact.person)
        policy = self.policies.get(name) if name else None
        if policy is None:
            result.unrouted.append(fact)
            return
        fired, errors, outputs, output_errors = policy.evaluate_raw(fact.inputs, as_of)
        if errors or output_errors:
            error = (errors or output_errors)[0][1]
            result.failures.append((fact, "POLICY_ERROR", f"{type(error).__name__}: {error}"[:200]))
            return
        priority = outputs.get(PRIORITY)
        priority = float(priority) if priority is not None else None
        result.priorities.append((fact, priority, name))
        if not fired:
            return
        steps = self._steps[name]
        if len(fired) > 1:
            order = self._order[name]
            fired.sort(key=lambda hit: order[hit[0]])
        latest_contact = next((index for index, _ in reversed(fired) if steps[index][4]), None)
        counts = result.counts
        if materialize:
            rid, cid = fact.receivable_id, fact.customer_id
            group = (name, policy.version)
            rows = result.rows.get(group)
            if rows is None:
                rows = result.rows[group] = []
        for index, sets in fired:
            step, action, day, template, replaceable = steps[index]
            code = None
            if replaceable and index != latest_contact:
                status = "superseded"
                result.superseded += 1
            elif action == "notify_negativation" and notice_is_futile(
                    fact.due_date, as_of, fact.uf, str((sets or {}).get("bureau") or self.settings.bureau), self._guards):
                status, code = "cancelled", "TOO_OLD"
                result.futile += 1
            elif action == "wait":
                status = "done"
            else:
                status = "pending"
                counts[action] += 1
            if materialize:
                key = f"{rid}:{step}"
                rows.append((key, rid, cid, step, action, day, template, self.settings_json(sets), priority, status,
                             code))
                if status == "superseded":
                    result.superseded_steps.append((rid, cid, key, step))
                elif status == "cancelled":
                    result.cancelled_steps.append((fact, key, step, code))


def summarize(result: PlanResult) -> dict:
    """Counts for a plan: by action, superseded, failures and unrouted receivables."""
    return {"receivables": len(result.priorities) + len(result.failures) + len(result.unrouted),
            "planned": sum(result.counts.values()), "by_action": dict(sorted(result.counts.items())),
            "superseded": result.superseded, "futile": result.futile, "policy_errors": len(result.failures),
            "unrouted": len(result.unrouted)}
