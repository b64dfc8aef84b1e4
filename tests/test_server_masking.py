"""Issue 13 item 7: no CPF/CNPJ the client sent comes back or reaches the log in clear, whatever the
field's type: error bodies, the access log (percent-encoded paths and queries too), reasons, the stored
decision and GET /decisions/{id}. One masking function: engine.connectors.mask_documents_in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from server_harness import ProcessServer, ThreadedServer, b2b_order, sandbox_settings

from regua.engine.connectors import mask_documents_in
from regua.server.logs import mask_text

CPF = "529.982.247-25"
CNPJ = "11.222.333/0001-81"
ALPHA_CNPJ = "12.ABC.345/01DE-35"
SECRETS = [CPF, "52998224725", CNPJ, "11222333000181", ALPHA_CNPJ, "12ABC34501DE35", "529%2E982%2E247%2D25",
           "11.222.333%2F0001-81", "982.247", "222.333"]

NOTE_POLICY = """policy anotada kind credit
input
  nota: text = ""
rule com_nota
  when nota != ""
  review "COM_NOTA" "pedido com observação"
default approve
"""


@pytest.mark.parametrize("text", [
    f"cpf {CPF}", "52998224725", CNPJ, "11222333000181", ALPHA_CNPJ, "12ABC34501DE35",
    "/decisions/529%2E982%2E247%2D25?x=1", "q=11.222.333%2F0001-81", f"input.{CPF}", f"got '{CPF}'",
    "529 982 247 25",
])
def test_document_shaped_values_are_masked_in_any_text(text):
    masked = mask_documents_in(text)
    assert not any(secret in masked for secret in SECRETS), masked
    assert masked.endswith(text[-2:]) or masked.endswith(text[-8:]) or "*" in masked


@pytest.mark.parametrize("text", ["2026-11-22", "120000.00", "01M8YHKC75MV6DK51TNCMJ64RX", "pedido 123 de 2026",
                                  "abcdefghijkl12", "DENTRO_DO_LIMITE", "credito_b2b"])
def test_other_text_is_left_alone(text):
    assert mask_documents_in(text) == text


def test_the_log_masks_percent_encoded_documents():
    line = '127.0.0.1:5555 - "GET /decisions/529%2E982%2E247%2D25?cnpj=11%2E222%2E333%2F0001-81 HTTP/1.1" 404'
    assert not any(s in mask_text(line) for s in ("529%2E982", "11%2E222%2E333%2F0001")), mask_text(line)


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_backend):
    """One server per store backend: the stored decision is read back from SQLite, then PostgreSQL."""
    settings = sandbox_settings(tmp_path_factory.mktemp("masking"), store=module_backend)
    (Path(settings.policies.folder) / "anotada.regua").write_text(NOTE_POLICY, encoding="utf-8")
    with ThreadedServer(settings) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def assert_no_document(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, (leaked, text[:600])


def test_error_bodies_never_echo_a_document(client):
    answers = [
        client.post("/evaluate/credito_b2b", json={"input": {**b2b_order(), CPF: 1, "faturamento_anual": CPF}}),
        client.post("/evaluate/credito_b2b", json={"input": {**b2b_order(), "ticket_medio": CNPJ}}),
        client.post(f"/evaluate/{CPF}", json={"input": {}}),
        client.post("/evaluate", json={"input": {}, "policy": "11222333000181"}),
        client.get(f"/decisions/{CPF}"),
        client.get("/decisions/11222333000181"),
        client.get(f"/policies/{CNPJ}"),
        client.post("/policies/12ABC34501DE35/rollback", json={"revision": 1}),
        client.post("/evaluate/credito_b2b", json={"input": {}, "request_id": CPF, "colour": CNPJ}),
        client.post("/evaluate/batch", json={"items": [{"input": {"cnpj": "x", CNPJ: 2}, "policy": "credito_b2b"}]}),
    ]
    first = client.post("/evaluate/credito_b2b", json={"input": b2b_order(), "request_id": CPF})
    assert first.status_code == 200
    answers.append(client.post("/evaluate/credito_b2b", json={"input": b2b_order(valor_pedido="1.00"),
                                                               "request_id": CPF}))
    assert answers[-1].status_code == 409
    for response in answers:
        assert 400 <= response.status_code < 500 or response.status_code == 200, response.text
        assert_no_document(response.text)
    locations = {e["location"] for e in answers[0].json()["errors"]}
    assert "input.************25" in locations and "input.faturamento_anual" in locations


def test_a_document_in_a_text_input_is_masked_in_reasons_and_the_stored_decision(client):
    note = f"cliente informou CPF {CPF} e CNPJ {CNPJ}"
    response = client.post("/evaluate/anotada", json={"input": {"nota": note}, "trace": "full"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outcome"] == "review"
    assert_no_document(json.dumps(body["reasons"]) + json.dumps(body["trace"]))
    assert "25" in json.dumps(body["reasons"])  # masked, not dropped: the last two characters stay
    stored = client.get(f"/decisions/{body['decision_id']}")
    assert stored.status_code == 200
    record = stored.json()
    assert_no_document(json.dumps(record["reasons"]) + record["explanation"] + json.dumps(record["trace"]))


def test_the_access_log_masks_documents_anywhere_in_paths_and_queries(tmp_path, backend):
    env = {"REGUA_SERVER__ACCESS_LOG": "true"}
    with ProcessServer(tmp_path, env=env) as srv, srv.client() as c:
        for path in ("/decisions/529%2E982%2E247%2D25", "/decisions/11.222.333%2F0001-81",
                     "/decisions?policy=x&q=529%2E982%2E247%2D25", f"/policies/{CPF}",
                     "/decisions/12ABC34501DE35"):
            assert c.get(path).status_code in (200, 400, 404)
        c.post("/evaluate/credito_b2b", json={"input": {**b2b_order(), "nota": CPF}})
        srv.stop()
        log = srv.logs()
    assert log.count("GET /decisions") >= 3  # the access log was on
    assert_no_document(log)
