"""The shared workload: eight input profiles of the bundled B2B policy and the bureau fixture.

The profiles follow the policy's own `test` blocks (policies/credito_b2b.regua) and cover the
approve, review and deny paths. Each profile has its own CNPJ so that one in-memory fixture,
keyed by CNPJ, answers every lookup. Inputs and bureau answers are JSON-like, exactly as they
would arrive over HTTP: money as numbers, dates as ISO text, documents as formatted text.
"""

from __future__ import annotations

import datetime as dt
import re

from stdnum.br import cnpj as _cnpj

from regua.engine.connectors import ConnectorError, Connectors

AS_OF = dt.date(2026, 11, 22)
POLICY_PATH = "policies/credito_b2b.regua"

# (name, raw input, bureau answer or None for "bureau down", expected outcome)
PROFILES: list[tuple[str, dict, dict | None, str]] = [
    ("excelente, aprova", {
        "cnpj": "11.222.333/0001-81", "faturamento_anual": 2_000_000, "data_fundacao": "2015-03-10",
        "ticket_medio": 40_000, "valor_pedido": 30_000, "saldo_em_aberto": 50_000, "ciclos_sem_atraso": 4,
    }, {"score": {"value": 850, "bureau": "serasa"}}, "approve"),
    ("teto por score, aprova", {
        "cnpj": "33.400.000/0001-38", "faturamento_anual": 300_000, "data_fundacao": "2015-03-10",
        "ticket_medio": 40_000, "valor_pedido": 10_000,
    }, {"score": {"value": 450}}, "approve"),
    ("acima do limite, analisa", {
        "cnpj": "12ABC34501DE35", "faturamento_anual": 1_000_000, "data_fundacao": "2010-01-01",
        "ticket_medio": 20_000, "valor_pedido": 25_000, "saldo_em_aberto": 20_000,
    }, {"score": {"value": 650}, "registration_status": "active"}, "review"),
    ("restrições, nega", {
        "cnpj": "45.371.045/0001-00", "faturamento_anual": 1_000_000.00, "data_fundacao": "2010-01-01",
        "ticket_medio": 20_000, "valor_pedido": 5_000,
    }, {"score": {"value": 720}, "restrictions": [
        {"kind": "pefin", "amount": 3_500.75, "date": "2026-05-02", "creditor": "Banco X"},
        {"kind": "refin", "amount": 1_999.90, "date": "2026-06-10", "creditor": "Financeira Y"},
        {"kind": "lawsuit", "amount": 90_000, "date": "2025-01-01"}]}, "deny"),
    ("recuperação + protesto, nega", {
        "cnpj": "19.131.000/0001-59", "faturamento_anual": 1_000_000, "data_fundacao": "2010-01-01",
        "ticket_medio": 20_000, "valor_pedido": 5_000,
    }, {"score": {"value": 600}, "restrictions": [
        {"kind": "judicial_recovery", "amount": 0, "date": "2026-02-01"},
        {"kind": "protest", "amount": 1_200, "date": "2026-03-01", "creditor": "Cartório 2º Ofício"}]}, "deny"),
    ("cnpj baixado + score baixo, nega", {
        "cnpj": "60.874.484/0001-20", "faturamento_anual": 500_000, "data_fundacao": "2012-01-01",
        "ticket_medio": 10_000, "valor_pedido": 1_000,
    }, {"score": {"value": 280}, "registration_status": "closed"}, "deny"),
    ("atraso interno, analisa (set limite)", {
        "cnpj": "07.626.300/0001-20", "faturamento_anual": 2_000_000, "data_fundacao": "2015-03-10",
        "ticket_medio": 40_000, "valor_pedido": 10_000, "dias_atraso_max": 45,
    }, {"score": {"value": 800}}, "review"),
    ("empresa nova + consultas, analisa (set prazo)", {
        "cnpj": "47.060.800/0001-61", "faturamento_anual": 800_000, "data_fundacao": "2025-06-01",
        "ticket_medio": 10_000, "valor_pedido": 5_000,
    }, {"score": {"value": 750}, "inquiries": [
        {"date": "2026-11-20", "inquirer": "Banco A"}, {"date": "2026-11-18", "inquirer": "Banco B"},
        {"date": "2026-11-10", "inquirer": "Fornecedor C"}, {"date": "2026-11-05", "inquirer": "Fornecedor D"},
        {"date": "2026-10-30", "inquirer": "Banco E"}, {"date": "2026-08-01", "inquirer": "antiga"}]}, "review"),
]

# Checked for agreement, not timed: the lookup fails (the fixture does not know this CNPJ).
BUREAU_DOWN = ("birô fora do ar, analisa", {
    "cnpj": "28.019.000/0001-52", "faturamento_anual": 2_000_000, "data_fundacao": "2015-03-10",
    "ticket_medio": 40_000, "valor_pedido": 30_000,
}, None, "review")


def _compact(document: str) -> str:
    return re.sub(r"[\s.\-/]", "", document)


# Answers by CNPJ, under both the formatted and the compact spelling (the engines see the compact
# one after validation; the JSON-input encodings see what the client sent). A plain dict lookup.
ANSWERS: dict[str, dict] = {}
for _name, _raw, _answer, _ in PROFILES:
    ANSWERS[_raw["cnpj"]] = ANSWERS[_compact(_raw["cnpj"])] = _answer


def serasa(cnpj: str) -> dict:
    """The in-memory bureau fixture: one dict per CNPJ; an unknown CNPJ is a connector failure."""
    try:
        return ANSWERS[cnpj]
    except KeyError:
        raise ConnectorError("NOT_FOUND", "no answer for this CNPJ") from None


CONNECTORS = Connectors({"bureau.serasa": serasa})


def distinct_inputs(per_profile: int) -> list[dict]:
    """Copies of the timed profiles, each with its own valid (formatted) CNPJ, registered in the
    fixture with that profile's answer; the profiles stay interleaved. With more CNPJs than the
    engine's document-check cache holds (4,096), cycling through them in order never hits it:
    the honest case for "new customers" when validation is timed."""
    out = []
    for k in range(per_profile):
        for i, (_name, raw, answer, _) in enumerate(PROFILES):
            base = f"{90_000_000 + k * len(PROFILES) + i:08d}0001"
            document = base + _cnpj.calc_check_digits(base)
            formatted = _cnpj.format(document)
            ANSWERS[formatted] = ANSWERS[document] = answer
            out.append({**raw, "cnpj": formatted})
    return out
