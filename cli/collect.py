"""`regua collect`, `regua simulate`, `regua queue` and `regua deliveries import`: the collection
cadence from the command line.

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
    from regua.portfolio.collection.runner import RunLocked, run_moment
    from regua.server.collection import CollectionUnavailable

    settings = workflow_settings(config_path, db, policies, sandbox)
    service = _service(settings)
    day = as_of.date() if as_of else brazil.today()
    try:
        now = run_moment(day, at, brazil.today())
    except ValueError:
        raise click.BadParameter("use HH:MM, e.g. 09:30", param_hint="--at") from None
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


@click.group("deliveries")
def deliveries_group() -> None:
    """Providers' delivery receipts for steps that were sent."""


@deliveries_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]),
              help="File format (default: jsonl for .jsonl/.ndjson/.json, else csv).")
@click.option("--encoding", help="CSV encoding (default: detected; Excel pt-BR saves cp1252).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@workflow_options
def deliveries_import_command(file, fmt, encoding, as_json, config_path, db, policies, sandbox) -> None:
    """Record delivery receipts from a provider's export: CSV (columns key, status, delivered_at,
    failed_at, reason, provider_id; separator and encoding detected) or JSON Lines. Each row is
    checked like POST /collection/deliveries; one refused row means nothing is written (exit 1),
    and every refused row is named with its code."""
    from pathlib import Path

    from regua.portfolio.collection.receipts import InvalidReceipt, parse_row, read_file
    from regua.portfolio.collection.store import CollectionStore

    settings = workflow_settings(config_path, db, policies, sandbox)
    if not settings.store.url and not Path(settings.store.path).exists():
        raise click.UsageError(f"{settings.store.path}: no such database")
    now = dt.datetime.now(dt.timezone.utc)
    try:
        rows = read_file(Path(file).read_bytes(), file, fmt, encoding)
    except ValueError as error:
        raise click.ClickException(f"{file}: {error}") from None
    receipts, problems = [], []
    for where, raw in rows:
        if isinstance(raw, InvalidReceipt):
            problems.append((where, raw.field, raw.code, raw.message))
            continue
        try:
            receipts.append((where, parse_row(raw, now)))
        except InvalidReceipt as invalid:
            problems.append((where, invalid.field, invalid.code, invalid.message))
    store = CollectionStore(settings.store.location)
    try:  # checked against the store either way; written only when every row is fine
        results, refusals = store.record_receipts(receipts, now, write=not problems)
    finally:
        store.close()
    problems += [(where, "key", refused.code, refused.message) for where, refused in refusals]
    problems.sort(key=lambda p: int(p[0].split()[-1]) if p[0].split()[-1].isdigit() else 0)
    if problems:
        results = []
    counts: dict[str, int] = {}
    for _, outcome in results:
        counts[outcome] = counts.get(outcome, 0) + 1
    if as_json:
        out.print(json.dumps({"file": file, "read": len(rows), "recorded": len(results), "outcomes": counts,
                              "refused": [{"where": w, "field": f, "code": c, "message": m} for w, f, c, m in problems]},
                             ensure_ascii=False), markup=False)
    else:
        for where, field, code, message in problems:
            err.print(f"{file}: {where}: {field}: {code}: {message}", markup=False)
        if problems:
            err.print(f"{file}: {len(rows)} receipts read, {len({p[0] for p in problems})} refused, nothing written",
                      style="yellow", markup=False)
        else:
            detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            out.print(f"{file}: {len(rows)} receipts read, {len(results)} recorded ({detail or 'none'})",
                      style="green", markup=False)
    sys.exit(1 if problems else 0)
