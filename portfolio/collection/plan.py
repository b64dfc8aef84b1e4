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
class PlannedStep:
    key: str
    fact: Fact
    step: str
    action: str
    day: int
    template: str | None
    settings: dict
    policy: str
    version: str
    status: str  # pending, superseded or cancelled (never carried out), or done (a `wait` milestone)
    code: str | None = None  # why it is cancelled

    def row(self, as_of: dt.date, priority) -> dict:
        return {"key": self.key, "receivable_id": self.fact.receivable_id, "customer_id": self.fact.customer_id,
                "step": self.step, "action": self.action, "day": self.day, "template": self.template,
                "settings": json.dumps(self.settings, ensure_ascii=False), "policy": self.policy,
                "policy_version": self.version, "planned_on": as_of.isoformat(), "priority": priority,
                "status": self.status, "not_before": None, "attempts": 0, "block_code": self.code}


@dataclass
class PlanResult:
    """What planning found: the steps (unless counting only), and per receivable the priority and
    any evaluation failure; `counts` are kept either way."""

    steps: list[PlannedStep] = field(default_factory=list)
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
        result.priorities.append((fact, float(priority) if priority is not None else None, name))
        if not fired:
            return
        steps = self._steps[name]
        if len(fired) > 1:
            order = self._order[name]
            fired.sort(key=lambda hit: order[hit[0]])
        latest_contact = next((index for index, _ in reversed(fired) if steps[index][4]), None)
        counts = result.counts
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
                settings = {k: to_json(v) for k, v in sets.items()} if sets else {}
                result.steps.append(PlannedStep(f"{fact.receivable_id}:{step}", fact, step, action, day, template,
                                                settings, name, policy.version, status, code))


def summarize(result: PlanResult) -> dict:
    """Counts for a plan: by action, superseded, failures and unrouted receivables."""
    return {"receivables": len(result.priorities) + len(result.failures) + len(result.unrouted),
            "planned": sum(result.counts.values()), "by_action": dict(sorted(result.counts.items())),
            "superseded": result.superseded, "futile": result.futile, "policy_errors": len(result.failures),
            "unrouted": len(result.unrouted)}
