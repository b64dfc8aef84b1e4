"""Payment behaviour (portfolio/monitoring/features.py) against a reference written from its definitions.

The reference below is built from the documentation only (the module docstring of
portfolio/monitoring/features.py and dsl/monitoring.py: BEHAVIOUR), in plain Python with exact
fractions, and compared with what the SQL-backed implementation computes from a real SQLite
portfolio. Readings of the definitions the reference makes explicit:

- only `open` and `paid` receivables issued by `as_of` exist for the customer (cancelled and
  renegotiated ones do not count, and neither does a receivable not issued yet);
- only payments made by `as_of` count;
- a receivable is *due* for the lateness figures when it is paid (its days late are those at its
  last payment, 0 when paid by the due date, however early) or when it is open past its due date
  (its days late are those until `as_of`); an open receivable due today or later is not late yet;
- receivables are in due-date order (ties by id), for the cycles and the trend.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from collection_harness import store_at
from hypothesis import given, settings
from hypothesis import strategies as st

from regua.plugins.builtin.sandbox_bureau import sandbox_document
from regua.portfolio import Portfolio
from regua.portfolio.model import Customer, Payment, Receivable
from regua.portfolio.monitoring.features import TREND_THRESHOLD_DAYS, TREND_WINDOW, all_behaviour, customer_behaviour

AS_OF = dt.date(2026, 11, 22)
FIELDS = {"avg_days_late", "max_days_late", "days_late_now", "on_time_ratio", "cycles_without_delay",
          "open_balance", "overdue_balance", "open_receivables", "paid_receivables", "trend", "trend_days"}


# ---------------------------------------------------------------- the reference


@dataclass
class Rec:
    id: str
    status: str
    cents: int
    issue: dt.date
    due: dt.date
    payments: list[tuple[int, dt.date]] = field(default_factory=list)  # (cents, paid on)


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _round(value: Fraction, places: int, mode: str) -> Decimal:
    """`value` rounded to `places` decimals, exactly (no float, no Decimal division)."""
    scaled = value * 10 ** places
    floor = scaled.numerator // scaled.denominator
    rest = scaled - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and (mode == "up" or floor % 2 == 1)):
        floor += 1
    return Decimal(floor).scaleb(-places)


def _mean_tenths(days: list[int]) -> Decimal:
    return _round(Fraction(sum(days), len(days)), 1, "up")


def reference(receivables: list[Rec], as_of: dt.date) -> dict:
    exists = sorted((r for r in receivables if r.status in ("open", "paid") and r.issue <= as_of),
                    key=lambda r: (r.due, r.id))
    due_so_far: list[tuple[int, bool]] = []  # (days late, paid by the due date), in due order
    open_cents = overdue_cents = days_late_now = 0
    for r in exists:
        made = [(c, d) for c, d in r.payments if d <= as_of]
        if r.status == "open":
            owed = max(r.cents - sum(c for c, _ in made), 0)
            open_cents += owed
            if r.due < as_of:
                late = (as_of - r.due).days
                overdue_cents += owed
                days_late_now = max(days_late_now, late)
                due_so_far.append((late, False))
        else:
            last = max((d for _, d in made), default=None)
            late = max((last - r.due).days, 0) if last is not None else 0
            due_so_far.append((late, late == 0))
    days = [late for late, _ in due_so_far]
    cycles = 0
    for _late, on_time in reversed(due_so_far):
        if not on_time:
            break
        cycles += 1
    trend, trend_days = "stable", Decimal("0.0")
    if len(days) >= 2 * TREND_WINDOW:
        trend_days = _mean_tenths(days[-TREND_WINDOW:]) - _mean_tenths(days[-2 * TREND_WINDOW:-TREND_WINDOW])
        trend = ("worsening" if trend_days > TREND_THRESHOLD_DAYS else
                 "improving" if trend_days < -TREND_THRESHOLD_DAYS else "stable")
    return {
        "avg_days_late": _mean_tenths(days) if days else Decimal("0.0"),
        "max_days_late": max(days, default=0),
        "days_late_now": days_late_now,
        "on_time_ratio": _round(Fraction(sum(on for _, on in due_so_far), len(due_so_far)), 4, "even")
        if due_so_far else Decimal(1),
        "cycles_without_delay": cycles,
        "open_balance": Decimal(open_cents).scaleb(-2),
        "overdue_balance": Decimal(overdue_cents).scaleb(-2),
        "open_receivables": sum(r.status == "open" for r in exists),
        "paid_receivables": sum(r.status == "paid" for r in exists),
        "trend": trend,
        "trend_days": trend_days,
    }


# ---------------------------------------------------------------- a real portfolio


def customer(cid: str, n: int) -> Customer:
    return Customer(id=cid, document=sandbox_document("clean", kind="cpf", n=n), name=f"Cliente {cid}", uf="SP")


def save(path: str, portfolio: dict[str, list[Rec]]) -> Portfolio:
    store = Portfolio(path)
    store.save([customer(cid, n) for n, cid in enumerate(sorted(portfolio), start=1)])
    store.save([Receivable(r.id, cid, money(r.cents), r.issue, r.due, status=r.status)
                for cid, recs in portfolio.items() for r in recs])
    payments = [Payment(f"{r.id}-p{i}", r.id, money(c), d)
                for recs in portfolio.values() for r in recs for i, (c, d) in enumerate(r.payments)]
    if payments:
        store.save(payments)
    return store


def assert_same(got: dict, expected: dict, context) -> None:
    assert set(got) == FIELDS, set(got) ^ FIELDS
    for name in FIELDS:
        assert got[name] == expected[name], (name, got[name], expected[name], context)
        assert type(got[name]) is type(expected[name]), (name, type(got[name]), context)
    for name in ("open_balance", "overdue_balance"):  # money, to the cent
        assert got[name].as_tuple().exponent == -2, (name, got[name])


# ---------------------------------------------------------------- the property

DAY = dt.timedelta(days=1)
cents = st.one_of(st.integers(1, 99), st.integers(100, 10_000_00), st.integers(1, 50_000_000_00))


@st.composite
def receivables(draw, prefix: str, as_of: dt.date) -> list[Rec]:
    out = []
    for i in range(draw(st.integers(0, 9))):
        status = draw(st.sampled_from(["open", "open", "paid", "paid", "paid", "cancelled", "renegotiated"]))
        amount = draw(cents)
        # on a coarse grid now and then, so that due dates tie; a few are issued after as_of
        issue = as_of + (draw(st.integers(-20, 1)) * 10 if draw(st.booleans()) else draw(st.integers(-200, 5))) * DAY
        due = issue + draw(st.sampled_from([0, 10, 30]) | st.integers(0, 60)) * DAY
        payments = []
        count = draw(st.integers(0, 3))
        for _ in range(count):
            if status == "paid":  # a paid receivable was paid by as_of (or imported without payments)
                paid_on = draw(st.dates(min_value=issue, max_value=max(issue, as_of)))
            else:  # partial payments, some of them after as_of
                paid_on = issue + draw(st.integers(0, 150)) * DAY
            payments.append((draw(st.integers(1, amount)), paid_on))
        # ids out of due order on purpose, with ties on the due date now and then
        out.append(Rec(f"{prefix}-{draw(st.integers(0, 99)):02d}-{i}", status, amount, issue, due, payments))
    return out


@st.composite
def portfolios(draw) -> tuple[dict[str, list[Rec]], dt.date]:
    as_of = AS_OF + draw(st.integers(-30, 30)) * DAY
    ids = draw(st.lists(st.sampled_from(["ana", "bia", "caio", "duda"]), min_size=1, max_size=3, unique=True))
    return {cid: draw(receivables(cid, as_of)) for cid in ids}, as_of


@settings(max_examples=60, deadline=None)
@given(portfolios())
def test_behaviour_matches_the_documented_definitions(case):
    portfolio, as_of = case
    with tempfile.TemporaryDirectory() as folder:
        store = save(str(Path(folder) / "carteira.db"), portfolio)
        try:
            expected = {cid: reference(recs, as_of) for cid, recs in portfolio.items()}
            for cid in portfolio:
                assert_same(customer_behaviour(store.db, cid, as_of), expected[cid], cid)
            # one query for the whole portfolio gives the same per customer (customers with nothing
            # issued and open or paid by as_of have no behaviour to report there)
            everyone = dict(all_behaviour(store.db, as_of))
            with_rows = {cid for cid, recs in portfolio.items()
                         if any(r.status in ("open", "paid") and r.issue <= as_of for r in recs)}
            assert set(everyone) == with_rows
            for cid, got in everyone.items():
                assert_same(got, expected[cid], ("all_behaviour", cid))
            chosen = set(sorted(portfolio)[:1])
            assert dict(all_behaviour(store.db, as_of, chosen)) == {c: everyone[c] for c in chosen if c in everyone}
            # a customer without a single receivable has the defaults of dsl/monitoring.py
            assert customer_behaviour(store.db, "ninguem", as_of) == reference([], as_of)
        finally:
            store.close()


def test_all_behaviour_is_in_id_order_with_several_customers(tmp_path, collection_backend):
    base = AS_OF - 40 * DAY
    portfolio = {cid: [Rec(f"{cid}-{i}", "open" if i % 2 else "paid", 1000 * (i + 1), base, base + i * 10 * DAY,
                           [(500, base + (i * 10 + k) * DAY)] if i % 2 == 0 else [])
                       for i, k in zip(range(4), (0, 3, 8, 1))]
                 for cid in ("zeca", "ana", "mia")}
    store = save(store_at(tmp_path, "carteira.db"), portfolio)
    try:
        everyone = list(all_behaviour(store.db, AS_OF))
        assert [cid for cid, _ in everyone] == ["ana", "mia", "zeca"]
        for cid, got in everyone:
            assert got == customer_behaviour(store.db, cid, AS_OF) == reference(portfolio[cid], AS_OF)
    finally:
        store.close()


# ---------------------------------------------------------------- examples


def behaviour_of(tmp_path, recs: list[Rec], as_of: dt.date = AS_OF) -> dict:
    store = save(store_at(tmp_path, "carteira.db"), {"ana": recs})
    try:
        got = customer_behaviour(store.db, "ana", as_of)
    finally:
        store.close()
    assert got == reference(recs, as_of)
    return got


def paid(rid: str, due: dt.date, days_late: int, cents: int = 100_00) -> Rec:
    return Rec(rid, "paid", cents, due - 30 * DAY, due, [(cents, due + days_late * DAY)])


def test_a_late_payment_resets_the_cycles_without_delay(tmp_path, collection_backend):
    start = AS_OF - 200 * DAY
    on_time = [paid(f"r{i}", start + 30 * i * DAY, days_late=-2 if i == 1 else 0) for i in range(3)]
    got = behaviour_of(tmp_path / "a", on_time)
    assert got["cycles_without_delay"] == 3
    assert got["on_time_ratio"] == Decimal("1") and got["avg_days_late"] == Decimal("0.0")

    late = on_time + [paid("r3", start + 90 * DAY, days_late=4)]
    got = behaviour_of(tmp_path / "b", late)
    assert got["cycles_without_delay"] == 0
    assert got["max_days_late"] == 4 and got["avg_days_late"] == Decimal("1.0")
    assert got["on_time_ratio"] == Decimal("0.75")

    got = behaviour_of(tmp_path / "c", late + [paid("r4", start + 120 * DAY, days_late=0)])
    assert got["cycles_without_delay"] == 1

    # an open receivable past its due date breaks the run too, and is the customer's delay now
    overdue = Rec("r5", "open", 100_00, AS_OF - 50 * DAY, AS_OF - 12 * DAY)
    got = behaviour_of(tmp_path / "d", on_time + [overdue])
    assert got["cycles_without_delay"] == 0 and got["days_late_now"] == 12
    # one due today is not late yet: it does not count either way
    got = behaviour_of(tmp_path / "e", on_time + [Rec("r5", "open", 100_00, AS_OF - 30 * DAY, AS_OF)])
    assert got["cycles_without_delay"] == 3 and got["days_late_now"] == 0 and got["overdue_balance"] == 0


def test_trend_compares_the_last_three_receivables_due_with_the_three_before(tmp_path, collection_backend):
    start = AS_OF - 300 * DAY
    def history(lateness):
        return [paid(f"r{i}", start + 30 * i * DAY, late) for i, late in enumerate(lateness)]

    got = behaviour_of(tmp_path / "worse", history([0, 0, 1, 9, 10, 12]))
    assert got["trend"] == "worsening" and got["trend_days"] == Decimal("10.0")  # 10.3 - 0.3
    assert got["avg_days_late"] == Decimal("5.3")

    got = behaviour_of(tmp_path / "better", history([30, 0, 20, 15, 0, 0, 0]))
    assert got["trend"] == "improving" and got["trend_days"] == Decimal("-11.7")  # 0.0 - 11.7

    # exactly TREND_THRESHOLD_DAYS is not a trend yet
    got = behaviour_of(tmp_path / "edge", history([0, 0, 0, 5, 5, 5]))
    assert got["trend_days"] == TREND_THRESHOLD_DAYS and got["trend"] == "stable"

    # fewer than 2 * TREND_WINDOW receivables due: no trend at all
    got = behaviour_of(tmp_path / "short", history([0, 0, 30, 40, 50]))
    assert got["trend"] == "stable" and got["trend_days"] == Decimal("0.0")


def test_cancelled_and_renegotiated_receivables_are_ignored(tmp_path, collection_backend):
    base = [paid("r1", AS_OF - 60 * DAY, 0), Rec("r2", "open", 50_00, AS_OF - 20 * DAY, AS_OF + 10 * DAY)]
    plain = behaviour_of(tmp_path / "plain", base)
    noisy = behaviour_of(tmp_path / "noisy", base + [
        Rec("r3", "cancelled", 999_00, AS_OF - 200 * DAY, AS_OF - 150 * DAY),
        Rec("r4", "renegotiated", 777_00, AS_OF - 120 * DAY, AS_OF - 100 * DAY, [(100_00, AS_OF - 10 * DAY)]),
    ])
    assert noisy == plain
    assert plain["open_receivables"] == 1 and plain["paid_receivables"] == 1
    assert plain["open_balance"] == Decimal("50.00") and plain["overdue_balance"] == Decimal("0.00")
    assert plain["days_late_now"] == 0 and plain["max_days_late"] == 0


def test_money_is_exact_to_the_cent(tmp_path, collection_backend):
    recs = [Rec("r1", "open", 10, AS_OF - 40 * DAY, AS_OF - 10 * DAY),   # R$ 0,10
            Rec("r2", "open", 20, AS_OF - 40 * DAY, AS_OF - 5 * DAY),    # R$ 0,20
            Rec("r3", "open", 100_00, AS_OF - 10 * DAY, AS_OF + 20 * DAY,
                [(33_33, AS_OF - 3 * DAY), (33_33, AS_OF - 2 * DAY), (1_00, AS_OF + 1 * DAY)])]
    got = behaviour_of(tmp_path, recs)
    assert got["overdue_balance"] == Decimal("0.30") and str(got["overdue_balance"]) == "0.30"
    # 0.10 + 0.20 + (100.00 - 33.33 - 33.33); the payment after as_of has not happened yet
    assert got["open_balance"] == Decimal("33.64") and str(got["open_balance"]) == "33.64"
    assert got["open_receivables"] == 3 and got["days_late_now"] == 10
    # an overpaid open receivable owes nothing (never a negative balance)
    got = behaviour_of(tmp_path / "over", [Rec("r1", "open", 10_00, AS_OF - 40 * DAY, AS_OF - 10 * DAY,
                                                [(10_00, AS_OF - 20 * DAY), (5_00, AS_OF - 15 * DAY)])])
    assert got["open_balance"] == Decimal("0.00") and got["overdue_balance"] == Decimal("0.00")
