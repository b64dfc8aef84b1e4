"""Evaluation: values at run time (exact money, dates, business days and holidays, aggregates) and
the validation of inputs (every bad field named by its path, documents never echoed).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal

import holidays
import pytest
from policy_harness import (
    AS_OF,
    CNPJ_DIGITS,
    CPF,
    error_reasons,
    policy,
)

from regua.engine.prepared import InvalidInput

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
