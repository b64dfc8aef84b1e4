"""Semantics of evaluation: combining, outputs, laziness, errors as values, tables, runtime
types, input validation, traces, caches and the decision's JSON shape.

Every policy here is small and written inline; `policy()` compiles it with the header added.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal

import holidays
import pytest

from regua.dsl.diagnostics import PolicyError
from regua.engine.compiler import check_source, clear_memory_cache, compile_policy
from regua.engine.connectors import ConnectorError, Connectors, Fixture
from regua.engine.prepared import InvalidInput

HEADER = 'policy t kind credit version "1.0"\n'
AS_OF = dt.date(2026, 11, 22)
CPF = "529.982.247-25"
CPF_DIGITS = "52998224725"
CNPJ = "11.222.333/0001-81"
CNPJ_DIGITS = "11222333000181"


def source(body: str) -> str:
    return HEADER + body.lstrip("\n")


def policy(body: str):
    return compile_policy(source(body))


def line_of(body: str, text: str) -> int:
    """1-based line (in the compiled source, header included) of the first line containing `text`."""
    for number, line in enumerate(source(body).splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in policy")


def serasa(answer=None, failure=None):
    fixture = Fixture(answer, failure)
    return fixture, Connectors({"bureau.serasa": fixture})


def reason(decision, code):
    found = [r for r in decision.reasons if r.code == code]
    assert found, f"no reason {code} in {decision.reason_codes}"
    return found[0]


def error_reasons(decision):
    return [r for r in decision.reasons if r.error]


# ---- combining ---------------------------------------------------------------------------

COMBINING = """
input
  valor: money
  atraso: int = 0

rule valor_alto
  when valor > 1_000 BRL
  review "VALOR_ALTO" "Valor acima de R$ 1.000"

rule atraso_grave
  when atraso > 90
  deny "ATRASO_GRAVE" "Atraso acima de 90 dias"

rule valor_muito_alto
  when valor > 10_000 BRL
  review "VALOR_MUITO_ALTO" "Valor acima de R$ 10.000"

rule valor_baixo
  when valor < 10 BRL
  approve "VALOR_BAIXO" "Valor baixo, aprovação automática"

default approve "PADRAO" "Nenhuma regra disparou"
"""


def test_default_outcome_with_its_reason_when_no_rule_fires():
    decision = policy(COMBINING).evaluate({"valor": 500})
    assert decision.outcome == "approve"
    assert decision.reason_codes == ["PADRAO"]
    default = decision.reasons[0]
    assert default.rule is None and default.message == "Nenhuma regra disparou"


def test_default_without_a_reason_code_gives_no_reasons():
    decision = policy("""
input
  valor: money

rule alto
  when valor > 1_000 BRL
  deny "ALTO" "alto"

default approve
""").evaluate({"valor": 5})
    assert decision.outcome == "approve"
    assert decision.reasons == []
    assert decision.reason_codes == []


@pytest.mark.parametrize("data, outcome, codes", [
    ({"valor": 2_000}, "review", ["VALOR_ALTO"]),
    ({"valor": 500, "atraso": 120}, "deny", ["ATRASO_GRAVE"]),
    # deny beats review; reasons by severity, then by declaration order
    ({"valor": 20_000, "atraso": 120}, "deny", ["ATRASO_GRAVE", "VALOR_ALTO", "VALOR_MUITO_ALTO"]),
    ({"valor": 20_000}, "review", ["VALOR_ALTO", "VALOR_MUITO_ALTO"]),
    # an approve rule that fires replaces the default reason
    ({"valor": 5}, "approve", ["VALOR_BAIXO"]),
    # deny beats an approve rule
    ({"valor": 5, "atraso": 100}, "deny", ["ATRASO_GRAVE", "VALOR_BAIXO"]),
])
def test_most_severe_action_wins_and_reasons_are_ranked(data, outcome, codes):
    decision = policy(COMBINING).evaluate(data)
    assert decision.outcome == outcome
    assert decision.reason_codes == codes


def test_review_beats_approve_rule():
    decision = policy("""
input
  valor: money

rule baixo
  when valor < 10 BRL
  approve "BAIXO" "baixo"

rule qualquer
  when valor >= 0 BRL
  review "QUALQUER" "qualquer"

default deny "PADRAO" "padrão"
""").evaluate({"valor": 1})
    assert decision.outcome == "review"
    assert decision.reason_codes == ["QUALQUER", "BAIXO"]


def test_each_reason_has_code_message_rule_line_and_the_facts_that_fired_it():
    decision = policy(COMBINING).evaluate({"valor": "20000.5", "atraso": 120})
    grave = reason(decision, "ATRASO_GRAVE")
    assert (grave.code, grave.message, grave.rule, grave.outcome) == (
        "ATRASO_GRAVE", "Atraso acima de 90 dias", "atraso_grave", "deny")
    assert grave.line == line_of(COMBINING, "rule atraso_grave")
    assert grave.values == {"atraso": 120}
    alto = reason(decision, "VALOR_ALTO")
    assert alto.line == line_of(COMBINING, "rule valor_alto")
    assert alto.values == {"valor": "20000.50"}
    assert reason(decision, "VALOR_MUITO_ALTO").rule == "valor_muito_alto"


def test_reason_values_follow_lets_and_connector_fields():
    body = """
input
  cnpj: cnpj
  valor: money

let relatorio = bureau.serasa(cnpj)
let dobro = valor * 2

rule score_baixo
  when relatorio.score.value < 500 and dobro > 100 BRL
  deny "SCORE_BAIXO" "score baixo"

default approve
"""
    _, connectors = serasa({"score": {"value": 420}})
    decision = policy(body).evaluate({"cnpj": CNPJ, "valor": 60}, connectors=connectors)
    assert reason(decision, "SCORE_BAIXO").values == {"relatorio.score.value": 420, "dobro": "120.00"}


MASKING = """
input
  cpf_cliente: cpf
  cnpj_loja: cnpj

let relatorio = bureau.serasa(cnpj_loja)
let documento = cpf_cliente

rule mesmo_documento
  when cpf_cliente != cnpj_loja and documento != "111.444.777-35" and relatorio.score.value > 0
  review "DOCS" "documentos"

default approve
"""


@pytest.mark.parametrize("trace", [
    "off",
    "rules",
    pytest.param("full"),
])
def test_documents_never_appear_in_clear_in_the_decision(trace):
    _, connectors = serasa({"score": {"value": 700}, "partners": [{"name": "Fulano", "document": CPF}]})
    decision = policy(MASKING).evaluate({"cpf_cliente": CPF, "cnpj_loja": CNPJ}, connectors=connectors, trace=trace)
    values = reason(decision, "DOCS").values
    assert values["cpf_cliente"] == "*********25"
    assert values["cnpj_loja"] == "************81"
    assert decision.connector_calls[0].args == ["************81"]
    text = json.dumps(decision.to_dict(), ensure_ascii=False)
    for clear in (CPF, CPF_DIGITS, CNPJ, CNPJ_DIGITS):
        assert clear not in text


def test_full_trace_masks_documents_inside_connector_answers():
    body = MASKING.replace("default approve", "rule muitos_socios\n  when count(relatorio.partners) > 5\n"
                                              "  review \"SOCIOS\" \"muitos sócios\"\n\ndefault approve")
    assert body != MASKING
    _, connectors = serasa({"score": {"value": 700}, "partners": [{"name": "Fulano de Tal", "document": CPF}]})
    decision = policy(body).evaluate({"cpf_cliente": CPF, "cnpj_loja": CNPJ}, connectors=connectors, trace="full")
    partner = decision.trace["values"]["relatorio"]["partners"][0]
    assert partner["document"].endswith("25") and CPF not in partner["document"]
    assert "Fulano" not in partner["name"]


def test_connector_fields_the_policy_never_reads_are_not_kept():
    _, connectors = serasa({"score": {"value": 700}, "partners": [{"name": "Fulano de Tal", "document": CPF}]})
    decision = policy(MASKING).evaluate({"cpf_cliente": CPF, "cnpj_loja": CNPJ}, connectors=connectors, trace="full")
    report = decision.trace["values"]["relatorio"]
    assert report["score"] == {"value": 700}
    assert "partners" not in report and "Fulano" not in json.dumps(decision.to_dict(), ensure_ascii=False)


# ---- outputs -----------------------------------------------------------------------------

OUTPUTS = """
input
  valor: money
  atraso: int = 0
  score: int = 800

let base = valor * 2

table prazo_por_score (first) by score
  >= 700 -> 30 days
  else   -> 15 days

rule atrasado
  when atraso > 30
  review "ATRASO" "atraso"
  set limite = base * 50%, prazo = 7 days

rule muito_atrasado
  when atraso > 90
  deny "ATRASO_GRAVE" "atraso grave"
  set limite = 0 BRL

rule atraso_leve
  when atraso > 10
  review "ATRASO_LEVE" "atraso leve"
  set limite = base * 90%

default approve "OK" "ok"

output limite = base, prazo = prazo_por_score, taxa = 1 / (valor / 1 BRL - 100), base
"""


def test_output_values():
    decision = policy(OUTPUTS).evaluate({"valor": 1_000, "score": 500})
    assert decision.outputs == {"limite": Decimal(2000), "prazo": dt.timedelta(days=15),
                                "taxa": Decimal(1) / Decimal(900), "base": Decimal(2000)}
    assert decision.to_dict()["outputs"]["prazo"] == "15 days"


@pytest.mark.parametrize("atraso, limite, prazo", [
    (0, "2000.00", "30 days"),
    (15, "1800.00", "30 days"),  # one rule sets limite
    (45, "1000.00", "7 days"),  # two review rules set limite: the one declared first wins
    (120, "0.00", "7 days"),  # the deny rule outranks both reviews; prazo still from `atrasado`
])
def test_rule_set_overrides_and_highest_ranked_fired_rule_wins(atraso, limite, prazo):
    decision = policy(OUTPUTS).evaluate({"valor": 1_000, "atraso": atraso})
    outputs = decision.to_dict()["outputs"]
    assert (outputs["limite"], outputs["prazo"]) == (limite, prazo)
    assert outputs["base"] == "2000.00"  # not set by any rule


def test_output_that_fails_yields_the_on_error_reason():
    decision = policy(OUTPUTS).evaluate({"valor": 100})
    assert decision.outcome == "review"
    assert decision.outputs["taxa"] is None
    assert decision.outputs["limite"] == Decimal(200)
    failed = reason(decision, "ERRO_AVALIACAO")
    assert failed.values == {"output": "taxa"}
    assert failed.error["code"] == "DIVISION_BY_ZERO"
    assert failed.error["line"] == line_of(OUTPUTS, "output limite")


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
    assert failed["score_baixo"].error["line"] in (line_of(SHARED_UNHANDLED, "let score ="), line_of(SHARED_UNHANDLED, "when score < 500"))
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


# ---- evaluation errors are values ---------------------------------------------------------

ERRORS = """
input
  a: money
  b: int
  xs: list of money = []

let razao = a / b
let seguro = a / b otherwise 0 BRL
let menor = min(xs)
let maior = max(xs)
let media = avg(xs)

rule r_razao
  when razao > 10 BRL
  review "RAZAO" "razão alta"

rule r_seguro
  when seguro >= 0 BRL
  review "SEGURO" "seguro"

rule r_menor
  when menor < 1 BRL
  review "MENOR" "menor"

rule r_maior
  when maior > 1_000 BRL
  review "MAIOR" "maior"

rule r_media
  when media < 1 BRL
  review "MEDIA" "media"

default approve
"""


def test_division_by_zero_yields_default_on_error():
    decision = policy(ERRORS).evaluate({"a": 100, "b": 0, "xs": [5]})
    assert decision.outcome == "review"
    failed = [r for r in error_reasons(decision)]
    assert [r.rule for r in failed] == ["r_razao"]
    r = failed[0]
    assert (r.code, r.message, r.outcome) == (
        "ERRO_AVALIACAO", "Não foi possível avaliar a política; encaminhar para análise", "review")
    assert r.error["code"] == "DIVISION_BY_ZERO"
    assert r.error["line"] == line_of(ERRORS, "let razao")
    assert r.line == line_of(ERRORS, "rule r_razao")


def test_otherwise_catches_the_error():
    decision = policy(ERRORS).evaluate({"a": 100, "b": 0, "xs": [5]}, trace="full")
    assert "SEGURO" in decision.reason_codes
    assert decision.trace["values"]["seguro"] == "0.00"
    decision = policy(ERRORS).evaluate({"a": 100, "b": 4, "xs": [5]}, trace="full")
    assert decision.trace["values"]["seguro"] == "25.00"


def test_custom_on_error_action():
    body = """
input
  a: money
  b: int

rule r
  when a / b > 1 BRL
  review "R" "r"

on error deny "FALHA" "falha na avaliação"

default approve
"""
    decision = policy(body).evaluate({"a": 100, "b": 0})
    assert decision.outcome == "deny"
    r = reason(decision, "FALHA")
    assert (r.rule, r.message, r.outcome) == ("r", "falha na avaliação", "deny")
    assert r.error["code"] == "DIVISION_BY_ZERO"
    assert r.error["line"] == line_of(body, "when a / b")


def test_aggregates_of_an_empty_list_fail_with_empty_aggregate():
    decision = policy(ERRORS).evaluate({"a": 100, "b": 1})
    failed = {r.rule: r.error for r in error_reasons(decision)}
    assert set(failed) == {"r_menor", "r_maior", "r_media"}
    assert {e["code"] for e in failed.values()} == {"EMPTY_AGGREGATE"}
    assert failed["r_menor"]["line"] == line_of(ERRORS, "let menor")
    assert failed["r_media"]["line"] == line_of(ERRORS, "let media")


TABLE_ERRORS = """
input
  score: int
  corte: int

table faixa (unique) by score
  < corte -> "baixo"
  >= 400  -> "alto"

table sem_else (first) by score
  0..500 -> "a"

rule r_faixa
  when faixa == "baixo"
  deny "BAIXO" "baixo"

rule r_sem_else
  when sem_else == "a"
  review "A" "a"

default approve
"""


def test_unique_table_with_two_matching_rows_fails():
    decision = policy(TABLE_ERRORS).evaluate({"score": 450, "corte": 500})
    r = [r for r in error_reasons(decision) if r.rule == "r_faixa"][0]
    assert r.error["code"] == "TABLE_NOT_UNIQUE"
    assert r.error["line"] == line_of(TABLE_ERRORS, "table faixa")
    assert "A" in decision.reason_codes  # the other rule is unaffected


def test_table_without_match_nor_else_fails():
    decision = policy(TABLE_ERRORS).evaluate({"score": 700, "corte": 500})
    r = [r for r in error_reasons(decision) if r.rule == "r_sem_else"][0]
    assert r.error["code"] == "TABLE_NO_MATCH"
    assert r.error["line"] == line_of(TABLE_ERRORS, "table sem_else")
    decision = policy(TABLE_ERRORS).evaluate({"score": 100, "corte": 500})
    assert decision.outcome == "deny" and not error_reasons(decision)


def test_runtime_failure_is_mapped_to_the_policy_line():
    body = """
input
  venc: date

let longe = venc + 100_000 days

rule distante
  when longe > 2026-01-01
  review "LONGE" "longe"

rule direto
  when venc + 1_000_000 days > venc
  review "DIRETO" "direto"

default approve
"""
    decision = policy(body).evaluate({"venc": "9990-01-01"})
    failed = {r.rule: r for r in error_reasons(decision)}
    assert failed["distante"].error["code"] == "OVERFLOW"
    assert failed["distante"].error["line"] == line_of(body, "let longe")
    assert failed["distante"].line == line_of(body, "rule distante")
    assert failed["direto"].error["line"] == line_of(body, "when venc + 1_000_000")


def test_decimal_overflow_is_classified_as_overflow():
    body = """
input
  valor: money

rule grande
  when valor * 10 > 1 BRL
  review "GRANDE" "grande"

default approve
"""
    prepared = policy(body)
    with pytest.raises(InvalidInput):  # inputs are bounded (below 10^18)…
        prepared.evaluate({"valor": "9e999999"})
    # …so only arithmetic on validated values can overflow; the error is still classified.
    decision = prepared.evaluate_validated({"valor": Decimal("9e999999")})
    assert error_reasons(decision)[0].error["code"] == "OVERFLOW"


# ---- decision tables ---------------------------------------------------------------------

TABLES = """
input
  score: int
  uf: text
  valor: money
  porte: porte = "me"

enum porte = me | epp | grande

table faixa (first) by score
  >= 700 -> "excelente"
  >= 500 -> "bom"
  else   -> "fraco"

table categoria (unique) by porte
  "me"              -> 1
  in ["epp", "grande"] -> 2

table taxa (priority) by score, uf
  -, -                          -> 5% priority 1
  >= 700, "SP"                  -> 1% priority 10
  >= 700, -                     -> 2% priority 5
  in [1, 2, 3], in ["RJ", "MG"] -> 9% priority 20

table bonus (collect) by score, valor
  >= 500, -              -> 10 BRL
  -, > 1_000 BRL         -> 20 BRL
  >= 900, 0 BRL..500 BRL -> 40 BRL

let total_bonus = sum(bonus)

rule taxa_alta
  when taxa > 3%
  review "TAXA_ALTA" "taxa alta"

default approve

output faixa, categoria, taxa, bonus, total_bonus
"""


@pytest.mark.parametrize("data, faixa, taxa, bonus, total", [
    ({"score": 800, "uf": "SP", "valor": 2_000}, "excelente", "1%", ["10.00", "20.00"], "30.00"),
    ({"score": 800, "uf": "RJ", "valor": 100}, "excelente", "2%", ["10.00"], "10.00"),
    ({"score": 2, "uf": "MG", "valor": 0}, "fraco", "9%", [], "0.00"),
    ({"score": 950, "uf": "BA", "valor": 300}, "excelente", "2%", ["10.00", "40.00"], "50.00"),
    ({"score": 600, "uf": "BA", "valor": 300}, "bom", "5%", ["10.00"], "10.00"),
    ({"score": 100, "uf": "BA", "valor": 5_000}, "fraco", "5%", ["20.00"], "20.00"),
])
def test_hit_policies(data, faixa, taxa, bonus, total):
    decision = policy(TABLES).evaluate(data)
    outputs = decision.to_dict()["outputs"]
    assert outputs["faixa"] == faixa
    assert outputs["taxa"] == taxa
    assert outputs["bonus"] == bonus
    assert isinstance(decision.outputs["bonus"], list)
    assert outputs["total_bonus"] == total
    assert decision.outcome == ("review" if taxa in ("5%", "9%") else "approve")


@pytest.mark.parametrize("porte, categoria", [("me", 1), ("epp", 2), ("grande", 2)])
def test_unique_table_with_in_cells(porte, categoria):
    decision = policy(TABLES).evaluate({"score": 1, "uf": "SP", "valor": 1, "porte": porte})
    assert decision.outputs["categoria"] == categoria


def test_full_trace_reports_the_matched_table_rows():
    decision = policy(TABLES).evaluate({"score": 950, "uf": "SP", "valor": 300}, trace="full")
    tables = decision.trace["tables"]
    assert tables["faixa"] == [{"row": 1, "line": line_of(TABLES, '>= 700 -> "excelente"')}]
    assert tables["taxa"] == [{"row": 2, "line": line_of(TABLES, '>= 700, "SP"')}]
    assert tables["bonus"] == [{"row": 1, "line": line_of(TABLES, ">= 500, -")},
                               {"row": 3, "line": line_of(TABLES, ">= 900, 0 BRL")}]
    assert tables["categoria"] == [{"row": 1, "line": line_of(TABLES, '"me"  ')}]
    assert decision.trace["values"]["faixa"] == "excelente"
    assert decision.trace["values"]["bonus"] == ["10.00", "40.00"]
    decision = policy(TABLES).evaluate({"score": 10, "uf": "SP", "valor": 300}, trace="full")
    assert decision.trace["tables"]["faixa"] == [{"row": 3, "line": line_of(TABLES, 'else   -> "fraco"')}]


def test_priority_ties_fall_back_to_declaration_order():
    decision = policy("""
input
  score: int

table t (priority) by score
  >= 100 -> "primeira" priority 5
  >= 0   -> "segunda" priority 5
  else   -> "nenhuma"

default approve

output t
""").evaluate({"score": 200})
    assert decision.outputs["t"] == "primeira"


# ---- types at run time -------------------------------------------------------------------

TYPES = """
input
  valor: money
  venc: date
  faturas: list of Fatura = []

record Fatura
  valor: money
  vencimento: date
  paga: bool = false

let soma = 0.1 BRL + 0.2 BRL
let exato = 0.1 BRL + 0.2 BRL == 0.3 BRL
let meio = 7 / 2
let comissao = valor * 15%
let ha_30_dias = today - 30 days
let recente = venc >= today - 30 days
let vencido = venc < today
let prazo = venc + 5 business days
let antes = venc - 5 business days
let dias_uteis = business_days_between(venc, venc + 10 days)
let uteis_sp = add_business_days(2026-07-08, 1, "SP")
let uteis_br = add_business_days(2026-07-08, 1)
let idade = years_between(2000-11-23, today)
let idade_aniversario = years_between(2000-11-22, today)
let total = sum(faturas.valor)
let total_abertas = sum(f.valor for f in faturas where not f.paga)
let n_abertas = count(f for f in faturas where not f.paga)
let n = count(faturas)
let maior = max(faturas.valor)
let menor = min(f.valor for f in faturas)
let media = avg(faturas.valor)
let alguma_vencida = any(f.vencimento < today and not f.paga for f in faturas)
let todas_pagas = all(f.paga for f in faturas)
let soma_pct = 10% + 5%
let atraso = today - venc

rule sempre
  when exato
  review "EXATO" "exato"

default approve

output soma, exato, meio, comissao, ha_30_dias, recente, vencido, prazo, antes, dias_uteis, uteis_sp, uteis_br, idade, idade_aniversario, total, total_abertas, n_abertas, n, maior, menor, media, alguma_vencida, todas_pagas, soma_pct, atraso  # noqa: E501
"""

FATURAS = [
    {"valor": 100, "vencimento": "2026-10-01"},
    {"valor": "250.5", "vencimento": "2026-12-01", "paga": True},
    {"valor": 0.1, "vencimento": "2026-11-01"},
]


@pytest.fixture(scope="module")
def typed():
    return policy(TYPES).evaluate({"valor": "1000.00", "venc": "2026-10-30", "faturas": FATURAS}, as_of=AS_OF)


def test_money_is_exact_decimal(typed):
    assert typed.outputs["soma"] == Decimal("0.3")
    assert isinstance(typed.outputs["soma"], Decimal)
    assert typed.outputs["exato"] is True
    assert typed.outcome == "review"
    assert typed.outputs["comissao"] == Decimal("150")
    assert typed.outputs["soma_pct"] == Decimal("0.15")


def test_int_division_gives_a_decimal(typed):
    assert typed.outputs["meio"] == Decimal("3.5")
    assert typed.to_dict()["outputs"]["meio"] == "3.5"


def test_dates_and_durations(typed):
    out = typed.outputs
    assert out["ha_30_dias"] == dt.date(2026, 10, 23)
    assert out["recente"] is True
    assert out["vencido"] is True
    assert out["atraso"] == dt.timedelta(days=23)
    assert out["idade"] == 25
    assert out["idade_aniversario"] == 26


def test_business_days_skip_weekends_and_national_holidays(typed):
    national = holidays.country_holidays("BR", years=2026)
    assert dt.date(2026, 11, 2) in national  # Finados, a Monday
    # Fri 2026-10-30 + 5 business days: weekend, Finados (Mon 11-02), then Tue..Fri, Mon 11-09
    assert typed.outputs["prazo"] == dt.date(2026, 11, 9)
    assert typed.outputs["dias_uteis"] == 5
    # Fri 2026-10-30 - 5 business days: 10-29, 28, 27, 26, 23 (no holiday in between)
    assert typed.outputs["antes"] == dt.date(2026, 10, 23)


@pytest.mark.parametrize("start, n, expected", [
    (dt.date(2026, 11, 19), 1, dt.date(2026, 11, 23)),  # Fri 11-20 (Consciência Negra) is national since 2024
    (dt.date(2026, 12, 24), 1, dt.date(2026, 12, 28)),  # Christmas on a Friday
    (dt.date(2026, 11, 13), 1, dt.date(2026, 11, 16)),  # 11-15 (Proclamação) is a Sunday: nothing extra
    (dt.date(2026, 11, 23), -1, dt.date(2026, 11, 19)),
])
def test_business_day_literals_against_the_holiday_calendar(start, n, expected):
    national = holidays.country_holidays("BR", years=2026)
    assert all(d in national for d in (dt.date(2026, 11, 20), dt.date(2026, 12, 25), dt.date(2026, 11, 15)))
    op = "+" if n > 0 else "-"
    decision = policy(f"""
input
  d: date

default approve

output depois = d {op} {abs(n)} business day
""").evaluate({"d": start.isoformat()})
    assert decision.outputs["depois"] == expected


def test_state_holidays_with_uf(typed):
    sp = holidays.country_holidays("BR", subdiv="SP", years=2026)
    assert dt.date(2026, 7, 9) in sp and dt.date(2026, 7, 9) not in holidays.country_holidays("BR", years=2026)
    assert typed.outputs["uteis_sp"] == dt.date(2026, 7, 10)
    assert typed.outputs["uteis_br"] == dt.date(2026, 7, 9)


def test_unknown_uf_is_an_evaluation_error():
    decision = policy("""
input
  uf: text

default approve

output d = add_business_days(2026-07-08, 1, uf)
""").evaluate({"uf": "XX"})
    assert decision.outputs["d"] is None
    assert error_reasons(decision)[0].error["code"] == "UNKNOWN_UF"


def test_aggregates_over_records(typed):
    out = typed.outputs
    assert out["total"] == Decimal("350.6")
    assert out["total_abertas"] == Decimal("100.1")
    assert out["n_abertas"] == 2
    assert out["n"] == 3
    assert out["maior"] == Decimal("250.5")
    assert out["menor"] == Decimal("0.1")
    assert out["media"] == Decimal("350.6") / 3
    assert out["alguma_vencida"] is True
    assert out["todas_pagas"] is False


def test_aggregates_over_an_empty_list_that_are_defined():
    decision = policy(TYPES).evaluate({"valor": 1, "venc": "2026-10-30"}, as_of=AS_OF)
    out = decision.outputs
    assert (out["total"], out["n"], out["alguma_vencida"], out["todas_pagas"]) == (0, 0, False, True)
    assert decision.to_dict()["outputs"]["total"] == "0.00"
    assert {r.values.get("output") for r in error_reasons(decision)} == {"maior", "menor", "media"}


# ---- input validation ----------------------------------------------------------------------

VALIDATION = """
input
  valor: money
  doc: cpf
  empresa: cnpj = "11.222.333/0001-81"
  parcelas: int = 3
  faturas: list of Fatura = []
  tags: list of text = []
  porte: porte = "me"

enum porte = me | epp | grande

record Fatura
  valor: money
  vencimento: date

rule muitas
  when count(faturas) > 100
  review "MUITAS" "muitas faturas"

default approve

output parcelas, faturas, tags, empresa, porte
"""


def invalid(data) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        policy(VALIDATION).evaluate(data)
    return info.value


def locations(error: InvalidInput) -> dict[str, str]:
    return {e["location"]: e["code"] for e in error.to_list()}


def test_missing_required_fields_are_all_named():
    error = invalid({})
    assert locations(error) == {"input.valor": "REQUIRED", "input.doc": "REQUIRED"}
    assert error.code == "INVALID_INPUT"
    assert all(set(e) == {"code", "message", "location"} for e in error.to_list())
    assert invalid({"valor": None, "doc": CPF}).to_list()[0]["location"] == "input.valor"


@pytest.mark.parametrize("field, value", [
    ("valor", "abc"), ("valor", True), ("valor", [1]), ("valor", "NaN"), ("valor", float("inf")),
    ("parcelas", 1.5), ("parcelas", "3x"), ("parcelas", False),
    ("faturas", {"valor": 1}), ("tags", "a"), ("tags", [1]),
    ("doc", 52998224725),
])
def test_wrong_type(field, value):
    data = {"valor": 10, "doc": CPF, field: value}
    codes = locations(invalid(data))
    assert list(codes) in ([f"input.{field}"], [f"input.{field}[0]"])
    assert set(codes.values()) <= {"TYPE", "VALUE"}


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity")])
def test_non_finite_decimal_from_python_is_rejected(value):
    error = invalid({"valor": value, "doc": CPF})
    assert list(locations(error)) == ["input.valor"]


def test_enum_value_is_checked():
    assert locations(invalid({"valor": 10, "doc": CPF, "porte": "enorme"})) == {"input.porte": "ENUM"}


def test_unknown_field_is_reported():
    error = invalid({"valor": 10, "doc": CPF, "parcela": 2})
    assert locations(error) == {"input.parcela": "UNKNOWN_FIELD"}


def test_unknown_top_level_field_suggests_the_close_name():
    error = invalid({"valor": 10, "doc": CPF, "parcela": 2})
    assert "did you mean 'parcelas'" in error.to_list()[0]["message"]


def test_unknown_nested_field_suggests_the_close_name():
    error = invalid({"valor": 10, "doc": CPF, "faturas": [{"valor": 1, "vencimento": "2026-01-01", "vencimeto": 1}]})
    [entry] = error.to_list()
    assert entry["location"] == "input.faturas[0].vencimeto"
    assert entry["code"] == "UNKNOWN_FIELD"
    assert "did you mean 'vencimento'" in entry["message"]


@pytest.mark.parametrize("faturas, location, code", [
    ([{"valor": 1, "vencimento": "2026-01-01"}, {"valor": "x", "vencimento": "2026-01-01"}],
     "input.faturas[1].valor", "TYPE"),
    ([{"valor": 1, "vencimento": "2026-01-01"}, {"valor": 2}], "input.faturas[1].vencimento", "REQUIRED"),
    ([{"valor": 1, "vencimento": "01/02/2026"}], "input.faturas[0].vencimento", "TYPE"),
    (["nada"], "input.faturas[0]", "TYPE"),
])
def test_nested_paths_in_errors(faturas, location, code):
    assert locations(invalid({"valor": 10, "doc": CPF, "faturas": faturas})) == {location: code}


@pytest.mark.parametrize("field, value", [
    ("doc", "529.982.247-26"), ("empresa", "11.222.333/0001-82"), ("doc", "5299822472"),
    ("empresa", "00.000.000/0000-00"), ("doc", "000.000.000-00"),
    pytest.param("doc", "111.111.111-11"),
])
def test_invalid_documents_are_rejected_without_echoing_them(field, value):
    data = {"valor": 10, "doc": CPF, field: value}
    error = invalid(data)
    assert locations(error) == {f"input.{field}": "INVALID_DOCUMENT"}
    digits = "".join(c for c in value if c.isdigit())
    assert value not in str(error) and digits not in str(error)
    assert digits not in json.dumps(error.to_list())


def test_documents_are_normalized():
    decision = policy(VALIDATION).evaluate({"valor": 10, "doc": "529 982 247 25", "empresa": "12ABC34501DE35"})
    assert decision.outputs["empresa"] == "12ABC34501DE35"


def test_defaults_are_applied():
    decision = policy(VALIDATION).evaluate({"valor": 10, "doc": CPF})
    assert decision.outputs == {"parcelas": 3, "faturas": [], "tags": [], "empresa": CNPJ_DIGITS, "porte": "me"}


def test_list_default_is_not_shared_between_evaluations():
    prepared = policy(VALIDATION)
    first = prepared.evaluate({"valor": 10, "doc": CPF})
    first.outputs["faturas"].append({"valor": Decimal(1), "vencimento": dt.date(2026, 1, 1)})
    first.outputs["tags"].append("vazou")
    validated = prepared.validate({"valor": 10, "doc": CPF})
    validated["tags"].append("vazou")
    second = prepared.evaluate({"valor": 10, "doc": CPF})
    assert second.outputs["faturas"] == [] and second.outputs["tags"] == []


def test_caller_input_is_not_mutated():
    data = {"valor": "10", "doc": CPF, "faturas": [{"valor": "1.5", "vencimento": "2026-01-01"}]}
    snapshot = copy.deepcopy(data)
    policy(VALIDATION).evaluate(data)
    assert data == snapshot


def test_input_must_be_an_object():
    assert locations(invalid([1, 2])) == {"input": "TYPE"}


# ---- trace levels ----------------------------------------------------------------------------

TRACE = """
input
  valor: money
  b: int = 1

let dobro = valor * 2
let nunca = valor * 3
let razao = valor / b

table faixa (first) by valor
  > 1_000 BRL -> "alta"
  else        -> "baixa"

rule alta
  when faixa == "alta"
  review "ALTA" "alta"

rule dobro_grande
  when dobro > 1_000_000 BRL
  deny "DOBRO" "dobro"

rule razao_alta
  when razao > 5_000 BRL
  review "RAZAO" "razão"

rule curto
  when valor > 1_000_000 BRL and nunca > 0 BRL
  deny "NUNCA" "nunca"

default approve
"""


def test_trace_off_is_none():
    assert policy(TRACE).evaluate({"valor": 2_000}).trace is None
    assert policy(TRACE).evaluate({"valor": 2_000}).to_dict()["trace"] is None


def test_trace_rules_lists_only_fired_and_errored_rules():
    decision = policy(TRACE).evaluate({"valor": 2_000, "b": 0}, trace="rules")
    assert decision.trace == {"level": "rules", "values": {}, "tables": {}, "rules": [
        {"rule": "alta", "line": line_of(TRACE, "rule alta"), "result": "fired", "outcome": "review", "error": None},
        {"rule": "razao_alta", "line": line_of(TRACE, "rule razao_alta"), "result": "error", "outcome": "review",
         "error": {"code": "DIVISION_BY_ZERO", "message": "division by zero", "line": line_of(TRACE, "let razao")}},
    ]}


def test_trace_full_has_every_rule_value_and_table_row():
    decision = policy(TRACE).evaluate({"valor": 2_000, "b": 0}, trace="full")
    assert decision.trace["level"] == "full"
    rules = {step["rule"]: step for step in decision.trace["rules"]}
    assert list(rules) == ["alta", "dobro_grande", "razao_alta", "curto"]
    assert (rules["alta"]["result"], rules["alta"]["outcome"], rules["alta"]["error"]) == ("fired", "review", None)
    assert (rules["dobro_grande"]["result"], rules["dobro_grande"]["outcome"]) == ("not_fired", None)
    assert rules["curto"]["result"] == "not_fired"
    assert (rules["razao_alta"]["result"], rules["razao_alta"]["outcome"]) == ("error", "review")
    assert rules["razao_alta"]["error"]["code"] == "DIVISION_BY_ZERO"
    assert rules["razao_alta"]["error"]["line"] == line_of(TRACE, "let razao")
    values = decision.trace["values"]
    assert values["dobro"] == "4000.00"
    assert values["faixa"] == "alta"
    assert "nunca" not in values  # never computed: `and` short-circuited
    assert "razao" not in values  # failed: no value
    assert decision.trace["tables"] == {"faixa": [{"row": 1, "line": line_of(TRACE, "> 1_000 BRL")}]}


@pytest.mark.parametrize("data", [{"valor": 2_000, "b": 0}, {"valor": 10}, {"valor": 2_000_000}])
def test_trace_has_one_shape_whatever_its_level(data):
    """Issue 15 point 3: a client reads one type; `rules` is the fired and failed part of `full`."""
    prepared = policy(TRACE)
    rules, full = (prepared.evaluate(data, trace=level).to_dict()["trace"] for level in ("rules", "full"))
    entry_keys = {"rule", "line", "result", "outcome", "error"}
    for trace in (rules, full):
        assert set(trace) == {"level", "rules", "values", "tables"}
        assert all(set(step) == entry_keys for step in trace["rules"])
        assert {step["result"] for step in trace["rules"]} <= {"fired", "not_fired", "error"}
    assert (rules["values"], rules["tables"]) == ({}, {})
    assert rules["rules"] == [step for step in full["rules"] if step["result"] != "not_fired"]


def test_trace_level_is_validated():
    with pytest.raises(ValueError):
        policy(TRACE).evaluate({"valor": 1}, trace="verbose")


def test_trace_level_does_not_change_the_decision():
    prepared = policy(TRACE)
    decisions = [prepared.evaluate({"valor": 2_000, "b": 0}, trace=level) for level in ("off", "rules", "full")]
    for d in decisions[1:]:
        assert (d.outcome, d.reason_codes, d.outputs) == (decisions[0].outcome, decisions[0].reason_codes,
                                                          decisions[0].outputs)
        assert [r.to_dict() for r in d.reasons] == [r.to_dict() for r in decisions[0].reasons]


# ---- prepared policies and caches ----------------------------------------------------------


def test_prepared_policy_is_reusable_with_independent_results():
    prepared = policy(COMBINING)
    inputs = [{"valor": 500}, {"valor": 20_000, "atraso": 120}, {"valor": 5}, {"valor": 2_000}] * 3
    decisions = [prepared.evaluate(data) for data in inputs]
    expected = [("approve", ["PADRAO"]), ("deny", ["ATRASO_GRAVE", "VALOR_ALTO", "VALOR_MUITO_ALTO"]),
                ("approve", ["VALOR_BAIXO"]), ("review", ["VALOR_ALTO"])] * 3
    assert [(d.outcome, d.reason_codes) for d in decisions] == expected
    assert decisions[0].reasons is not decisions[4].reasons


def test_as_of_drives_today():
    body = """
input
  venc: date

rule vencido
  when venc < today
  review "VENCIDO" "vencido"

default approve
"""
    prepared = policy(body)
    assert prepared.evaluate({"venc": "2026-11-21"}, as_of=AS_OF).outcome == "review"
    assert prepared.evaluate({"venc": "2026-11-22"}, as_of=AS_OF).outcome == "approve"
    assert prepared.evaluate({"venc": "2026-11-21"}, as_of=dt.date(2026, 11, 1)).outcome == "approve"


CACHED = """
input
  valor: money

let relatorio = bureau.serasa("11222333000181")

rule cara
  when valor > 1_234 BRL
  review "CARA" "cara"

rule score
  when valor > 10 BRL and relatorio.score.value < 500
  deny "SCORE" "score"

default approve "OK" "ok"

output metade = valor / 2
"""


def test_memory_cache_returns_the_same_prepared_policy():
    text = source(CACHED) + "# memória\n"
    first = compile_policy(text)
    assert compile_policy(text) is first
    assert compile_policy(text + "\n# outro\n") is not first


def _decisions(prepared):
    _, connectors = serasa({"score": {"value": 400}})
    return [prepared.evaluate(data, connectors=connectors, trace="full").to_dict()
            for data in ({"valor": 5}, {"valor": 100}, {"valor": 5_000})]


def test_disk_cache_reload_yields_identical_decisions(tmp_path):
    text = source(CACHED) + "# disco\n"
    clear_memory_cache()
    fresh = compile_policy(text, cache_dir=tmp_path)
    expected = _decisions(fresh)
    assert len(list(tmp_path.glob("*.regc"))) == 1
    clear_memory_cache()
    reloaded = compile_policy(text, cache_dir=tmp_path)
    assert reloaded is not fresh
    assert reloaded.meta.generated_source == fresh.meta.generated_source
    strip = lambda ds: [{**d, "connector_calls": [{**c, "duration_ms": 0} for c in d["connector_calls"]]} for d in ds]  # noqa: E731
    assert strip(_decisions(reloaded)) == strip(expected)


@pytest.mark.parametrize("garbage", [b"", b"garbage", b"\x00" * 8 + b"xx", (10**12).to_bytes(8, "big") + b"x"])
def test_corrupted_cache_file_is_ignored_and_rewritten(tmp_path, garbage):
    text = source(CACHED) + "# corrompido\n"
    clear_memory_cache()
    expected = _decisions(compile_policy(text, cache_dir=tmp_path))
    [cache_file] = tmp_path.glob("*.regc")
    good = cache_file.read_bytes()
    cache_file.write_bytes(garbage)
    clear_memory_cache()
    prepared = compile_policy(text, cache_dir=tmp_path)
    assert [d["outcome"] for d in _decisions(prepared)] == [d["outcome"] for d in expected]
    assert cache_file.read_bytes() == good


def _rewrite_cache(cache_file, meta_blob=None, code_blob=None):
    blob = cache_file.read_bytes()
    size = int.from_bytes(blob[:8], "big")
    meta_blob = blob[8:8 + size] if meta_blob is None else meta_blob
    code_blob = blob[8 + size:] if code_blob is None else code_blob
    cache_file.write_bytes(len(meta_blob).to_bytes(8, "big") + meta_blob + code_blob)


@pytest.mark.parametrize("part", ["meta", "code"])
def test_cache_entry_of_the_wrong_shape_is_ignored(tmp_path, part):
    import marshal
    import pickle

    text = source(CACHED) + f"# forma {part}\n"
    clear_memory_cache()
    compile_policy(text, cache_dir=tmp_path)
    [cache_file] = tmp_path.glob("*.regc")
    if part == "meta":
        _rewrite_cache(cache_file, meta_blob=pickle.dumps({"not": "meta"}))
    else:
        _rewrite_cache(cache_file, code_blob=marshal.dumps(42))
    clear_memory_cache()
    assert compile_policy(text, cache_dir=tmp_path).evaluate({"valor": 5}).outcome == "approve"


def test_tampered_cache_is_not_trusted(tmp_path):
    text = source(CACHED) + "# adulterado\n"
    clear_memory_cache()
    assert compile_policy(text, cache_dir=tmp_path).evaluate({"valor": 5_000}).reason_codes[0] == "CARA"
    [cache_file] = tmp_path.glob("*.regc")
    blob = cache_file.read_bytes()
    assert blob.count(b"1234") >= 1  # the literal 1_234 BRL, hoisted as _Decimal('1234')
    cache_file.write_bytes(blob.replace(b"1234", b"9234"))
    clear_memory_cache()
    decision = compile_policy(text, cache_dir=tmp_path).evaluate({"valor": 5_000},
                                                                  connectors=serasa({"score": {"value": 900}})[1])
    assert decision.outcome == "review" and decision.reason_codes == ["CARA"]


# ---- more static/runtime consistency ------------------------------------------------------


def test_cpf_compared_with_a_formatted_literal():
    body = """
input
  doc: cpf

rule bloqueado
  when doc == "529.982.247-25"
  deny "BLOQUEADO" "CPF bloqueado"

default approve
"""
    try:
        prepared = compile_policy(source(body))
    except PolicyError:
        return  # rejecting the comparison statically is also correct
    assert prepared.evaluate({"doc": CPF}).outcome == "deny"


def test_mixing_business_and_calendar_days_is_caught_or_works():
    body = """
input
  urgente: bool

let prazo = if urgente then 5 business days else 10 days

rule longo
  when prazo > 7 days
  review "LONGO" "prazo longo"

default approve
"""
    try:
        check_source(source(body))
    except PolicyError:
        return  # a static error is a correct answer
    decision = compile_policy(source(body)).evaluate({"urgente": True})
    assert not [r for r in error_reasons(decision) if r.error["code"] == "INTERNAL_ERROR"]


# ---- the decision as JSON ---------------------------------------------------------------------


def test_decision_to_dict_shape():
    _, connectors = serasa({"score": {"value": 400}})
    decision = compile_policy(source(CACHED)).evaluate({"valor": "21"}, connectors=connectors, trace="rules")
    data = decision.to_dict()
    assert set(data) == {"policy", "outcome", "outputs", "reasons", "trace", "connector_calls"}
    assert data["policy"] == {"name": "t", "version": "1.0"}
    assert data["outcome"] == "deny"
    assert data["outputs"] == {"metade": "10.50"}
    assert data["reasons"] == [{"code": "SCORE", "message": "score", "rule": "score", "outcome": "deny",
                                "line": line_of(CACHED, "rule score"),
                                "values": {"valor": "21.00", "relatorio.score.value": 400}}]
    assert data["trace"] == {"level": "rules", "values": {}, "tables": {}, "rules": [
        {"rule": "score", "line": line_of(CACHED, "rule score"), "result": "fired", "outcome": "deny", "error": None}]}
    [call] = data["connector_calls"]
    assert {k: v for k, v in call.items() if k != "duration_ms"} == {
        "connector": "bureau.serasa", "args": ["************81"], "status": "ok", "error": None, "cached": False,
        "cost": None}
    json.dumps(data)  # JSON-ready


def test_money_outputs_have_two_decimals():
    decision = policy("""
input
  valor: money

default approve

output inteiro = valor, metade = valor / 2, tres = valor * 3
""").evaluate({"valor": 3})
    assert decision.to_dict()["outputs"] == {"inteiro": "3.00", "metade": "1.50", "tres": "9.00"}


def test_policy_version_defaults_to_zero():
    decision = compile_policy("policy sem_versao kind credit\n\ndefault approve\n").evaluate({})
    assert decision.to_dict()["policy"] == {"name": "sem_versao", "version": "0"}
    assert decision.outcome == "approve"


def test_negative_zero_money_is_printed_as_zero():
    prepared = compile_policy("policy p kind credit\n\ninput\n  m: money\n\ndefault approve\n\noutput x = m * 1%\n")
    assert prepared.evaluate({"m": "-0.01"}).to_dict()["outputs"]["x"] == "0.00"


def test_absurd_business_day_counts_are_an_explicit_error_not_a_hang():
    prepared = compile_policy("policy p kind credit\n\ninput\n  n: int\n\nrule r\n  when add_business_days(today, n) > today\n"
                              "  deny \"A\" \"b\"\n\ndefault approve\n")
    decision = prepared.evaluate({"n": 999_999_999}, as_of=dt.date(2026, 11, 22))
    assert decision.outcome == "review"
    assert decision.reasons[0].error["code"] == "OUT_OF_RANGE"
    assert prepared.evaluate({"n": 5}, as_of=dt.date(2026, 11, 20)).outcome == "deny"


# ---- fired(...): rules that read other rules ----------------------------------------------------

FIRED = """
input
  valor: money
  limite: money
  restricoes: int

default approve

rule acima_do_limite
  when valor > limite and not fired(deny)
  review "ACIMA_LIMITE" "acima do limite"

rule restricao_relevante
  when 10 / restricoes > 1
  deny "RESTRICAO" "restrição"

rule confirma
  when fired(acima_do_limite)
  review "CONFIRMA" "confirmar"
"""


@pytest.mark.parametrize("trace", ["off", "rules", "full"])
def test_fired_deny_sees_a_deny_declared_later(trace):
    decision = policy(FIRED).evaluate({"valor": 2000, "limite": 1000, "restricoes": 1}, trace=trace)
    assert decision.outcome == "deny"
    assert decision.reason_codes == ["RESTRICAO"]
    decision = policy(FIRED).evaluate({"valor": 2000, "limite": 1000, "restricoes": 20}, trace=trace)
    assert decision.reason_codes == ["ACIMA_LIMITE", "CONFIRMA"]


def test_full_trace_lists_rules_in_evaluation_order():
    decision = policy(FIRED).evaluate({"valor": 2000, "limite": 1000, "restricoes": 1}, trace="full")
    assert [(r["rule"], r["result"]) for r in decision.trace["rules"]] == [
        ("restricao_relevante", "fired"), ("acima_do_limite", "not_fired"), ("confirma", "not_fired")]


def test_fired_of_a_failed_rule_fails_the_reader():
    decision = policy(FIRED).evaluate({"valor": 2000, "limite": 1000, "restricoes": 0}, trace="full")
    failed = {r.rule: r.error["code"] for r in error_reasons(decision)}
    assert failed == {"restricao_relevante": "DIVISION_BY_ZERO", "acima_do_limite": "RULE_FAILED",
                      "confirma": "RULE_FAILED"}
    # `and` short-circuits: below the limit, the failed deny rule is never read.
    decision = policy(FIRED).evaluate({"valor": 10, "limite": 1000, "restricoes": 0})
    assert {r.rule for r in error_reasons(decision)} == {"restricao_relevante"}


def _long_policy(rules: int) -> str:
    """More rules than one generated block holds, reading shared lets (one hoisted in every block,
    one failing on b = 0) and a table, with `set` clauses and outputs."""
    body = ["input\n  a: money\n  b: int\n\nlet razao = a / b\nlet dobro = a * 2\n",
            "table faixa (first) by b\n  >= 10 -> 3\n  >= 5 -> 2\n  else -> 1\n"]
    for n in range(rules):
        if n % 3 == 0:
            body.append(f"rule r{n}\n  when razao > {n} BRL\n  review \"R{n}\" \"razão {n}\"\n")
        elif n % 3 == 1:
            body.append(f"rule r{n}\n  when dobro > {10 * n} BRL and faixa >= 2\n  deny \"D{n}\" \"dobro {n}\"\n")
        else:
            body.append(f"rule r{n}\n  when b == {n}\n  approve\n  set limite = dobro\n")
    body.append("output limite = dobro, f = faixa\n\ndefault approve\n")
    return "\n".join(body)


@pytest.mark.parametrize("data", [{"a": 500, "b": 0}, {"a": 500, "b": 7}, {"a": 90_000, "b": 11}, {"a": 1, "b": 2}])
@pytest.mark.parametrize("trace", ["off", "rules", "full"])
def test_long_policies_run_in_blocks_with_the_same_decisions_and_lines(monkeypatch, data, trace):
    from regua.engine import codegen

    body = _long_policy(3 * codegen.RULE_BLOCK + 7)
    split = policy(body)
    assert "def _B3(" in split.meta.generated_source
    clear_memory_cache()
    monkeypatch.setattr(codegen, "RULE_BLOCK", 10_000)
    inline = policy(body)
    assert "def _B0(" not in inline.meta.generated_source
    clear_memory_cache()
    a, b = split.evaluate(data, trace=trace, as_of=AS_OF), inline.evaluate(data, trace=trace, as_of=AS_OF)
    assert a.to_dict() == b.to_dict()
    if data["b"] == 0:
        failed = error_reasons(a)
        assert failed and all(r.error["line"] == line_of(body, "let razao") for r in failed)
