"""The legal guards hold for the whole runner, whatever the policy says: hypothesis drives the real
runner (SQLite file, outbox, dispatcher) through random portfolios, random run moments, random
payments and random delivery outcomes, with a régua that tries to contact every day and to
negativate the day after the due date. Delivery receipts arrive from "providers" between runs:
on time, late, duplicated, or forged (dated before the send, or in the future), and bounces or
failures that send the step through the next channel; debts sit near their 5-year limit too."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from regua.engine.brazil import UFS, is_holiday, zone_of
from regua.engine.compiler import compile_policy
from regua.plugins.contracts import DeliveryReceipt
from regua.portfolio import Portfolio
from regua.portfolio.collection.guards import (
    DEFAULT_WINDOWS,
    last_day_to_pay,
    notice_is_futile,
    record_expiry,
    removal_deadline,
)
from regua.portfolio.collection.runner import Runner
from regua.portfolio.collection.settings import CollectionSettings
from regua.portfolio.collection.simulate import SimulatedChannel, SimulatedRegistry
from regua.portfolio.collection.store import Receipt, ReceiptRefused
from regua.portfolio.model import Customer, Payment, Receivable

PUSHY = """
policy pushy kind collection
step d1 at D+1
  remind "cobranca_atraso"
step d2 at D+2
  remind "cobranca_atraso"
step aviso at D+1
  notify_negativation "aviso_negativacao"
step negativar at D+1
  negativate
step protesto at D+3
  protest
""" + "".join(f"step extra{n} at D+{n}\n  remind \"cobranca_atraso\"\n" for n in range(3, 40))
POLICY = compile_policy(PUSHY, "pushy.regua")
SETTINGS = CollectionSettings(creditor_name="Loja Exemplo Ltda", creditor_document="11.444.777/0001-61",
                              creditor_address="Rua Augusta, 500, São Paulo - SP",
                              policies={"pf": "pushy", "pj": "pushy"}, max_contacts=3, contact_period_days=7)
GUARDS = SETTINGS.guards()
CPFS = ["52998224725", "11144477735", "39053344705", "12345678909"]


class CoinChannel(SimulatedChannel):
    """Delivered or only sent, decided by the key and the example's seed (so notices may lack proof)."""

    def __init__(self, channel, clock, seed):
        super().__init__(channel, clock)
        self.seed = seed

    def send(self, notification):
        now = self.clock()
        if self.channel == "sms" and notification.recipient.endswith("900000000"):  # a number no longer in service
            return DeliveryReceipt(status="failed", idempotency_key=notification.idempotency_key,
                                   error="INVALID_RECIPIENT: not a phone number")
        coin = hashlib.sha256(f"{self.seed}{notification.idempotency_key}".encode()).digest()[0] % 3
        status = "sent" if coin == 0 else "delivered"
        return DeliveryReceipt(status=status, idempotency_key=notification.idempotency_key, sent_at=now,
                               delivered_at=now if status == "delivered" else None)


scenario = st.fixed_dictionaries({
    "seed": st.integers(0, 10_000),
    # UF, preferred channel, and whether the phone number is invalid (the SMS channel refuses it).
    "customers": st.lists(st.tuples(st.sampled_from(sorted(UFS)), st.sampled_from(["email", "sms"]), st.booleans()),
                          min_size=1, max_size=3),
    # Days past due at the start: recent, or around the 5-year limit (1826 days is 5 years and a day or so).
    "receivables": st.lists(st.tuples(st.integers(0, 2), st.integers(1, 90) | st.integers(1790, 1830), st.booleans(),
                                      st.integers(1, 2000)), min_size=1, max_size=5),
    "start": st.dates(dt.date(2018, 1, 1), dt.date(2032, 6, 1)),
    "runs": st.lists(st.tuples(st.integers(0, 3), st.integers(0, 23)), min_size=3, max_size=25),
    "payments": st.lists(st.tuples(st.integers(0, 4), st.integers(0, 60)), max_size=3),
    # Receipts for a receivable's notice, before run number N, dated `hours` after its send: negative is
    # forged (before the send), far beyond the run is in the future; repeated entries are duplicates.
    # Each is delivered, or a bounce / failure (hard bounce, invalid number) of the step's latest send.
    "receipts": st.lists(st.tuples(st.integers(0, 4), st.integers(1, 6),
                                   st.integers(-72, -1) | st.integers(0, 400) | st.integers(2000, 5000),
                                   st.sampled_from(["delivered", "delivered", "bounced", "failed"])), max_size=6),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario)
# A debt negativated days before its 5-year limit (due 2021-03-28): the run of 2026-03-28 removes the
# record as EXPIRED, and the payment of 2026-03-29 comes after; that removal needs no Súmula 548 deadline.
@example({"seed": 0, "customers": [("SP", "email", False)], "receivables": [(0, 1800, False, 100)],
          "start": dt.date(2026, 3, 2), "runs": [(0, 10), (12, 10), (14, 10), (1, 10)], "payments": [(0, 3)],
          "receipts": []})
# Two runs at the same moment: the first removes the record as EXPIRED, the payment is loaded before
# the second, at the same timestamp.
@example({"seed": 0, "customers": [("SP", "email", False)], "receivables": [(0, 1800, False, 100)],
          "start": dt.date(2026, 3, 2), "runs": [(0, 10), (12, 10), (14, 0), (0, 0)], "payments": [(0, 3)],
          "receipts": []})
def test_guards_hold_for_any_sequence_of_runs_payments_and_deliveries(case):
    with tempfile.TemporaryDirectory() as folder:
        _check(case, str(Path(folder) / "regua.db"))


# The same guards on PostgreSQL, the replicas' store: each example in a fresh database (its own
# claims, advisory locks, numeric money and date columns). Fewer examples: a database per example;
# the explicit ones reach a negativation, a later receipt, the payment and the removal it plans.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scenario)
@example({"seed": 0, "customers": [("SP", "email", False)], "receivables": [(0, 20, False, 100)],
          "start": dt.date(2026, 3, 2), "runs": [(0, 10), (2, 10), (3, 10), (3, 10), (3, 10), (3, 10), (3, 10)],
          "payments": [(0, 6)], "receipts": [(0, 2, 5, "delivered")]})
@example({"seed": 0, "customers": [("SP", "email", False)], "receivables": [(0, 1800, False, 100)],
          "start": dt.date(2026, 3, 2), "runs": [(0, 10), (12, 10), (14, 0), (0, 0)], "payments": [(0, 3)],
          "receipts": []})
def test_guards_hold_on_postgresql(postgres_server, case):
    url = postgres_server.new_database()
    try:
        _check(case, url)
    finally:
        postgres_server.drop(url)


def _check(case, db):
    start = case["start"]
    customers = [Customer(f"c{i}", CPFS[i % len(CPFS)], f"Cliente {i}", uf, "x", email=f"c{i}@example.com",
                          phone="+5511900000000" if bad_phone else "+5511987654321", channels=[channel])
                 for i, (uf, channel, bad_phone) in enumerate(case["customers"])]
    receivables = []
    for n, (customer, age, disputed, amount) in enumerate(case["receivables"]):
        owner = customers[customer % len(customers)].id
        due = start - dt.timedelta(days=age)
        receivables.append(Receivable(f"t{n}", owner, f"{amount}.00", due - dt.timedelta(days=30), due,
                                      disputed=disputed))
    portfolio = Portfolio(db)
    portfolio.save(customers)
    portfolio.save(receivables)
    portfolio.close()
    current = {"now": dt.datetime.combine(start, dt.time(9), zone_of("SP"))}
    registry = SimulatedRegistry(lambda: current["now"])
    registry.channels = {k: CoinChannel(k, registry.clock, case["seed"]) for k in ("email", "sms")}
    registry.add_services({"sandbox"})
    runner = Runner(db, {"pushy": POLICY}, registry, SETTINGS)
    moments, day = [], start
    for gap, hour in case["runs"]:
        day += dt.timedelta(days=gap)
        moments.append(dt.datetime.combine(day, dt.time(hour), zone_of("SP")))
    moments.sort()  # runs on the same day come in hour order: the clock never goes back
    payments, paid_at = {}, {}  # receivable id -> payment date; -> the run moment the payment was loaded before
    try:
        for index, moment in enumerate(moments):
            for rid, offset in case["payments"]:
                if offset == index and rid < len(receivables) and receivables[rid].id not in payments:
                    receivable = receivables[rid]
                    paid_on = moment.date()
                    portfolio = Portfolio(db)
                    portfolio.save([Payment(f"p{rid}", receivable.id, receivable.amount, paid_on)])
                    portfolio.close()
                    payments[receivable.id] = paid_on
                    paid_at[receivable.id] = moment
            for rid, before_run, hours, status in case["receipts"]:
                if before_run == index and rid < len(receivables):
                    _receipt(runner, receivables[rid].id, hours, moment, status)
            current["now"] = moment
            runner.run(moment.date(), now=moment)
        _assert_invariants(runner, {r.id: r for r in receivables}, {c.id: c for c in customers}, payments, paid_at,
                           moments)
    finally:
        runner.close()


def _receipt(runner, rid: str, hours: int, now: dt.datetime, status: str = "delivered") -> None:
    """A provider's receipt for the notice of `rid`, dated `hours` after its send (or for a notice not sent)."""
    row = runner.store.db.execute("select sent_at from outbox where key = ?", [f"{rid}:aviso"]).fetchone()
    base = dt.datetime.fromisoformat(row[0]) if row and row[0] else now
    reason = "" if status == "delivered" else "550 5.1.1 user unknown"
    if status != "delivered" and hours >= 0:
        hours = hours % 3  # bounces come back within hours of the send
    try:
        outcome = runner.store.record_receipt(Receipt(f"{rid}:aviso", base + dt.timedelta(hours=hours), status, "",
                                                      reason), now=now)
        note_event(f"receipt {status} {outcome}")
    except ReceiptRefused as refused:
        note_event(f"receipt refused {refused.code}")


def _assert_invariants(runner, receivables, customers, payments, paid_at, moments):
    db = runner.store.db
    events = [dict(r) for r in db.query("select * from collection_events order by id")]
    contacts: dict[str, list[tuple[dt.datetime, str]]] = {}
    sent_keys = []
    bounced: dict[tuple[str, str], dt.datetime] = {}  # (customer, channel kind) -> when its contact bounced
    # Per step, as the events tell it: the latest send (moment, printed deadline) and its proven delivery.
    sends: dict[str, tuple[dt.datetime, str | None]] = {}
    proof: dict[str, dt.datetime | None] = {}
    for event in events:
        detail = json.loads(event["detail"])
        at = dt.datetime.fromisoformat(event["at"])
        receivable = receivables[event["receivable_id"]]
        uf = customers[receivable.customer_id].uf
        local = at.astimezone(zone_of(uf))
        if event["kind"] == "receipt_refused":
            assert event["code"] in ("RECEIPT_BEFORE_SEND", "RECEIPT_IN_FUTURE", "STEP_NOT_SENT", "UNKNOWN_STEP"), event
        if event["kind"] in ("sent", "delivered") and event["code"] != "RECEIPT":
            if event["key"].endswith(":aviso"):
                # No notice threatens a negativation the 5-year limit would forbid.
                assert not notice_is_futile(receivable.due_date, local.date(), uf, "sandbox", GUARDS), event
            # Contact windows: inside the UF's hours, never on holidays.
            assert DEFAULT_WINDOWS[uf].allows(local, uf) and not is_holiday(local.date(), uf), event
            contacts.setdefault(receivable.customer_id, []).append((at, event["key"]))
            sent_keys.append((event["key"], detail["kind"]))
            # A contact that bounced is not relied on again for that debtor.
            assert (receivable.customer_id, detail["kind"]) not in bounced, event
            sends[event["key"]] = (at, detail.get("deadline"))
            proof[event["key"]] = at if event["kind"] == "delivered" else None
        if event["kind"] == "delivered" and event["code"] == "RECEIPT":
            proof[event["key"]] = dt.datetime.fromisoformat(detail["delivered_at"])
        if event["kind"] == "bounced":
            assert event["code"] in ("BOUNCED", "FAILED", "INVALID_RECIPIENT", "RECIPIENT_REFUSED"), event
            bounced.setdefault((receivable.customer_id, detail["kind"]), at)
            # A message that never reached the debtor is no contact under the frequency cap.
            mine = [c for c in contacts.get(receivable.customer_id, []) if c[1] == event["key"]]
            if mine and event["code"] in ("BOUNCED", "FAILED"):
                contacts[receivable.customer_id].remove(mine[-1])
            proof[event["key"]] = None  # a bounced message is never proof
            # No contact once the payment in full is known (runs earlier that same day did not know it yet).
            assert receivable.id not in paid_at or at < paid_at[receivable.id], event
        if event["kind"] == "negativated":
            # No negativation of a disputed debt, of one older than 5 years, nor before a proven
            # delivered notice plus the waiting period.
            assert not receivable.disputed, event
            assert local.date() < receivable.due_date.replace(year=receivable.due_date.year + 5) if not (
                receivable.due_date.month == 2 and receivable.due_date.day == 29) else True
            assert local.date() < record_expiry(receivable.due_date, GUARDS), event
            # Never on a bounced notice: the proof that counts is the one standing when the record opened.
            key = f"{receivable.id}:aviso"
            assert proof.get(key) is not None, event
            (sent_at, deadline), delivered_at = sends[key], proof[key]
            notice = (sent_at, delivered_at, deadline)
            # The proof is genuine: delivered after the send, and before the negativation.
            assert sent_at <= delivered_at <= at, (event, notice)
            delivered = delivered_at.astimezone(zone_of(uf)).date()
            wait = GUARDS.notice_wait("sandbox", uf)
            # Código Civil art. 132: the wait excludes the delivery day and includes its last day …
            assert (local.date() - delivered).days > wait, (event, delivered)
            assert local.date() > last_day_to_pay(delivered, wait, uf), (event, delivered)
            # … and never on or before the last day to pay printed in the notice.
            assert notice[2] and local.date() > dt.date.fromisoformat(notice[2]), (event, notice)
        if event["kind"] == "removal_requested" and event["code"] == "EXPIRED":
            # A record is removed once the debt is 5 years past due, from the run date (São Paulo) on:
            # hours early in the debtor's zone at worst, which only favours the debtor.
            assert at.astimezone(zone_of("SP")).date() >= record_expiry(receivable.due_date, GUARDS), event
        elif event["kind"] == "removal_requested":
            paid_on = payments[receivable.id]
            assert local.date() <= removal_deadline(paid_on, uf, GUARDS) or json.loads(event["detail"])["late"], event
    assert len(sent_keys) == len(set(sent_keys)), "a step was sent twice through the same channel"
    # The first accepted delivery (since the step's last bounce) is the one kept; later receipts never move it.
    first: dict[str, str] = {}
    for event in events:
        if event["kind"] == "bounced":
            first.pop(event["key"], None)
        if event["kind"] == "delivered":
            first.setdefault(event["key"], json.loads(event["detail"]).get("delivered_at") or event["at"])
    for key, delivered_at in db.execute("select key, delivered_at from outbox where delivered_at is not null"):
        assert dt.datetime.fromisoformat(delivered_at) == dt.datetime.fromisoformat(first[key]), key
    for kind in sorted({e["kind"] for e in events}):
        note_event(f"saw {kind}")  # shown by --hypothesis-show-statistics: the examples reach every guard
    for moments_of_customer in contacts.values():
        ordered = sorted(m for m, _ in moments_of_customer)
        for _i, moment in enumerate(ordered):
            window = [m for m in ordered if moment - dt.timedelta(days=7) < m <= moment]
            assert len(window) <= GUARDS.max_contacts, (moment, window)
    # Every negativated debt that was then paid had its removal planned with the legal deadline …
    for rid, paid_on in payments.items():
        record = db.execute("select removal_due, removal_reason from negative_records where receivable_id = ? "
                            "and kind = 'negativation'", [rid]).fetchone()
        if record is not None and any(m.date() >= paid_on for m in moments):
            uf = customers[receivables[rid].customer_id].uf
            removal_due, reason = record
            if reason == "EXPIRED":
                # … unless a run before the payment was known had already removed it for its age: that
                # removal was due at once, and a later payment never postpones it.
                planned = [dt.datetime.fromisoformat(e["at"]) for e in events
                           if e["kind"] == "removal_planned" and e["key"] == f"{rid}:__remove_negativation"]
                # (Two runs may share a moment — a gap of 0 days at the same hour — so the run before the
                # payment was loaded can carry the same timestamp as the payment's run: `<=`.)
                assert planned and planned[0] <= paid_at[rid], (rid, planned, paid_at[rid])
                assert removal_due <= removal_deadline(paid_on, uf, GUARDS).isoformat(), (rid, removal_due)
            else:
                assert (reason, removal_due) == ("PAID", removal_deadline(paid_on, uf, GUARDS).isoformat()), rid
