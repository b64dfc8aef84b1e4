"""Every policy shipped under policies/ checks, is formatted, and its own tests pass with full
rule coverage and at least one test per outcome it can produce."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from regua.dsl import ast
from regua.dsl.formatter import format_source
from regua.engine.compiler import check_source
from regua.engine.testing import load, run_policy_tests

ROOT = Path(__file__).resolve().parent.parent
POLICIES = sorted((ROOT / "policies").rglob("*.regua"))
B2B = ROOT / "policies" / "credito_b2b.regua"


def test_there_are_bundled_policies():
    assert B2B in POLICIES


@pytest.fixture(scope="module", params=POLICIES, ids=[p.name for p in POLICIES])
def bundled(request):
    path = request.param
    checked, prepared = load(path)
    return path, checked, prepared, run_policy_tests(checked, prepared)


def test_checks_without_warnings(bundled):
    path, *_ = bundled
    checked = check_source(path.read_text(encoding="utf-8"), str(path))
    assert checked.warnings == []


def test_is_formatted(bundled):
    path, *_ = bundled
    text = path.read_text(encoding="utf-8")
    assert format_source(text, str(path)) == text


def test_in_language_tests_pass_with_full_rule_coverage(bundled):
    _, checked, _, report = bundled
    assert report.cases, "the policy has tests"
    failures = {case.name: case.failures for case in report.cases if not case.passed}
    assert failures == {}
    assert report.rules == [r.name for r in checked.policy.rules]
    assert report.uncovered_rules == []
    assert report.coverage == 100.0


def test_has_a_test_per_outcome_it_can_produce(bundled):
    _, checked, _, _report = bundled
    policy = checked.policy
    possible = {rule.action.verb for rule in policy.rules} | {checked.default.verb, checked.on_error.verb}
    tested = {stmt.name for test in policy.tests for stmt in test.statements if stmt.kind == "outcome"}
    assert possible - tested == set()


# ---- the runner can fail ---------------------------------------------------------------------


def _mutate(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    text = B2B.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / B2B.name
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return path


def _failures(path: Path) -> dict[str, list[str]]:
    report = run_policy_tests(*load(path))
    return {case.name: case.failures for case in report.cases if not case.passed}


def test_changing_an_expected_outcome_makes_the_runner_fail(tmp_path):
    path = _mutate(tmp_path, "  expect approve\n", "  expect deny\n")
    failures = _failures(path)
    assert list(failures) == ["cliente excelente dentro do limite é aprovado"]
    [message] = failures["cliente excelente dentro do limite é aprovado"]
    line = next(n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text == "  expect deny")
    assert message == f"line {line}: expected deny, got approve (DENTRO_DO_LIMITE)"


def test_changing_expected_reasons_makes_the_runner_fail(tmp_path):
    path = _mutate(tmp_path, 'expect reasons "RECUPERACAO_JUDICIAL", "PROTESTO"',
                   'expect reasons "PROTESTO", "RECUPERACAO_JUDICIAL"')
    failures = _failures(path)
    assert list(failures) == ["recuperação judicial nega e protesto pede análise"]
    assert "expected reasons ['PROTESTO', 'RECUPERACAO_JUDICIAL']" in failures[
        "recuperação judicial nega e protesto pede análise"][0]


def test_changing_an_expected_output_makes_the_runner_fail(tmp_path):
    path = _mutate(tmp_path, "expect output limite = 120_000 BRL", "expect output limite = 120_001 BRL")
    failures = _failures(path)
    [message] = failures["cliente excelente dentro do limite é aprovado"]
    assert "expected limite = 120001.00, got 120000.00" in message


def test_changing_a_fixture_makes_the_runner_fail(tmp_path):
    path = _mutate(tmp_path, "bureau.serasa returns {score: {value: 850, bureau: \"serasa\"}}",
                   "bureau.serasa returns {score: {value: 250, bureau: \"serasa\"}}")
    failures = _failures(path)
    assert list(failures) == ["cliente excelente dentro do limite é aprovado"]
    assert any(re.search(r"expected approve, got deny", m) for m in failures["cliente excelente dentro do limite é aprovado"])


def test_removing_the_only_test_of_a_rule_drops_coverage(tmp_path):
    text = B2B.read_text(encoding="utf-8")
    start = text.index('test "limite bloqueado pelo monitoramento nega o pedido"')
    end = text.index("test ", start + 5)
    path = tmp_path / B2B.name
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    report = run_policy_tests(*load(path))
    assert all(case.passed for case in report.cases)
    assert report.uncovered_rules == ["limite_bloqueado"]
    assert report.coverage < 100


def test_policy_tests_are_part_of_the_ast(bundled):
    _, checked, _, report = bundled
    assert len(report.cases) == len(checked.policy.tests) == len(checked.policy.of_type(ast.TestDecl))
