"""Evaluation: errors are values — a failed computation yields the `on error` action (or the
policy's own handling), located at its policy line and classified by code.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from policy_harness import (
    error_reasons,
    line_of,
    policy,
    reason,
)

from regua.engine.prepared import InvalidInput

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
