"""The PostgreSQL twin of kpis.py's queries: the same figures, from the same plan, natively.

kpis.py documents what every figure means; this module only says it in PostgreSQL's SQL. Money is
numeric there, so cents are exact without kpis._CENTS's text surgery; dates are `date`, compared as
dates; "not settled by `to`" is NULL instead of a sentinel text, and "the day before any date" is
`-infinity`. Sums of bigint cents come back as numeric (never an overflow: exact integers).

`query(raw, date_from, date_to, segment, current_days, dates)` answers what kpis._query answers, on
a psycopg connection in a transaction the caller opened (its temporary tables go with it).
"""

from __future__ import annotations

import datetime as dt

CENTS = "round({column} * 100)::bigint"

_FACTS = f"""
create temp table regua_kpi_facts on commit drop as
select id, a, issue, due, p_open, p_start, p_to, n, last_paid,
  case when p_to < a then null when n = 0 then issue when n = 1 then last_paid
       else (select min(paid_on) from (
               select paid_on, sum(c) over (order by paid_on rows unbounded preceding) as paid
               from (select paid_on, {CENTS.format(column="amount")} as c from payments
                     where receivable_id = g.id and paid_on <= %(to)s::date) cents) running
             where paid >= g.a) end as settled
from (
  select r.id, r.a, r.issue, r.due,
    coalesce(sum(p.c) filter (where p.paid_on <= %(open)s::date), 0) as p_open,
    coalesce(sum(p.c) filter (where p.paid_on <= greatest(%(open)s::date, r.due)), 0) as p_start,
    coalesce(sum(p.c), 0) as p_to, count(p.c) as n, max(p.paid_on) as last_paid
  from (select r.id, {CENTS.format(column="r.amount")} as a, r.issue_date as issue, r.due_date as due
        from receivables r where r.status != 'cancelled' and r.issue_date <= %(to)s::date {{scope}}) r
  left join (select receivable_id, paid_on, {CENTS.format(column="amount")} as c from payments
             where paid_on <= %(to)s::date) p on p.receivable_id = r.id
  group by r.id, r.a, r.issue, r.due
  having r.issue > %(open)s::date or r.a > coalesce(sum(p.c) filter (where p.paid_on <= %(open)s::date), 0)
) g"""

_BUCKET = ("case when {due} >= {t} then 0 when {due} >= {c30} then 1 when {due} >= {c60} then 2 "
           "when {due} >= {c90} then 3 else 4 end")

_TOTALS = """
select
  coalesce(sum(a) filter (where issue >= %(from)s::date), 0),
  coalesce(sum(a - p_open) filter (where issue <= %(open)s::date and a > p_open), 0),
  coalesce(sum(a - p_to) filter (where a > p_to), 0),
  coalesce(sum(a - p_to) filter (where a > p_to and due >= %(current_cut)s::date), 0),
  coalesce(sum(a - p_start) filter (where due < %(to)s::date and a > p_start), 0),
  coalesce(sum(a - p_start - greatest(a - p_to, 0)) filter (where due < %(to)s::date and a > p_start), 0)
from regua_kpi_facts"""

_AGING = f"""
select {_BUCKET.format(due="due", t="%(to)s::date", c30="%(c30)s::date", c60="%(c60)s::date",
                       c90="%(c90)s::date")} as bucket, sum(a - p_to), count(*)
from regua_kpi_facts where a > p_to group by bucket"""

_ROLLS = f"""
select k.k, {_BUCKET.format(due="f.due", t="k.t", c30="k.c30", c60="k.c60", c90="k.c90")} as bucket,
  sum(f.a - (case when f.n = 0 then 0
                  when f.n = 1 then (case when f.last_paid <= k.t then f.p_to else 0 end)
                  else (select coalesce(sum({CENTS.format(column="amount")}), 0) from payments
                        where receivable_id = f.id and paid_on <= k.t) end))
from regua_kpi_facts f join regua_kpi_points k on k.t >= f.issue and (f.settled is null or k.t < f.settled)
group by k.k, bucket"""


def _tuples():
    from psycopg.rows import tuple_row  # psycopg is the postgres extra's: imported when it is used

    return tuple_row


def _day(day: dt.date, back: int) -> str:
    """`day` less `back` days as PostgreSQL reads a date; before year 1 it is `-infinity`."""
    try:
        return (day - dt.timedelta(days=back)).isoformat()
    except OverflowError:
        return "-infinity"


def _cuts(day: str) -> dict:
    date = dt.date.fromisoformat(day)
    return {f"c{k}": _day(date, k) for k in (30, 60, 90)}


def query(raw, date_from: dt.date, date_to: dt.date, segment: str | None, current_days: int,
          dates: list[str]) -> tuple[list, list, list]:
    """(totals in cents, aging [(cents, count)] per bucket, per checkpoint [cents per bucket])."""
    params = {"from": date_from.isoformat(), "to": date_to.isoformat(), "open": _day(date_from, 1),
              "current_cut": _day(date_to, current_days), "segment": segment}
    scope = "and r.customer_id in (select id from customers where segment = %(segment)s)" if segment is not None else ""
    with raw.cursor(row_factory=_tuples()) as cursor:
        cursor.execute(_FACTS.replace("{scope}", scope), params)
        cursor.execute(_TOTALS, params)
        totals = [int(value) for value in cursor.fetchone()]
        aging = [(0, 0)] * 5
        cursor.execute(_AGING, {**params, **_cuts(params["to"])})
        for bucket, cents, count in cursor.fetchall():
            aging[bucket] = (int(cents), count)
        points = [[0] * 5 for _ in dates]
        if len(dates) > 1:
            cursor.execute("create temp table regua_kpi_points (k integer, t date, c30 date, c60 date, c90 date) "
                           "on commit drop")
            cursor.executemany("insert into regua_kpi_points values (%(k)s, %(t)s, %(c30)s, %(c60)s, %(c90)s)",
                               [{"k": k, "t": t, **_cuts(t)} for k, t in enumerate(dates)])
            cursor.execute("create index on regua_kpi_points (t)")
            cursor.execute(_ROLLS)
            for k, bucket, cents in cursor.fetchall():
                points[k][bucket] = int(cents)
    return totals, aging, points


def has_portfolio(raw) -> bool:
    with raw.cursor(row_factory=_tuples()) as cursor:
        cursor.execute("select count(*) from pg_tables where schemaname = current_schema() "
                       "and tablename in ('customers', 'receivables', 'payments')")
        return cursor.fetchone()[0] == 3
