"""Data the console tests (HTTP and browser) share: a policy full of hostile text with lint warnings,
a portfolio with a debtor, and a helper that fills a running server through its HTTP API."""

from __future__ import annotations

import datetime as dt
import re

import httpx

#: Never executed by any console page: every occurrence must arrive escaped.
HOSTILE_SCRIPT = "<script>window.__pwned=1</script>"
HOSTILE_IMG = "<img src=x onerror='window.__pwned=1'>"

DEMO_POLICY = f"""\
policy console_demo kind credit version "1.0{HOSTILE_SCRIPT}"
description "Demonstração {HOSTILE_SCRIPT}"

input
  cpf: cpf
  nome: text
  valor: money

let nunca_lida = valor * 2

rule valor_alto
  when valor > 1_000 BRL
  review "VALOR_ALTO" "{HOSTILE_IMG}Valor alto"

default approve "OK" "Aprovado <b>sem</b> ressalvas"

output limite = valor
"""
#: Line of `let nunca_lida` (warning W602) and of the rule that fires for a high amount.
UNREAD_LET_LINE = 9
RULE_LINE = 11

CPF = "529.982.247-25"
NAME = "Maria <b>Souza</b>"
DUE = dt.date(2026, 3, 10)
CUSTOMERS = [
    {"id": "maria", "document": CPF, "name": NAME, "uf": "SP", "segment": "varejo<script>x</script>",
     "email": "maria@example.com", "channels": ["email"]},
]
RECEIVABLES = [
    {"id": "t1", "customer_id": "maria", "amount": "400.00", "issue_date": "2026-02-10", "due_date": DUE.isoformat()},
]


def evaluate(client: httpx.Client, valor: str, nome: str = NAME) -> dict:
    answer = client.post("/evaluate/console_demo", json={"input": {"cpf": CPF, "nome": nome, "valor": valor},
                                                           "trace": "rules"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def seed(client: httpx.Client) -> dict:
    """Decisions (one approve, one review), a portfolio with a collection run, and two limit changes."""
    approved = evaluate(client, "500.00")
    review = evaluate(client, "5000.00")
    for kind, rows in (("customers", CUSTOMERS), ("receivables", RECEIVABLES)):
        response = client.post(f"/portfolio/{kind}", json=rows)
        assert response.status_code == 200, response.text
    run = client.post("/collection/run", json={"as_of": (DUE + dt.timedelta(days=1)).isoformat()})
    assert run.status_code == 200, run.text
    for amount, reason in (("12000.00", "limite inicial"), ("32000.00", "bom pagador <script>x</script>")):
        changed = client.put("/customers/maria/limit", json={"amount": amount, "reason": reason})
        assert changed.status_code == 200, changed.text
    return {"approved": approved["decision_id"], "review": review["decision_id"]}


def sign_in(client: httpx.Client, key: str = "regua-sandbox") -> str:
    """Signs `client` in (its cookie jar keeps the session); returns the page's CSRF token."""
    response = client.post("/console/login", data={"key": key, "next": "/console/"})
    assert response.status_code == 303, response.text
    home = client.get("/console/")
    assert home.status_code == 200
    return csrf_of(home.text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)
