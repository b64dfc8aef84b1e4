"""The decision as data: trace levels (one shape whatever the level) and the decision's JSON.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from policy_harness import (
    CACHED,
    line_of,
    policy,
    serasa,
    source,
)

from regua.engine.compiler import compile_policy

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
