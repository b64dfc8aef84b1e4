"""The policy author's commands: check, fmt, eval, test, graph and plugins."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import compile_cache_dir, err, fail_json, out, policy_files, print_diagnostics, read_json, registry

if TYPE_CHECKING:
    from regua.engine.connectors import Connectors
    from regua.plugins.registry import Registry

# engine.prepared.TRACE_LEVELS, spelled out so that `regua --help` does not import the engine
# (tests/test_cli.py checks that they agree).
TRACE_LEVELS = ("off", "rules", "full")


@click.command("check")
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print every diagnostic as JSON (code, severity, location).")
def check_command(paths: tuple[str, ...], as_json: bool) -> None:
    """Check policy files or folders; print every error and exit 1 on failure."""
    from regua.dsl.diagnostics import PolicyError, Severity
    from regua.dsl.source import read_policy
    from regua.engine.compiler import check_source

    files = policy_files(paths)
    env = registry().environment()  # plugin bureaus and functions are known to the checker
    failed = 0
    found = []  # (file, diagnostics, source)
    for path in files:
        source = None
        try:
            source = read_policy(path)
            checked = check_source(source, str(path), env)
        except PolicyError as error:
            failed += 1
            found.append((path, error.diagnostics, error.source if error.source is not None else source))
            continue
        found.append((path, list(checked.warnings), source))
    warnings = sum(d.severity is Severity.WARNING for _, diagnostics, _ in found for d in diagnostics)
    if as_json:
        click.echo(json.dumps({"files": [{"file": str(path), "diagnostics": [d.to_dict() for d in diagnostics]}
                                         for path, diagnostics, _ in found],
                               "checked": len(files), "with_errors": failed, "warnings": warnings},
                              ensure_ascii=False, indent=2))
        sys.exit(1 if failed else 0)
    for _, diagnostics, source in found:
        if diagnostics:
            print_diagnostics(PolicyError(list(diagnostics), source))
    summary = f"{len(files)} polic{'y' if len(files) == 1 else 'ies'} checked: {failed} with errors, {warnings} warning(s)"
    (err if failed else out).print(summary, style="red" if failed else "green", markup=False)
    sys.exit(1 if failed else 0)


@click.command("fmt")
@click.option("--check", "check_only", is_flag=True, help="Only report files that are not formatted.")
@click.option("--diff", "show_diff", is_flag=True, help="Print what would change as a unified diff; change nothing.")
@click.argument("paths", nargs=-1, required=True)
def fmt_command(check_only: bool, show_diff: bool, paths: tuple[str, ...]) -> None:
    """Format policy files in place (canonical layout, comments kept).

    With --check or --diff nothing is written and the exit status is 1 when a file would change."""
    import difflib

    from regua.dsl.diagnostics import PolicyError
    from regua.dsl.formatter import format_source
    from regua.dsl.source import read_policy

    unformatted = failed = 0
    for path in policy_files(paths):
        try:
            source = read_policy(path)
            formatted = format_source(source, str(path))
        except PolicyError as error:
            failed += 1
            print_diagnostics(error)
            continue
        if formatted != source:
            unformatted += 1
            if show_diff:
                click.echo("".join(difflib.unified_diff(source.splitlines(keepends=True), formatted.splitlines(keepends=True),
                                                        f"{path}", f"{path} (formatted)")), nl=False)
            elif check_only:
                err.print(f"{path}: not formatted (run `regua fmt {path}`)", markup=False)
            else:
                path.write_text(formatted, encoding="utf-8")
                out.print(f"formatted {path}", markup=False)
    sys.exit(1 if failed or ((check_only or show_diff) and unformatted) else 0)


def _connectors_from(fixtures: str | None, plugins: Registry) -> Connectors:
    from regua.engine.connectors import ConnectorError, Connectors, Fixture

    if not fixtures:
        return plugins.engine_connectors()
    connectors = Connectors()
    if fixtures:
        data = read_json(fixtures)
        if not isinstance(data, dict):
            fail_json("INVALID_FIXTURES", f"{fixtures}: expected an object of connector answers")
        for name, answer in data.items():
            connectors.register(name, Fixture(failure=ConnectorError("FAILED")) if answer is None else Fixture(answer))
    return connectors


@click.command("eval")
@click.argument("policy_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--input", "input_file", required=True, type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="JSON file with the policy's input; - reads it from standard input.")
@click.option("--trace", type=click.Choice(TRACE_LEVELS), default="off", show_default=True)
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="Evaluation date (default: today).")
@click.option("--fixtures", type=click.Path(exists=True, dir_okay=False),
              help='JSON object of connector answers, e.g. {"bureau.serasa": {...}}; null makes a connector fail.')
@click.option("--fail-on", "fail_on", multiple=True, metavar="OUTCOME",
              help="Exit 1 when the decision's outcome is this one (repeatable), e.g. --fail-on deny.")
def eval_command(policy_file: str, input_file: str, trace: str, as_of, fixtures, fail_on: tuple[str, ...]) -> None:
    """Evaluate a policy on one input and print the decision as JSON.

    Exit status: 0 decided, 1 the policy does not compile or the outcome is one of --fail-on,
    2 bad input (JSON or the policy's input contract)."""
    from regua.dsl.diagnostics import PolicyError
    from regua.engine.compiler import compile_file
    from regua.engine.prepared import InvalidInput

    plugins = registry(sandbox_aliases=True)  # aliases change the connectors, not the environment
    try:
        prepared = compile_file(policy_file, env=plugins.environment(), cache_dir=compile_cache_dir())
    except PolicyError as error:
        print_diagnostics(error)
        sys.exit(1)
    data = read_json(input_file)
    try:
        decision = prepared.evaluate(data, connectors=_connectors_from(fixtures, plugins), trace=trace,
                                     as_of=as_of.date() if as_of else None)
    except InvalidInput as error:
        fail_json("INVALID_INPUT", "the input does not fit the policy", error.to_list())
    if not fixtures and decision.connector_calls:
        click.secho("regua eval: answers came from the SANDBOX bureau (synthetic data); use --fixtures for your own",
                    fg="yellow", err=True)
    click.echo(json.dumps(decision.to_dict(), ensure_ascii=False, indent=2))
    if decision.outcome in fail_on:
        sys.exit(1)


@click.command("test")
@click.argument("paths", nargs=-1, required=True)
@click.option("--min-coverage", type=click.FloatRange(0, 100), default=0.0, show_default=True,
              help="Fail when a policy's rule coverage is below this percentage.")
@click.option("--run", "-k", "pattern", metavar="REGEX",
              help="Only the tests whose name matches this regular expression (coverage counts those).")
@click.option("--verbose", "-v", is_flag=True, help="Show each test's outcome, reasons and time.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit"]), default="text", show_default=True,
              help="json: one report object; junit: JUnit XML for CI servers.")
@click.option("--allow-no-tests", is_flag=True, help="Do not fail a policy that has no (matching) tests.")
def test_command(paths: tuple[str, ...], min_coverage: float, pattern: str | None, verbose: bool, fmt: str,
                 allow_no_tests: bool) -> None:
    """Run the tests written in policies and report rule coverage.

    Exit status 1 when a test fails, a policy does not compile, has no tests (unless
    --allow-no-tests) or its coverage is below --min-coverage."""
    from regua.dsl.diagnostics import PolicyError
    from regua.engine.testing import load, run_policy_tests

    from .test_reports import json_report, junit_xml

    only = None
    if pattern is not None:
        try:
            only = re.compile(pattern).search
        except re.error as error:
            raise click.BadParameter(f"not a regular expression: {error}", param_hint="--run") from None
    text = fmt == "text"
    reports, broken, problems = [], [], []
    env = registry().environment()
    for path in policy_files(paths):
        try:
            checked, prepared = load(path, env)
        except PolicyError as error:
            print_diagnostics(error)
            broken.append((str(path), error))
            continue
        report = run_policy_tests(checked, prepared, only)
        reports.append(report)
        if not report.cases and not allow_no_tests:
            problems.append(f"{path}: no tests" + (f" matching {pattern!r}" if pattern else ""))
        if report.coverage < min_coverage:
            problems.append(f"coverage too low: {path}: {report.coverage:.0f}% < {min_coverage:.0f}%")
        if text:
            _print_report(path, report, verbose)
    passed = sum(case.passed for report in reports for case in report.cases)
    failed = sum(not case.passed for report in reports for case in report.cases) + len(broken)
    if fmt == "json":
        click.echo(json.dumps(json_report(reports, broken, problems), ensure_ascii=False, indent=2))
    elif fmt == "junit":
        click.echo(junit_xml(reports, broken))
    for line in problems:
        err.print(line, style="red", markup=False)
    if text:
        out.print(f"{passed} passed, {failed} failed", markup=False)
    sys.exit(1 if failed or problems else 0)


def _print_report(path, report, verbose: bool) -> None:
    out.print(f"{path} ({report.policy})", style="bold", markup=False)
    for case in report.cases:
        if case.passed:
            out.print(f"  PASS {case.name}", style="green", markup=False)
        else:
            out.print(f"  FAIL {case.name} (line {case.line})", style="red", markup=False)
            for failure in case.failures:
                out.print(f"       {failure}", markup=False)
        if verbose:
            reasons = ", ".join(case.reasons) or "no reasons"
            out.print(f"       {case.outcome or 'not evaluated'} ({reasons}) in {case.duration_ms:.2f} ms", markup=False)
    out.print(f"  rule coverage {report.coverage:.0f}%"
              + (f"; never fired: {', '.join(report.uncovered_rules)}" if report.uncovered_rules else ""),
              markup=False)
    for table, rows in report.table_rows.items():
        out.print(f"  table {table}: rows never matched: {', '.join(map(str, rows))}", markup=False)


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def plugins_command(as_json: bool) -> None:
    """List loaded plugins: name, where from, version and the hooks they implement."""
    loaded = registry(every_hook=True)
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
    from regua.dsl.source import read_policy
    from regua.engine.compiler import check_source
    from regua.engine.graph import build_graph

    path = Path(policy_file)
    try:
        checked = check_source(read_policy(path), str(path), registry().environment())
    except PolicyError as error:
        print_diagnostics(error)
        sys.exit(1)
    graph = build_graph(checked)
    if fmt == "json":
        click.echo(json.dumps(graph.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(graph.mermaid() if fmt == "mermaid" else graph.dot(), nl=False)
