"""`regua collect`, `regua simulate` and `regua queue`: the collection cadence from the command line.

They read the same configuration as `regua serve` (TOML + REGUA_* variables; --db, --policies and
--sandbox override it) and the collection policies of the policies folder.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import TYPE_CHECKING

import click

from .common import err, load_folder, out, workflow_options, workflow_settings

if TYPE_CHECKING:
    from regua.server.collection import CollectionService
    from regua.server.config import Settings


def _service(settings: Settings) -> CollectionService:
    from regua.server.collection import CollectionService

    registry, policies = load_folder(settings, "collection")
    return CollectionService(settings, registry, lambda: policies)


class _Bar:
    """A rich progress bar per phase, on stderr, shown only on a terminal or when asked."""

    def __init__(self, enabled: bool):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=err, disable=not enabled)
        self.tasks: dict[str, int] = {}

    def __call__(self, phase: str, advance: int, total: int | None) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(phase, total=total)
        self.progress.update(self.tasks[phase], advance=advance, total=total)


@click.command("collect")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), help="Run date (default: today in São Paulo).")
@click.option("--at", "at", help="Time of the run, HH:MM in São Paulo (default: now when --as-of is today, else 09:00).")
@click.option("--dry-run", is_flag=True, help="Plan only: nothing is written or sent.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@workflow_options
def collect_command(as_of, at, dry_run, as_json, progress, config_path, db, policies, sandbox) -> None:
    """Run the collection cadence as of a date: settle payments, plan the due steps, carry them out."""
    from regua.engine import brazil
    from regua.portfolio.collection.runner import RunLocked, run_time
    from regua.server.collection import CollectionUnavailable

    settings = workflow_settings(config_path, db, policies, sandbox)
    service = _service(settings)
    today = brazil.today()
    day = as_of.date() if as_of else today
    now = None
    if at:
        try:
            hour, minute = (int(part) for part in at.split(":"))
            now = dt.datetime.combine(day, dt.time(hour, minute), brazil.BRASILIA)
        except ValueError:
            raise click.BadParameter("use HH:MM, e.g. 09:30", param_hint="--at") from None
    elif day != today:
        now = run_time(day, 9)
    bar = _Bar(sys.stderr.isatty() if progress is None else progress)
    try:
        with bar.progress:
            summary = service.run(day, now, dry_run, bar)
    except (CollectionUnavailable, RunLocked) as error:
        raise click.ClickException(str(error)) from None
    data = summary.to_dict()
    if as_json:
        out.print(json.dumps(data, ensure_ascii=False), markup=False)
        return
    _print_summary(data)


def _print_summary(data: dict) -> None:
    from rich.table import Table

    title = f"collection run as of {data['as_of']}" + (" (dry run: nothing written or sent)" if data["dry_run"] else "")
    table = Table(title=title, show_header=False)
    table.add_row("receivables evaluated", str(data["receivables"]))
    table.add_row("settled (paid / agreement)", str(data["settled"]))
    table.add_row("removals planned", str(data["removals"]))
    planned = ", ".join(f"{k} {v}" for k, v in data["planned"].items()) or "none"
    table.add_row("steps planned", f"{sum(data['planned'].values())} ({planned})")
    table.add_row("superseded (older contacts)", str(data["superseded"]))
    for outcome in ("sent", "delivered", "done", "deferred", "blocked", "retry", "failed", "cancelled"):
        if outcome in data["outcomes"]:
            table.add_row(outcome, str(data["outcomes"][outcome]))
    for reason, count in data["reasons"].items():
        table.add_row(f"  {reason}", str(count))
    if data["policy_errors"] or data["unrouted"]:
        table.add_row("policy errors / without a régua", f"{data['policy_errors']} / {data['unrouted']}")
    table.add_row("seconds", str(data["seconds"]))
    out.print(table)


@click.command("simulate")
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day.")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last day.")
@click.option("--receivable", "receivables", multiple=True, help="Only this receivable (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Timelines as JSON.")
@workflow_options
def simulate_command(date_from, date_to, receivables, as_json, config_path, db, policies, sandbox) -> None:
    """Run the régua over a date range on a copy of the portfolio and print each receivable's
    timeline. Nothing is sent and the database is not written."""
    settings = workflow_settings(config_path, db, policies, sandbox)
    service = _service(settings)
    try:
        timelines = service.simulate(date_from.date(), date_to.date(), list(receivables) or None)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if as_json:
        data = {rid: [{"at": e.at.isoformat(), "step": e.step, "kind": e.kind, "code": e.code} for e in entries]
                for rid, entries in timelines.items()}
        out.print(json.dumps(data, ensure_ascii=False), markup=False)
        return
    for rid, entries in timelines.items():
        out.print(f"[bold]{rid}[/bold]")
        if not entries:
            out.print("  nothing happens in this period")
        for e in entries:
            code = f" {e.code}" if e.code else ""
            out.print(f"  {e.at:%Y-%m-%d %H:%M} {e.step or '-':<20} {e.kind}{code}", markup=False)


@click.command("queue")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--segment", help="Only customers of this segment.")
@click.option("--json", "as_json", is_flag=True)
@workflow_options
def queue_command(limit, segment, as_json, config_path, db, policies, sandbox) -> None:
    """The collectors' work queue: open receivables ranked by their régua's priority (last run)."""
    settings = workflow_settings(config_path, db, policies, sandbox)
    service = _service(settings)
    rows = service.queue(limit, segment)
    from rich.table import Table

    if as_json:
        out.print(json.dumps(rows, ensure_ascii=False), markup=False)
        return
    table = Table("receivable", "customer", "priority", "days late", "open", "régua")
    for row in rows:
        priority = "-" if row["priority"] is None else f"{row['priority']:.2f}"
        table.add_row(row["receivable_id"], row["customer_id"], priority, str(row["days_late"]), row["open_amount"],
                      row["policy"])
    out.print(table)
