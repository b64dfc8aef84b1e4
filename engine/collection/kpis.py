"""Collection KPIs over the portfolio (engine/portfolio), for a date range and optionally a segment.

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
  Not bounded by 100: receivables issued after `S` can reach the next bucket by `E`.

**Numbers.** Money is summed exactly, in integer cents; rates and DSO are rounded to 2 decimal
places, half to even (banker's rounding), by exact integer arithmetic. All ratios are
percentages except DSO (days).
"""

from __future__ import annotations

import calendar
import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import msgspec
import sqlite_utils

from .. import sqlite

BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
#: Roll-rate periods one report may have: 50 years of months. More means a query per 150 checkpoints.
MAX_ROLL_PERIODS = 600
_CHUNK = 150  # checkpoints per query: 11 result columns each, under SQLite's 2000-column limit
_BEFORE_ANY_DATE = "0000-12-31"  # sorts before every ISO date: "the day before 0001-01-01"

# Money is TEXT such as '1234.50'. It is turned into integer cents in SQL by splitting the text at
# the point (integer part × 100 + the first two decimals) rather than CAST(... AS REAL): floats are
# exact only below 2**53 cents (~9e13 reais), while this is exact for every amount the model allows
# (< 1e15, check() keeps 2 decimal places; '12' and '12.5' are read right too) and SQLite sums
# integers exactly (an overflow raises an error, never a wrong total). Summing Decimals in Python
# instead would mean streaming a million rows per query; this keeps every sum inside SQLite.
_CENTS = ("(CASE WHEN instr({x}, '.') = 0 THEN CAST({x} AS INTEGER) * 100 "
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
def _scope(segment: str | None) -> str:
    return " AND r.customer_id IN (SELECT id FROM customers WHERE segment = :segment)" if segment is not None else ""


def _totals(conn: sqlite3.Connection, params: dict, segment: str | None) -> dict:
    """Sales, opening/closing AR, closing current AR, default and recovery: one pass."""
    sql = f"""
    WITH per AS (
      SELECT r.a AS a, r.issue AS issue, r.due AS due,
        COALESCE(SUM(CASE WHEN p.paid_on <= :open THEN p.c END), 0) AS p_open,
        COALESCE(SUM(p.c), 0) AS p_to,
        COALESCE(SUM(CASE WHEN p.paid_on <= max(:open, r.due) THEN p.c END), 0) AS p_start
      FROM (SELECT r.id AS id, {_CENTS.format(x="r.amount")} AS a, r.issue_date AS issue, r.due_date AS due
            FROM receivables r WHERE r.status != 'cancelled' AND r.issue_date <= :to{_scope(segment)}) r
      LEFT JOIN (SELECT receivable_id, paid_on, {_CENTS.format(x="amount")} AS c FROM payments
                 WHERE paid_on <= :to) p ON p.receivable_id = r.id
      GROUP BY r.id
    )
    SELECT
      COALESCE(SUM(CASE WHEN issue >= :from THEN a END), 0) AS sales,
      COALESCE(SUM(CASE WHEN issue <= :open AND a > p_open THEN a - p_open END), 0) AS opening,
      COALESCE(SUM(CASE WHEN a > p_to THEN a - p_to END), 0) AS closing,
      COALESCE(SUM(CASE WHEN a > p_to AND due >= :current_cut THEN a - p_to END), 0) AS closing_current,
      COALESCE(SUM(CASE WHEN due < :to AND a > p_start THEN a - p_start END), 0) AS defaulted,
      COALESCE(SUM(CASE WHEN due < :to AND a > p_start THEN a - p_start - max(a - p_to, 0) END), 0) AS recovered
    FROM per"""
    cursor = conn.execute(sql, params)
    return dict(zip([d[0] for d in cursor.description], cursor.fetchone()))


def _buckets(conn: sqlite3.Connection, dates: list[str], segment: str | None, params: dict) -> list[list[tuple[int, int]]]:
    """Per checkpoint, per bucket of BUCKETS: (balance in cents, count of receivables)."""
    result: list[list[tuple[int, int]]] = []
    for start in range(0, len(dates), _CHUNK):
        chunk = dates[start:start + _CHUNK]
        values = dict(params, first=chunk[0], last=chunk[-1])
        paid, sums = [], []
        for i, day in enumerate(chunk):
            values.update({f"t{i}": day, **{f"c{k}_{i}": _iso_minus(dt.date.fromisoformat(day), k) for k in (30, 60, 90)}})
            paid.append(f"COALESCE(SUM(CASE WHEN p.paid_on <= :t{i} THEN p.c END), 0) AS p{i}")
            where = [f"due >= :t{i}", f"due < :t{i} AND due >= :c30_{i}", f"due < :c30_{i} AND due >= :c60_{i}",
                     f"due < :c60_{i} AND due >= :c90_{i}", f"due < :c90_{i}"]
            for condition in where:
                case = f"issue <= :t{i} AND a > p{i} AND {condition}"
                sums.append(f"COALESCE(SUM(CASE WHEN {case} THEN a - p{i} END), 0), COUNT(CASE WHEN {case} THEN 1 END)")
        sql = f"""
        WITH per AS (
          SELECT r.a AS a, r.issue AS issue, r.due AS due, {", ".join(paid)}
          FROM (SELECT r.id AS id, {_CENTS.format(x="r.amount")} AS a, r.issue_date AS issue, r.due_date AS due
                FROM receivables r WHERE r.status != 'cancelled' AND r.issue_date <= :last{_scope(segment)}) r
          LEFT JOIN (SELECT receivable_id, paid_on, {_CENTS.format(x="amount")} AS c FROM payments
                     WHERE paid_on <= :last) p ON p.receivable_id = r.id
          GROUP BY r.id
          HAVING a > COALESCE(SUM(CASE WHEN p.paid_on <= :first THEN p.c END), 0) OR issue > :first
        )
        SELECT {", ".join(sums)} FROM per"""
        row = conn.execute(sql, values).fetchone()
        for i in range(len(chunk)):
            cells = row[i * 10:(i + 1) * 10]
            result.append([(cells[2 * b], cells[2 * b + 1]) for b in range(len(BUCKETS))])
    return result


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
    """The KPIs of [date_from, date_to] (both included) over the portfolio in `db` (a file path or an
    open connection), for one customer segment or all. A file without portfolio tables is an empty
    portfolio. Raises KpiArgumentError (a ValueError) for bad arguments, FileNotFoundError for a
    missing file; the queries run in one read transaction, so every figure sees the same data."""
    _validate(date_from, date_to, current_days, step_days)
    dates = checkpoints(date_from, date_to, step_days)
    if isinstance(db, (str, Path)):
        if not Path(db).is_file():
            raise FileNotFoundError(f"{db}: no such file")
        conn = sqlite.connect(str(db)).conn
        own_connection = True
    else:
        conn = db.conn if isinstance(db, sqlite_utils.Database) else db
        own_connection = False
    try:
        own_transaction = not conn.in_transaction
        if own_transaction:
            conn.execute("BEGIN")
        try:
            at = dates if dates and dates[-1] == date_to.isoformat() else [*dates, date_to.isoformat()]
            params = {"from": date_from.isoformat(), "to": date_to.isoformat(), "open": _iso_minus(date_from, 1),
                      "current_cut": _iso_minus(date_to, current_days), "segment": segment}
            if has_portfolio(conn):
                totals = _totals(conn, params, segment)
                points = _buckets(conn, at, segment, params)
            else:
                totals = dict.fromkeys(("sales", "opening", "closing", "closing_current", "defaulted", "recovered"), 0)
                points = [[(0, 0)] * len(BUCKETS) for _ in at]
        finally:
            if own_transaction and conn.in_transaction:
                conn.execute("COMMIT")
    finally:
        if own_connection:
            conn.close()
    days = (date_to - date_from).days + 1
    rolls = [RollPeriod(dt.date.fromisoformat(dates[i - 1]), dt.date.fromisoformat(dates[i]),
                        *(_ratio(points[i][b + 1][0], points[i - 1][b][0]) for b in range(4)))
             for i in range(1, len(dates))]
    return KpiReport(
        date_from, date_to, segment, current_days, days,
        credit_sales=_money(totals["sales"]), opening_ar=_money(totals["opening"]),
        closing_ar=_money(totals["closing"]), closing_current_ar=_money(totals["closing_current"]),
        dso=_ratio(totals["closing"], totals["sales"], days),
        cei=_ratio(totals["opening"] + totals["sales"] - totals["closing"],
                   totals["opening"] + totals["sales"] - totals["closing_current"]),
        defaulted=_money(totals["defaulted"]), recovered=_money(totals["recovered"]),
        recovery_rate=_ratio(totals["recovered"], totals["defaulted"]),
        aging=[AgingBucket(name, _money(amount), count) for name, (amount, count) in zip(BUCKETS, points[-1])],
        roll_rates=rolls)
