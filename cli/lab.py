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
@click.option("--by", "by", help="Cut the changes by these input fields, e.g. --by uf,setor.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the whole report as JSON to this file (- : standard output, nothing else printed).")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False), help="Write the changed decisions as CSV.")
@click.option("--workers", type=click.IntRange(1), help="Worker processes (default: 1 below 5000 decisions, else the cores).")
@click.option("--top", type=click.IntRange(0), default=10, show_default=True, help="How many changed decisions to list.")
def replay_command(candidate, db, policy_name, start, end, sample, by, json_file, csv_file, workers, top) -> None:
    """Re-evaluate stored decisions with CANDIDATE, on their stored input and the connector answers
    they got (no bureau is asked), and report what would change.

    Exit status: 0 replayed (changes are not failures), 1 the candidate does not compile,
    2 usage (no such database or no decisions of that policy)."""
    from regua.lab.parallel import run
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
    started = time.perf_counter()
    report = run(Replayer, [(source, str(candidate))], replay_source.records(db, window, sample),
                 {"by": _split(by)}, workers=_workers(workers, count), prepared=[prepared])
    elapsed = time.perf_counter() - started
    data = report.to_dict(top)
    data["window"] = {"policy": name, "from": start.date().isoformat() if start else None,
                      "to": end.date().isoformat() if end else None, "sample": sample, "purged_skipped": purged}
    data["seconds"] = round(elapsed, 3)
    if csv_file:
        _write_changes_csv(csv_file, report)
    if _write_json(json_file, data):
        return
    _print_replay(data, elapsed)


def _write_changes_csv(path: str, report) -> None:
    money = list(report.money)
    by = list(report.by)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "as_of", "before", "after", *[f"{m}_before" for m in money],
                         *[f"{m}_after" for m in money], *[f"{m}_delta" for m in money], "rules_on", "rules_off", *by])
        for change in report.changes:
            writer.writerow([change["id"], change["as_of"], change["before"], change["after"],
                             *[change["outputs_before"].get(m, "") for m in money],
                             *[change["outputs_after"].get(m, "") for m in money],
                             *[change["deltas"].get(m) or "" for m in money],
                             " ".join(change["rules_on"]), " ".join(change["rules_off"]),
                             *["" if change["by"].get(b) is None else change["by"][b] for b in by]])


def _print_replay(data: dict, elapsed: float) -> None:
    policy = data["policy"]
    out.print(f"replay of {data['window']['policy']} with {policy['name']} {policy['version']}: "
              f"{data['total']} decision(s) read, {data['replayed']} replayed, {data['changed']} changed, "
              f"{data['errors']} could not be replayed", markup=False)
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
              help="Applications, one a row: .csv or .jsonl (columns: docs/lab.md).")
@click.option("--label", help="Column saying whether the application defaulted (1/0, true/false, sim/não).")
@click.option("--amount", help="Column with the money at stake, for amounts per outcome and swap set.")
@click.option("--by", "by", help="Cut the outcomes by these columns, e.g. --by uf,setor.")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]),
              help="Evaluation date of rows without an as_of column (default: today).")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the report as JSON to this file (- : standard output, nothing else printed).")
@click.option("--workers", type=click.IntRange(1), help="Worker processes (default: 1 below 5000 rows, else the cores).")
def backtest_command(policy, against, data_file, label, amount, by, as_of, json_file, workers) -> None:
    """Evaluate POLICY on every application of a dataset: approval, review and deny rates, limits,
    bad rates with --label, swap sets with --against.

    Exit status: 0 done, 1 a policy does not compile, 2 usage (bad dataset or columns)."""
    from regua.lab.backtest import Backtester, DatasetError, columns, read_rows
    from regua.lab.parallel import run

    source, prepared = _read_policy(policy)
    other_source, other = _read_policy(against) if against else (None, None)
    try:
        header = columns(data_file)
    except DatasetError as error:
        raise click.UsageError(str(error)) from None
    for option, column in (("--label", label), ("--amount", amount), *(("--by", b) for b in _split(by))):
        if column and column not in header:
            raise click.UsageError(f"{option} {column}: the dataset has no such column "
                                   f"(columns: {', '.join(header) or 'none'})")
    with open(data_file, "rb") as handle:
        count = sum(1 for _ in handle)
    sources = [(source, str(policy))] + ([(other_source, str(against))] if against else [])
    options = {"label": label, "amount": amount, "by": _split(by),
               "as_of": as_of.date().isoformat() if as_of else None}
    started = time.perf_counter()
    try:
        report = run(Backtester, sources, read_rows(data_file), options, workers=_workers(workers, count),
                     prepared=[p for p in (prepared, other) if p is not None])
    except DatasetError as error:
        raise click.UsageError(str(error)) from None
    elapsed = time.perf_counter() - started
    if label and report.errors and report.evaluated == 0 and all(e["column"] == label for e in report.error_list):
        first = report.error_list[0]
        raise click.UsageError(f"--label {label}: the column holds no 0/1 label (row {first['row']}: {first['message']})")
    data = report.to_dict()
    data["seconds"] = round(elapsed, 3)
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


def _write_json(json_file: str | None, data: dict) -> bool:
    """Write the report as JSON to `json_file`; True when that was standard output (`-`), which
    then holds the report alone, so no table follows."""
    if not json_file:
        return False
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if json_file == "-":
        click.echo(text)
        return True
    Path(json_file).write_text(text + "\n", encoding="utf-8")
    return False
