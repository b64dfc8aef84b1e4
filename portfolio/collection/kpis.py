"""Collection KPIs over the portfolio (portfolio), for a date range and optionally a segment.

`compute_kpis(db, date_from, date_to, segment=None, current_days=0, step_days=None)` returns a
`KpiReport`; `report.to_dict()` is JSON-ready (money and rates as strings with 2 places, dates ISO).

**Balances.** Every receivable is a credit sale on its `issue_date`. Its balance at the end of
day T is `amount − Σ payments with paid_on ≤ T`, floored at 0, and counts only if
`issue_date ≤ T`. A `cancelled` receivable counts as nothing, at every date (the store keeps no
cancellation date). A `renegotiated` one counts like an open one: its balance is what its own
payments leave (agreements are not looked at). A receivable's `status` is not trusted for past
dates either: `paid` or not, the payments decide. Days past due at T = `(T − due_date)` in days;
a receivable is past due at T when that is > 0. Disputes do not matter here.

**Period.** `[from, to]`, both days included; `days = (to − from) + 1`; the opening date is
`from − 1` (the day before), the closing date is `to`.

- **Credit sales** = Σ amount of the receivables issued in `[from, to]`.
- **DSO** (days sales outstanding) = closing AR ÷ credit sales × days. None without sales.
- **CEI** (collection effectiveness index) = (opening AR + credit sales − closing AR) ÷
  (opening AR + credit sales − closing current AR) × 100, where opening AR is the balance at
  `from − 1`, closing AR the balance at `to`, and closing *current* AR the balance at `to` of the
  receivables at most `current_days` days past due at `to` (default 0: not past due). None when
  the denominator is 0. It is always between 0 and 100: no balance ever grows, so neither AR at
  `to` exceeds opening AR + credit sales, and current AR is part of total AR.
- **Recovery rate** = recovered ÷ amount in default × 100. A receivable is *in default in the
  period* when it is past due on some day of `[from − 1, to]` with a balance > 0 when its default
  starts in the period: its *start* is `from − 1` if it was already past due then
  (`due_date < from − 1`), else its `due_date` (it becomes past due the next day, inside the
  period; `due_date ≤ to − 1`). In one formula: it is in default when `due_date < to` and its
  balance at `start = max(from − 1, due_date)` is > 0. **Amount in default** = Σ balance at start;
  **recovered** = Σ (balance at start − balance at `to`), i.e. what the payments made after the
  start and up to `to` took off that balance (an overpayment counts up to the balance only).
  So each receivable adds between 0 and its own default to the recovered amount, and the rate is
  between 0 and 100. None when nothing was in default.
- **Aging** at `to`: the receivables with a balance > 0 by days past due — `current` (≤ 0),
  `1-30`, `31-60`, `61-90`, `90+` (91 days or more) — amount (Σ balance) and count of each.
  The buckets add up to closing AR.
- **Roll rates**: checkpoints are the calendar month ends `E` with `from − 1 ≤ E ≤ to` (or, with
  `step_days = n`, the dates `from − 1`, `from − 1 + n`, … up to `to`); for each pair of
  consecutive checkpoints `(S, E)`, the rate from a bucket to the next one = balance in the next
  bucket at `E` ÷ balance in the bucket at `S` × 100, for current → 1-30, 1-30 → 31-60,
  31-60 → 61-90 and 61-90 → 90+, with the aging buckets above. None when the balance at `S` is 0.
  Not bounded by 100: receivables issued after `S` can reach the next bucket by `E`, and `90+`
  is open-ended (it keeps everything older), so 61-90 → 90+ compares all of 90+ at `E` with
  61-90 at `S` and is usually well above 100. At most 600 periods per report.

**Numbers.** Money is summed exactly, in integer cents; rates and DSO are rounded to 2 decimal
places, half to even (banker's rounding), by exact integer arithmetic. All ratios are
percentages except DSO (days).

**Cost.** One pass over receivables ⋈ payments (SQLite, payments found by their receivable index)
writes one row per receivable still open at `from − 1` or issued later into a temporary table;
every figure comes from that table, and roll rates from pairing each of its rows with the
checkpoints at which it has a balance. Roughly, for 1M receivables and 900k payments on a small
2-core machine: 3 s for a quarter, 6 s for a year, 15 s for 5 years of monthly roll rates.
On PostgreSQL the same plan runs natively (kpis_postgres.py), chosen by the store's location.
"""

from __future__ import annotations

import calendar
import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import msgspec
import sqlite_utils

from regua import dialect, postgres, sqlite

BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
#: Roll-rate periods one report may have (50 years of months): bounds the work one request can ask for.
MAX_ROLL_PERIODS = 600
_BEFORE_ANY_DATE = "0000-12-31"  # sorts before every ISO date: "the day before 0001-01-01"
_NEVER = "9999-99-99"  # sorts after every ISO date: "not settled by `to`"

# Money is TEXT such as '1234.50'; sums are taken in SQL in integer cents, exactly. CAST(... AS REAL)
# alone is exact only while the cents fit a double's 53 bits with room for rounding, so it is used for
# texts of at most 12 characters (below R$ 1e9 with decimals, 1e12 without: the error of text→double
# and of ×100 is far under half a cent, and round() lands on the exact integer), and every longer text
# is split at the point (integer part × 100 + first two decimals), exact for any amount the model
# allows (< 1e15, 2 decimal places after check(); '12' and '12.5' are read right too). The float path
# is 2-3× faster on a million rows. SQLite sums integers exactly (an overflow raises, never a wrong
# total). Summing Decimals in Python instead would stream a million rows through the interpreter.
_CENTS = ("(CASE WHEN length({x}) <= 12 THEN CAST(round({x} * 100) AS INTEGER) "
          "WHEN instr({x}, '.') = 0 THEN CAST({x} AS INTEGER) * 100 "
          "ELSE CAST(substr({x}, 1, instr({x}, '.') - 1) AS INTEGER) * 100 "
          "+ CAST(substr(substr({x}, instr({x}, '.') + 1) || '00', 1, 2) AS INTEGER) END)")


class KpiArgumentError(ValueError):
    """A bad argument; `field` names it (from, to, current_days, step_days) for CLI and HTTP errors."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class AgingBucket(msgspec.Struct):
    bucket: str  # one of BUCKETS
    amount: Decimal
    count: int


class RollPeriod(msgspec.Struct):
    start: dt.date
    end: dt.date
    current_to_1_30: Decimal | None
    from_1_30_to_31_60: Decimal | None
    from_31_60_to_61_90: Decimal | None
    from_61_90_to_90_plus: Decimal | None


class KpiReport(msgspec.Struct):
    date_from: dt.date
    date_to: dt.date
    segment: str | None
    current_days: int
    days: int
    credit_sales: Decimal
    opening_ar: Decimal
    closing_ar: Decimal
    closing_current_ar: Decimal
    dso: Decimal | None
    cei: Decimal | None
    defaulted: Decimal
    recovered: Decimal
    recovery_rate: Decimal | None
    aging: list[AgingBucket]
    roll_rates: list[RollPeriod]

    def to_dict(self) -> dict:
        """JSON-ready: Decimals as strings with 2 places, dates ISO, None as None."""
        return msgspec.to_builtins(self)


# ---- exact arithmetic ----
def _money(cents: int) -> Decimal:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return Decimal(f"{sign}{whole}.{part:02d}")


def _ratio(numerator: int, denominator: int, scale: int = 100) -> Decimal | None:
    """numerator × scale ÷ denominator to 2 places, half to even, exactly (integers); None if ÷ 0."""
    if denominator == 0:
        return None
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(numerator * scale * 100, denominator)
    if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2):
        quotient += 1
    return _money(quotient)


# ---- dates ----
def _iso_minus(day: dt.date, days: int) -> str:
    try:
        return (day - dt.timedelta(days=days)).isoformat()
    except OverflowError:
        return _BEFORE_ANY_DATE


def _month_end(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def checkpoints(date_from: dt.date, date_to: dt.date, step_days: int | None = None) -> list[str]:
    """The roll-rate checkpoints (ISO dates) of [date_from, date_to]: see the module docstring."""
    first = _iso_minus(date_from, 1)
    if step_days is not None:
        start = date_from - dt.timedelta(days=1) if date_from > dt.date.min else date_from
        count = (date_to - start).days // step_days + 1
        if count - 1 > MAX_ROLL_PERIODS:
            raise KpiArgumentError("step_days", f"the range has {count - 1} roll-rate periods of {step_days} days; "
                                   f"at most {MAX_ROLL_PERIODS} (shorten the range or take a larger step)")
        return [(start + dt.timedelta(days=i * step_days)).isoformat() for i in range(count)]
    base = date_from - dt.timedelta(days=1) if date_from > dt.date.min else date_from
    months = (date_to.year - base.year) * 12 + date_to.month - base.month
    if months > MAX_ROLL_PERIODS:
        raise KpiArgumentError("to", f"the range spans {months} months of roll rates; at most {MAX_ROLL_PERIODS} "
                               "(shorten the range or give step_days)")
    found = []
    for index in range(months + 1):
        year, month = divmod(base.month - 1 + index, 12)
        end = _month_end(base.year + year, month + 1).isoformat()
        if first <= end <= date_to.isoformat():
            found.append(end)
    return found


# ---- queries ----
# One pass over receivables ⋈ payments (payments up to `to`) leaves, in a temporary table, one row per
# receivable that matters: not cancelled, issued by `to`, in the segment, and not already settled at
# `from − 1` (those add nothing to any figure). Each row has its amount, dates, what was paid by
# `from − 1`, by its default start and by `to`, how many payments, and `settled`: the day its
# payments reached its amount (_NEVER if not by `to`), so "balance > 0 at T" is `issue <= T < settled`.
_FACTS = f"""
CREATE TEMP TABLE regua_kpi_facts AS
SELECT id, a, issue, due, p_open, p_start, p_to, n, last_paid,
  CASE WHEN p_to < a THEN '{_NEVER}' WHEN n = 0 THEN issue WHEN n = 1 THEN last_paid
       ELSE (SELECT min(paid_on) FROM (
               SELECT paid_on, sum(c) OVER (ORDER BY paid_on ROWS UNBOUNDED PRECEDING) AS paid
               FROM (SELECT paid_on, {_CENTS.format(x="amount")} AS c FROM payments
                     WHERE receivable_id = g.id AND paid_on <= :to)) WHERE paid >= g.a) END AS settled
FROM (
  SELECT r.id AS id, r.a AS a, r.issue AS issue, r.due AS due,
    COALESCE(SUM(CASE WHEN p.paid_on <= :open THEN p.c END), 0) AS p_open,
    COALESCE(SUM(CASE WHEN p.paid_on <= max(:open, r.due) THEN p.c END), 0) AS p_start,
    COALESCE(SUM(p.c), 0) AS p_to, COUNT(p.c) AS n, MAX(p.paid_on) AS last_paid
  FROM (SELECT r.id AS id, {_CENTS.format(x="r.amount")} AS a, r.issue_date AS issue, r.due_date AS due
        FROM receivables r WHERE r.status != 'cancelled' AND r.issue_date <= :to {{scope}}) r
  LEFT JOIN (SELECT receivable_id, paid_on, {_CENTS.format(x="amount")} AS c FROM payments
             WHERE paid_on <= :to) p ON p.receivable_id = r.id
  GROUP BY r.id
  HAVING r.issue > :open OR r.a > p_open
) g"""

# The aging bucket (index in BUCKETS) at checkpoint t, from the due date: cN is t − N days, so
# `due >= t` is "days past due ≤ 0", `due >= c30` is "≤ 30", and so on (ISO dates sort as text).
_BUCKET = ("CASE WHEN {due} >= {t} THEN 0 WHEN {due} >= {c30} THEN 1 WHEN {due} >= {c60} THEN 2 "
           "WHEN {due} >= {c90} THEN 3 ELSE 4 END")

_TOTALS = """
SELECT
  COALESCE(SUM(CASE WHEN issue >= :from THEN a END), 0),
  COALESCE(SUM(CASE WHEN issue <= :open AND a > p_open THEN a - p_open END), 0),
  COALESCE(SUM(CASE WHEN a > p_to THEN a - p_to END), 0),
  COALESCE(SUM(CASE WHEN a > p_to AND due >= :current_cut THEN a - p_to END), 0),
  COALESCE(SUM(CASE WHEN due < :to AND a > p_start THEN a - p_start END), 0),
  COALESCE(SUM(CASE WHEN due < :to AND a > p_start THEN a - p_start - max(a - p_to, 0) END), 0)
FROM temp.regua_kpi_facts"""

_AGING = f"""
SELECT {_BUCKET.format(due="due", t=":to", c30=":c30", c60=":c60", c90=":c90")} AS bucket, SUM(a - p_to), COUNT(*)
FROM temp.regua_kpi_facts WHERE a > p_to GROUP BY bucket"""

# Roll-rate checkpoints: each receivable is paired only with the checkpoints at which it has a
# balance (issue <= t < settled: a range search on the checkpoints' index; CROSS JOIN keeps the
# facts as the outer loop). Its balance at t is its amount less its payments by t: none or all of
# its only payment, else a sum over its own payments (an index search, for the few paid in parts).
def _rolls_sql() -> str:
    paid = (f"CASE WHEN f.n = 0 THEN 0 "
            f"WHEN f.n = 1 THEN (CASE WHEN f.last_paid <= k.t THEN f.p_to ELSE 0 END) "
            f"ELSE (SELECT COALESCE(SUM({_CENTS.format(x='amount')}), 0) FROM payments "
            f"WHERE receivable_id = f.id AND paid_on <= k.t) END")
    return f"""
SELECT k.k, {_BUCKET.format(due="f.due", t="k.t", c30="k.c30", c60="k.c60", c90="k.c90")} AS bucket,
  SUM(f.a - ({paid}))
FROM temp.regua_kpi_facts f CROSS JOIN temp.regua_kpi_points k
WHERE k.t >= f.issue AND k.t < f.settled
GROUP BY k.k, bucket"""


def _cuts(day: str) -> dict:
    date = dt.date.fromisoformat(day)
    return {f"c{k}": _iso_minus(date, k) for k in (30, 60, 90)}


def _query(conn: sqlite3.Connection, params: dict, segment: str | None, dates: list[str]) -> tuple[list, list, list]:
    """(totals in cents, aging [(cents, count)] per bucket, per checkpoint [cents per bucket])."""
    scope = "AND r.customer_id IN (SELECT id FROM customers WHERE segment = :segment)" if segment is not None else ""
    conn.execute("DROP TABLE IF EXISTS temp.regua_kpi_facts")
    conn.execute("DROP TABLE IF EXISTS temp.regua_kpi_points")
    try:
        conn.execute(_FACTS.replace("{scope}", scope), params)
        totals = list(conn.execute(_TOTALS, params).fetchone())
        aging = [(0, 0)] * len(BUCKETS)
        for bucket, cents, count in conn.execute(_AGING, {**params, **_cuts(params["to"])}):
            aging[bucket] = (cents, count)
        points = [[0] * len(BUCKETS) for _ in dates]
        if len(dates) > 1:
            conn.execute("CREATE TEMP TABLE regua_kpi_points (k INTEGER, t TEXT, c30 TEXT, c60 TEXT, c90 TEXT)")
            conn.executemany("INSERT INTO temp.regua_kpi_points VALUES (:k, :t, :c30, :c60, :c90)",
                             [{"k": k, "t": t, **_cuts(t)} for k, t in enumerate(dates)])
            conn.execute("CREATE INDEX temp.regua_kpi_points_t ON regua_kpi_points (t)")
            for k, bucket, cents in conn.execute(_rolls_sql(), params):
                points[k][bucket] = cents
        return totals, aging, points
    finally:
        conn.execute("DROP TABLE IF EXISTS temp.regua_kpi_facts")
        conn.execute("DROP TABLE IF EXISTS temp.regua_kpi_points")


def has_portfolio(conn: sqlite3.Connection) -> bool:
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {"customers", "receivables", "payments"} <= names


def _validate(date_from, date_to, current_days: int, step_days: int | None) -> None:
    for name, value in (("from", date_from), ("to", date_to)):
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise KpiArgumentError(name, f"{name} must be a date, not {type(value).__name__}")
    if date_from > date_to:
        raise KpiArgumentError("from", f"from ({date_from.isoformat()}) is after to ({date_to.isoformat()})")
    if isinstance(current_days, bool) or not isinstance(current_days, int) or current_days < 0:
        raise KpiArgumentError("current_days", "current_days must be a whole number of days, 0 or more")
    if step_days is not None and (isinstance(step_days, bool) or not isinstance(step_days, int) or step_days < 1):
        raise KpiArgumentError("step_days", "step_days must be a whole number of days, 1 or more")


def compute_kpis(db: str | Path | sqlite_utils.Database | sqlite3.Connection, date_from: dt.date, date_to: dt.date,
                 segment: str | None = None, current_days: int = 0, step_days: int | None = None) -> KpiReport:
    """The KPIs of [date_from, date_to] (both included) over the portfolio in `db` (a SQLite file
    path, a postgresql:// URL or an open connection to either), for one customer segment or all. A
    store without portfolio tables is an empty portfolio. Raises KpiArgumentError (a ValueError) for
    bad arguments, FileNotFoundError for a missing file; the queries run in one read transaction
    (repeatable read on PostgreSQL), so every figure sees the same data."""
    _validate(date_from, date_to, current_days, step_days)
    dates = checkpoints(date_from, date_to, step_days)
    if isinstance(db, str) and postgres.is_url(db) or dialect.is_postgres(db):
        totals, aging, points = _query_postgres(db, date_from, date_to, segment, current_days, dates)
    else:
        totals, aging, points = _query_sqlite(db, date_from, date_to, segment, current_days, dates)
    sales, opening, closing, closing_current, defaulted, recovered = totals
    days = (date_to - date_from).days + 1
    rolls = [RollPeriod(dt.date.fromisoformat(dates[i - 1]), dt.date.fromisoformat(dates[i]),
                        *(_ratio(points[i][b + 1], points[i - 1][b]) for b in range(4)))
             for i in range(1, len(dates))]
    return KpiReport(
        date_from, date_to, segment, current_days, days,
        credit_sales=_money(sales), opening_ar=_money(opening), closing_ar=_money(closing),
        closing_current_ar=_money(closing_current), dso=_ratio(closing, sales, days),
        cei=_ratio(opening + sales - closing, opening + sales - closing_current),
        defaulted=_money(defaulted), recovered=_money(recovered), recovery_rate=_ratio(recovered, defaulted),
        aging=[AgingBucket(name, _money(amount), count) for name, (amount, count) in zip(BUCKETS, aging)],
        roll_rates=rolls)
def _query_postgres(db, date_from, date_to, segment, current_days, dates) -> tuple[list, list, list]:
    from . import kpis_postgres

    own = isinstance(db, str)
    raw = postgres.connect(db) if own else db.conn.raw
    outer = not own and db.conn.in_transaction
    try:
        if not outer:
            raw.execute("begin isolation level repeatable read")
        try:
            if not kpis_postgres.has_portfolio(raw):
                return [0] * 6, [(0, 0)] * len(BUCKETS), [[0] * len(BUCKETS) for _ in dates]
            return kpis_postgres.query(raw, date_from, date_to, segment, current_days, dates)
        finally:
            if not outer:
                raw.execute("rollback")  # nothing was written but this session's temporary tables
    finally:
        if own:
            raw.close()


def _query_sqlite(db, date_from, date_to, segment, current_days, dates) -> tuple[list, list, list]:
    if isinstance(db, (str, Path)):
        if not Path(db).is_file():
            raise FileNotFoundError(f"{db}: no such file")
        conn = sqlite.connect(str(db)).conn
        own_connection = True
    else:
        conn = db.conn if isinstance(db, sqlite_utils.Database) else db
        own_connection = False
    own_transaction = not conn.in_transaction
    try:
        if own_transaction:
            conn.execute("BEGIN")
        params = {"from": date_from.isoformat(), "to": date_to.isoformat(), "open": _iso_minus(date_from, 1),
                  "current_cut": _iso_minus(date_to, current_days), "segment": segment}
        if has_portfolio(conn):
            return _query(conn, params, segment, dates)
        return [0] * 6, [(0, 0)] * len(BUCKETS), [[0] * len(BUCKETS) for _ in dates]
    finally:
        if own_transaction and conn.in_transaction:
            conn.execute("COMMIT")  # nothing was written to the database: a read transaction ends
        if own_connection:
            conn.close()
