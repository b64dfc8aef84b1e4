"""Payment behaviour, computed from the portfolio: what monitoring policies (and, through
`portfolio.customer`, credit policies) know about how a customer pays (dsl/monitoring.py: BEHAVIOUR).

A receivable counts once it is *due*: a paid one with the days late at its last payment (0 when
paid by the due date, however early), an open one past its due date with the days late so far.
Cancelled and renegotiated receivables do not count. Money is summed in integer cents.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable, Iterator

import sqlite_utils

from ..collection.facts import CENTS

#: The trend compares the last 3 receivables due with the 3 before; a change of more than this
#: many average days late is a trend, anything smaller is `stable`.
TREND_WINDOW = 3
TREND_THRESHOLD_DAYS = Decimal(5)
_TENTH = Decimal("0.1")

_ROWS = f"""
    select r.customer_id, r.status, r.due_date, {CENTS.replace('amount', 'r.amount')} as cents,
           (select coalesce(sum({CENTS}), 0) from payments p where p.receivable_id = r.id and p.paid_on <= :as_of),
           (select max(paid_on) from payments p where p.receivable_id = r.id and p.paid_on <= :as_of)
    from receivables r
    where r.status in ('open', 'paid') and r.issue_date <= :as_of {{where}}
    order by r.customer_id, r.due_date, r.id
"""


def _mean(values: list[int]) -> Decimal:
    return (Decimal(sum(values)) / len(values)).quantize(_TENTH, ROUND_HALF_UP)


def behaviour(rows: Iterable[tuple], as_of: dt.date) -> dict:
    """The BEHAVIOUR facts from one customer's receivables: (status, due date, cents, paid cents,
    last payment date), in due-date order."""
    lateness: list[tuple[int, bool]] = []  # (days late, paid on time) per receivable due, in due order
    open_cents = overdue_cents = open_count = paid_count = days_late_now = 0
    for status, due_date, cents, paid_cents, last_paid in rows:
        due = dt.date.fromisoformat(due_date)
        if status == "open":
            remaining = max(cents - paid_cents, 0)
            open_cents += remaining
            open_count += 1
            if due < as_of:
                late = (as_of - due).days
                overdue_cents += remaining
                days_late_now = max(days_late_now, late)
                lateness.append((late, False))
        else:  # paid; imported as paid without payments: nothing says it was late
            paid_count += 1
            late = max((dt.date.fromisoformat(last_paid) - due).days, 0) if last_paid else 0
            lateness.append((late, late == 0))
    days = [late for late, _ in lateness]
    cycles = 0
    for _late, on_time in reversed(lateness):
        if not on_time:
            break
        cycles += 1
    trend, trend_days = "stable", Decimal("0.0")
    if len(days) >= 2 * TREND_WINDOW:
        trend_days = _mean(days[-TREND_WINDOW:]) - _mean(days[-2 * TREND_WINDOW:-TREND_WINDOW])
        if trend_days > TREND_THRESHOLD_DAYS:
            trend = "worsening"
        elif trend_days < -TREND_THRESHOLD_DAYS:
            trend = "improving"
    return {
        "avg_days_late": _mean(days) if days else Decimal("0.0"),
        "max_days_late": max(days, default=0),
        "days_late_now": days_late_now,
        "on_time_ratio": (Decimal(sum(on for _, on in lateness)) / len(lateness)).quantize(Decimal("0.0001"))
        if lateness else Decimal("1"),
        "cycles_without_delay": cycles,
        "open_balance": Decimal(open_cents).scaleb(-2),
        "overdue_balance": Decimal(overdue_cents).scaleb(-2),
        "open_receivables": open_count,
        "paid_receivables": paid_count,
        "trend": trend,
        "trend_days": trend_days,
    }


def customer_behaviour(db: sqlite_utils.Database, customer_id: str, as_of: dt.date) -> dict:
    rows = db.execute(_ROWS.format(where="and r.customer_id = :customer"),
                      {"as_of": as_of.isoformat(), "customer": customer_id}).fetchall()
    return behaviour([row[1:] for row in rows], as_of)


def all_behaviour(db: sqlite_utils.Database, as_of: dt.date, customer_ids: set[str] | None = None
                  ) -> Iterator[tuple[str, dict]]:
    """(customer id, behaviour) for every customer with receivables, in id order, in one query."""
    cursor = db.execute(_ROWS.format(where=""), {"as_of": as_of.isoformat()})
    current, group = None, []
    for row in cursor:
        if row[0] != current:
            if group and (customer_ids is None or current in customer_ids):
                yield current, behaviour(group, as_of)
            current, group = row[0], []
        group.append(row[1:])
    if group and (customer_ids is None or current in customer_ids):
        yield current, behaviour(group, as_of)
