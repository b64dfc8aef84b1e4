"""Evaluation: lookups are lazy and shared, and every connector failure or malformed answer is a
value the policy can handle, never an exception.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from policy_harness import (
    CNPJ,
    CNPJ_DIGITS,
    error_reasons,
    line_of,
    policy,
    serasa,
)

from regua.engine.connectors import ConnectorError, Connectors, Fixture

# ---- laziness and connectors -------------------------------------------------------------

LAZY = """
input
  cnpj: cnpj
  valor: money

let relatorio = bureau.serasa(cnpj)

rule score_baixo
  when valor > 1_000 BRL and relatorio.score.value < 500
  deny "SCORE_BAIXO" "score baixo"

default approve
"""


def test_lookup_is_not_called_when_no_rule_reaching_it_is_evaluated():
    fixture, connectors = serasa({"score": {"value": 300}})
    decision = policy(LAZY).evaluate({"cnpj": CNPJ, "valor": 10}, connectors=connectors, trace="full")
    assert fixture.calls == []
    assert decision.connector_calls == []
    assert decision.outcome == "approve"
    assert "relatorio" not in decision.trace["values"]


def test_lookup_is_called_when_a_rule_reaches_it():
    fixture, connectors = serasa({"score": {"value": 300}})
    decision = policy(LAZY).evaluate({"cnpj": CNPJ, "valor": 5_000}, connectors=connectors)
    assert fixture.calls == [(CNPJ_DIGITS,)]
    assert decision.outcome == "deny"


SHARED = """
input
  cnpj: cnpj

let relatorio = bureau.serasa(cnpj)
let de_novo = bureau.serasa(cnpj)
let score = relatorio.score.value

rule bureau_indisponivel
  when not available(relatorio)
  review "BUREAU_INDISPONIVEL" "birô indisponível"

rule score_baixo
  when score < 500
  deny "SCORE_BAIXO" "score baixo"

rule protestos
  when count(r for r in relatorio.restrictions where r.kind == "protest") > 0
  review "PROTESTO" "protesto"

rule irregular
  when de_novo.registration_status != "active"
  deny "IRREGULAR" "cnpj irregular"

default approve "OK" "ok"
"""

# The same policy without the rule that handles the bureau being down: failures surface as reasons.
SHARED_UNHANDLED = SHARED.replace("""rule bureau_indisponivel
  when not available(relatorio)
  review "BUREAU_INDISPONIVEL" "birô indisponível"

""", "")


def test_lookup_used_by_several_rules_is_called_once_per_evaluation():
    fixture, connectors = serasa({"score": {"value": 400}, "registration_status": "closed"})
    prepared = policy(SHARED)
    decision = prepared.evaluate({"cnpj": CNPJ}, connectors=connectors)
    assert decision.reason_codes == ["SCORE_BAIXO", "IRREGULAR"]
    assert fixture.calls == [(CNPJ_DIGITS,)]
    assert [(c.connector, c.args, c.status) for c in decision.connector_calls] == [
        ("bureau.serasa", ["************81"], "ok")]
    # memoized per evaluation, not across evaluations
    second = prepared.evaluate({"cnpj": CNPJ}, connectors=connectors)
    assert len(fixture.calls) == 2
    assert len(second.connector_calls) == 1


def test_connector_failure_is_a_value():
    fixture, connectors = serasa(failure=ConnectorError("TIMEOUT", "serasa demorou"))
    decision = policy(SHARED_UNHANDLED).evaluate({"cnpj": CNPJ}, connectors=connectors)
    assert len(fixture.calls) == 1
    assert decision.outcome == "review"
    assert decision.reason_codes[0] == "ERRO_AVALIACAO"
    failed = {r.rule: r for r in error_reasons(decision)}
    assert set(failed) == {"score_baixo", "protestos", "irregular"}
    for rule_name, r in failed.items():
        assert r.code == "ERRO_AVALIACAO" and r.outcome == "review"
        assert r.error["code"] == "CONNECTOR_TIMEOUT"
        assert r.line == line_of(SHARED_UNHANDLED, f"rule {rule_name}")
    # the error names the policy line where the unavailable value was read
    assert failed["protestos"].error["line"] == line_of(SHARED_UNHANDLED, "when count(r for r")
    assert failed["irregular"].error["line"] == line_of(SHARED_UNHANDLED, "when de_novo.registration_status")
    assert failed["score_baixo"].error["line"] in (line_of(SHARED_UNHANDLED, "let score ="),
                                                   line_of(SHARED_UNHANDLED, "when score < 500"))
    call = decision.connector_calls[0]
    assert (call.status, call.error) == ("failed", "CONNECTOR_TIMEOUT")


def test_handled_unavailability_leaves_follow_on_failures_out_of_the_reasons():
    _, connectors = serasa(failure=ConnectorError("TIMEOUT", "serasa demorou"))
    decision = policy(SHARED).evaluate({"cnpj": CNPJ}, connectors=connectors, trace="full")
    # The policy tests available(relatorio) and says what to do: that is the explanation.
    assert decision.outcome == "review"
    assert decision.reason_codes == ["BUREAU_INDISPONIVEL"]
    # The rules that could not run are still visible in the trace, with the cause.
    failed = {step["rule"]: step["error"]["code"] for step in decision.trace["rules"] if step["result"] == "error"}
    assert failed == {"score_baixo": "CONNECTOR_TIMEOUT", "protestos": "CONNECTOR_TIMEOUT",
                      "irregular": "CONNECTOR_TIMEOUT"}
    # A custom `on error` does not override the policy's explicit handling either.
    body = SHARED.replace('default approve "OK" "ok"', 'default approve "OK" "ok"\n\non error deny "FALHA" "falha"')
    assert policy(body).evaluate({"cnpj": CNPJ}, connectors=connectors).outcome == "review"

def test_connector_failure_with_custom_on_error():
    body = SHARED_UNHANDLED.replace('default approve "OK" "ok"',
                          'default approve "OK" "ok"\n\non error deny "FALHA" "falha na avaliação"')
    _, connectors = serasa(failure=ConnectorError("TIMEOUT"))
    decision = policy(body).evaluate({"cnpj": CNPJ}, connectors=connectors)
    assert decision.outcome == "deny"
    assert decision.reason_codes == ["FALHA", "FALHA", "FALHA"]


@pytest.mark.parametrize("connectors", [None, Connectors(), Connectors({"bureau.spc": Fixture({"score": {"value": 1}})})])
def test_connector_not_configured(connectors):
    decision = policy(SHARED_UNHANDLED).evaluate({"cnpj": CNPJ}, connectors=connectors)
    assert decision.outcome == "review"
    assert {r.error["code"] for r in error_reasons(decision)} == {"CONNECTOR_NOT_CONFIGURED"}
    assert decision.connector_calls[0].error == "CONNECTOR_NOT_CONFIGURED"


@pytest.mark.parametrize("answer", [
    {},  # no score
    {"score": {}},  # no score value
    {"score": {"value": "alto"}},
    {"score": {"value": 700.5}},
    {"score": {"value": True}},
    {"score": {"value": 700}, "restrictions": "nenhuma"},
    {"score": {"value": 700}, "restrictions": [{"kind": "calote", "amount": 1, "date": "2026-01-01"}]},
    [1, 2],
    "texto",
    None,
])
def test_malformed_connector_answer_is_bad_answer_never_an_exception(answer):
    _, connectors = serasa(answer)
    decision = policy(SHARED_UNHANDLED).evaluate({"cnpj": CNPJ}, connectors=connectors)
    assert decision.outcome == "review"
    assert {r.error["code"] for r in error_reasons(decision)} == {"CONNECTOR_BAD_ANSWER"}
    assert decision.connector_calls[0].error == "CONNECTOR_BAD_ANSWER"


READS_AMOUNTS = """
input
  cnpj: cnpj

let relatorio = bureau.serasa(cnpj)

rule restricoes
  when sum(relatorio.restrictions.amount) > 1_000 BRL
  deny "RESTRICOES" "restrições"

rule consultas
  when count(c for c in relatorio.inquiries where c.date >= 2026-01-01) > 3
  review "CONSULTAS" "consultas"

default approve
"""


@pytest.mark.parametrize("answer", [
    {"score": {"value": 700}, "restrictions": [{"kind": "pefin", "amount": "muito", "date": "2026-01-01"}]},
    {"score": {"value": 700}, "inquiries": [{"date": "ontem"}]},
    pytest.param({"score": {"value": 700}, "restrictions": [
        {"kind": "pefin", "amount": Decimal("NaN"), "date": dt.date(2026, 1, 1)}]}, id="typed-nan-amount"),
])
def test_malformed_field_the_policy_reads_is_a_bad_answer(answer):
    _, connectors = serasa(answer)
    decision = policy(READS_AMOUNTS).evaluate({"cnpj": CNPJ}, connectors=connectors)
    assert decision.connector_calls[0].error == "CONNECTOR_BAD_ANSWER"
    assert decision.outcome == "review"


@pytest.mark.parametrize("answer", [
    # Fields the policy never reads are not validated, and new fields from the provider are ignored.
    {"score": {"value": 700}, "partners": [{"name": 42}], "campo_novo": 1},
    {"score": {"value": 700, "band": ["?"]}, "restrictions": [{"kind": "pefin", "amount": 10, "date": "ontem"}]},
])
def test_fields_the_policy_does_not_read_are_not_validated(answer):
    _, connectors = serasa(answer)
    decision = policy(READS_AMOUNTS).evaluate({"cnpj": CNPJ}, connectors=connectors)
    assert decision.connector_calls[0].status == "ok"
    assert decision.outcome == "approve"


def test_connector_raising_an_unexpected_exception_is_a_value():
    def broken(document):
        raise RuntimeError("socket closed")

    decision = policy(SHARED_UNHANDLED).evaluate({"cnpj": CNPJ}, connectors=Connectors({"bureau.serasa": broken}))
    assert decision.outcome == "review"
    assert {r.error["code"] for r in error_reasons(decision)} == {"CONNECTOR_FAILED"}


def test_typed_connector_answer_is_accepted():
    answer = {"score": {"value": 400}, "restrictions": [
        {"kind": "protest", "amount": Decimal("10.5"), "date": dt.date(2026, 1, 1)}]}
    decision = policy(SHARED).evaluate({"cnpj": CNPJ}, connectors=serasa(answer)[1])
    assert decision.reason_codes == ["SCORE_BAIXO", "PROTESTO"]


def test_connector_answer_may_be_any_mapping():
    from types import MappingProxyType

    answer = MappingProxyType({"score": MappingProxyType({"value": 400})})
    decision = policy(SHARED).evaluate({"cnpj": CNPJ}, connectors=serasa(answer)[1])
    assert decision.reason_codes == ["SCORE_BAIXO"]


def test_valid_connector_answer_gets_contract_defaults():
    _, connectors = serasa({"score": {"value": 800}})
    decision = policy(SHARED).evaluate({"cnpj": CNPJ}, connectors=connectors, trace="full")
    assert decision.outcome == "approve"
    report = decision.trace["values"]["relatorio"]
    assert report["restrictions"] == [] and report["registration_status"] == "active"
