"""`regua kpis`: the collection KPIs of a date range (portfolio/collection/kpis.py), as tables or JSON.

    regua kpis --db var/regua.db --from 2025-01-01 --to 2025-03-31 [--segment b2b] [--current-days 5] [--json]

Bad input (no such file, a file without a portfolio, a bad date, --from after --to) is a usage
error: one line on stderr, exit 2, never a traceback.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console

    from regua.portfolio.collection.kpis import KpiReport

_OPTION = {"from": "--from", "to": "--to", "current_days": "--current-days", "step_days": "--step-days"}
_ROLLS = [("current → 1-30", "current_to_1_30"), ("1-30 → 31-60", "from_1_30_to_31_60"),
          ("31-60 → 61-90", "from_31_60_to_61_90"), ("61-90 → 90+", "from_61_90_to_90_plus")]


def _text(value) -> str:
    return "—" if value is None else str(value)


def _money(value) -> str:
    from regua.plugins.formatting import brl

    return "—" if value is None else brl(value)


def _percent(value) -> str:
    from regua.plugins.formatting import pct

    return "—" if value is None else pct(value)


def _days(value) -> str:
    from regua.plugins.formatting import pct

    return "—" if value is None else pct(value).removesuffix("%")  # 983,69: Brazilian decimals, no unit


ROLL_NOTE = ("A roll rate above 100% means more balance reached the later bucket than the earlier bucket held "
             "one period before: with periods longer than a bucket, receivables also arrive from further back.")


def _print(report: KpiReport, console: Console) -> None:
    from rich.table import Table

    segment = f", segment {report.segment}" if report.segment is not None else ""
    summary = Table(title=f"Collection KPIs {report.date_from} … {report.date_to} ({report.days} days{segment})")
    summary.add_column("KPI")
    summary.add_column("value", justify="right")
    for label, value in [
        ("credit sales", _money(report.credit_sales)), ("opening AR", _money(report.opening_ar)),
        ("closing AR", _money(report.closing_ar)),
        (f"closing current AR (≤ {report.current_days} days past due)", _money(report.closing_current_ar)),
        ("DSO (days)", _days(report.dso)), ("CEI", _percent(report.cei)),
        ("in default", _money(report.defaulted)), ("recovered", _money(report.recovered)),
        ("recovery rate", _percent(report.recovery_rate)),
    ]:
        summary.add_row(label, value)
    console.print(summary)
    aging = Table(title=f"Aging at {report.date_to} (days past due)")
    aging.add_column("bucket")
    aging.add_column("amount", justify="right")
    aging.add_column("count", justify="right")
    for bucket in report.aging:
        aging.add_row(bucket.bucket, _money(bucket.amount), str(bucket.count))
    console.print(aging)
    if report.roll_rates:
        rolls = Table(title="Roll rates")
        rolls.add_column("period", no_wrap=True)
        for label, _ in _ROLLS:
            rolls.add_column(label, justify="right")
        for period in report.roll_rates:
            rolls.add_row(f"{period.start} → {period.end}", *(_percent(getattr(period, name)) for _, name in _ROLLS))
        console.print(rolls)
        if any(Decimal(getattr(period, name)) > 100 for period in report.roll_rates for _, name in _ROLLS
               if getattr(period, name) is not None):
            console.print(ROLL_NOTE)


def _open(db: str):
    """`db` checked for a portfolio, as the location compute_kpis reads (a usage error otherwise)."""
    from regua import postgres, sqlite
    from regua.portfolio.collection import kpis, kpis_postgres

    if postgres.is_url(db):
        try:
            connection = postgres.connect(db)
        except postgres.PostgresUnavailable as error:
            raise click.BadParameter(str(error), param_hint="'--db'") from None
        try:
            found = kpis_postgres.has_portfolio(connection)
        finally:
            connection.close()
    else:
        if not Path(db).is_file():
            raise click.BadParameter(f"{db}: the file does not exist", param_hint="'--db'")
        try:
            connection = sqlite.connect(db).conn
        except sqlite3.Error as error:
            raise click.BadParameter(f"{db}: cannot open it ({error})", param_hint="'--db'") from None
        try:
            found = kpis.has_portfolio(connection)
        except sqlite3.DatabaseError as error:
            raise click.BadParameter(f"{db} is not a Régua database ({error})", param_hint="'--db'") from None
        finally:
            connection.close()
    if not found:
        shown = postgres.redacted(db) if postgres.is_url(db) else db
        raise click.BadParameter(f"{shown} has no portfolio (load one with `regua import`)", param_hint="'--db'")
    return db


@click.command("kpis")
@click.option("--db", default="var/regua.db", show_default=True,
              help="The store with the portfolio (see `regua import`): a SQLite file or a postgresql:// URL.")
@click.option("--from", "date_from", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="First day of the period (YYYY-MM-DD).")
@click.option("--to", "date_to", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="Last day of the period (YYYY-MM-DD), included.")
@click.option("--segment", help="Only customers of this segment.")
@click.option("--current-days", default=0, show_default=True, type=click.IntRange(min=0),
              help="For CEI: receivables up to this many days past due count as current.")
@click.option("--step-days", type=click.IntRange(min=1),
              help="Roll-rate checkpoints every N days from the day before --from (default: month ends).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def kpis_command(db: str, date_from, date_to, segment: str | None, current_days: int, step_days: int | None,
                 as_json: bool) -> None:
    """Collection KPIs of a period: DSO, CEI, recovery rate, aging buckets and roll rates.

    Money and rates are exact decimals with 2 places; rates are percentages (docs/collection.md)."""
    from regua.portfolio.collection.kpis import KpiArgumentError, compute_kpis

    try:
        report = compute_kpis(_open(db), date_from.date(), date_to.date(), segment, current_days, step_days)
    except KpiArgumentError as error:
        raise click.BadParameter(str(error), param_hint=f"'{_OPTION.get(error.field, error.field)}'") from None
    except sqlite3.OperationalError as error:  # e.g. the file is locked by a writer past the timeout
        raise click.ClickException(f"{db}: {error}") from None
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        from rich.console import Console

        _print(report, Console(highlight=False, soft_wrap=False))

