"""Runs the `test` blocks written in policies, and measures rule coverage."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from regua.dsl import ast
from regua.dsl.checker import CheckedPolicy, check
from regua.dsl.coercers import coerce
from regua.dsl.constants import constant
from regua.dsl.environment import Environment
from regua.dsl.parser import parse
from regua.dsl.source import read_policy
from regua.dsl.values import to_json

from .builtins import default_environment
from .compiler import build_artifact, source_hash
from .connectors import ConnectorError, Connectors, Fixture
from .prepared import InvalidInput, PreparedPolicy


@dataclass
class CaseResult:
    policy: str
    file: str
    name: str
    line: int
    failures: list[str] = field(default_factory=list)
    outcome: str | None = None  # what the policy decided (None: it could not evaluate)
    reasons: list[str] = field(default_factory=list)
    duration_ms: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class PolicyTestReport:
    policy: str
    file: str
    cases: list[CaseResult]
    rules: list[str]
    fired: set[str]
    table_rows: dict[str, list[int]]  # table -> row numbers (1-based) never matched

    @property
    def uncovered_rules(self) -> list[str]:
        return [r for r in self.rules if r not in self.fired]

    @property
    def coverage(self) -> float:
        return 100.0 if not self.rules else 100.0 * (len(self.rules) - len(self.uncovered_rules)) / len(self.rules)


def load(path: str | Path, env: Environment | None = None) -> tuple[CheckedPolicy, PreparedPolicy]:
    env = env or default_environment()
    path = Path(path)
    source = read_policy(path)
    checked = check(parse(source, str(path)), env)
    meta, code = build_artifact(checked, source_hash(source, env))
    return checked, PreparedPolicy(meta, code, env.functions)


def run_policy_tests(checked: CheckedPolicy, prepared: PreparedPolicy,
                     only: Callable[[str], bool] | None = None) -> PolicyTestReport:
    """Run the policy's tests (those whose name `only` accepts, when given); coverage counts the
    tests that ran."""
    policy = checked.policy
    fired: set[str] = set()
    rows_hit: dict[str, set[int]] = {t.name: set() for t in policy.tables}
    cases = []
    for test in policy.tests:
        if only is not None and not only(test.name):
            continue
        started = time.perf_counter()
        result = CaseResult(policy.name, policy.file, test.name, test.span.line)
        cases.append(result)
        inputs, connectors, as_of = {}, Connectors(), dt.date.today()
        for stmt in test.statements:
            if stmt.kind == "given":
                inputs.update({name: constant(value) for name, value, _ in stmt.value})
            elif stmt.kind == "as_of":
                as_of = stmt.value
            elif stmt.kind == "fixture":
                connectors.register(stmt.name, Fixture(constant(stmt.value)))
            elif stmt.kind == "failure":
                connectors.register(stmt.name, Fixture(failure=ConnectorError("FAILED", "failure set by the test")))
        try:
            decision = prepared.evaluate(inputs, connectors=connectors, trace="full", as_of=as_of)
        except InvalidInput as error:
            result.failures.append(f"invalid input: {error}")
            result.duration_ms = (time.perf_counter() - started) * 1000
            continue
        result.outcome, result.reasons = decision.outcome, list(decision.reason_codes)
        fired.update(r["rule"] for r in decision.trace["rules"] if r["result"] == "fired")
        for table, hits in decision.trace["tables"].items():
            rows_hit[table].update(h["row"] for h in hits)
        _compare(test, decision, checked, result)
        result.duration_ms = (time.perf_counter() - started) * 1000
    unmatched = {t.name: [n for n in range(1, len(t.rows) + 1) if n not in rows_hit[t.name]] for t in policy.tables}
    return PolicyTestReport(policy.name, policy.file, cases, [r.name for r in policy.rules], fired,
                            {k: v for k, v in unmatched.items() if v})


def _compare(test: ast.TestDecl, decision, checked: CheckedPolicy, result: CaseResult) -> None:
    output_types = {o.name: o.type for o in checked.outputs}
    for stmt in test.statements:
        if stmt.kind == "outcome" and decision.outcome != stmt.name:
            codes = ", ".join(decision.reason_codes) or "no reasons"
            result.failures.append(f"line {stmt.span.line}: expected {stmt.name}, got {decision.outcome} ({codes})")
        elif stmt.kind == "reasons" and decision.reason_codes != stmt.value:
            result.failures.append(f"line {stmt.span.line}: expected reasons {stmt.value}, got {decision.reason_codes}")
        elif stmt.kind == "steps":
            due = [r["rule"] for r in decision.trace["rules"] if r["result"] == "fired"]
            if set(due) != set(stmt.value):
                result.failures.append(f"line {stmt.span.line}: expected steps {stmt.value or 'none'}, "
                                       f"got {due or 'none'}")
        elif stmt.kind == "output":
            typ = output_types[stmt.name]
            expected = coerce(constant(stmt.value), typ, stmt.name)
            actual = decision.outputs.get(stmt.name)
            if actual != expected:
                result.failures.append(f"line {stmt.span.line}: expected {stmt.name} = {to_json(expected, typ)}, "
                                       f"got {to_json(actual, typ)}")
