"""A synthetic collection portfolio in a SQLite file, fast: 1,000,000 open receivables in about 15 s.

The schema comes from the engine itself (`Portfolio(path)`, then `CollectionStore(path)`), so the
file is exactly what `regua collect` would run on; rows are then bulk-inserted with sqlite3
executemany in one transaction (synchronous=OFF while loading). Deterministic: the same
arguments give the same file.

The mix (per open receivable unless said otherwise):
- about 1 customer per 4 receivables (each receivable gets a random customer); 60% PF with a
  valid CPF, 40% PJ with a valid CNPJ (every 1,000th document is checked with the engine's own
  normalize_cpf / normalize_cnpj), a UF from regua.engine.brazil.UFS (weighted roughly by
  population), a segment, 1-3 channels as JSON (e.g. '["email"]');
- amounts from R$ 20 to R$ 50,000 (log-uniform, 2 decimals, as text); due dates uniform from
  400 days before to 30 days after the as-of date, issued 15-60 days before the due date;
- ~15% with one partial payment (10-90% of the amount, paid by the as-of date), ~3% disputed;
- history: `--paid-history` (default 0.2) × N extra receivables already paid in full (on time
  or late), so the customers' payment history is not empty; and 1% of customers have a broken
  agreement. Neither is open, so neither is planned.

The outbox is left empty: the portfolio is being planned for the first time.

    python benchmarks/gen_portfolio.py OUT.db --receivables 1000000 --as-of 2026-11-23
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import sqlite3
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stdnum.br import cnpj as _cnpj  # noqa: E402

from regua.dsl.values import normalize_cnpj, normalize_cpf  # noqa: E402
from regua.engine.brazil import UFS  # noqa: E402
from regua.portfolio.collection.store import CollectionStore  # noqa: E402
from regua.portfolio.store import Portfolio  # noqa: E402

AS_OF = dt.date(2026, 11, 23)
PF_SEGMENTS = ("varejo", "varejo", "varejo", "educacao", "saude")
PJ_SEGMENTS = ("atacado", "atacado", "servicos", "industria")
CHANNEL_SETS = tuple(json.dumps(c) for c in (
    ["email"], ["email"], ["email", "sms"], ["whatsapp", "email"], ["sms"], ["whatsapp"], ["email", "sms", "whatsapp"]))
# São Paulo and the South-East dominate any national portfolio: weights, roughly by population.
UF_WEIGHTS = {"SP": 22, "MG": 10, "RJ": 8, "BA": 7, "PR": 6, "RS": 5, "PE": 4, "CE": 4, "PA": 4, "SC": 4, "GO": 3}


def _cpf_check_digits(base: str) -> str:
    """The two check digits of a 9-digit CPF base (stdnum.br.cpf keeps its function private)."""
    digits = [int(c) for c in base]
    d1 = (11 - sum((10 - i) * d for i, d in enumerate(digits))) % 11 % 10
    d2 = (11 - sum((11 - i) * d for i, d in enumerate(digits)) - 2 * d1) % 11 % 10
    return f"{d1}{d2}"


def _cpf_number(rnd: random.Random) -> str:
    while True:
        base = f"{rnd.randrange(10 ** 9):09d}"
        if len(set(base)) > 1:
            return base + _cpf_check_digits(base)


def _cnpj_number(rnd: random.Random) -> str:
    base = f"{rnd.randrange(1, 10 ** 8):08d}{rnd.choice(('0001', '0001', '0001', '0002')):s}"
    return base + _cnpj.calc_check_digits(base)


def generate(path: str | Path, receivables: int, as_of: dt.date = AS_OF, seed: int = 20261123,
             paid_history: float = 0.2, quiet: bool = True) -> dict:
    """Write a new portfolio with `receivables` open receivables to `path`; returns the counts."""
    path = str(path)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    started = time.perf_counter()
    Portfolio(path).close()
    CollectionStore(path).close()

    rnd = random.Random(seed)
    n_customers = max(1, receivables // 4)
    ufs = list(UFS)
    uf_weights = [UF_WEIGHTS.get(uf, 1) for uf in ufs]
    customer_ufs = rnd.choices(ufs, uf_weights, k=n_customers)

    customers = []
    for i in range(n_customers):
        cid = f"cli-{i:08d}"
        if rnd.random() < 0.6:
            document, kind, segment = _cpf_number(rnd), "pf", rnd.choice(PF_SEGMENTS)
            name = f"Cliente PF {i}"
        else:
            document, kind, segment = _cnpj_number(rnd), "pj", rnd.choice(PJ_SEGMENTS)
            name = f"Empresa {i} Ltda"
        if i % 1000 == 0:
            assert (normalize_cpf if kind == "pf" else normalize_cnpj)(document) == document, document
        phone = f"+55119{rnd.randrange(10 ** 8):08d}"
        customers.append((cid, document, kind, name, customer_ufs[i], segment, f"c{i}@example.com", phone,
                          phone if rnd.random() < 0.5 else None, rnd.choice(CHANNEL_SETS)))

    # Dates as text through a table of days (offset from as_of -> ISO text): no date objects per row.
    first = -800  # earliest day any row can reach: paid history due 719 days back, issued 60 before that
    day = [(as_of + dt.timedelta(days=k)).isoformat() for k in range(first, 31)]
    random_, exp = rnd.random, math.exp
    lo, width = math.log(20), math.log(50_000) - math.log(20)
    rows, payments = [], []
    n_paid = int(receivables * paid_history)
    total = receivables + n_paid
    for i in range(total):
        rid = f"tit-{i:09d}"
        cents = int(exp(lo + width * random_()) * 100 + 0.5)  # log-uniform, R$ 20.00 to R$ 50,000.00
        amount = f"{cents // 100}.{cents % 100:02d}"
        customer = f"cli-{int(random_() * n_customers):08d}"
        if i < receivables:
            due = int(random_() * 431) - 400  # days from as_of: -400 .. +30
            issue = due - 15 - int(random_() * 46)  # 15 .. 60 days before the due date
            rows.append((rid, customer, amount, day[issue - first], day[due - first], "open",
                         1 if random_() < 0.03 else 0))
            if random_() < 0.15 and issue < 0:  # a partial payment, between the issue and as_of
                part = cents * (10 + int(random_() * 81)) // 100  # 10% .. 90% of the amount
                paid_on = issue + 1 + int(random_() * -issue)
                payments.append((f"pag-{i:09d}", rid, f"{part // 100}.{part % 100:02d}", day[paid_on - first]))
        else:
            due = -30 - int(random_() * 690)
            issue = due - 15 - int(random_() * 46)
            paid_on = due + 1 + int(random_() * 59) if random_() < 0.3 else due - int(random_() * 5)
            rows.append((rid, customer, amount, day[issue - first], day[due - first], "paid", 0))
            payments.append((f"pag-{i:09d}", rid, amount, day[min(paid_on, 0) - first]))
    broken = [(f"acd-{i:08d}", f"cli-{i:08d}", "[]", (as_of - dt.timedelta(days=200)).isoformat(), "[]", "broken")
              for i in range(0, n_customers, 100)]

    built = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("pragma journal_mode = wal")
        conn.execute("pragma synchronous = off")
        conn.execute("pragma cache_size = -262144")  # 256 MiB: index builds stay in memory
        conn.execute("begin")
        # Secondary indexes are dropped during the load and built again after it (a sort instead of
        # a million random B-tree inserts); the same CREATE INDEX text the migrations wrote.
        indexes = conn.execute("select name, sql from sqlite_master where type = 'index' and sql is not null and "
                               "tbl_name in ('customers', 'receivables', 'payments')").fetchall()
        for name, _ in indexes:
            conn.execute(f"drop index [{name}]")
        conn.executemany("insert into customers (id, document, kind, name, uf, segment, email, phone, whatsapp, "
                         "channels) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", customers)
        conn.executemany("insert into receivables (id, customer_id, amount, issue_date, due_date, status, disputed) "
                         "values (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.executemany("insert into payments (id, receivable_id, amount, paid_on) values (?, ?, ?, ?)", payments)
        conn.executemany("insert into agreements (id, customer_id, receivable_ids, created_on, instalments, status) "
                         "values (?, ?, ?, ?, ?, ?)", broken)
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("commit")
        conn.execute("pragma wal_checkpoint(truncate)")
        conn.execute("analyze")
    finally:
        conn.close()
    done = time.perf_counter()
    counts = {"path": path, "open_receivables": receivables, "paid_receivables": n_paid, "customers": n_customers,
              "payments": len(payments), "partial_payments": len(payments) - n_paid,
              "disputed": sum(r[6] for r in rows[:receivables]), "broken_agreements": len(broken),
              "bytes": os.path.getsize(path), "seconds_build": round(built - started, 2),
              "seconds_insert": round(done - built, 2), "seconds": round(done - started, 2)}
    if not quiet:
        print(json.dumps(counts))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the SQLite file to write (replaced if it exists)")
    parser.add_argument("--receivables", type=int, default=100_000, help="open receivables (default 100,000)")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=AS_OF, help="default 2026-11-23")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--paid-history", type=float, default=0.2,
                        help="extra receivables already paid, as a fraction of --receivables (default 0.2)")
    args = parser.parse_args()
    counts = generate(args.out, args.receivables, args.as_of, args.seed, args.paid_history)
    print(f"{args.out}: {counts['open_receivables']:,} open receivables (+{counts['paid_receivables']:,} paid), "
          f"{counts['customers']:,} customers, {counts['payments']:,} payments "
          f"({counts['partial_payments']:,} partial), {counts['disputed']:,} disputed, "
          f"{counts['bytes'] / 2 ** 20:.0f} MiB in {counts['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
