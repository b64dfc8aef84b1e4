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
    "analyze regua_paid",
    "analyze regua_cust",
]

SELECT = """
    select r.id, r.customer_id, r.amount, r.due_date, r.disputed, p.cents as paid_cents, p.n as payments,
           %(as_of)s::date - r.due_date as days_late,
           %(as_of)s::date - r.issue_date as days_since_issue,
           cu.segment, cu.uf, cu.kind, cu.channels,
           cu.open_cents, cu.open_count, cu.max_late, cu.on_time, cu.late, cu.broken,
           (select string_agg(o.step, chr(31)) from outbox o where o.receivable_id = r.id) as sent,
           (select string_agg(o.step, chr(31)) from outbox o where o.receivable_id = r.id
              and o.status = 'delivered') as delivered,
           exists(select 1 from outbox o where o.receivable_id = r.id and o.action = 'protest' and o.status = 'done')
             as protested,
           exists(select 1 from negative_records n where n.receivable_id = r.id and n.kind = 'negativation'
                  and n.removed_at is null) as negativated
    from receivables r
    join regua_cust cu on cu.customer_id = r.customer_id
    left join regua_paid p on p.receivable_id = r.id
    where r.status = 'open' and r.issue_date <= %(as_of)s::date and r.id > %(after)s
    order by r.id limit %(limit)s
"""

CLEANUP = ["drop table if exists regua_paid", "drop table if exists regua_cust"]
