"""Evaluation of decision tables: hit policies, `in` cells, priorities and the rows a trace reports.
"""

from __future__ import annotations

import pytest
from policy_harness import (
    line_of,
    policy,
)

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
