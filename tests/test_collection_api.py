"""The portfolio and the cadence over HTTP, against the real app on a socket (sandbox: e-mails to the
outbox folder, sandbox bureau in a file)."""

from __future__ import annotations

import datetime as dt

import pytest
from server_harness import ThreadedServer, assert_error, sandbox_settings

DUE = dt.date(2026, 3, 10)
CUSTOMERS = [
    {"id": "maria", "document": "529.982.247-25", "name": "Maria Souza", "uf": "SP", "segment": "varejo",
     "email": "maria@example.com", "channels": ["email"]},
    {"id": "alfa", "document": "11.222.333/0001-81", "name": "Comercial Alfa Ltda", "uf": "RJ",
     "email": "financeiro@alfa.example.com", "channels": ["email"]},
]
RECEIVABLES = [
    {"id": "t1", "customer_id": "maria", "amount": "400.00", "issue_date": "2026-02-10", "due_date": DUE.isoformat()},
    {"id": "t2", "customer_id": "alfa", "amount": "9000", "issue_date": "2026-02-10", "due_date": DUE.isoformat()},
]


@pytest.fixture
def server(tmp_path, backend):
    """A sandbox server, once per store backend (`backend`: a SQLite file, then PostgreSQL)."""
    with ThreadedServer(sandbox_settings(tmp_path)) as running:
        yield running


def load(client):
    for kind, rows in (("customers", CUSTOMERS), ("receivables", RECEIVABLES)):
        response = client.post(f"/portfolio/{kind}", json=rows)
        assert response.status_code == 200, response.text
        assert response.json() == {"kind": kind, "imported": len(rows)}


def test_load_run_and_read_back_a_receivable(server, tmp_path):
    with server.client() as client:
        load(client)
        dry = client.post("/collection/run", json={"as_of": DUE.isoformat(), "dry_run": True}).json()
        assert dry["dry_run"] and dry["planned"] == {"remind": 2}
        run = client.post("/collection/run", json={"as_of": (DUE + dt.timedelta(days=1)).isoformat()}).json()
        assert run["outcomes"] == {"sent": 2} and run["superseded"] == 2  # D0 steps; D-3 and D-5 lapsed
        assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2
        again = client.post("/collection/run", json={"as_of": (DUE + dt.timedelta(days=1)).isoformat()}).json()
        assert again["planned"] == {} and again["outcomes"] == {}
        view = client.get("/portfolio/receivables/t1").json()
        assert view["receivable"]["amount"] == "400.00" and view["receivable"]["disputed"] is False
        assert view["customer"]["document"] != "52998224725" and "***" in view["customer"]["document"]
        assert "email" not in view["customer"]
        sent = [s for s in view["steps"] if s["status"] == "sent"]
        assert [s["step"] for s in sent] == ["primeira_cobranca"]
        assert [e["kind"] for e in view["history"]].count("sent") == 1
        receipt = client.post("/collection/deliveries", json={
            "key": "t1:primeira_cobranca", "delivered_at": "2026-03-11T13:05:00-03:00", "provider_id": "abc"})
        assert receipt.status_code == 200 and receipt.json() == {"key": "t1:primeira_cobranca", "recorded": True,
                                                                 "first": True, "outcome": "first"}
        view = client.get("/portfolio/receivables/t1").json()
        assert [s["status"] for s in view["steps"] if s["step"] == "primeira_cobranca"] == ["delivered"]
        queue = client.get("/collection/queue", params={"limit": 10}).json()
        # B2C: weight 3 in the first month x R$ 400 / 100 = 12; B2B: R$ 9,000 / 1,000 + 1 day / 10 = 9.1
        assert [(q["receivable_id"], q["priority"]) for q in queue] == [("t1", 12.0), ("t2", 9.1)]
        assert [q["receivable_id"] for q in client.get("/collection/queue", params={"segment": "default"}).json()] \
            == ["t2"]


def test_bad_rows_are_named_and_nothing_is_written(server):
    with server.client() as client:
        bad = [dict(CUSTOMERS[0]), dict(CUSTOMERS[1], document="11.222.333/0001-00", uf="XX")]
        body = assert_error(client.post("/portfolio/customers", json=bad), 400, "INVALID_RECORDS")
        assert {(e["location"], e["code"]) for e in body["errors"]} == \
            {("[1].document", "INVALID_DOCUMENT"), ("[1].uf", "VALUE")}
        assert "52998224725" not in str(body)
        orphan = [dict(RECEIVABLES[0], customer_id="nobody")]
        body = assert_error(client.post("/portfolio/receivables", json=orphan), 400, "INVALID_RECORDS")
        assert body["errors"][0]["location"] == "[0].customer_id" and body["errors"][0]["code"] == "UNKNOWN_REFERENCE"
        assert_error(client.get("/portfolio/receivables/t1"), 404, "UNKNOWN_RECEIVABLE")
        assert_error(client.post("/portfolio/pets", json=[]), 404, "NOT_FOUND")
        assert_error(client.post("/portfolio/customers", content=b"[{"), 400)
        assert_error(client.post("/collection/run", json={"as_of": "2026-02-30"}), 400)
        assert_error(client.post("/collection/run", json={"when": "today"}), 400)
        assert_error(client.post("/collection/deliveries", json={"key": "t9:x", "delivered_at": "2026-03-11T10:00:00Z"}),
                     404, "UNKNOWN_STEP")
        assert_error(client.post("/collection/deliveries", json={"key": "t9:x", "delivered_at": "2026-03-11T10:00:00"}),
                     400)
        assert_error(client.get("/collection/queue", params={"limit": 0}), 400)


def test_collection_needs_the_collection_scope(server):
    with server.client(headers={}) as anonymous:
        assert_error(anonymous.post("/portfolio/customers", json=CUSTOMERS), 401)
        assert_error(anonymous.post("/collection/run", json={}), 401)
        assert_error(anonymous.get("/collection/queue"), 401)


def test_delivery_receipts_that_cannot_be_proof_are_refused_with_stable_codes_and_counted(server):
    with server.client() as client:
        load(client)
        day = DUE + dt.timedelta(days=1)
        assert client.post("/collection/run", json={"as_of": day.isoformat()}).json()["outcomes"] == {"sent": 2}
        sent_at = client.get("/portfolio/receivables/t1").json()
        sent_at = next(s["sent_at"] for s in sent_at["steps"] if s["status"] == "sent")
        sent = dt.datetime.fromisoformat(sent_at)
        before = (sent - dt.timedelta(hours=5)).isoformat()
        future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).isoformat()
        assert_error(client.post("/collection/deliveries", json={"key": "t1:primeira_cobranca", "delivered_at": before}),
                     422, "RECEIPT_BEFORE_SEND")
        assert_error(client.post("/collection/deliveries", json={"key": "t1:primeira_cobranca", "delivered_at": future}),
                     422, "RECEIPT_IN_FUTURE")
        unsent = next(s["key"] for s in client.get("/portfolio/receivables/t1").json()["steps"]
                      if s["status"] == "superseded")
        assert_error(client.post("/collection/deliveries", json={"key": unsent, "delivered_at": sent_at}),
                     409, "STEP_NOT_SENT")  # superseded: never sent
        view = client.get("/portfolio/receivables/t1").json()
        assert [s["status"] for s in view["steps"] if s["step"] == "primeira_cobranca"] == ["sent"]
        assert [e["code"] for e in view["history"] if e["kind"] == "receipt_refused"] == \
            ["RECEIPT_BEFORE_SEND", "RECEIPT_IN_FUTURE", "STEP_NOT_SENT"]
        first = (sent + dt.timedelta(minutes=3)).isoformat()
        assert client.post("/collection/deliveries", json={"key": "t1:primeira_cobranca", "delivered_at": first}
                           ).json() == {"key": "t1:primeira_cobranca", "recorded": True, "first": True, "outcome": "first"}
        later = (sent + dt.timedelta(hours=3)).isoformat()
        assert client.post("/collection/deliveries", json={"key": "t1:primeira_cobranca", "delivered_at": later}
                           ).json() == {"key": "t1:primeira_cobranca", "recorded": True, "first": False,
                                        "outcome": "later"}
        step = next(s for s in client.get("/portfolio/receivables/t1").json()["steps"]
                    if s["step"] == "primeira_cobranca")
        assert dt.datetime.fromisoformat(step["delivered_at"]) == dt.datetime.fromisoformat(first)
        metrics = client.get("/metrics").text
        for code in ("RECEIPT_BEFORE_SEND", "RECEIPT_IN_FUTURE", "STEP_NOT_SENT"):
            assert f'regua_request_errors_total{{code="{code}"}} 1.0' in metrics, code


def test_a_run_at_a_time_of_day_in_sao_paulo(server):
    with server.client() as client:
        load(client)
        day = DUE + dt.timedelta(days=1)
        early = client.post("/collection/run", json={"as_of": day.isoformat(), "at": "06:30"}).json()
        assert early["outcomes"] == {"deferred": 2} and early["reasons"] == {"deferred:OUT_OF_WINDOW": 2}
        view = client.get("/portfolio/receivables/t1").json()
        planned = next(e for e in view["history"] if e["kind"] == "deferred")
        assert dt.datetime.fromisoformat(planned["at"]) == dt.datetime(2026, 3, 11, 9, 30, tzinfo=dt.timezone.utc)
        later = client.post("/collection/run", json={"as_of": day.isoformat(), "at": "10:15"}).json()
        assert later["outcomes"] == {"sent": 2}
        for bad in ("25:00", "9h", "10:7", ""):
            if bad:
                body = assert_error(client.post("/collection/run", json={"as_of": day.isoformat(), "at": bad}), 400,
                                    "INVALID_REQUEST")
                assert body["errors"][0]["location"] == "at", bad


def test_a_bounced_receipt_moves_the_step_to_the_next_channel(server, tmp_path):
    with server.client() as client:
        customers = [dict(CUSTOMERS[0], phone="+5511987654321", channels=["email", "sms"]), CUSTOMERS[1]]
        for kind, rows in (("customers", customers), ("receivables", RECEIVABLES)):
            assert client.post(f"/portfolio/{kind}", json=rows).status_code == 200
        day = DUE + dt.timedelta(days=1)
        assert client.post("/collection/run", json={"as_of": day.isoformat(), "at": "10:00"}).json()["outcomes"] == \
            {"sent": 2}
        key = "t1:primeira_cobranca"
        bounced_at = dt.datetime.combine(day, dt.time(13, 5), dt.timezone.utc).isoformat()
        body = assert_error(client.post("/collection/deliveries", json={"key": key, "status": "bounced"}), 400,
                            "INVALID_REQUEST")
        assert body["errors"][0]["location"] == "reason"
        assert_error(client.post("/collection/deliveries", json={"key": key, "status": "lost", "reason": "x"}), 400)
        answer = client.post("/collection/deliveries", json={"key": key, "status": "bounced", "failed_at": bounced_at,
                                                              "reason": "550 5.1.1 maria@example.com: no such user"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"key": key, "recorded": True, "first": False, "outcome": "bounced"}
        view = client.get("/portfolio/receivables/t1").json()
        bounce = next(e for e in view["history"] if e["kind"] == "bounced")
        assert bounce["code"] == "BOUNCED" and "maria@example.com" not in str(bounce)
        assert next(s for s in view["steps"] if s["key"] == key)["block_code"] == "BOUNCED"
        again = client.post("/collection/run", json={"as_of": day.isoformat(), "at": "14:00"}).json()
        assert again["outcomes"] == {"sent": 1}
        view = client.get("/portfolio/receivables/t1").json()
        sends = [e["detail"]["kind"] for e in view["history"] if e["kind"] == "sent"]
        assert sends == ["email", "sms"], sends  # the sandbox's SMS channel writes a text file
        (text,) = (tmp_path / "outbox").glob("*.sms.txt")
        assert "Loja" in text.read_text(encoding="utf-8") or "Sandbox" in text.read_text(encoding="utf-8")
