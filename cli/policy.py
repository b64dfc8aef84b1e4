"""The policy author's commands: check, fmt, eval, test, graph and plugins."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import compile_cache_dir, err, fail_json, out, policy_files, print_diagnostics, registry

if TYPE_CHECKING:
    from regua.engine.connectors import Connectors

# engine.prepared.TRACE_LEVELS, spelled out so that `regua --help` does not import the engine
# (tests/test_cli.py checks that they agree).
TRACE_LEVELS = ("off", "rules", "full")


@click.command("check")
@click.argument("paths", nargs=-1, required=True)
def check_command(paths: tuple[str, ...]) -> None:
    """Check policy files or folders; print every error and exit 1 on failure."""
    from regua.dsl.diagnostics import PolicyError
    from regua.engine.compiler import check_source

    files = policy_files(paths)
    env = registry().environment()  # plugin bureaus and functions are known to the checker
    failed = warnings = 0
    for path in files:
        source = path.read_text(encoding="utf-8")
        try:
            checked = check_source(source, str(path), env)
        except PolicyError as error:
            failed += 1
            print_diagnostics(error)
            continue
        for warning in checked.warnings:
            warnings += 1
            print_diagnostics(PolicyError([warning], source))
    summary = f"{len(files)} polic{'y' if len(files) == 1 else 'ies'} checked: {failed} with errors, {warnings} warning(s)"
    (err if failed else out).print(summary, style="red" if failed else "green", markup=False)
    sys.exit(1 if failed else 0)


@click.command("fmt")
@click.option("--check", "check_only", is_flag=True, help="Only report files that are not formatted.")
@click.argument("paths", nargs=-1, required=True)
def fmt_command(check_only: bool, paths: tuple[str, ...]) -> None:
    """Format policy files in place (canonical layout, comments kept)."""
    from regua.dsl.diagnostics import PolicyError
    from regua.dsl.formatter import format_source

    unformatted = failed = 0
    for path in policy_files(paths):
        source = path.read_text(encoding="utf-8")
        try:
            formatted = format_source(source, str(path))
        except PolicyError as error:
            failed += 1
            print_diagnostics(error)
            continue
        if formatted != source:
            unformatted += 1
            if check_only:
                err.print(f"{path}: not formatted (run `regua fmt {path}`)", markup=False)
            else:
                path.write_text(formatted, encoding="utf-8")
                out.print(f"formatted {path}", markup=False)
    sys.exit(1 if failed or (check_only and unformatted) else 0)


def _connectors_from(fixtures: str | None) -> Connectors:
    from regua.engine.connectors import ConnectorError, Connectors, Fixture

    if not fixtures:
        return registry(sandbox_aliases=True).engine_connectors()
    connectors = Connectors()
    if fixtures:
        try:
            data = json.loads(Path(fixtures).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            fail_json("MALFORMED_JSON", f"{fixtures}:{error.lineno}:{error.colno}: {error.msg}")
        if not isinstance(data, dict):
            fail_json("INVALID_FIXTURES", f"{fixtures}: expected an object of connector answers")
        for name, answer in data.items():
            connectors.register(name, Fixture(failure=ConnectorError("FAILED")) if answer is None else Fixture(answer))
    return connectors


@click.command("eval")
@click.argument("policy_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--input", "input_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="JSON file with the policy's input.")
@click.option("--trace", type=click.Choice(TRACE_LEVELS), default="off", show_default=True)
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="Evaluation date (default: today).")
@click.option("--fixtures", type=click.Path(exists=True, dir_okay=False),
              help='JSON object of connector answers, e.g. {"bureau.serasa": {...}}; null makes a connector fail.')
def eval_command(policy_file: str, input_file: str, trace: str, as_of, fixtures) -> None:
    """Evaluate a policy on one input and print the decision as JSON."""
    from regua.dsl.diagnostics import PolicyError
    from regua.engine.compiler import compile_file
    from regua.engine.prepared import InvalidInput

    try:
        prepared = compile_file(policy_file, env=registry().environment(), cache_dir=compile_cache_dir())
    except PolicyError as error:
        print_diagnostics(error)
        sys.exit(1)
    try:
        data = json.loads(Path(input_file).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        fail_json("MALFORMED_JSON", f"{input_file}:{error.lineno}:{error.colno}: {error.msg}")
    try:
        decision = prepared.evaluate(data, connectors=_connectors_from(fixtures), trace=trace,
                                     as_of=as_of.date() if as_of else None)
    except InvalidInput as error:
        fail_json("INVALID_INPUT", "the input does not fit the policy", error.to_list())
    if not fixtures and decision.connector_calls:
        click.secho("regua eval: answers came from the SANDBOX bureau (synthetic data); use --fixtures for your own",
                    fg="yellow", err=True)
    click.echo(json.dumps(decision.to_dict(), ensure_ascii=False, indent=2))


@click.command("test")
@click.argument("paths", nargs=-1, required=True)
@click.option("--min-coverage", type=click.FloatRange(0, 100), default=0.0, show_default=True,
              help="Fail when a policy's rule coverage is below this percentage.")
def test_command(paths: tuple[str, ...], min_coverage: float) -> None:
    """Run the tests written in policies and report rule coverage."""
    from regua.dsl.diagnostics import PolicyError
    from regua.engine.testing import load, run_policy_tests

    passed = failed = 0
    low_coverage = []
    env = registry().environment()
    for path in policy_files(paths):
        try:
            checked, prepared = load(path, env)
        except PolicyError as error:
            print_diagnostics(error)
            failed += 1
            continue
        report = run_policy_tests(checked, prepared)
        out.print(f"{path} ({report.policy})", style="bold", markup=False)
        for case in report.cases:
            if case.passed:
                passed += 1
                out.print(f"  PASS {case.name}", style="green", markup=False)
            else:
                failed += 1
                out.print(f"  FAIL {case.name} (line {case.line})", style="red", markup=False)
                for failure in case.failures:
                    out.print(f"       {failure}", markup=False)
        out.print(f"  rule coverage {report.coverage:.0f}%"
                  + (f"; never fired: {', '.join(report.uncovered_rules)}" if report.uncovered_rules else ""),
                  markup=False)
        for table, rows in report.table_rows.items():
            out.print(f"  table {table}: rows never matched: {', '.join(map(str, rows))}", markup=False)
        if report.coverage < min_coverage:
            low_coverage.append(f"{path}: {report.coverage:.0f}% < {min_coverage:.0f}%")
    for line in low_coverage:
        err.print(f"coverage too low: {line}", style="red", markup=False)
    out.print(f"{passed} passed, {failed} failed", markup=False)
    sys.exit(1 if failed or low_coverage else 0)


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def plugins_command(as_json: bool) -> None:
    """List loaded plugins: name, where from, version and the hooks they implement."""
    loaded = registry()
    rows = [{"name": i.name, "source": i.source, "version": i.version, "module": i.module, "hooks": i.hooks,
             "error": i.error} for i in loaded.pm.infos.values()]
    if as_json:
        click.echo(json.dumps({"plugins": rows, "bureaus": sorted(loaded.bureaus),
                               "channels": sorted(loaded.channels),
                               "negativation": sorted(loaded.negativators)}, indent=2))
        return
    for row in rows:
        status = f"  ERROR: {row['error']}" if row["error"] else ""
        out.print(f"{row['name']:<20} {row['source']:<16} {row['version']:<10} {', '.join(row['hooks']) or '-'}{status}",
                  markup=False)
    out.print(f"bureaus: {', '.join(sorted(loaded.bureaus)) or '-'}; channels: "
              f"{', '.join(sorted(loaded.channels)) or '-'}; negativation: "
              f"{', '.join(sorted(loaded.negativators)) or '-'}", markup=False)


@click.command("graph")
@click.argument("policy_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "json"]), default="mermaid", show_default=True)
def graph_command(policy_file: str, fmt: str) -> None:
    """Print the policy's rule graph."""
    from regua.dsl.diagnostics import PolicyError
    from regua.engine.compiler import check_source
    from regua.engine.graph import build_graph

    path = Path(policy_file)
    try:
        checked = check_source(path.read_text(encoding="utf-8"), str(path), registry().environment())
    except PolicyError as error:
        print_diagnostics(error)
        sys.exit(1)
    graph = build_graph(checked)
    if fmt == "json":
        click.echo(json.dumps(graph.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(graph.mermaid() if fmt == "mermaid" else graph.dot(), nl=False)
