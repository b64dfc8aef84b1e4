"""Evaluation: combining rules into an outcome with ranked reasons, the facts each reason shows
(documents masked), outputs and `set`, and rules that read other rules through fired(...).

Every policy here is small and written inline; `policy()` (tests/policy_harness.py) compiles it
with the header added.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from policy_harness import (
    AS_OF,
    CNPJ,
    CNPJ_DIGITS,
    COMBINING,
    CPF,
    CPF_DIGITS,
    error_reasons,
    line_of,
    policy,
    reason,
    serasa,
)

from regua.engine.compiler import clear_memory_cache

# ---- combining ---------------------------------------------------------------------------


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
