"""Small inline policies for the evaluation tests (tests/test_evaluate_*.py): `policy(body)` compiles
a policy body with a header added, `line_of` finds a line of it, `serasa` gives a bureau fixture."""

from __future__ import annotations

import datetime as dt

from regua.engine.compiler import compile_policy
from regua.engine.connectors import Connectors, Fixture

HEADER = 'policy t kind credit version "1.0"\n'
AS_OF = dt.date(2026, 11, 22)
CPF = "529.982.247-25"
CPF_DIGITS = "52998224725"
CNPJ = "11.222.333/0001-81"
CNPJ_DIGITS = "11222333000181"


# Policies more than one test file evaluates.
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
