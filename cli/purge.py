"""`regua purge`: apply an LGPD retention period by hand (the server applies store.retention_days)."""

from __future__ import annotations

import json
import sys

import click

from .common import err, out, workflow_settings


@click.command("purge")
@click.option("--before", "before", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="Purge personal data of decisions and cached bureau answers from before this date (Brasília).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML configuration file.")
@click.option("--db", help="The store: a SQLite file or a postgresql:// URL (default: the configuration's store).")
@click.option("--replays-only", is_flag=True,
              help="Only delete the policy lab's replay jobs from before the date (store.replay_retention_days).")
@click.option("--dry-run", is_flag=True, help="Count only: nothing is changed or recorded.")
@click.option("--by", default="regua purge", show_default=True, help="Who runs it, for the audit trail.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def purge_command(before, config_path, db, replays_only, dry_run, by, as_json) -> None:
    """Anonymise old decisions (input, document), delete old cached bureau answers and old replay
    jobs; audited.

    Decisions keep policy, version, outcome and the masked answer for statistics."""
    from pathlib import Path

    from regua.server.retention import purge

    settings = workflow_settings(config_path, db, None, False)
    if not settings.store.url and not Path(settings.store.path).exists():
        raise click.UsageError(f"{settings.store.path}: no such database")
    report = purge(settings.store.location, before.date(), by, dry_run, replays_only=replays_only)
    if as_json:
        click.echo(json.dumps({"before": report.before, "decisions": report.decisions,
                               "cache_entries": report.cache_entries, "replays": report.replays,
                               "dry_run": report.dry_run}))
    else:
        verb = "would be" if dry_run else "were"
        done = f"{report.replays} replay job(s) {verb} deleted"
        if not replays_only:
            done = (f"{report.decisions} decision(s) {verb} anonymised, {report.cache_entries} cached bureau "
                    f"answer(s) {verb} deleted, {done}")
        (err if dry_run else out).print(f"before {report.before}: {done}", markup=False)
    sys.exit(0)
