"""The outbox and history rows a run plans are exactly what the straightforward plan gives.

The planner keeps a large plan grouped by what its rows share, reuses a constant step setting's
JSON by identity, memoises a notice's futility and lets the store make each key (plan.py,
store.plan_batch). None of that may change a row: here the plan of a mixed portfolio is worked
out the plain way, one receivable and one step at a time (the planner as it was before those
shortcuts), and compared with what a real run wrote, on both backends."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from collection_harness import portfolio, store_at

from regua.dsl.collection import CONTACT_ACTIONS
from regua.dsl.values import to_json
from regua.engine.compiler import compile_policy
from regua.portfolio.collection import planning_process
from regua.portfolio.collection.facts import iter_facts
from regua.portfolio.collection.guards import notice_is_futile
from regua.portfolio.collection.runner import Runner
from regua.portfolio.collection.settings import CollectionSettings
from regua.portfolio.collection.store import CollectionStore
from regua.portfolio.model import Customer, Payment, Receivable

AS_OF = dt.date(2026, 11, 23)

# Steps out of day order (sorted by the planner), a wait, constant and computed settings, a notice
# that fails to evaluate without payments (a policy error) and may be futile for old debts, with
# a bureau of its own whose longer wait makes it futile sooner.
MIXED = """
policy mixed kind collection version "7"
step aviso at D+15
  when open_amount / paid_amount > 1
  notify_negativation "aviso_negativacao"
  set bureau = "lento"
step lembrete at D-3
  remind "lembrete_vencimento"
step espera at D0
  wait
step cobranca at D+1
  remind "cobranca_atraso"
  set channel = "whatsapp"
step acordo at D+7
  offer_agreement "oferta_acordo"
  set discount = days_late * 1%, instalments = 3
step aviso_sem_pagamento at D+20
  when paid_amount == 0 BRL
  notify_negativation "aviso_negativacao"
step agencia at D+60
  send_to_agency
  set agency = "parceira"
output priority = open_amount / 100 BRL + days_late / 7
"""

REPLACEABLE = CONTACT_ACTIONS - {"notify_negativation"}
SETTINGS = CollectionSettings(policies={"pf": "mixed", "pj": "mixed"}, notice_wait_by_bureau={"lento": 40})


def customers() -> list[Customer]:
    return [Customer(id=f"c{n}", document=doc, name=f"Cliente {n}", uf=uf, channels=["email"])
            for n, (doc, uf) in enumerate([("52998224725", "SP"), ("11222333000181", "RJ"), ("39053344705", "BA")])]


def receivables() -> tuple[list[Receivable], list[Payment]]:
    """Due dates from five years and a little ago (futile notices) to after the run, some partly paid."""
    rows, payments = [], []
    offsets = [-1830, -1826, -1820, -1790, -400, -95, -61, -45, -20, -16, -15, -9, -7, -2, -1, 0, 2, 3, 10]
    for n, offset in enumerate(offsets * 3):
        due = AS_OF + dt.timedelta(days=offset)
        rid = f"t{n:03d}"
        rows.append(Receivable(rid, f"c{n % 3}", f"{100 + 37 * n}.{n % 100:02d}", due - dt.timedelta(days=30), due))
        if n % 4 == 1:
            payments.append(Payment(f"p{n}", rid, f"{10 + n}.50", min(due, AS_OF)))
    return rows, payments


def plain_plan(location: str, policy, as_of: dt.date, now: dt.datetime):
    """The plan the plain way: outbox rows by key, and the history events in the order written."""
    store = CollectionStore(location)
    guards, rules = SETTINGS.guards(), policy.meta.rules
    outbox, superseded, cancelled, failed = {}, [], [], []
    for fact in iter_facts(store.db, as_of):
        fired, errors, outputs, output_errors = policy.evaluate_raw(fact.inputs, as_of)
        if errors or output_errors:
            error = (errors or output_errors)[0][1]
            failed.append((fact.receivable_id, fact.customer_id, None,
                           json.dumps({"message": f"{type(error).__name__}: {error}"[:200]})))
            continue
        priority = outputs.get("priority")
        priority = float(priority) if priority is not None else None
        fired = sorted(fired, key=lambda hit: (rules[hit[0]].day, hit[0]))
        contacts = [index for index, _ in fired if rules[index].action.verb in REPLACEABLE]
        for index, sets in fired:
            rule = rules[index]
            action, key = rule.action.verb, f"{fact.receivable_id}:{rule.name}"
            code = None
            if action in REPLACEABLE and index != contacts[-1]:
                status = "superseded"
                superseded.append((fact.receivable_id, fact.customer_id, key, json.dumps({"step": rule.name})))
            elif action == "notify_negativation" and notice_is_futile(
                    fact.due_date, as_of, fact.uf, str((sets or {}).get("bureau") or SETTINGS.bureau), guards):
                status, code = "cancelled", "TOO_OLD"
                cancelled.append((fact.receivable_id, fact.customer_id, key, json.dumps(
                    {"step": rule.name, "due_date": fact.due_date.isoformat()})))
            else:
                status = "done" if action == "wait" else "pending"
            settings = json.dumps({k: to_json(v) for k, v in sets.items()}, ensure_ascii=False) if sets else "{}"
            outbox[key] = (key, fact.receivable_id, fact.customer_id, rule.name, action, rule.day,
                           rule.action.code, settings, "mixed", "7", as_of.isoformat(), priority, status, code, 0)
    store.close()
    at = now.astimezone(dt.timezone.utc).isoformat(timespec="seconds")
    events = [(at, *row, kind, code) for kind, code, rows in (("superseded", "NEWER_STEP_DUE", superseded),
                                                              ("cancelled", "TOO_OLD", cancelled),
                                                              ("policy_error", "POLICY_ERROR", failed))
              for row in rows]
    return outbox, events


def written(location: str):
    store = CollectionStore(location)
    outbox = {row[0]: tuple(str(v) if isinstance(v, dt.date) else v for v in row) for row in store.db.execute(
        "select key, receivable_id, customer_id, step, action, day, template, settings, policy, policy_version, "
        "planned_on, priority, status, block_code, attempts from outbox").fetchall()}
    events = [(row[0] if isinstance(row[0], str) else row[0].astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
               *row[1:]) for row in store.db.execute(
        "select at, receivable_id, customer_id, key, detail, kind, code from collection_events order by id").fetchall()]
    store.close()
    return outbox, events


@pytest.fixture(params=["in-process", "helper"])
def planning(request, monkeypatch):
    """Plan in the run's process, or in a helper process while the run writes (planning_process.py)."""
    if request.param == "helper":
        # Earlier tests may leave a thread in this process (a connection pool's): forking is safe
        # for this helper, which only reads and plans, so it is allowed here whatever the count.
        monkeypatch.setattr(planning_process, "usable", lambda: True)
        monkeypatch.setattr(Runner, "plan_helper_min", 0)
        calls = []
        monkeypatch.setattr(planning_process, "plans", lambda *args, real=planning_process.plans: calls.append(1)
                            or real(*args))
        yield calls
        assert calls, "the run did not plan in a helper process"
    else:
        monkeypatch.setattr(Runner, "plan_helper_min", 10**9)
        yield None


def test_a_run_writes_exactly_the_plain_plan(tmp_path, collection_backend, planning):
    location = store_at(tmp_path)
    rows, payments = receivables()
    portfolio(location, customers(), rows, payments)
    policy = compile_policy(MIXED, "mixed.regua")
    now = dt.datetime.combine(AS_OF, dt.time(12), dt.timezone.utc)
    expected_outbox, expected_events = plain_plan(location, policy, AS_OF, now)
    kinds = {row[12] for row in expected_outbox.values()} | {event[5] for event in expected_events}
    assert {"pending", "superseded", "done", "cancelled", "policy_error"} <= kinds  # the mix covers every path
    assert len({row[7] for row in expected_outbox.values() if row[3] == "acordo"}) > 3  # computed settings differ

    runner = Runner(location, {"mixed": policy}, None, SETTINGS)
    summary = runner.run(AS_OF, now=now)
    runner.close()
    assert summary.receivables == len(rows) - sum(1 for r in rows if r.issue_date > AS_OF)
    outbox, events = written(location)
    assert outbox == expected_outbox
    assert events == expected_events

    # A later run plans only what became due since, the same way (the steps already planned are `sent`).
    later = AS_OF + dt.timedelta(days=9)
    at = dt.datetime.combine(later, dt.time(12), dt.timezone.utc)
    more_outbox, more_events = plain_plan(location, policy, later, at)
    runner = Runner(location, {"mixed": policy}, None, SETTINGS)
    runner.run(later, now=at)
    runner.close()
    outbox, events = written(location)
    assert outbox == {**{k: v for k, v in more_outbox.items()}, **expected_outbox}
    assert events == expected_events + more_events
