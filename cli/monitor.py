"""`regua monitor`: credit monitoring from the command line — re-check the portfolio (or a
segment) within a budget of paid bureau queries, or poll the plugins' monitoring sources once.

It reads the same configuration as `regua serve` (TOML + REGUA_* variables; --db, --policies and
--sandbox override it) and the monitoring policies of the policies folder. Decisions go to the
same decision log as the server's, so `GET /decisions/{id}` explains them.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING

import click

from .common import err, load_folder, out, workflow_options, workflow_settings

if TYPE_CHECKING:
    from rich.table import Table

    from regua.server.monitoring import MonitoringService


def _service(settings) -> MonitoringService:
    from regua.engine import brazil
    from regua.portfolio.monitoring.account import AccountLookup
    from regua.postgres import is_url
    from regua.server.monitoring import MonitoringService
    from regua.server.store import open_store

    cache = None
    if settings.store.url:  # bureau answers cached in the shared database, as the server caches them
        from regua.server.connector_cache import PostgresBureauCache

        cache = PostgresBureauCache(settings.store.url)
    registry, policies = load_folder(settings, "monitoring", cache_path=settings.store.path, cache=cache,
                                     sandbox_aliases=settings.sandbox)
    open_store(settings.store.location).close()  # the decision log's tables
    active = {name: SimpleNamespace(prepared=prepared, revision=0) for name, prepared in policies.items()}
    connectors = registry.engine_connectors()
    # On PostgreSQL no answers kept in memory: a run changes limits and reads them back customer
    # after customer, and its own changes reach the cache only when their NOTIFY comes back.
    location = settings.store.location
    connectors.register("portfolio.customer", AccountLookup(location, brazil.today, cache=not is_url(location)))
    return MonitoringService(settings, registry, SimpleNamespace(active=active), connectors)


def _print_customers(results: list[dict], show: int) -> None:
    """The customers an operator acts on: limit changed, blocked or sent to review."""
    from decimal import Decimal

    from rich.table import Table

    from regua.plugins.formatting import brl

    def changed(r) -> bool:  # no limit before counts as zero: setting one is a change, keeping none is not
        return Decimal(r["limit_before"] or 0) != Decimal(r["limit_after"] or 0)

    acted = [r for r in results if r["review"] or r["blocked"] or changed(r)]
    if not acted or not show:
        return
    table = Table(title="customers to look at")
    for column in ("customer", "decision", "limit before", "limit after"):
        table.add_column(column, no_wrap=True)
    table.add_column("reasons")
    for row in acted[:show]:
        after = "blocked" if row["blocked"] else brl(row["limit_after"]) if row["limit_after"] else "—"
        table.add_row(row["customer_id"], row["outcome"] + (" (review)" if row["review"] else ""),
                      brl(row["limit_before"]) if row["limit_before"] else "—", after, ", ".join(row["reasons"]))
    out.print(table)
    if len(acted) > show:
        out.print(f"… and {len(acted) - show} more (--show {len(acted)} or --json lists them)")


def _summary_table(summary: dict) -> Table:
    from rich.table import Table

    from regua.plugins.formatting import brl

    table = Table(title=f"monitoring re-check as of {summary['as_of']}" + (" (dry run)" if summary["dry_run"] else ""))
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    rows = [("customers", summary["customers"]), ("evaluated", summary["evaluated"])]
    rows += [(f"  {outcome}", count) for outcome, count in summary["outcomes"].items()]
    rows += [("limit changes", summary["limit_changes"]), ("  raised", summary["raised"]),
             ("  reduced", summary["reduced"]), ("  blocked", summary["blocked"]),
             ("reviews opened", summary["reviews"]), ("notifications sent", summary["notifications"]),
             ("notifications failed", summary["notifications_failed"]),
             ("paid bureau queries", f"{summary['paid_queries']} of {summary['budget']}"),
             ("answered from the cache", summary["cached_queries"]), ("cost", brl(summary["cost"]))]
    if summary["no_policy"]:
        rows.append(("no monitoring policy", summary["no_policy"]))
    if summary["stopped_by_budget"]:
        rows.append(("stopped by the budget: not reached", summary["not_reached"]))
    for name, value in rows:
        table.add_row(name, str(value))
    return table


@click.command("monitor")
@click.option("--portfolio", "portfolio", is_flag=True, help="Re-check every customer of the portfolio.")
@click.option("--segment", help="Re-check only the customers of this segment.")
@click.option("--budget", type=click.IntRange(min=0), help="Most paid bureau queries (default: monitoring.recheck_budget).")
@click.option("--poll", is_flag=True, help="Poll every monitoring source plugin once and handle its alerts.")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), help="Evaluation date (default: today in Brasília).")
@click.option("--dry-run", is_flag=True, help="Decide only: no limit change, no decision recorded, nothing sent.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--show", default=20, show_default=True, type=click.IntRange(min=0),
              help="Customers listed whose limit changed or who go to review (--json lists every customer).")
@workflow_options
def monitor_command(portfolio, segment, budget, poll, as_of, dry_run, as_json, progress, show, config_path, db,
                    policies, sandbox) -> None:
    """Credit monitoring: re-check the portfolio (--portfolio or --segment) or poll sources (--poll)."""
    if not (portfolio or segment or poll):
        raise click.UsageError("say what to do: --portfolio, --segment SEGMENT or --poll")
    if poll and (portfolio or segment):
        raise click.UsageError("--poll and a re-check are separate runs; give one of them")
    settings = workflow_settings(config_path, db, policies, sandbox)
    service = _service(settings)
    if poll:
        result = service.poll_locked(dt.datetime.now(dt.timezone.utc))
        if result is None:
            raise click.ClickException("another process is polling the monitoring sources; try again later")
        if as_json:
            out.print_json(json.dumps(result))
        elif not result:
            out.print("no monitoring source is configured (plugin hook regua_monitoring_sources)")
        for name, counts in result.items():
            if not as_json:
                out.print(f"{name}: {counts['alerts']} alert(s), {counts['decided']} decided, {counts['replayed']} "
                          f"already handled, {counts['unmatched']} not in the portfolio, {counts['invalid']} invalid"
                          + (f"; error {counts['error']}" if counts["error"] else ""))
        if any(counts["error"] for counts in result.values()):
            sys.exit(1)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    shown = sys.stderr.isatty() if progress is None else progress
    bar = Progress(TextColumn("re-check"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                   disable=not shown)
    with bar:
        task = bar.add_task("re-check", total=None)
        summary = service.recheck(as_of.date() if as_of else None, segment, budget, dry_run,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    data = summary.to_dict()
    if as_json:
        out.print_json(json.dumps(data))
    else:
        out.print(_summary_table(data))
        _print_customers(data["results"], show)
        if summary.stopped_by_budget:
            err.print(f"regua monitor: the budget of {summary.budget} paid queries is spent; "
                      f"{summary.not_reached} customer(s) wait for the next re-check")


@click.command("limits")
@click.argument("customer_id")
@click.option("--limit", "count", default=50, show_default=True, type=click.IntRange(1, 10_000),
              help="Most recent changes shown.")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON.")
@workflow_options
def limits_command(customer_id, count, as_json, config_path, db, policies, sandbox) -> None:
    """A customer's credit limit now and its history: every change, who or what made it and why."""
    from pathlib import Path

    from regua.engine.brazil import BRASILIA
    from regua.plugins.formatting import brl
    from regua.portfolio.monitoring.store import MonitoringStore

    settings = workflow_settings(config_path, db, policies, sandbox)
    if not settings.store.url and not Path(settings.store.path).exists():
        raise click.UsageError(f"{settings.store.path}: no such database")
    store = MonitoringStore(settings.store.location)
    try:
        known = store.db.execute("select 1 from customers where id = ?", [customer_id]).fetchone()
        if known is None:
            where = "the PostgreSQL store" if settings.store.url else settings.store.path  # never the URL's password
            raise click.ClickException(f"no customer with id '{customer_id}' in {where}")
        current, history = store.limit(customer_id), store.history(customer_id, count)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({"customer_id": customer_id, "limit": current.to_dict(), "history": history},
                              ensure_ascii=False, indent=2))
        return
    from rich.table import Table

    now = "blocked" if current.blocked else brl(current.amount) if current.exists else "no limit set"
    out.print(f"customer {customer_id}: limit {now}")
    if not history:
        out.print("no limit change recorded")
        return
    table = Table(title="limit history, newest first")
    for column in ("when (Brasília)", "before", "after"):  # dates and amounts never wrap
        table.add_column(column, no_wrap=True)
    for column in ("by", "reasons", "note"):
        table.add_column(column)
    for change in history:
        when = dt.datetime.fromisoformat(change["at"]).astimezone(BRASILIA).strftime("%d/%m/%Y %H:%M")
        before = "blocked" if change["previous_blocked"] else brl(change["previous_amount"]) \
            if change["previous_amount"] else "—"
        after = "blocked" if change["blocked"] else brl(change["amount"])
        table.add_row(when, before, after, change["actor"], ", ".join(change["reasons"]), change["note"] or "")
    out.print(table)
