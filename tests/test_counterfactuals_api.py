"""Counterfactuals of stored decisions end to end: `GET /decisions/{id}/counterfactuals` on the real
app over a socket, the sentence in the customer's explanation, and `regua explain DECISION_ID`.

Each alternative the server gives is checked by asking the same server to evaluate the changed
input (dry run), never against numbers copied from a run.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from server_harness import ThreadedServer, b2b_order, fresh_document, sandbox_settings

TODAY = dt.date(2026, 11, 22)
REGUA = Path(sys.executable).with_name("regua")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ThreadedServer(sandbox_settings(tmp_path_factory.mktemp("cf")), today=lambda: TODAY) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def evaluate(client, order: dict, **fields) -> dict:
    response = client.post("/evaluate/credito_b2b", json={"input": order, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def test_counterfactuals_of_a_stored_decision_reach_approval(client):
    order = b2b_order(fresh_document("clean"), valor_pedido="400000.00", ciclos_sem_atraso=0)
    decision = evaluate(client, order)
    assert decision["outcome"] == "review"
    response = client.get(f"/decisions/{decision['decision_id']}/counterfactuals")
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["decision_id"] == decision["decision_id"] and found["status"] == "found"
    assert found["alternatives"] and found["sentence"].startswith("Sua solicitação seria aprovada com ")
    actionable = {"valor_pedido", "saldo_em_aberto", "ciclos_sem_atraso", "bureau.serasa.score.value"}
    for alternative in found["alternatives"]:
        changed = dict(order)
        for change in alternative["changes"]:
            assert change["fact"] in actionable
            if change["fact"] in order or change["fact"] in ("saldo_em_aberto", "ciclos_sem_atraso"):
                changed[change["fact"]] = change["to"]
        if all(c["fact"] != "bureau.serasa.score.value" for c in alternative["changes"]):
            assert evaluate(client, changed, dry_run=True)["outcome"] == "approve"
    record = client.get(f"/decisions/{decision['decision_id']}").json()
    assert found["sentence"] in record["explanation"]
    assert order["cnpj"] not in json.dumps(found)


def test_an_approved_decision_needs_no_change(client):
    decision = evaluate(client, b2b_order(fresh_document("clean"), valor_pedido="100.00"))
    assert decision["outcome"] == "approve"
    found = client.get(f"/decisions/{decision['decision_id']}/counterfactuals").json()
    assert found["status"] == "not_needed" and found["sentence"] is None
    assert "seria aprovada" not in client.get(f"/decisions/{decision['decision_id']}").json()["explanation"]


def test_bad_requests_get_codes(client):
    response = client.get("/decisions/01ARZ3NDEKTSV4RRFFQ69G5FAV/counterfactuals")
    assert response.status_code == 404 and response.json()["code"] == "UNKNOWN_DECISION"
    decision = evaluate(client, b2b_order(fresh_document("clean"), valor_pedido="400000.00"))
    for params in ({"target": "deny"}, {"alternatives": 0}, {"max_changes": 9}):
        response = client.get(f"/decisions/{decision['decision_id']}/counterfactuals", params=params)
        assert response.status_code == 400, (params, response.text)


def test_counterfactuals_need_the_decisions_scope(server):
    with server.client(headers={"Authorization": "Bearer nobody"}) as anonymous:
        response = anonymous.get("/decisions/01ARZ3NDEKTSV4RRFFQ69G5FAV/counterfactuals")
    assert response.status_code == 401


def test_regua_explain_a_stored_decision(server, client):
    order = b2b_order(fresh_document("clean"), valor_pedido="400000.00", ciclos_sem_atraso=0)
    decision = evaluate(client, order)
    server.services.decision_log.wait_flushed(5.0)
    served = client.get(f"/decisions/{decision['decision_id']}/counterfactuals").json()
    result = subprocess.run([str(REGUA), "explain", decision["decision_id"], "--db", server.services.settings.store.path,
                             "--counterfactual"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["outcome"] == "review"
    assert printed["counterfactuals"]["alternatives"] == served["alternatives"]
    assert served["sentence"] in printed["explanation"]
    missing = subprocess.run([str(REGUA), "explain", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--db",
                              server.services.settings.store.path], capture_output=True, text=True)
    assert missing.returncode == 2 and "UNKNOWN_DECISION" in missing.stdout + missing.stderr
