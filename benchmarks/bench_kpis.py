"""Collection KPIs on each store, side by side in one run: SQLite, PostgreSQL natively, and the
SQLite snapshot of a PostgreSQL store that /kpis used to make per request.

Run from the repository root:  .venv/bin/python benchmarks/bench_kpis.py [--receivables N]
Makes a portfolio with gen_portfolio.py (SQLite), copies it to a real PostgreSQL (pgserver) with
COPY, then times `compute_kpis` for a quarter and for a year of monthly roll rates on each, in
alternating rounds (medians), and checks that every figure is the same on both stores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PERIODS = {"quarter": (dt.date(2026, 8, 1), dt.date(2026, 10, 31)),
           "year": (dt.date(2025, 11, 1), dt.date(2026, 10, 31))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receivables", type=int, default=100_000, help="open receivables (100000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    from bench_postgres import load_portfolio
    from gen_portfolio import AS_OF, generate
    from psycopg.conninfo import make_conninfo

    from regua import dialect, postgres
    from regua.portfolio.collection.kpis import compute_kpis
    from regua.portfolio.collection.migrations import MIGRATIONS as COLLECTION
    from regua.portfolio.store import MIGRATIONS as PORTFOLIO

    with tempfile.TemporaryDirectory(prefix="regua-bench-kpis-") as folder:
        tmp = Path(folder)
        server = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
        try:
            admin = server.get_uri()
            with postgres.connect(admin) as conn:
                conn.execute("create database kpis")
            url = make_conninfo(admin, dbname="kpis") if "://" not in admin else admin.replace("/postgres?", "/kpis?")
            path = str(tmp / "portfolio.db")
            generate(path, args.receivables, AS_OF)
            load_portfolio(path, url)
            print(f"collection KPIs, {args.receivables:,} open receivables (+ paid history), medians of "
                  f"{args.rounds} alternating rounds:")

            def snapshot(start, end):  # what /kpis did on PostgreSQL before kpis_postgres.py
                copy = str(tmp / "snapshot.db")
                Path(copy).unlink(missing_ok=True)
                dialect.copy_to_sqlite(url, copy, [PORTFOLIO, COLLECTION])
                return compute_kpis(copy, start, end)

            ways = {"sqlite": lambda s, e: compute_kpis(path, s, e), "postgresql": lambda s, e: compute_kpis(url, s, e),
                    "pg snapshot": snapshot}
            print(f"  {'period':8} " + "".join(f"{name:>14}" for name in ways) + "   pg / sqlite   same figures")
            for period, (start, end) in PERIODS.items():
                times: dict[str, list[float]] = {name: [] for name in ways}
                reports = {}
                for _ in range(args.rounds):
                    for name, way in ways.items():
                        began = time.perf_counter()
                        reports[name] = way(start, end).to_dict()
                        times[name].append(time.perf_counter() - began)
                median = {name: statistics.median(values) for name, values in times.items()}
                same = reports["sqlite"] == reports["postgresql"] == reports["pg snapshot"]
                print(f"  {period:8} " + "".join(f"{median[name]:>12.2f} s" for name in ways)
                      + f"   {median['postgresql'] / median['sqlite']:>10.2f}×   {'yes' if same else 'NO'}")
                if not same:
                    return 1
        finally:
            postgres.close_pools()
            server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
