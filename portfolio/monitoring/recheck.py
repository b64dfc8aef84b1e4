"""Portfolio re-check: every customer (or a segment) through their monitoring policy, as a
`recheck` event, with a budget on paid bureau queries.

Two passes: the first evaluates every customer whose lookups the cache can answer (or who needs
none), for free; the second evaluates the others with paid queries until the budget is spent,
then stops. A customer whose evaluation would need a query beyond the budget is left for the
next re-check, not decided on missing data.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Iterable, Iterator

from regua import dialect
from regua.engine.connectors import Answer, ConnectorError, Connectors

from .features import all_behaviour, behaviour
from .monitor import Monitor

NOT_CACHED = "NOT_CACHED"
BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"


class Budget:
    """Counts bureau queries; in `cache_only` mode a query the cache cannot answer is refused."""

    def __init__(self, limit: int, cache_has: Callable[[str, str], bool]):
        self.limit = limit
        self.cache_has = cache_has
        self.cache_only = True
        self.paid = 0
        self.cached = 0
        self.cost = Decimal("0")

    def wrap(self, connectors: Connectors) -> Connectors:
        wrapped = Connectors()
        for name in connectors.names():
            impl = connectors.get(name)
            wrapped.register(name, self._guard(name, impl) if name.startswith("bureau.") else impl,
                             inline=connectors.is_inline(name))
        return wrapped

    def _guard(self, name: str, impl):
        def call(document):
            if not self.cache_has(name, document):
                if self.cache_only:
                    raise ConnectorError(NOT_CACHED, "left for the paid pass")
                if self.paid >= self.limit:
                    raise ConnectorError(BUDGET_EXHAUSTED, "the re-check's budget of paid queries is spent")
            answer = impl(document)
            if answer.__class__ is Answer and answer.cached:
                self.cached += 1
            else:
                self.paid += 1
                cost = answer.cost if answer.__class__ is Answer else None
                self.cost += Decimal(cost or "0")
            return answer

        return call


@dataclass
class RecheckSummary:
    as_of: str
    customers: int = 0
    evaluated: int = 0
    outcomes: Counter = field(default_factory=Counter)
    limit_changes: int = 0
    raised: int = 0
    reduced: int = 0
    blocked: int = 0
    reviews: int = 0
    notifications: int = 0
    notifications_failed: int = 0
    paid_queries: int = 0
    cached_queries: int = 0
    cost: str = "0"
    budget: int = 0
    stopped_by_budget: bool = False
    not_reached: int = 0
    no_policy: int = 0
    dry_run: bool = False
    #: One entry per customer decided: what the operator acts on (ids only, never names or documents).
    results: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["outcomes"] = dict(sorted(self.outcomes.items()))
        return data


def _customer_result(customer_id: str, outcome: str, result) -> dict:
    before, after = result.limit_before or {}, result.limit_after or {}
    return {"customer_id": customer_id, "outcome": outcome, "decision_id": result.decision_id,
            # a customer who had no limit yet has none "before" (not R$ 0,00)
            "limit_before": before.get("amount") if before.get("set", True) else None,
            "limit_after": after.get("amount"),
            "blocked": bool(after.get("blocked")), "review": bool(result.review),
            "reasons": [r["code"] for r in result.reasons if r.get("code")]}


def _delta(summary: RecheckSummary, result) -> None:
    before, after = result.limit_before or {}, result.limit_after or {}
    if before == after or not before:
        return
    if before.get("amount") == after.get("amount") and before.get("blocked") == after.get("blocked"):
        return
    summary.limit_changes += 1
    if after["blocked"] and not before["blocked"]:
        summary.blocked += 1
    elif Decimal(after["amount"]) > Decimal(before["amount"]):
        summary.raised += 1
    elif Decimal(after["amount"]) < Decimal(before["amount"]):
        summary.reduced += 1


def _codes(decision) -> set[str]:
    return {call.error for call in decision.connector_calls if call.error}


def _with_behaviour(db, customers: list[dict], as_of: dt.date) -> Iterator[tuple[dict, dict]]:
    """Each customer (in id order) with its payment behaviour, from one streaming query."""
    stream = all_behaviour(db, as_of)
    pending = next(stream, None)
    for customer in customers:
        while pending is not None and pending[0] < customer["id"]:  # both in SQLite's binary (code point) order
            pending = next(stream, None)
        if pending is not None and pending[0] == customer["id"]:
            yield customer, pending[1]
        else:  # no receivable yet
            yield customer, behaviour([], as_of)


def recheck(monitor: Monitor, as_of: dt.date, now: dt.datetime, *, segment: str | None = None, budget: int = 100,
            cache_has: Callable[[str, str], bool] = lambda name, document: False, dry_run: bool = False,
            progress: Callable[[int, int], None] | None = None) -> RecheckSummary:
    sql = "select * from customers" + (" where segment = ?" if segment else "") + " order by id"
    customers = list(monitor.store.db.query(sql, [segment] if segment else []))
    summary = RecheckSummary(as_of.isoformat(), customers=len(customers), budget=budget, dry_run=dry_run)
    meter = Budget(budget, cache_has)
    connectors = meter.wrap(monitor.connectors or Connectors())
    done = 0
    if not dry_run:  # a dry run sends nothing
        monitor.send(now)  # notifications an earlier pass left behind go first
    reader = dialect.connect(monitor.store.path)  # the behaviour stream reads while the monitor writes
    try:
        # First pass: every customer, streamed with its behaviour; the second: those it left for paid queries.
        work: Iterable[tuple[dict, dict | None]] = _with_behaviour(reader, customers, as_of)
        for paid_pass in (False, True):
            meter.cache_only = not paid_pass
            left = []
            for customer, behaviour_or_inputs in work:
                prepared = monitor.policy_for(customer)
                if prepared is None:
                    summary.no_policy += 1
                    done += 1
                    continue
                inputs = behaviour_or_inputs if paid_pass else \
                    monitor.inputs(customer, as_of, behaviour=behaviour_or_inputs)
                counted = meter.cached
                started = time.perf_counter()
                decision = monitor.evaluate(prepared, inputs, as_of, connectors)
                failures = _codes(decision)
                if "CONNECTOR_" + NOT_CACHED in failures:
                    meter.cached = counted  # evaluated again in the paid pass, where its cache hits count
                    left.append((customer, inputs))
                    continue
                if "CONNECTOR_" + BUDGET_EXHAUSTED in failures:
                    summary.stopped_by_budget = True
                    summary.not_reached = summary.customers - done
                    break
                elapsed = (time.perf_counter() - started) * 1000
                result, _ = monitor.commit(customer, prepared, inputs, decision, now, elapsed, dry_run=dry_run)
                summary.evaluated += 1
                summary.outcomes[decision.outcome] += 1
                summary.results.append(_customer_result(customer["id"], decision.outcome, result))
                summary.reviews += result.review
                summary.notifications += sum(n["status"] != "failed" for n in result.notifications)
                summary.notifications_failed += sum(n["status"] == "failed" for n in result.notifications)
                _delta(summary, result)
                done += 1
                if progress:
                    progress(done, summary.customers)
            if summary.stopped_by_budget:
                break
            work = left
    finally:
        reader.conn.close()
    summary.paid_queries, summary.cached_queries, summary.cost = meter.paid, meter.cached, str(meter.cost)
    return summary
