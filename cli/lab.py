"""The policy lab's commands: `regua replay` (a candidate on the decision log) and `regua backtest`
(a policy, or two for swap sets, on a dataset of applications). See docs/lab.md."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import click

from .common import err, out, print_diagnostics


def _cuts(by: str | None):
    """The --by entries (regua.lab.cuts), or a usage error naming the one that cannot be read."""
    from regua.lab.cuts import CutError, parse_cuts

    try:
        return parse_cuts(_split(by))
    except CutError as error:
        raise click.BadParameter(str(error), param_hint="--by") from None


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _read_policy(path: str):
    """(source, prepared) of a policy file; a policy that does not compile prints its located
    diagnostics (file:line:col) and exits 1."""
    from regua.dsl.diagnostics import PolicyError
    from regua.dsl.source import read_policy
    from regua.lab.common import compile_source

    try:
        source = read_policy(Path(path))
        return source, compile_source(source, str(path))
    except PolicyError as error:
        print_diagnostics(error)
        sys.exit(1)


def _runner(scheduler: str | None, workers: int | None, count: int):
    """How to run: on a Dask cluster (`--scheduler`), else in worker processes of this machine.
    Returns `run(make, sources, items, options, prepared=, on_partial=)`."""
    import functools

    if scheduler:
        from regua.lab import distributed

        def on_cluster(*args, **kwargs):
            try:
                return distributed.run(*args, scheduler=scheduler, workers=workers, **kwargs)
            except distributed.ClusterError as error:
                raise click.UsageError(f"--scheduler {scheduler}: {error}") from None

        return on_cluster
    from regua.lab.parallel import run

    return functools.partial(run, workers=_workers(workers, count))


_SCHEDULER_HELP = ("Run on a Dask cluster: its scheduler's address (tcp://HOST:8786), or `local` for a cluster of "
                   "--workers processes on this machine (needs the lab extra).")


def _workers(workers: int | None, count: int) -> int:
    from regua.lab.parallel import default_workers

    if workers is not None:
        return max(1, workers)
    return default_workers() if count >= 5000 else 1


def _table(title: str, columns: list[str], rows: list[list]):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    return table


def _pct(value) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


@click.command("replay")
@click.argument("candidate", type=click.Path(exists=True, dir_okay=False))
@click.option("--db", default="var/regua.db", show_default=True,
              help="The server's store: a SQLite file or a postgresql:// URL.")
@click.option("--policy", "policy_name", help="Whose decisions to replay (default: the candidate's name).")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="First day (Brasília), inclusive.")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="Last day (Brasília), inclusive.")
@click.option("--sample", type=click.IntRange(1), help="Replay at most N decisions drawn at random from the window.")
@click.option("--by", "by", help="Cut the changes by input fields or recorded connector facts, numbers optionally in "
              "bands: --by uf,setor,bureau.serasa.score.value:100.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the whole report as JSON to this file (- : standard output, nothing else printed).")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False), help="Write the changed decisions as CSV.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False),
              help="Write a self-contained HTML report with charts (opens offline).")
@click.option("--workers", type=click.IntRange(1), help="Worker processes (default: 1 below 5000 decisions, else the cores).")
@click.option("--scheduler", help=_SCHEDULER_HELP)
@click.option("--top", type=click.IntRange(0), default=10, show_default=True, help="How many changed decisions to list.")
@click.option("--live", is_flag=True, help="Make the lookups the original never made, live (needs --budget).")
@click.option("--budget", help="With --live: at most this much in paid lookups, in BRL (R$ 50,00; 50.00).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="With --live: the server's TOML configuration, for its connectors (plugins.config).")
def replay_command(candidate, db, policy_name, start, end, sample, by, json_file, csv_file, html_file, workers,
                   scheduler, top, live, budget, config_path) -> None:
    """Re-evaluate stored decisions with CANDIDATE, on their stored input and the connector answers
    they got (no bureau is asked), and report what would change.

    Exit status: 0 replayed (changes are not failures), 1 the candidate does not compile,
    2 usage (no such database or no decisions of that policy)."""
    from regua.lab.replay import Replayer
    from regua.server import replay_source

    source, prepared = _read_policy(candidate)
    name = policy_name or prepared.name
    from regua.postgres import PostgresUnavailable, is_url, redacted

    try:
        replay_source.open_store(db)
    except FileNotFoundError:
        raise click.UsageError(f"{db}: no such database") from None
    except PostgresUnavailable as error:
        raise click.UsageError(str(error)) from None
    where = redacted(db) if is_url(db) else db  # a URL's password is never printed
    window = replay_source.Window(name, start.date() if start else None, end.date() if end else None)
    total, purged = replay_source.count(db, window)
    if not total:
        known = replay_source.policies(db)
        hint = f" (decisions are of: {', '.join(sorted(known))})" if known else " (the log is empty)"
        raise click.UsageError(f"no decision of policy '{name}' in {where} for that window{hint}")
    count = min(total - purged, sample or total)
    _cuts(by)
    options = {"by": _split(by), "keep": top}
    if live or budget:
        if not (live and budget):
            raise click.UsageError("--live and --budget go together: --live --budget 'R$ 50,00'")
        if scheduler or (workers or 1) > 1:
            raise click.UsageError("--live runs in one process (one budget): leave out --scheduler and --workers")
        options["live"] = _live_lookups(db, _brl(budget), config_path)
        workers = 1
    run = _runner(scheduler, workers, count)
    started = time.perf_counter()
    extra = {}
    if scheduler:
        # Workers that see the store (the same SQLite file, the PostgreSQL server: checked on each
        # one first) read their partitions themselves: the driver ships id ranges, not rows.
        import functools

        path = db if is_url(db) else str(Path(db).resolve())
        extra["partitions"] = replay_source.partitions(path, window, 2000) if sample is None else \
            replay_source.sample_partitions(path, window, sample, 16, 2000)
        extra["probe"] = (functools.partial(replay_source.probe, path, window), (total, purged))
    with _changes_csv(csv_file, prepared, _split(by)) as changes_csv:
        report = run(Replayer, [(source, str(candidate))], replay_source.records(db, window, sample), options,
                     prepared=[prepared], **extra, on_partial=lambda partial: changes_csv.write(_change_rows(partial)))
    elapsed = time.perf_counter() - started
    data = report.to_dict(top)
    data["window"] = {"policy": name, "from": start.date().isoformat() if start else None,
                      "to": end.date().isoformat() if end else None, "sample": sample, "purged_skipped": purged}
    data["seconds"] = round(elapsed, 3)
    if html_file:
        from regua.lab.html import replay_html

        _write_text(html_file, replay_html(data))
    if _write_json(json_file, data):
        return
    _print_replay(data, elapsed)


def _brl(text: str):
    """An amount in BRL as people write it: `R$ 1.234,56`, `1234,56`, `1234.56`."""
    from decimal import Decimal, InvalidOperation

    from regua.portfolio.spreadsheet import number_text

    plain = number_text(text.strip().removeprefix("R$").strip(), decimal_comma="," in text)
    try:
        amount = Decimal(plain)
    except InvalidOperation:
        raise click.BadParameter(f"{text!r} is not an amount in BRL (e.g. 'R$ 50,00' or 50.00)",
                                 param_hint="--budget") from None
    if not amount.is_finite() or amount < 0:
        raise click.BadParameter("the budget is an amount of 0 or more", param_hint="--budget")
    return amount


def _live_lookups(db: str, budget, config_path: str | None):
    """Live lookups through the normal connector runtime: the configured connectors (the server's
    configuration, `plugins.config`), the store's cache of answers, a budget in BRL."""
    from decimal import Decimal

    from regua.lab.replay import LiveLookups
    from regua.plugins.manager import PluginSettings
    from regua.plugins.registry import Registry
    from regua.server.config import ConfigError, load_settings

    try:
        settings = load_settings(config_path)
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    registry = Registry.load(PluginSettings(allow=settings.plugins.allow, deny=list(settings.plugins.deny),
                                            config={k: dict(v) for k, v in settings.plugins.config.items()}),
                             cache_path=db, sandbox_aliases=settings.sandbox)

    def bureau(name: str):
        kind, _, short = name.partition(".")
        found = registry.bureaus.get(short) if kind == "bureau" else None
        return found or (registry.bureaus.get("sandbox") if kind == "bureau" and settings.sandbox else None)

    def cost_of(name: str) -> Decimal:
        connector = bureau(name)
        return Decimal(str(getattr(connector, "cost", "0") or "0"))

    def cache_has(name: str, document) -> bool:
        connector = bureau(name)
        return bool(registry.cache is not None and connector is not None and connector.ttl > 0
                    and registry.cache.get(f"bureau.{connector.name}", document) is not None)

    return LiveLookups(registry.engine_connectors(), budget, cost_of, cache_has)


class _AtomicCsv:
    """A CSV written as partial reports arrive (the merged report does not keep the rows), to a
    temporary file renamed at the end: an interrupted or failed run leaves nothing half-written."""

    def __init__(self, path: str | None, header: list[str]):
        self.path, self.header = path, header
        self.handle = self.writer = None

    def __enter__(self):
        if self.path:
            self.temporary = Path(self.path).with_name(Path(self.path).name + ".partial")
            self.handle = open(self.temporary, "w", newline="", encoding="utf-8")
            self.writer = csv.writer(self.handle)
            self.writer.writerow(self.header)
        return self

    def write(self, rows: list[list]) -> None:
        if self.writer is not None:
            self.writer.writerows(["" if v is None else v for v in row] for row in rows)

    def __exit__(self, kind, *_exc) -> None:
        if self.handle is None:
            return
        self.handle.close()
        if kind is None:
            self.temporary.replace(self.path)
        else:
            self.temporary.unlink(missing_ok=True)


def _changes_csv(path: str | None, prepared, by: tuple[str, ...]) -> _AtomicCsv:
    from regua.lab.common import money_outputs

    money = money_outputs(prepared)
    return _AtomicCsv(path, ["id", "as_of", "before", "after", *[f"{m}_before" for m in money],
                             *[f"{m}_after" for m in money], *[f"{m}_delta" for m in money], "rules_on",
                             "rules_off", *by])


def _change_rows(partial) -> list[list]:
    money, by = partial.money, partial.by
    return [[change["id"], change["as_of"], change["before"], change["after"],
             *[change["outputs_before"].get(m, "") for m in money],
             *[change["outputs_after"].get(m, "") for m in money],
             *[change["deltas"].get(m) or "" for m in money],
             " ".join(change["rules_on"]), " ".join(change["rules_off"]),
             *["" if change["by"].get(b) is None else change["by"][b] for b in by]]
            for change in partial.changes]


def _print_replay(data: dict, elapsed: float) -> None:
    policy = data["policy"]
    out.print(f"replay of {data['window']['policy']} with {policy['name']} {policy['version']}: "
              f"{data['total']} decision(s) read, {data['replayed']} replayed, {data['changed']} changed, "
              f"{data['errors']} could not be replayed", markup=False)
    if "live_lookups" in data:
        made = data["live_lookups"]
        out.print(f"live lookups: {made['decisions']} decision(s) replayed with them; {made['paid']} paid, "
                  f"{made['cached']} from the cache; R$ {made['cost']} of a budget of R$ {made['budget']}", markup=False)
    live = data["needs_live_lookup"]
    if live["decisions"]:
        out.print(f"needs a live lookup: {live['decisions']} decision(s) ("
                  + ", ".join(f"{k}: {v}" for k, v in live["connectors"].items())
                  + "); not queried, not counted as replayed", markup=False)
    if data["window"]["purged_skipped"]:
        out.print(f"purged (no input left): {data['window']['purged_skipped']} decision(s) skipped", markup=False)
    outcomes = sorted({t["before"] for t in data["transitions"]} | {t["after"] for t in data["transitions"]})
    if outcomes:
        matrix = {(t["before"], t["after"]): t["count"] for t in data["transitions"]}
        out.print(_table("outcomes (rows: before, columns: after)", ["before \\ after", *outcomes],
                         [[b, *[matrix.get((b, a), 0) for a in outcomes]] for b in outcomes]))
    if data["outputs"]:
        rows = []
        for name, o in data["outputs"].items():
            d = o["distribution"] or {}
            rows.append([name, o["changed"], o["up"], o["down"], o["total_delta"], d.get("min"), d.get("median"),
                         d.get("max")])
        out.print(_table("outputs", ["output", "changed", "up", "down", "total delta", "min", "median", "max"], rows))
    if data["rules"]:
        out.print(_table("rules", ["rule", "fired before", "fired after", "changes"],
                         [[r["rule"], r["fired_before"], r["fired_after"], r["changes"]] for r in data["rules"]]))
    for key, groups in data["cuts"].items():
        out.print(_table(f"by {key}", [key, "replayed", "changed"],
                         [[g["value"], g["replayed"], g["changed"]] for g in groups]))
    fields = data["fields"]
    for kind, label in (("dropped", "stored field(s) the candidate does not have (dropped)"),
                        ("defaulted", "field(s) absent from the stored input (candidate's default used)")):
        if fields[kind]:
            out.print(f"{label}: " + ", ".join(f"{k}: {v}" for k, v in fields[kind].items()), markup=False)
    if data["top_changes"]:
        out.print(_table("top changed decisions", ["id", "before", "after", "deltas", "rules on", "rules off"],
                         [[c["id"], c["before"], c["after"],
                           " ".join(f"{k} {v}" for k, v in c["deltas"].items() if v is not None),
                           " ".join(c["rules_on"]), " ".join(c["rules_off"])] for c in data["top_changes"]]))
    if data["errors"]:
        out.print(_table("could not be replayed", ["id", "code", "detail"],
                         [[e["id"], e["code"], e["detail"]] for e in data["error_list"][:20]]))


@click.command("backtest")
@click.argument("policy", type=click.Path(exists=True, dir_okay=False))
@click.option("--against", type=click.Path(exists=True, dir_okay=False),
              help="Another policy file: the swap sets (approved by POLICY and not by it, and the reverse).")
@click.option("--data", "data_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Applications, one a row: .csv, .jsonl or .parquet (columns: docs/lab.md).")
@click.option("--label", help="Column saying whether the application defaulted (1/0, true/false, sim/não).")
@click.option("--amount", help="Column with the money at stake, for amounts per outcome and swap set.")
@click.option("--by", "by", help="Cut the outcomes by columns or connector answer fields, numbers optionally in "
              "bands: --by uf,setor,bureau.serasa.score.value:100.")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]),
              help="Evaluation date of rows without an as_of column (default: today).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the report as JSON to this file (- : standard output, nothing else printed).")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False),
              help="Write each row's decision as CSV (row, outcome, the other policy's, money outputs, label, amount).")
@click.option("--html", "html_file", type=click.Path(dir_okay=False),
              help="Write a self-contained HTML report with charts (opens offline).")
@click.option("--workers", type=click.IntRange(1), help="Worker processes (default: 1 below 5000 rows, else the cores).")
@click.option("--scheduler", help=_SCHEDULER_HELP)
def backtest_command(policy, against, data_file, label, amount, by, as_of, json_file, csv_file, html_file,
                     workers, scheduler) -> None:
    """Evaluate POLICY on every application of a dataset: approval, review and deny rates, limits,
    bad rates with --label, swap sets with --against.

    Exit status: 0 done, 1 a policy does not compile, 2 usage (bad dataset or columns)."""
    from regua.lab.backtest import Backtester
    from regua.lab.common import money_outputs
    from regua.lab.dataset import DatasetError, columns, count_rows, read_rows

    source, prepared = _read_policy(policy)
    other_source, other = _read_policy(against) if against else (None, None)
    try:
        header = columns(data_file)
    except DatasetError as error:
        raise click.UsageError(str(error)) from None
    for option, column in (("--label", label), ("--amount", amount),
                           *(("--by", cut.connector or cut.path[0]) for cut in _cuts(by))):
        if column and column not in header:
            raise click.UsageError(f"{option} {column}: the dataset has no such column "
                                   f"(columns: {', '.join(header) or 'none'})")
    run = _runner(scheduler, workers, count_rows(data_file))
    sources = [(source, str(policy))] + ([(other_source, str(against))] if against else [])
    options = {"label": label, "amount": amount, "by": _split(by),
               "as_of": as_of.date().isoformat() if as_of else None, "keep_rows": bool(csv_file)}
    policies = [p for p in (prepared, other) if p is not None]
    header_row = ["row", "outcome", *(["against_outcome"] if other else []),
                  *[f"{m}{'_against' if i else ''}" for i, _ in enumerate(policies) for m in money_outputs(prepared)],
                  *(["label"] if label else []), *(["amount"] if amount else [])]
    started = time.perf_counter()
    try:
        with _AtomicCsv(csv_file, header_row) as rows_csv:
            report = run(Backtester, sources, read_rows(data_file), options,
                         prepared=policies, on_partial=lambda partial: rows_csv.write(
                             [r[:-2] + ([r[-2]] if label else []) + ([r[-1]] if amount else [])
                              for r in partial.decisions]))
    except DatasetError as error:
        raise click.UsageError(str(error)) from None
    elapsed = time.perf_counter() - started
    if label and report.errors and report.evaluated == 0 and all(e["column"] == label for e in report.error_list):
        first = report.error_list[0]
        raise click.UsageError(f"--label {label}: the column holds no 0/1 label (row {first['row']}: {first['message']})")
    data = report.to_dict()
    data["seconds"] = round(elapsed, 3)
    if html_file:
        from regua.lab.html import backtest_html

        _write_text(html_file, backtest_html(data))
    if _write_json(json_file, data):
        return
    _print_backtest(data)


def _print_backtest(data: dict) -> None:
    out.print(f"backtest of {data['policy']['name']} {data['policy']['version']}: {data['rows']} row(s), "
              f"{data['evaluated']} evaluated, {data['errors']} could not be read", markup=False)
    results = [(data["policy"]["version"], data["result"])]
    if "against_result" in data:
        results.append((data["against"]["version"] + " (against)", data["against_result"]))
    first = data["result"]
    rows = [["decisions", *[r["decisions"] for _, r in results]]]
    rows += [[outcome, *[_pct(r["rates"].get(outcome)) for _, r in results]] for outcome in ("approve", "review", "deny")]
    for money in first["approved_outputs"]:
        rows.append([f"{money}: average (approved)", *[r["approved_outputs"][money]["average"] for _, r in results]])
        rows.append([f"{money}: total (approved)", *[r["approved_outputs"][money]["total"] for _, r in results]])
    if "bad_rates" in first:
        rows.append(["bad rate: approved", *[_pct(r["bad_rate_approved"]) for _, r in results]])
        rows.append(["bad rate: declined", *[_pct(r["bad_rate_declined"]) for _, r in results]])
    if (first.get("expected_loss") or {}).get("approved") is not None:  # with --label and --amount
        for group in ("approved", "declined"):
            rows.append([f"expected loss: {group}", *[r["expected_loss"][group]["expected_loss"] for _, r in results]])
        for group in ("approved", "declined"):
            rows.append([f"expected loss rate: {group}",
                         *[_pct(r["expected_loss"][group]["expected_loss_rate"]) for _, r in results]])
    out.print(_table("results", ["", *[name for name, _ in results]], rows))
    if "swap_sets" in data:
        out.print(_table("swap sets (POLICY vs --against)", ["set", "count", "amount", "labelled", "bad", "bad rate"],
                         [[name.replace("_", " "), s["count"], s["amount"], s["labelled"], s["bad"], _pct(s["bad_rate"])]
                          for name, s in data["swap_sets"].items()]))
    for key, groups in data.get("cuts", {}).items():
        outcomes = sorted({o for g in groups for o in g if o != "value"})
        out.print(_table(f"by {key}", [key, *outcomes], [[g["value"], *[g.get(o, 0) for o in outcomes]] for g in groups]))
    if data["errors"]:
        out.print(_table("rows that could not be read", ["row", "column", "message"],
                         [[e["row"], e["column"], e["message"]] for e in data["error_list"][:20]]))
        if data["errors"] > 20:
            err.print(f"… and {data['errors'] - 20} more (all in --json)", markup=False)


def _write_text(path: str, text: str) -> None:
    """Write through a temporary file renamed at the end: a reader never sees half a report."""
    temporary = Path(path).with_name(Path(path).name + ".partial")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def _write_json(json_file: str | None, data: dict) -> bool:
    """Write the report as JSON to `json_file`; True when that was standard output (`-`), which
    then holds the report alone, so no table follows."""
    if not json_file:
        return False
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if json_file == "-":
        click.echo(text)
        return True
    _write_text(json_file, text + "\n")
    return False
