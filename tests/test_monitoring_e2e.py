"""Credit monitoring end to end: `regua serve` as a separate process, configured with the real SMTP
e-mail channel pointed at an SMTP server (aiosmtpd) on 127.0.0.1, the portfolio loaded over HTTP,
and bureau alerts sent to POST /events signed like a bureau signs them.

What the issue asks for, checked from the outside only (HTTP answers, e-mails received, the
decision log): a negativation alert cuts the limit, the account manager and the customer get
their e-mails, and GET /decisions/{id} explains the decision; a protest blocks the limit and the
order gate of credito_b2b (through portfolio.customer) refuses orders until a person lifts the
block; a good payer's re-check raises the limit and the customer hears about it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from email.message import EmailMessage

import pytest
from collection_harness import CREDITOR, SMTPServer, notifications_config
from server_harness import ROOT, ProcessServer, b2b_order

from regua import dialect
from regua.engine import brazil
from regua.server.monitoring import sign

SECRET_ENV = "SERASA_MONITORING_SECRET"  # the secret reaches the server as "env:NAME", never in the file
SECRET = "whsec-serasa-test-0123456789"
MONITORING = (ROOT / "policies" / "monitoramento_credito.regua").read_text(encoding="utf-8")
CREDIT_B2B = (ROOT / "policies" / "credito_b2b.regua").read_text(encoding="utf-8")
VERSION = re.search(r'^policy monitoramento_credito kind monitoring version "([^"]+)"', MONITORING, re.M).group(1)
ACTOR = f"policy:monitoramento_credito@{VERSION}"

ALFA = {"id": "alfa", "document": "11.222.333/0001-81", "name": "Comercial Alfa Ltda", "uf": "RJ",
        "segment": "atacado", "email": "financeiro@alfa.example.com", "manager": "gerente.alfa@loja.example.com",
        "channels": ["email"]}
# A clean sandbox bureau report (prefix 12): before the protest alert, an order inside the limit is approved.
BETA = {"id": "beta", "document": "12.000.701/0001-00", "name": "Beta Distribuidora S.A.", "uf": "SP",
        "segment": "atacado", "email": "compras@beta.example.com", "manager": "gerente.beta@loja.example.com",
        "channels": ["email"]}
GAMA = {"id": "gama", "document": "12.000.702/0001-54", "name": "Gama Comércio Ltda", "uf": "MG",
        "segment": "bons_pagadores", "email": "financeiro@gama.example.com",
        "manager": "gerente.gama@loja.example.com", "channels": ["email"]}


def line_of(text: str, start: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(start))


@pytest.fixture(scope="module")
def world(tmp_path_factory, module_backend):
    """A `regua serve` process per store backend (module_backend: a SQLite file, then PostgreSQL)."""
    tmp = tmp_path_factory.mktemp("monitoring_e2e")
    db = module_backend.get("url") or module_backend["path"]
    with SMTPServer() as smtp:
        email = notifications_config(smtp.port, None, str(tmp / "receipts.db"))["email"]
        config = tmp / "regua.toml"
        config.write_text("\n".join([
            "[collection]", f'creditor_name = "{CREDITOR[0]}"', f'creditor_document = "{CREDITOR[1]}"',
            "[monitoring]", f'webhook_secrets = {{ serasa = "env:{SECRET_ENV}" }}',
            "[plugins.config.notifications]", f'idempotency_db = "{tmp / "receipts.db"}"',
            "[plugins.config.notifications.email]",
            *(f"{key} = {json.dumps(value)}" for key, value in email.items()),
        ]) + "\n", encoding="utf-8")
        with ProcessServer(tmp, "--config", str(config), db=db,
                           env={SECRET_ENV: SECRET, "REGUA_STORE__PATH": str(tmp / "regua.db")}) as server:
            with server.client() as client:
                response = client.post("/portfolio/customers", json=[ALFA, BETA, GAMA])
                assert response.status_code == 200, response.text
                yield server, client, smtp.mailbox


def signed_post(client, alert: dict, secret: str = SECRET, source: str = "serasa"):
    body = json.dumps(alert).encode()
    return client.post("/events", content=body, headers={
        "Content-Type": "application/json", "X-Regua-Source": source,
        "X-Regua-Signature": sign(secret, body, int(time.time()))})


def sent_notifications(client, replayed_alert: dict, timeout: float = 20.0) -> list[dict]:
    """The alert's notifications once the server's sender thread has tried them (replaying it)."""
    deadline = time.monotonic() + timeout
    while True:
        response = signed_post(client, replayed_alert)
        assert response.status_code == 200 and response.headers.get("x-regua-replayed"), response.text
        notifications = response.json()["notifications"]
        if all(n["status"] != "queued" for n in notifications) or time.monotonic() > deadline:
            return notifications
        time.sleep(0.05)


def alert(alert_id: str, kind: str, document: str, **fields) -> dict:
    return {"id": alert_id, "kind": kind, "bureau": "serasa", "document": document,
            "occurred_at": "2026-11-20T09:30:00-03:00", **fields}


def set_limit(client, customer_id: str, amount: str, reason: str = "limite aprovado pelo comitê") -> dict:
    response = client.put(f"/customers/{customer_id}/limit", json={"amount": amount, "reason": reason})
    assert response.status_code == 200, response.text
    return response.json()


def mails_to(mailbox, address: str) -> list[EmailMessage]:
    with mailbox.lock:
        return [m for m in mailbox.messages if m["To"] == address]


def text(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def test_a_negativation_cuts_the_limit_tells_manager_and_customer_and_is_explained(world):
    server, client, mailbox = world
    set_limit(client, "alfa", "40000.00")

    response = signed_post(client, alert("neg-2500", "negativation", "11222333000181", amount="2500.00",
                                         creditor="Banco Exemplo S.A."))
    assert response.status_code == 200, response.text
    assert "x-regua-replayed" not in response.headers
    result = response.json()
    decision_id = result["decision_id"]
    assert result["status"] == "decided" and result["replayed"] is False
    assert result["alert"] == "serasa:neg-2500" and result["customer_id"] == "alfa"
    assert (result["policy"], result["version"], result["outcome"]) == ("monitoramento_credito", VERSION, "reduce")
    assert [r["code"] for r in result["reasons"]] == ["NEGATIVACAO_NOVA"]
    assert (result["limit_before"]["amount"], result["limit_after"]["amount"]) == ("40000.00", "20000.00")
    assert result["limit_after"]["blocked"] is False and result["review"] is False
    # the e-mails are sent by the server's sender thread, off the alert's path: the answer says
    # queued, and the stored answer (what a replay returns) says what was sent once it was
    assert sorted((n["role"], n["status"]) for n in result["notifications"]) == [("customer", "queued"),
                                                                                ("manager", "queued")]
    delivered = sent_notifications(client, alert("neg-2500", "negativation", "11222333000181", amount="2500.00",
                                                 creditor="Banco Exemplo S.A."))
    assert sorted((n["role"], n["channel"], n["status"]) for n in delivered) == \
        [("customer", "email", "sent"), ("manager", "email", "sent")]

    # (a) the limit and its history
    account = client.get("/customers/alfa/limit").json()
    assert account["limit"]["amount"] == "20000.00" and account["limit"]["blocked"] is False
    latest, first = account["history"][0], account["history"][-1]
    assert latest["id"] == result["limit_change"]
    assert (latest["previous_amount"], latest["amount"]) == ("40000.00", "20000.00")
    assert latest["actor"] == ACTOR and latest["source"] == "policy"
    assert (latest["policy"], latest["policy_version"]) == ("monitoramento_credito", VERSION)
    assert latest["reasons"] == ["NEGATIVACAO_NOVA"]
    assert latest["decision_id"] == decision_id and latest["alert"] == "serasa:neg-2500"
    assert first["actor"] == "user:sandbox" and first["reasons"] == ["MANUAL"]
    assert first["note"] == "limite aprovado pelo comitê"

    # (b) the e-mails, received by the SMTP server
    (manager,) = mails_to(mailbox, "gerente.alfa@loja.example.com")
    assert manager["Subject"] == "[Monitoramento] Comercial Alfa Ltda: limite reduzido"
    body = text(manager)
    assert "Limite: R$ 40.000,00 -> R$ 20.000,00." in body
    assert "nova negativação" in body and "NEGATIVACAO_NOVA" in body
    assert f"Decisão {decision_id} da política monitoramento_credito (versão {VERSION})" in body
    assert f"GET /decisions/{decision_id}" in body and CREDITOR[0] in body
    (customer,) = mails_to(mailbox, "financeiro@alfa.example.com")
    assert customer["Subject"] == f"Seu limite de crédito com {CREDITOR[0]} foi atualizado"
    body = text(customer)
    assert "passou de R$ 40.000,00 para R$ 20.000,00" in body
    assert f"{CREDITOR[0]} - CNPJ {CREDITOR[1]}" in body
    assert decision_id not in body and "NEGATIVACAO" not in body  # internal codes stay internal

    # (c) the decision log explains it
    response = client.get(f"/decisions/{decision_id}")
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["policy"]["name"] == "monitoramento_credito" and record["policy"]["version"] == VERSION
    assert record["outcome"] == "reduce"
    assert record["outputs"] == {"new_limit": "20000.00", "notify": ["manager", "customer"]}
    (reason,) = record["reasons"]
    assert reason["rule"] == "negativacao_relevante" and reason["code"] == "NEGATIVACAO_NOVA"
    assert reason["line"] == line_of(MONITORING, "rule negativacao_relevante")
    assert reason["values"] == {"event": "negativation", "amount": "2500.00"}
    assert [(t["rule"], t["result"]) for t in record["trace"]["rules"]] == [("negativacao_relevante", "fired")]
    assert record["input"]["limit"] == "40000.00" and record["input"]["bureau"] == "serasa"
    assert record["input"]["document"].endswith("81") and "*" in record["input"]["document"]
    assert "11222333000181" not in response.text and "11.222.333/0001-81" not in response.text
    assert "Nova negativação acima de R$ 1.000" in record["explanation"]

    # The bureau delivers the same alert again: the stored answer, and nothing is sent twice.
    sent = len(mailbox.messages)
    again = signed_post(client, alert("neg-2500", "negativation", "11222333000181", amount="2500.00",
                                      creditor="Banco Exemplo S.A."))
    assert again.status_code == 200 and again.headers["x-regua-replayed"] == "true"
    assert {**again.json(), "replayed": False} == {**result, "notifications": delivered}
    assert len(mailbox.messages) == sent
    assert len(client.get("/customers/alfa/limit").json()["history"]) == 2


def order_for(client, document: str) -> dict:
    order = b2b_order(document, saldo_em_aberto="0.00", valor_pedido="10000.00")
    response = client.post("/evaluate/credito_b2b", json={"input": order, "trace": "rules"})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_protest_blocks_the_limit_and_the_order_gate_sees_the_block(world):
    server, client, mailbox = world
    set_limit(client, "beta", "200000.00")
    before = order_for(client, BETA["document"])
    assert before["outcome"] == "approve", before["reasons"]

    response = signed_post(client, alert("prot-3200", "protest", "12000701000100", amount="3200.00",
                                         creditor="Cartório do 1º Ofício"))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["outcome"] == "block" and [r["code"] for r in result["reasons"]] == ["PROTESTO_NOVO"]
    assert result["limit_after"] == {**result["limit_after"], "amount": "200000.00", "blocked": True}
    account = client.get("/customers/beta/limit").json()
    assert account["limit"]["blocked"] is True
    assert account["history"][0]["actor"] == ACTOR and account["history"][0]["reasons"] == ["PROTESTO_NOVO"]
    assert account["history"][0]["alert"] == "serasa:prot-3200"

    sent_notifications(client, alert("prot-3200", "protest", "12000701000100", amount="3200.00",
                                     creditor="Cartório do 1º Ofício"))
    (manager,) = mails_to(mailbox, "gerente.beta@loja.example.com")
    assert manager["Subject"] == "[Monitoramento] Beta Distribuidora S.A.: limite bloqueado"
    body = text(manager)
    assert "novo protesto" in body and "R$ 200.000,00 -> R$ 200.000,00 (BLOQUEADO" in body
    assert result["decision_id"] in body
    assert mails_to(mailbox, "compras@beta.example.com") == []  # the policy tells only the manager

    # credito_b2b's order gate reads the customer's account (portfolio.customer): a blocked limit
    # stops new orders, whatever the bureau says.
    after = order_for(client, BETA["document"])
    assert after["outcome"] == "deny", after["reasons"]
    (blocked,) = [r for r in after["reasons"] if r["code"] == "LIMITE_BLOQUEADO"]
    assert blocked["rule"] == "limite_bloqueado" and blocked["line"] == line_of(CREDIT_B2B, "rule limite_bloqueado")
    assert blocked["values"]["conta.limit_blocked"] is True
    assert [r["code"] for r in before["reasons"]] == ["DENTRO_DO_LIMITE"]

    # A person lifts the block (PUT is the only way) with a smaller limit: the gate checks that limit.
    lifted = set_limit(client, "beta", "8000.00", reason="protesto pago, comprovante recebido")
    assert lifted["limit"] == {**lifted["limit"], "amount": "8000.00", "blocked": False}
    assert lifted["history"][0]["actor"] == "user:sandbox" and lifted["history"][0]["previous_blocked"] is True
    over = order_for(client, BETA["document"])  # R$ 10.000 against a limit of R$ 8.000
    assert over["outcome"] == "review" and [r["code"] for r in over["reasons"]] == ["ACIMA_DO_LIMITE"]
    response = client.post("/evaluate/credito_b2b", json={"input": b2b_order(
        BETA["document"], saldo_em_aberto="0.00", valor_pedido="7500.00")})
    assert response.json()["outcome"] == "approve", response.text


def test_a_good_payer_recheck_raises_the_limit_and_tells_the_customer(world):
    server, client, mailbox = world
    today = brazil.today()  # the server's calendar
    receivables, payments = [], []
    for n, days_ago in enumerate((95, 65, 35), 1):  # three purchase cycles, each paid a day early
        due = today - dt.timedelta(days=days_ago)
        receivables.append({"id": f"gama-{n}", "customer_id": "gama", "amount": "12000.00", "status": "paid",
                            "issue_date": (due - dt.timedelta(days=30)).isoformat(), "due_date": due.isoformat()})
        payments.append({"id": f"gama-pay-{n}", "receivable_id": f"gama-{n}", "amount": "12000.00",
                         "paid_on": (due - dt.timedelta(days=1)).isoformat()})
    for kind, rows in (("receivables", receivables), ("payments", payments)):
        response = client.post(f"/portfolio/{kind}", json=rows)
        assert response.status_code == 200, response.text
    set_limit(client, "gama", "30000.00")

    # bom_pagador raises a limit only when it has not changed for 90 days. The API records every
    # change at the real time (no caller can date a limit change), so the test ages the limit
    # in the store the server process uses, as if it had been set four months ago.
    aged = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=120)).isoformat(timespec="seconds")
    db = dialect.connect(str(server.db))  # the server's store, whichever the backend
    try:
        assert db.execute("update credit_limits set changed_at = ? where customer_id = 'gama'", [aged]).rowcount == 1
    finally:
        db.conn.close()

    response = client.post("/monitoring/recheck", json={"segment": "bons_pagadores"})
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["as_of"] == today.isoformat() and summary["customers"] == 1 and summary["evaluated"] == 1
    assert summary["outcomes"] == {"raise": 1} and summary["raised"] == 1 and summary["limit_changes"] == 1
    assert summary["notifications"] == 1 and summary["paid_queries"] == 0 and summary["stopped_by_budget"] is False

    account = client.get("/customers/gama/limit").json()
    assert account["limit"]["amount"] == "36000.00"
    latest = account["history"][0]
    assert (latest["previous_amount"], latest["amount"]) == ("30000.00", "36000.00")
    assert latest["actor"] == ACTOR and latest["reasons"] == ["BOM_PAGADOR"] and latest["alert"] is None
    record = client.get(f"/decisions/{latest['decision_id']}").json()
    assert record["outcome"] == "raise" and record["input"]["event"] == "recheck"
    assert record["input"]["cycles_without_delay"] == 3 and record["input"]["days_since_limit_change"] >= 119
    assert record["reasons"][0]["rule"] == "bom_pagador"
    assert record["reasons"][0]["line"] == line_of(MONITORING, "rule bom_pagador")

    (customer,) = mails_to(mailbox, "financeiro@gama.example.com")
    assert customer["Subject"] == f"Seu limite de crédito com {CREDITOR[0]} foi atualizado"
    body = text(customer)
    assert "Boa notícia" in body and "passou de R$ 30.000,00 para R$ 36.000,00" in body
    assert f"{CREDITOR[0]} - CNPJ {CREDITOR[1]}" in body
    assert mails_to(mailbox, "gerente.gama@loja.example.com") == []  # the policy tells only the customer

    # The next re-check finds a limit that just changed: no second raise, no second e-mail.
    again = client.post("/monitoring/recheck", json={"segment": "bons_pagadores"}).json()
    assert again["outcomes"] == {"keep": 1} and again["limit_changes"] == 0
    assert len(mails_to(mailbox, "financeiro@gama.example.com")) == 1
