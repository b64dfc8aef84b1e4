"""The PostgreSQL twin of facts.py's queries: the same columns, in the same order, for `_fact`.

Same plan as on SQLite: the aggregates once into temp tables of this session, then the open
receivables in key order, in chunks. Money is exact all the way (numeric, summed as bigint cents);
days late are date differences (`date - date` is a number of days).
"""

from __future__ import annotations

CENTS = "round({column} * 100)::bigint"

PREPARE = [
    "drop table if exists regua_paid",
    f"""create temp table regua_paid as
        select receivable_id, sum({CENTS.format(column='amount')})::bigint as cents, count(*) as n,
               max(paid_on) as last_paid
        from payments where paid_on <= %(as_of)s::date group by receivable_id""",
    "create unique index on regua_paid (receivable_id)",
    "drop table if exists regua_cust",
    f"""create temp table regua_cust as
        with balance as (
            select r.customer_id, r.status, r.due_date, {CENTS.format(column='r.amount')} as cents,
                   coalesce(p.cents, 0) as paid_cents, p.last_paid
            from receivables r left join regua_paid p on p.receivable_id = r.id),
        per_customer as (
            select customer_id,
                   sum(case when status = 'open' and cents > paid_cents then cents - paid_cents else 0 end)::bigint
                     as open_cents,
                   count(*) filter (where status = 'open') as open_count,
                   max(case when status = 'open' then %(as_of)s::date - due_date end) as max_late,
                   count(*) filter (where status = 'paid' and last_paid <= due_date) as on_time,
                   count(*) filter (where status = 'paid' and last_paid > due_date) as late
            from balance group by customer_id),
        broken as (select customer_id, count(*) as n from agreements where status = 'broken' group by customer_id)
        select c.id as customer_id, c.segment, c.uf, c.kind, c.channels, pc.open_cents, pc.open_count, pc.max_late,
               pc.on_time, pc.late, b.n as broken
        from customers c left join per_customer pc on pc.customer_id = c.id
        left join broken b on b.customer_id = c.id""",
    "create unique index on regua_cust (customer_id)",
    # The steps already in the outbox, per receivable, read once: a receivable's own steps are only
    # written after its facts are read (runner._flush), so this is what reading them live would see,
    # without a lookup into a table that grows under the planner's feet (and its stale statistics).
    "drop table if exists regua_steps",
    """create temp table regua_steps as
        select receivable_id, string_agg(step, chr(31)) as sent,
               string_agg(step, chr(31)) filter (where status = 'delivered') as delivered,
               bool_or(action = 'protest' and status = 'done') as protested
        from outbox group by receivable_id""",
    "create unique index on regua_steps (receivable_id)",
    "drop table if exists regua_negativated",
    """create temp table regua_negativated as
        select distinct receivable_id from negative_records where kind = 'negativation' and removed_at is null""",
    "create unique index on regua_negativated (receivable_id)",
    "analyze regua_paid",
    "analyze regua_cust",
    "analyze regua_steps",
    "analyze regua_negativated",
]

SELECT = """
    select r.id, r.customer_id, r.amount, r.due_date, r.disputed, p.cents as paid_cents, p.n as payments,
           %(as_of)s::date - r.due_date as days_late,
           %(as_of)s::date - r.issue_date as days_since_issue,
           cu.segment, cu.uf, cu.kind, cu.channels,
           cu.open_cents, cu.open_count, cu.max_late, cu.on_time, cu.late, cu.broken,
           s.sent, s.delivered, coalesce(s.protested, false) as protested,
           n.receivable_id is not null as negativated
    from receivables r
    join regua_cust cu on cu.customer_id = r.customer_id
    left join regua_paid p on p.receivable_id = r.id
    left join regua_steps s on s.receivable_id = r.id
    left join regua_negativated n on n.receivable_id = r.id
    where r.status = 'open' and r.issue_date <= %(as_of)s::date and r.id > %(after)s
    order by r.id limit %(limit)s
"""

CLEANUP = [f"drop table if exists {table}" for table in ("regua_paid", "regua_cust", "regua_steps", "regua_negativated")]
