"""`regua experiments`: champion/challenger experiments on the server's store, the same operations
as /experiments (same checks, same audit trail, by `cli:<user>`); running servers pick changes up
within a second. `report` prints a table per arm, or JSON with --json."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path

import click

from .common import fail_json, registry

_DB = click.option("--db", default="var/regua.db", show_default=True, help="SQLite file of the server's store.")


def _by() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


class _Session:
    """The store, the active policies and the experiment service, for one command."""

    def __init__(self, db: str):
        from regua import postgres
        from regua.server.experiments import ExperimentService
        from regua.server.policies import PolicyService
        from regua.server.store import open_store

        if not postgres.is_url(db) and not Path(db).exists():
            raise click.UsageError(f"{db}: no such database (the server's store.path)")
        self.store = open_store(db)  # a SQLite file or the PostgreSQL database replicas share
        self.policies = PolicyService(self.store, registry().environment())
        self.policies.refresh(force=True)
        self.service = ExperimentService(self.store, self.policies, worker=False)

    def run(self, call):
        from regua.server.experiment_store import ExperimentConflict

        try:
            return call()
        except ExperimentConflict as error:
            fail_json(error.code, error.message,
                      [{"code": error.code, "message": error.message, "location": error.location}]
                      if error.location else None)
        finally:
            self.store.close()


def _print(experiment: dict) -> None:
    arms = ", ".join(f"{a['arm']} {a['share'] / 100:g}%" + (" (shadow)" if a["share"] == 0 else "")
                     for a in experiment["arms"])
    click.echo(f"{experiment['name']}: {experiment['policy']} [{experiment['status']}] {arms}")


@click.group("experiments")
def experiments_group() -> None:
    """Champion/challenger experiments: create, change shares, pause, resume, stop, promote, report."""


@experiments_group.command("list")
@_DB
def list_command(db: str) -> None:
    """Every experiment, one per line."""
    session = _Session(db)
    names = session.run(lambda: [session.service.store.get(n) for n in session.service.store.names()])
    for experiment in names:
        _print(experiment)


@experiments_group.command("create")
@click.argument("name")
@click.option("--policy", required=True, help="The policy; its active revision is the champion.")
@click.option("--challenger", "challengers", nargs=3, multiple=True, metavar="ARM FILE SHARE",
              help="A challenger: its name, its policy file and its traffic share in percent (repeatable).")
@click.option("--shadow", "shadows", nargs=2, multiple=True, metavar="ARM FILE",
              help="A shadow challenger (share 0): evaluated beside the champion, never answering (repeatable).")
@click.option("--sample", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Fraction of requests the shadows are evaluated on.")
@click.option("--key", help="The input that assigns customers to arms (default: the policy's CPF/CNPJ input).")
@click.option("--salt", help="Salt of the assignment hash (default: random).")
@_DB
def create_command(name, policy, challengers, shadows, sample, key, salt, db) -> None:
    """Create an experiment NAME on a policy."""
    arms = []
    for arm, file, share in challengers:
        try:
            arms.append({"name": arm, "source": Path(file).read_text(encoding="utf-8"), "share": float(share)})
        except (OSError, ValueError) as error:
            raise click.BadParameter(f"{arm} {file} {share}: {error}", param_hint="--challenger") from None
    for arm, file in shadows:
        try:
            arms.append({"name": arm, "source": Path(file).read_text(encoding="utf-8"), "share": 0, "sample": sample})
        except OSError as error:
            raise click.BadParameter(f"{arm} {file}: {error}", param_hint="--shadow") from None
    if not arms:
        raise click.UsageError("give at least one --challenger or --shadow")
    session = _Session(db)
    _print(session.run(lambda: session.service.create(
        {"name": name, "policy": policy, "challengers": arms, "key": key, "salt": salt}, _by())))


@experiments_group.command("shares")
@click.argument("name")
@click.argument("shares", nargs=-1, required=True, metavar="ARM=PERCENT...")
@_DB
def shares_command(name, shares, db) -> None:
    """Change traffic shares, e.g. `champion=80 novo=20` (they must sum to 100)."""
    parsed = {}
    for item in shares:
        arm, _, value = item.partition("=")
        try:
            parsed[arm] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item}: write ARM=PERCENT, e.g. champion=80", param_hint="SHARES") from None
    session = _Session(db)
    _print(session.run(lambda: session.service.set_shares(name, parsed, {}, _by())))


def _status_command(verb: str, status: str, doc: str):
    @experiments_group.command(verb, help=doc)
    @click.argument("name")
    @_DB
    def command(name, db) -> None:
        session = _Session(db)
        _print(session.run(lambda: session.service.set_status(name, status, _by())))

    return command


pause_command = _status_command("pause", "paused", "Pause: every request meets the champion, no shadows.")
resume_command = _status_command("resume", "running", "Resume a paused experiment.")
stop_command = _status_command("stop", "stopped", "Stop for good (its report stays).")


@experiments_group.command("promote")
@click.argument("name")
@click.argument("arm")
@_DB
def promote_command(name, arm, db) -> None:
    """Make challenger ARM the policy's active revision and end the experiment, atomically."""
    session = _Session(db)
    _print(session.run(lambda: session.service.promote(name, arm, _by())))


@experiments_group.command("show")
@click.argument("name")
@_DB
def show_command(name, db) -> None:
    """An experiment's arms, buckets and audit trail, as JSON."""
    session = _Session(db)

    def read():
        experiment = session.service.store.get(name)
        if experiment is None:
            fail_json("UNKNOWN_EXPERIMENT", f"no experiment named '{name}'")
        return {**experiment, "audit": session.service.store.audit(name)}

    click.echo(json.dumps(session.run(read), ensure_ascii=False, indent=2))


@experiments_group.command("report")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--output", help="The money output to average (default: limite/limit, else the first money output).")
@click.option("--bad-days", type=click.IntRange(1, 3650), default=60, show_default=True,
              help="Days past due that make a customer bad (bad rates, from the portfolio).")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="Judge payments as of this date (default: today).")
@_DB
def report_command(name, as_json, output, bad_days, as_of, db) -> None:
    """Per arm: volume, outcome rates and average limit with 95% intervals; shadow disagreements; bad rates."""
    from regua.server.experiment_report import build_report

    session = _Session(db)

    def read():
        experiment = session.service.store.get(name)
        if experiment is None:
            fail_json("UNKNOWN_EXPERIMENT", f"no experiment named '{name}'")
        return build_report(experiment, session.service.store.decisions(name), session.store.db, output=output,
                            bad_days=bad_days, as_of=as_of.date() if as_of else dt.date.today())

    report = session.run(read)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    _table(report)


def _rate(entry: dict | None) -> str:
    if not entry or entry.get("rate") is None:
        return "-"
    ci = entry.get("ci")
    return f"{entry['rate'] * 100:.1f}%" + (f" [{ci[0] * 100:.1f}–{ci[1] * 100:.1f}]" if ci else "")


def _table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{report['experiment']} · {report['policy']} · {report['status']}")
    for column in ("arm", "share", "decisions", "approve", "review", "deny", f"avg {report['limit_output'] or 'limit'}",
                   "bad rate"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for arm in report["arms"]:
        limit = arm["average_limit"]
        average = "-" if not limit else limit["mean"] + (f" [{limit['ci'][0]}–{limit['ci'][1]}]" if limit["ci"] else "")
        label = arm["arm"] + (" (shadow)" if arm["shadow"] else f" r{arm['revision']}" if arm["revision"] else "")
        table.add_row(label, f"{arm['share']:g}%", str(arm["decisions"]),
                      *(_rate(arm["outcomes"][o]) for o in ("approve", "review", "deny")), average,
                      _rate(arm.get("bad_rate")))
    console.print(table)
    for arm in report["arms"]:
        found = arm.get("disagreement")
        if not found:
            continue
        matrix = Table(title=f"{arm['arm']} vs the deciding arm: {found['disagreements']} of {found['paired']} differ")
        matrix.add_column("decided \\ shadow")
        for outcome in ("approve", "review", "deny"):
            matrix.add_column(outcome, justify="right")
        for outcome, row in found["matrix"].items():
            matrix.add_row(outcome, *(str(row.get(o, 0)) for o in ("approve", "review", "deny")))
        console.print(matrix)
        for rule in found["rules"]:
            console.print(f"  {rule['rule']}: fired only in the {rule['fired_only_in']} arm in {rule['count']} "
                          "disagreement(s)")
