"""The facts a régua reads about each open receivable (dsl/collection.py: INPUT), from the store.

One streaming query per run, whatever the portfolio's size: aggregates (payments per receivable,
the customer's balances and history, the steps already planned) are computed by SQLite once into
temporary tables, then every open receivable is read in key order, in chunks. Money is summed in
integer cents (exact below R$ 90 trillion) and turned back into Decimal here.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterator

import sqlite_utils

SEP = "\x1f"  # between step names in group_concat (a step name is a NAME: it cannot contain it)
CENTS = "cast(round(cast(amount as real) * 100) as integer)"

_PREPARE = [
    "drop table if exists temp.regua_paid",
    f"""create temp table regua_paid as
        select receivable_id, sum({CENTS}) as cents, count(*) as n, max(paid_on) as last_paid
        from payments where paid_on <= :as_of group by receivable_id""",
    "create unique index temp.regua_paid_id on regua_paid (receivable_id)",
    "drop table if exists temp.regua_balance",
    f"""create temp table regua_balance as
        select r.id, r.customer_id, r.status, r.due_date, r.issue_date, {CENTS.replace('amount', 'r.amount')} as cents,
               coalesce(p.cents, 0) as paid_cents, coalesce(p.n, 0) as payments, p.last_paid
        from receivables r left join regua_paid p on p.receivable_id = r.id""",
    "drop table if exists temp.regua_customer",
    """create temp table regua_customer as
        select customer_id,
               sum(case when status = 'open' and cents > paid_cents then cents - paid_cents else 0 end) as open_cents,
               sum(status = 'open') as open_count,
               max(case when status = 'open' then cast(julianday(:as_of) - julianday(due_date) as integer) end)
                 as max_late,
               sum(status = 'paid' and last_paid <= due_date) as on_time,
               sum(status = 'paid' and last_paid > due_date) as late
        from regua_balance group by customer_id""",
    "create unique index temp.regua_customer_id on regua_customer (customer_id)",
    "drop table if exists temp.regua_broken",
    """create temp table regua_broken as
        select customer_id, count(*) as n from agreements where status = 'broken' group by customer_id""",
    "create unique index temp.regua_broken_id on regua_broken (customer_id)",
    # Everything the query needs per customer in one table keyed by id: one lookup per receivable
    # instead of three (customers, balances, agreements), which kept the cost per receivable flat
    # from 100k to 1M in the benchmark (the three lookups grew 1.4x with B-tree depth).
    "drop table if exists temp.regua_cust",
    """create temp table regua_cust (customer_id text primary key, segment, uf, kind, channels, open_cents,
        open_count, max_late, on_time, late, broken) without rowid""",
    """insert into regua_cust
        select c.id, c.segment, c.uf, c.kind, c.channels, cu.open_cents, cu.open_count, cu.max_late, cu.on_time,
               cu.late, b.n
        from customers c left join regua_customer cu on cu.customer_id = c.id
        left join regua_broken b on b.customer_id = c.id""",
    "drop table temp.regua_balance",
]

_SELECT = """
    select r.id, r.customer_id, r.amount, r.due_date, r.disputed, p.cents as paid_cents, p.n as payments,
           cast(julianday(:as_of) - julianday(r.due_date) as integer) as days_late,
           cast(julianday(:as_of) - julianday(r.issue_date) as integer) as days_since_issue,
           cu.segment, cu.uf, cu.kind, cu.channels,
           cu.open_cents, cu.open_count, cu.max_late, cu.on_time, cu.late, cu.broken,
           (select group_concat(o.step, char(31)) from outbox o where o.receivable_id = r.id) as sent,
           (select group_concat(o.step, char(31)) from outbox o where o.receivable_id = r.id
              and o.status = 'delivered') as delivered,
           exists(select 1 from outbox o where o.receivable_id = r.id and o.action = 'protest' and o.status = 'done')
             as protested,
           exists(select 1 from negative_records n where n.receivable_id = r.id and n.kind = 'negativation'
                  and n.removed_at is null) as negativated
    from receivables r
    join regua_cust cu on cu.customer_id = r.customer_id
    left join regua_paid p on p.receivable_id = r.id
    where r.status = 'open' and r.issue_date <= :as_of and r.id > :after
    order by r.id limit :limit
"""


@dataclass(slots=True)
class Fact:
    receivable_id: str
    customer_id: str
    due_date: dt.date
    uf: str
    segment: str
    person: str
    inputs: dict


_ZERO = Decimal("0.00")


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _names(text: str | None) -> list[str]:
    return text.split(SEP) if text else []


def iter_facts(db: sqlite_utils.Database, as_of: dt.date, chunk: int = 5000) -> Iterator[Fact]:
    """Every receivable open on `as_of` (issued by then), with the régua's input, in id order."""
    if getattr(db, "postgres", False):  # regua.dialect.PostgresDatabase: the same facts, its SQL
        yield from _iter_facts_postgres(db, as_of, chunk)
        return
    params = {"as_of": as_of.isoformat()}
    channels: dict[str, list] = {}  # customers share a handful of channel lists: decode each once
    for statement in _PREPARE:
        db.execute(statement, params if ":as_of" in statement else [])
    after = ""
    while True:
        rows = db.execute(_SELECT, dict(params, after=after, limit=chunk)).fetchall()
        for row in rows:
            yield _fact(row, channels)
        if len(rows) < chunk:
            break
        after = rows[-1][0]
    for table in ("regua_paid", "regua_balance", "regua_customer", "regua_broken", "regua_cust"):
        db.execute(f"drop table if exists temp.{table}")


def _iter_facts_postgres(db, as_of: dt.date, chunk: int) -> Iterator[Fact]:
    from . import facts_postgres as sql

    raw, params = db.conn.raw, {"as_of": as_of.isoformat()}
    channels: dict[str, list] = {}
    with raw.cursor() as cursor:
        for statement in sql.PREPARE:
            cursor.execute(statement, params if "%(as_of)s" in statement else None)
    after = ""
    while True:
        rows = db.conn.raw.cursor(row_factory=_postgres_row).execute(
            sql.SELECT, dict(params, after=after, limit=chunk)).fetchall()
        for row in rows:
            yield _fact(row, channels)
        if len(rows) < chunk:
            break
        after = rows[-1][0]
    with raw.cursor() as cursor:
        for statement in sql.CLEANUP:
            cursor.execute(statement)


def _postgres_row(cursor):
    """Rows as `_fact` reads them: the due date as ISO text, like SQLite's."""
    def make(values):
        values = list(values)
        values[3] = values[3].isoformat()
        return values
    return make


def _fact(row, channel_lists: dict) -> Fact:
    (rid, cid, amount, due, disputed, paid_cents, payments, days_late, days_since_issue, segment, uf, kind, channels,
     open_cents, open_count, max_late, on_time, late, broken, sent, delivered, protested, negativated) = row
    amount = Decimal(amount)
    paid = _money(paid_cents) if paid_cents else _ZERO
    preferred = channel_lists.get(channels)
    if preferred is None:
        preferred = channel_lists[channels] = json.loads(channels) if channels else []
    inputs = {
        "amount": amount, "open_amount": amount - paid if amount > paid else _ZERO, "paid_amount": paid,
        "partial_payments": payments or 0, "days_late": days_late, "days_since_issue": days_since_issue,
        "disputed": bool(disputed), "segment": segment, "uf": uf, "person": kind,
        "channels": list(preferred), "sent": _names(sent), "delivered": _names(delivered),
        "negativated": bool(negativated), "protested": bool(protested),
        "customer_open_amount": _money(open_cents or 0), "customer_open_receivables": open_count or 0,
        "customer_max_days_late": max_late if max_late is not None else days_late,
        "paid_on_time_before": on_time or 0, "paid_late_before": late or 0, "broken_agreements": broken or 0,
    }
    return Fact(rid, cid, dt.date.fromisoformat(due), uf, segment, kind, inputs)
