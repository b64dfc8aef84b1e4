"""Collection KPIs (portfolio/collection/kpis.py): DSO, CEI, recovery rate, aging, roll rates.

A small portfolio whose every figure is worked out by hand below, the edge cases (bucket
boundaries, payments after `to`, cancelled receivables, an empty portfolio), a property test
against a brute-force reference written straight from the definitions, `regua kpis` through
CliRunner, and GET /kpis on a real server.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from server_harness import ThreadedServer, assert_error, error_locations, sandbox_settings

from regua import dialect
from regua.cli.kpis import kpis_command
from regua.portfolio import Customer, Payment, Portfolio, Receivable
from regua.portfolio.collection.kpis import BUCKETS, KpiArgumentError, _ratio, checkpoints, compute_kpis

D = dt.date
FROM, TO = D(2025, 1, 1), D(2025, 3, 31)  # Q1 2025: 31 + 28 + 31 = 90 days; opening date 2024-12-31
CUSTOMERS = [Customer("c1", "11222333000181", "Comercial Alfa Ltda", "SP", segment="b2b"),
             Customer("c2", "52998224725", "Maria Souza", "SP", segment="b2c")]


def receivable(rid, customer, amount, issue, due, status="open"):
    return Receivable(rid, customer, amount, issue, due, status)


# The hand-worked portfolio. Balances at the opening date (2024-12-31) and at `to` (2025-03-31):
RECORDS = [
    *CUSTOMERS,
    # R1 b2b 1000.00, due 2024-12-01: 400 paid before the period, 300 inside it.
    #    balance 600 at 12-31 (30 days past due), 300 at 03-31 (120 days: 90+).
    receivable("R1", "c1", "1000.00", D(2024, 11, 1), D(2024, 12, 1)),
    Payment("P1a", "R1", "400.00", D(2024, 12, 20)),
    Payment("P1b", "R1", "300.00", D(2025, 2, 10)),
    # R2 b2b 500.00 issued in the period, due 02-09, never paid: 50 days past due at `to` (31-60).
    receivable("R2", "c1", "500.00", D(2025, 1, 10), D(2025, 2, 9)),
    # R3 b2c 800.00 issued 02-01, due 03-03, paid in full before its due date: never in default.
    receivable("R3", "c2", "800.00", D(2025, 2, 1), D(2025, 3, 3)),
    Payment("P3", "R3", "800.00", D(2025, 3, 1)),
    # R4 b2c 200.00 issued 03-15, due 04-14: current at `to`; its 50.00 is paid after `to`, not counted.
    receivable("R4", "c2", "200.00", D(2025, 3, 15), D(2025, 4, 14)),
    Payment("P4", "R4", "50.00", D(2025, 4, 5)),
    # R5 b2c 300.00 cancelled (with a payment): counts nowhere.
    receivable("R5", "c2", "300.00", D(2025, 1, 5), D(2025, 2, 4), status="cancelled"),
    Payment("P5", "R5", "100.00", D(2025, 2, 1)),
    # R6 b2b 250.00 settled before the period: counts nowhere (not even as a sale: issued in 2024).
    receivable("R6", "c1", "250.00", D(2024, 10, 1), D(2024, 10, 31)),
    Payment("P6", "R6", "250.00", D(2024, 11, 15)),
    # R7 b2c 100.00 issued 01-20, due 03-01, paid late on 03-20: in default from 03-02, recovered.
    receivable("R7", "c2", "100.00", D(2025, 1, 20), D(2025, 3, 1)),
    Payment("P7", "R7", "100.00", D(2025, 3, 20)),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    """The hand-worked portfolio in a store, once per backend (a SQLite file, then a PostgreSQL database)."""
    path = str(tmp_path / "regua.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    portfolio = Portfolio(path)
    portfolio.save(RECORDS)
    portfolio.close()
    return path


def money(report_dict: dict, *names: str) -> tuple:
    return tuple(report_dict[name] for name in names)


def aging(report) -> dict:
    return {b.bucket: (str(b.amount), b.count) for b in report.aging}


def test_every_kpi_of_the_hand_worked_portfolio(db):
    report = compute_kpis(db, FROM, TO)
    assert report.days == 90
    # Sales: R2 500 + R3 800 + R4 200 + R7 100 (R5 cancelled, R1 and R6 issued in 2024).
    assert report.credit_sales == Decimal("1600.00")
    # Opening AR at 2024-12-31: R1 1000 − 400 = 600 (R6 settled).
    assert report.opening_ar == Decimal("600.00")
    # Closing AR at 03-31: R1 300 + R2 500 + R4 200 (R4's payment on 04-05 is after `to`).
    assert report.closing_ar == Decimal("1000.00")
    # Current at `to` (not past due): R4 only.
    assert report.closing_current_ar == Decimal("200.00")
    # DSO = 1000 ÷ 1600 × 90 = 56.25 days.
    assert report.dso == Decimal("56.25")
    # CEI = (600 + 1600 − 1000) ÷ (600 + 1600 − 200) × 100 = 1200 ÷ 2000 × 100 = 60.
    assert report.cei == Decimal("60.00")
    # In default: R1 600 (past due at 12-31), R2 500 (balance on its due date 02-09), R7 100 (due 03-01);
    # R3 was paid before its due date. Recovered: R1 300 (paid 02-10), R7 100 (paid 03-20).
    # Rate = 400 ÷ 1200 × 100 = 33.333… → 33.33.
    assert (report.defaulted, report.recovered, report.recovery_rate) == \
        (Decimal("1200.00"), Decimal("400.00"), Decimal("33.33"))
    assert aging(report) == {"current": ("200.00", 1), "1-30": ("0.00", 0), "31-60": ("500.00", 1),
                             "61-90": ("0.00", 0), "90+": ("300.00", 1)}


def test_roll_rates_between_month_ends(db):
    # Buckets (current, 1-30, 31-60, 61-90, 90+) at each month end:
    #   12-31: R1 600 at 30 days                       -> (0, 600, 0, 0, 0)
    #   01-31: R1 600 at 61 days; R2 500, R7 100 not due -> (600, 0, 0, 600, 0)
    #   02-28: R1 300 at 89 days; R2 500 at 19; R3 800, R7 100 not due -> (900, 500, 0, 300, 0)
    #   03-31: R4 200 current; R2 500 at 50; R1 300 at 120 -> (200, 0, 500, 0, 300)
    report = compute_kpis(db, FROM, TO)
    rows = [(p.start, p.end, p.current_to_1_30, p.from_1_30_to_31_60, p.from_31_60_to_61_90, p.from_61_90_to_90_plus)
            for p in report.roll_rates]
    dec = Decimal
    assert rows == [
        (D(2024, 12, 31), D(2025, 1, 31), None, dec("0.00"), None, None),  # 0/0, 0/600, 600/0, 0/0
        (D(2025, 1, 31), D(2025, 2, 28), dec("83.33"), None, None, dec("0.00")),  # 500/600, 0/0, 300/0, 0/600
        # 0/900, 500/500, 0/0, 300/300
        (D(2025, 2, 28), D(2025, 3, 31), dec("0.00"), dec("100.00"), None, dec("100.00")),
    ]


def test_roll_rates_with_a_step_in_days(db):
    # Checkpoints 12-31, 02-14 (+45 days), 03-31 (+45): R1 is 600 at 30 days on 12-31 and 300 at
    # 75 days on 02-14 (61-90); R2 500 is 5 days past due (1-30) on 02-14 and 50 days on 03-31.
    report = compute_kpis(db, FROM, TO, step_days=45)
    assert [(p.start, p.end) for p in report.roll_rates] == [(D(2024, 12, 31), D(2025, 2, 14)),
                                                            (D(2025, 2, 14), D(2025, 3, 31))]
    first, second = report.roll_rates
    assert first.from_1_30_to_31_60 == Decimal("0.00")  # 31-60 on 02-14 is empty; 1-30 on 12-31 is 600
    assert second.from_1_30_to_31_60 == Decimal("100.00")  # R2: 500 in 31-60 on 03-31 ÷ 500 in 1-30 on 02-14
    assert second.from_61_90_to_90_plus == Decimal("100.00")  # R1: 300 ÷ 300


def test_a_segment_counts_only_its_customers(db):
    b2b = compute_kpis(db, FROM, TO, segment="b2b")  # R1, R2 (R6 settled)
    # sales 500; opening 600; closing 300 + 500 = 800; current 0
    assert (b2b.credit_sales, b2b.opening_ar, b2b.closing_ar, b2b.closing_current_ar) == \
        (Decimal("500.00"), Decimal("600.00"), Decimal("800.00"), Decimal("0.00"))
    assert b2b.dso == Decimal("144.00")  # 800 ÷ 500 × 90
    assert b2b.cei == Decimal("27.27")  # (600 + 500 − 800) ÷ (600 + 500 − 0) = 300 ÷ 1100 = 27.2727…
    assert (b2b.defaulted, b2b.recovered, b2b.recovery_rate) == \
        (Decimal("1100.00"), Decimal("300.00"), Decimal("27.27"))  # R1 600 + R2 500; R1 300 back
    b2c = compute_kpis(db, FROM, TO, segment="b2c")  # R3, R4, R7 (R5 cancelled)
    assert (b2c.credit_sales, b2c.closing_ar, b2c.dso, b2c.cei, b2c.recovery_rate) == \
        (Decimal("1100.00"), Decimal("200.00"), Decimal("16.36"), Decimal("100.00"), Decimal("100.00"))
    # 200 ÷ 1100 × 90 = 16.3636…; CEI (0 + 1100 − 200) ÷ (0 + 1100 − 200); R7 100 ÷ 100
    nobody = compute_kpis(db, FROM, TO, segment="no such segment")
    assert (nobody.credit_sales, nobody.dso, nobody.cei, nobody.recovery_rate) == (Decimal("0.00"), None, None, None)


def test_current_days_widens_current_ar_for_cei(db):
    # current_days = 60: due on or after 03-31 − 60 = 01-30 counts as current: R4 200 + R2 500 (due 02-09).
    report = compute_kpis(db, FROM, TO, current_days=60)
    assert report.closing_current_ar == Decimal("700.00")
    assert report.cei == Decimal("80.00")  # 1200 ÷ (2200 − 700)
    assert aging(report)["current"] == ("200.00", 1)  # aging is by days past due, whatever current_days


def test_payments_after_to_and_cancelled_receivables_do_not_count(db):
    until_april = compute_kpis(db, FROM, D(2025, 4, 30))
    in_q1 = compute_kpis(db, FROM, TO)
    # P4 (50.00 on 04-05) counts from April on; R5 never (neither its 300.00 nor its payment).
    assert in_q1.closing_ar - until_april.closing_ar == Decimal("50.00")
    portfolio = Portfolio(db)
    portfolio.save([receivable("R5", "c2", "300.00", D(2025, 1, 5), D(2025, 2, 4), status="open")])
    portfolio.close()
    reopened = compute_kpis(db, FROM, TO)  # R5 as open: a 300 sale; 100 paid on 02-01, before its due date
    assert reopened.credit_sales - in_q1.credit_sales == Decimal("300.00")
    assert reopened.closing_ar - in_q1.closing_ar == Decimal("200.00")
    assert reopened.defaulted - in_q1.defaulted == Decimal("200.00")  # due 02-04, balance 200 that day


@pytest.mark.parametrize("days_past_due, bucket", [
    (-1, "current"), (0, "current"), (1, "1-30"), (30, "1-30"), (31, "31-60"), (60, "31-60"),
    (61, "61-90"), (90, "61-90"), (91, "90+"), (400, "90+")])
def test_aging_bucket_boundaries(tmp_path, days_past_due, bucket):
    portfolio = Portfolio(str(tmp_path / "regua.db"))
    due = TO - dt.timedelta(days=days_past_due)
    portfolio.save([*CUSTOMERS, receivable("X", "c1", "123.45", due - dt.timedelta(days=30), due)])
    portfolio.close()
    report = compute_kpis(str(tmp_path / "regua.db"), FROM, TO)
    assert {b.bucket: (str(b.amount), b.count) for b in report.aging if b.count} == {bucket: ("123.45", 1)}


def test_default_starts_the_day_after_the_due_date(tmp_path):
    path = str(tmp_path / "regua.db")
    portfolio = Portfolio(path)
    portfolio.save([*CUSTOMERS,
                    receivable("A", "c1", "100.00", D(2025, 3, 1), TO),  # due on `to`: not past due in the period
                    receivable("B", "c1", "40.00", D(2024, 12, 1), D(2024, 12, 31)),  # due the day before `from`
                    Payment("PB", "B", "40.00", FROM),  # paid on its first day past due: recovered
                    receivable("C", "c1", "10.00", D(2024, 12, 1), D(2025, 3, 30)),  # 1 day past due at `to`
                    Payment("PC", "C", "10.00", TO)])  # paid on `to`: counts
    portfolio.close()
    report = compute_kpis(path, FROM, TO)
    assert (report.defaulted, report.recovered, report.recovery_rate) == \
        (Decimal("50.00"), Decimal("50.00"), Decimal("100.00"))
    assert report.closing_ar == Decimal("100.00")


def test_an_empty_portfolio_has_no_rates_and_no_errors(tmp_path):
    path = str(tmp_path / "regua.db")
    Portfolio(path).close()
    for db in (path, str(_plain_sqlite(tmp_path / "other.db"))):  # no portfolio tables at all: empty too
        report = compute_kpis(db, FROM, TO)
        assert (report.dso, report.cei, report.recovery_rate) == (None, None, None)
        assert report.closing_ar == report.credit_sales == report.defaulted == Decimal("0.00")
        assert [(b.bucket, b.amount, b.count) for b in report.aging] == [(name, Decimal("0.00"), 0) for name in BUCKETS]
        assert len(report.roll_rates) == 3 and all(
            p.current_to_1_30 is p.from_61_90_to_90_plus is None for p in report.roll_rates)
        assert json.loads(json.dumps(report.to_dict()))["dso"] is None


def test_an_empty_postgresql_store_is_an_empty_portfolio(postgres_url):
    for location in (postgres_url, Portfolio(postgres_url).path):  # no tables at all, then empty tables
        report = compute_kpis(location, FROM, TO)
        assert (report.dso, report.cei, report.recovery_rate) == (None, None, None)
        assert report.closing_ar == report.credit_sales == Decimal("0.00") and len(report.roll_rates) == 3


def _plain_sqlite(path: Path) -> Path:
    connection = sqlite3.connect(path)
    connection.execute("create table other (x)")
    connection.close()
    return path


def test_bad_arguments_are_value_errors_naming_the_field(db):
    with pytest.raises(ValueError, match=r"from \(2025-04-01\) is after to \(2025-03-31\)") as caught:
        compute_kpis(db, D(2025, 4, 1), TO)
    assert caught.value.field == "from"
    with pytest.raises(KpiArgumentError, match="current_days") as caught:
        compute_kpis(db, FROM, TO, current_days=-1)
    assert caught.value.field == "current_days"
    with pytest.raises(KpiArgumentError, match="step_days"):
        compute_kpis(db, FROM, TO, step_days=0)
    with pytest.raises(KpiArgumentError, match="at most 600"):
        compute_kpis(db, D(1900, 1, 1), D(2025, 1, 1))  # 1500 monthly roll periods
    if not db.startswith("postgresql://"):
        with pytest.raises(FileNotFoundError):
            compute_kpis(str(Path(db).with_name("missing.db")), FROM, TO)
    assert compute_kpis(db, TO, TO).days == 1  # one day is a period


def test_the_report_as_json(db):
    data = compute_kpis(db, FROM, TO).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert money(data, "date_from", "credit_sales", "dso", "cei", "recovery_rate") == \
        ("2025-01-01", "1600.00", "56.25", "60.00", "33.33")
    assert data["aging"][0] == {"bucket": "current", "amount": "200.00", "count": 1}
    assert data["roll_rates"][0]["start"] == "2024-12-31"


def test_rates_round_half_to_even_exactly():
    assert _ratio(1, 32) == Decimal("3.12")  # 3.125 → 3.12
    assert _ratio(3, 32) == Decimal("9.38")  # 9.375 → 9.38
    assert _ratio(1, 3) == Decimal("33.33") and _ratio(2, 3) == Decimal("66.67")
    assert _ratio(1, 0) is None
    big = 10**17 * 10**6  # a million receivables near the model's maximum amount, in cents
    assert _ratio(big, big) == Decimal("100.00")


def test_checkpoints_are_the_month_ends_from_the_opening_date():
    assert checkpoints(D(2025, 1, 1), D(2025, 3, 31)) == ["2024-12-31", "2025-01-31", "2025-02-28", "2025-03-31"]
    assert checkpoints(D(2025, 1, 15), D(2025, 3, 30)) == ["2025-01-31", "2025-02-28"]  # 01-14 is not a month end
    assert checkpoints(D(2024, 2, 10), D(2024, 2, 20)) == []
    assert checkpoints(D(2025, 1, 1), D(2025, 1, 10), step_days=4) == ["2024-12-31", "2025-01-04", "2025-01-08"]
    assert checkpoints(dt.date.min, D(1, 2, 1)) == ["0001-01-31"]


# ---- a brute-force reference, straight from the definitions, against random portfolios ----
BASE = D(2025, 1, 1)
day = st.integers(0, 150).map(lambda n: BASE + dt.timedelta(days=n))
cents = st.integers(1, 500_000)


@st.composite
def portfolios(draw):
    receivables, payments = [], []
    for i in range(draw(st.integers(0, 8))):
        issue = draw(day)
        amount = draw(cents)
        receivables.append((f"R{i}", draw(st.sampled_from(["c1", "c2"])), amount, issue,
                            issue + dt.timedelta(days=draw(st.integers(0, 100))),
                            draw(st.sampled_from(["open", "open", "paid", "cancelled", "renegotiated"]))))
        for j in range(draw(st.integers(0, 3))):  # partial, full, over-payments, even before issue
            payments.append((f"P{i}.{j}", f"R{i}", draw(st.integers(1, amount + 100)), draw(day)))
    return receivables, payments


def _text(amount: int) -> str:
    return f"{amount // 100}.{amount % 100:02d}"


def reference(receivables, payments, date_from, date_to, segment=None, current_days=0) -> dict:
    """Every figure by brute force, one receivable and one date at a time, from the definitions."""
    segments = {"c1": "b2b", "c2": "b2c"}
    rows = [r for r in receivables if r[5] != "cancelled" and (segment is None or segments[r[1]] == segment)]

    def balance(r, t):
        if r[3] > t:
            return 0
        return max(0, r[2] - sum(p[2] for p in payments if p[1] == r[0] and p[3] <= t))

    def aging_at(t):
        buckets = [0] * 5
        for r in rows:
            late = (t - r[4]).days
            index = 0 if late <= 0 else 1 if late <= 30 else 2 if late <= 60 else 3 if late <= 90 else 4
            buckets[index] += balance(r, t)
        return buckets

    opening, to = date_from - dt.timedelta(days=1), date_to
    defaulted = recovered = 0
    for r in rows:
        if r[4] < to:  # past due on some day of [from − 1, to]: from the day after its due date
            start = max(opening, r[4])
            defaulted += balance(r, start)
            recovered += balance(r, start) - balance(r, to)
    return {"sales": sum(r[2] for r in rows if date_from <= r[3] <= date_to),
            "opening": sum(balance(r, opening) for r in rows), "closing": sum(balance(r, to) for r in rows),
            "current": sum(balance(r, to) for r in rows if (to - r[4]).days <= current_days),
            "defaulted": defaulted, "recovered": recovered, "aging": aging_at(to), "aging_at": aging_at}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def scratch(request, tmp_path_factory):
    """One portfolio per backend that each example empties and refills: the SQL of both backends
    is held to the same brute-force reference."""
    if request.param == "sqlite":
        location = str(tmp_path_factory.mktemp("kpis") / "regua.db")
    else:
        location = request.getfixturevalue("postgres_server").new_database()
    portfolio = Portfolio(location)
    yield portfolio
    portfolio.close()
    if request.param == "postgresql":
        request.getfixturevalue("postgres_server").drop(location)


@given(data=portfolios(), start=day, length=st.integers(0, 120), current_days=st.integers(0, 40),
       segment=st.sampled_from([None, "b2b", "b2c"]))
def test_random_portfolios_agree_with_the_definitions(scratch, data, start, length, current_days, segment):
    receivables, payments = data
    with dialect.transaction(scratch.db):
        for table in ("payments", "receivables", "customers"):
            scratch.db.execute(f"delete from {table}")
    scratch.save([*CUSTOMERS, *(Receivable(rid, c, _text(a), i, d, s) for rid, c, a, i, d, s in receivables),
                  *(Payment(pid, rid, _text(a), on) for pid, rid, a, on in payments)])
    date_to = start + dt.timedelta(days=length)
    report = compute_kpis(scratch.db, start, date_to, segment, current_days)
    expected = reference(receivables, payments, start, date_to, segment, current_days)
    cents_of = lambda d: int(d * 100)  # noqa: E731
    assert (cents_of(report.credit_sales), cents_of(report.opening_ar), cents_of(report.closing_ar),
            cents_of(report.closing_current_ar), cents_of(report.defaulted), cents_of(report.recovered)) == \
        (expected["sales"], expected["opening"], expected["closing"], expected["current"], expected["defaulted"],
         expected["recovered"])
    assert [cents_of(b.amount) for b in report.aging] == expected["aging"]
    # Invariants: the buckets add up to closing AR; the rates are percentages where defined.
    assert sum(b.amount for b in report.aging) == report.closing_ar
    assert report.recovery_rate is None or 0 <= report.recovery_rate <= 100
    assert report.cei is None or 0 <= report.cei <= 100  # no balance grows, current AR ⊆ total AR
    assert report.dso is None or report.dso >= 0
    # Roll rates: each period's buckets are the aging of its checkpoints (checked at `to` above).
    for period in report.roll_rates:
        at_end, at_start = expected["aging_at"](period.end), expected["aging_at"](period.start)
        got = [period.current_to_1_30, period.from_1_30_to_31_60, period.from_31_60_to_61_90,
               period.from_61_90_to_90_plus]
        assert got == [_ratio(at_end[b + 1], at_start[b]) for b in range(4)]


def test_segments_add_up_to_the_whole(db):
    whole = compute_kpis(db, FROM, TO)
    parts = [compute_kpis(db, FROM, TO, segment=s) for s in ("b2b", "b2c")]
    for name in ("credit_sales", "opening_ar", "closing_ar", "closing_current_ar", "defaulted", "recovered"):
        assert getattr(whole, name) == sum(getattr(p, name) for p in parts), name


# ---- regua kpis ----
def invoke(*args):
    return CliRunner().invoke(kpis_command, [str(a) for a in args])


def test_cli_prints_tables_with_the_numbers(db):
    result = invoke("--db", db, "--from", "2025-01-01", "--to", "2025-03-31")
    assert result.exit_code == 0, result.output
    # Brazilian formats, as in the e-mails (issue 15 #5): money in reais, decimal commas.
    for text in ("R$ 1.600,00", "56,25", "60%", "33,33%", "R$ 1.200,00", "90+", "R$ 300,00", "83,33%", "Roll rates"):
        assert text in result.output, text
    assert "above 100%" not in result.output  # the note only comes with such a rate


def test_cli_explains_a_roll_rate_above_100_percent(db):
    import io

    from rich.console import Console

    from regua.cli.kpis import ROLL_NOTE, _print

    report = compute_kpis(db, FROM, TO)
    first = report.roll_rates[0]
    report = msgspec.structs.replace(report, roll_rates=[msgspec.structs.replace(first, current_to_1_30=Decimal("166.67"))])
    console = Console(file=io.StringIO(), width=200)
    _print(report, console)
    text = console.file.getvalue()
    assert "166,67%" in text and ROLL_NOTE.split(":")[0] in text


def test_cli_json_is_the_report(db):
    result = invoke("--db", db, "--from", "2025-01-01", "--to", "2025-03-31", "--segment", "b2b", "--current-days", "5",
                    "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == compute_kpis(db, FROM, TO, "b2b", 5).to_dict()


@pytest.mark.parametrize("args, message", [
    (["--from", "2025-04-01", "--to", "2025-03-31"], "is after to"),
    (["--from", "2025-02-30", "--to", "2025-03-31"], "'2025-02-30' does not match"),
    (["--from", "2025-01-01", "--to", "2025-03-31", "--current-days", "-1"], "--current-days"),
    (["--from", "2025-01-01", "--to", "2025-03-31", "--step-days", "0"], "--step-days"),
    (["--from", "2025-01-01"], "Missing option '--to'"),
])
def test_cli_bad_input_is_a_usage_error(db, args, message):
    result = invoke("--db", db, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_bad_database_files_are_usage_errors(tmp_path):
    cases = [(tmp_path / "missing.db", "does not exist"),
             (_plain_sqlite(tmp_path / "other.db"), "has no portfolio"),
             (tmp_path / "notes.txt", "cannot open it")]
    (tmp_path / "notes.txt").write_text("not a database, but long enough to have a header. " * 5, encoding="utf-8")
    for path, message in cases:
        result = invoke("--db", path, "--from", "2025-01-01", "--to", "2025-03-31")
        assert result.exit_code == 2, result.output
        assert message in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_bad_postgresql_stores_are_usage_errors(postgres_url):
    result = invoke("--db", postgres_url, "--from", "2025-01-01", "--to", "2025-03-31")  # no portfolio tables
    assert result.exit_code == 2 and "has no portfolio" in result.output, result.output
    unreachable = "postgresql://regua:s3cret@127.0.0.1:9/regua"  # port 9 (discard): nothing listens
    result = invoke("--db", unreachable, "--from", "2025-01-01", "--to", "2025-03-31")
    assert result.exit_code == 2 and "cannot connect" in result.output, result.output
    assert "s3cret" not in result.output  # the password is never printed


# ---- GET /kpis ----
def _kpis_registered(app) -> bool:
    return any(route.path == "/kpis" for route in app.routes)


@pytest.fixture
def server(tmp_path, backend):
    settings = sandbox_settings(tmp_path)
    portfolio = Portfolio(backend)  # the portfolio lives in the server's store (a file, or PostgreSQL)
    portfolio.save(RECORDS)
    portfolio.close()
    srv = ThreadedServer(settings)
    if not _kpis_registered(srv.app):  # until server/api/__init__.py lists it: register it on this app only
        from regua.server.api.kpis import KpiController

        srv.app.register(KpiController)
    with srv:
        yield srv


def test_kpis_route_is_registered_in_the_app(tmp_path):
    from regua.server.app import create_app

    app = create_app(sandbox_settings(tmp_path))
    try:
        if not _kpis_registered(app):
            pytest.skip("GET /kpis is not registered in server/api/__init__.py (ROUTES) yet")
    finally:
        app.state.services.stop()


def test_http_kpis_answers_the_report(server):
    with server.client() as client:
        response = client.get("/kpis", params={"from": "2025-01-01", "to": "2025-03-31"})
        assert response.status_code == 200, response.text
        assert response.json() == compute_kpis(server.services.settings.store.location, FROM, TO).to_dict()
        response = client.get("/kpis", params={"from": "2025-01-01", "to": "2025-03-31", "segment": "b2b",
                                               "current_days": 60, "step_days": 45})
        body = response.json()
        assert (response.status_code, body["segment"], body["dso"], body["current_days"]) == (200, "b2b", "144.00", 60)
        assert len(body["roll_rates"]) == 2


@pytest.mark.parametrize("params, location", [
    ({"from": "2025-04-01", "to": "2025-03-31"}, "query.from"),
    ({"from": "2025-02-30", "to": "2025-03-31"}, "query.from"),
    ({"from": "2025-01-01", "to": "31/03/2025"}, "query.to"),
    ({"from": "20250101", "to": "2025-03-31"}, "query.from"),
    ({"from": "2025-01-01", "to": "2025-03-31", "step_days": 1}, None),  # 90 daily periods: fine
    ({"from": "1900-01-01", "to": "2025-03-31"}, "query.to"),  # too many monthly roll periods
])
def test_http_kpis_bad_query_parameters(server, params, location):
    with server.client() as client:
        response = client.get("/kpis", params=params)
        if location is None:
            assert response.status_code == 200, response.text
            return
        body = assert_error(response, 400, "INVALID_QUERY")
        assert error_locations(body) == {location}


def test_http_kpis_needs_a_key_with_decisions_read(server):
    with server.client(headers={}) as client:
        assert_error(client.get("/kpis", params={"from": "2025-01-01", "to": "2025-03-31"}), 401)
