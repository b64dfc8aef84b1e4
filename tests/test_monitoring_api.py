"""Credit monitoring's HTTP error paths, against the real app on a socket: every refusal with its
status, its stable code and, where a field is at fault, the field's location; never a 500.

POST /events carries no API key (the HMAC signature is the credential); the limit and review
endpoints take API keys with scopes, configured here as they are in production.
"""

from __future__ import annotations

import json
import time

import pytest
from server_harness import ThreadedServer, assert_error, error_locations, sandbox_settings

from regua.plugins.builtin.sandbox_bureau import sandbox_document
from regua.server.auth import hash_key
from regua.server.monitoring import sign

SECRETS = {"serasa": "whsec-serasa-0123456789", "boavista": "whsec-boavista-9876543210"}
KEYS = {  # name -> (key, scopes)
    "backoffice": ("rk_test-backoffice-monitoring-0123", ["collection", "monitoring", "decisions:read"]),
    "auditor": ("rk_test-auditor-monitoring-0123456", ["decisions:read"]),
    "erp": ("rk_test-erp-monitoring-0123456789ab", ["evaluate"]),
}
CUSTOMERS = [
    {"id": "alfa", "document": "11.222.333/0001-81", "name": "Comercial Alfa Ltda", "uf": "RJ",
     "email": "financeiro@alfa.example.com", "manager": "gerente@loja.example.com", "channels": ["email"]},
    {"id": "delta", "document": sandbox_document("clean", n=801), "name": "Delta Ferragens Ltda", "uf": "PR",
     "email": "financeiro@delta.example.com", "manager": "gerente@loja.example.com", "channels": ["email"]},
]


def bearer(name: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[name][0]}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_backend):
    """One server per store backend (module_backend: a SQLite file, then PostgreSQL)."""
    auth = {"keys": [{"name": name, "hash": hash_key(key), "scopes": scopes} for name, (key, scopes) in KEYS.items()]}
    settings = sandbox_settings(tmp_path_factory.mktemp("monitoring_api"), auth=auth, store=module_backend,
                                monitoring={"webhook_secrets": SECRETS, "signature_tolerance_seconds": 300})
    with ThreadedServer(settings) as running:
        with running.client(bearer("backoffice")) as client:
            response = client.post("/portfolio/customers", json=CUSTOMERS)
            assert response.status_code == 200, response.text
        yield running


@pytest.fixture
def client(server):
    with server.client(bearer("backoffice")) as c:
        yield c


_ids = iter(range(1, 10**6))


def alert(**fields) -> dict:
    return {"id": f"evt-{next(_ids)}", "kind": "negativation", "bureau": "serasa", "document": "11222333000181",
            "occurred_at": "2026-11-20T10:00:00-03:00", "amount": "300.00", "creditor": "Banco X", **fields}


def post_event(client, body: bytes | dict, source: str | None = "serasa", secret: str | None = None,
               at: int | None = None, signature: str | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if source is not None:
        headers["X-Regua-Source"] = source
    if signature is None and source is not None:
        signature = sign(secret or SECRETS.get(source, "x"), raw, int(time.time()) if at is None else at)
    if signature is not None:
        headers["X-Regua-Signature"] = signature
    return client.post("/events", content=raw, headers=headers)


# ---- POST /events: signatures ----
def test_signatures_are_checked_before_anything_else(server):
    with server.client(headers={}) as anonymous:  # no API key: the signature is the credential
        body = json.dumps(alert()).encode()
        assert_error(anonymous.post("/events", content=body), 401, "SIGNATURE_MISSING")
        signature = sign(SECRETS["serasa"], body, int(time.time()))
        assert_error(post_event(anonymous, body, source=None, signature=signature), 401, "SIGNATURE_MISSING")
        assert_error(post_event(anonymous, body, signature=""), 401, "SIGNATURE_MISSING")
        assert_error(post_event(anonymous, body, secret="not-the-secret"), 401, "SIGNATURE_INVALID")
        assert_error(post_event(anonymous, body, secret=SECRETS["boavista"]), 401, "SIGNATURE_INVALID")
        now = int(time.time())
        tampered = body.replace(b"300.00", b"30.00")
        assert_error(post_event(anonymous, tampered, signature=sign(SECRETS["serasa"], body, now)), 401,
                     "SIGNATURE_INVALID")
        for odd in ("v1=abc", "t=soon,v1=abc", f"t={now}", f"t={now},v1=", "garbage", "t=" + "9" * 5000):
            assert_error(post_event(anonymous, body, signature=odd), 401, "SIGNATURE_INVALID")
        assert_error(post_event(anonymous, body, at=now - 3600), 401, "SIGNATURE_EXPIRED")
        assert_error(post_event(anonymous, body, at=now + 3600), 401, "SIGNATURE_EXPIRED")  # from the future
        body = assert_error(post_event(anonymous, body, source="quod"), 401, "UNKNOWN_SOURCE")
        assert SECRETS["serasa"] not in json.dumps(body)
        # Within the tolerance: accepted.
        response = post_event(anonymous, json.dumps(alert()).encode(), at=now - 120)
        assert response.status_code == 200, response.text


# ---- POST /events: the alert itself ----
@pytest.mark.parametrize("raw, location", [
    (b"{not json", "body"),
    (b"", "body"),
    (b"[]", "body"),
    (json.dumps({k: v for k, v in alert().items() if k != "document"}).encode(), "document"),
    (json.dumps({k: v for k, v in alert().items() if k != "kind"}).encode(), "kind"),
    (json.dumps(alert(kind="bankruptcy_rumour")).encode(), "kind"),
    (json.dumps(alert(kind=None)).encode(), "kind"),
    (json.dumps(alert(id=42)).encode(), "id"),
    (json.dumps(alert(id="  ")).encode(), "id"),
    (json.dumps(alert(occurred_at="2026-11-20T10:00:00")).encode(), "occurred_at"),  # naive: no time zone
    (json.dumps(alert(occurred_at="2026-13-45T10:00:00Z")).encode(), "occurred_at"),
    (json.dumps(alert(amount="1.000,00")).encode(), "amount"),
    (json.dumps(alert(amount="Infinity")).encode(), "amount"),
    (json.dumps(alert(amount="NaN")).encode(), "amount"),
    (json.dumps(alert(amount="1e100")).encode(), "amount"),
    (json.dumps(alert(amount="-500.00")).encode(), "amount"),
    (json.dumps(alert(score_after="low")).encode(), "score_after"),
    (json.dumps(alert(extra="field")).encode(), "extra"),
])
def test_an_invalid_alert_is_422_naming_the_field(client, raw, location):
    body = assert_error(post_event(client, raw), 422, "INVALID_EVENT")
    assert error_locations(body) == {location}, body


def test_the_bureau_must_be_the_signer(client):
    body = assert_error(post_event(client, alert(bureau="boavista")), 422, "SOURCE_MISMATCH")
    assert error_locations(body) == {"bureau"}
    # signed by boavista, claiming serasa
    body = assert_error(post_event(client, alert(), source="boavista"), 422, "SOURCE_MISMATCH")
    assert error_locations(body) == {"bureau"}


def test_an_alert_is_handled_once_by_bureau_and_id(client):
    first = alert(kind="score_change", amount=None, score_before=700, score_after=690)
    response = post_event(client, first)
    assert response.status_code == 200, response.text
    assert "x-regua-replayed" not in response.headers
    answer = response.json()
    assert answer["status"] == "decided" and answer["outcome"] == "keep" and answer["replayed"] is False

    replay = post_event(client, first)  # signed again (a new timestamp), the same body
    assert replay.status_code == 200 and replay.headers["x-regua-replayed"] == "true"
    assert replay.json() == {**answer, "replayed": True}

    changed = dict(first, score_after=100)
    body = assert_error(post_event(client, changed), 409, "IDEMPOTENCY_CONFLICT")
    assert error_locations(body) == {"id"}
    # The same id from another bureau is another alert.
    other = post_event(client, dict(first, bureau="boavista"), source="boavista")
    assert other.status_code == 200 and other.json()["alert"] == f"boavista:{first['id']}"
    assert "x-regua-replayed" not in other.headers


def test_alerts_about_documents_outside_the_portfolio_are_recorded_not_decided(client):
    unknown = post_event(client, alert(document=sandbox_document("clean", n=899)))
    assert unknown.status_code == 200, unknown.text
    assert unknown.json() | {"alert": None} == {
        "status": "unmatched", "replayed": False, "alert": None, "customer_id": None, "decision_id": None,
        "policy": None, "version": None, "outcome": None, "reasons": [], "limit_before": None, "limit_after": None,
        "limit_change": None, "review": False, "notifications": []}
    invalid = post_event(client, alert(document="11.222.333/0001-00"))  # wrong check digits
    assert invalid.status_code == 200 and invalid.json()["status"] == "invalid_document"


# ---- limits ----
@pytest.mark.parametrize("amount", ["abc", "", "-1.00", "-0.01", "10.001", "1e13", "NaN", "Infinity", "1.000,00"])
def test_a_bad_limit_amount_is_400_at_amount(client, amount):
    body = assert_error(client.put("/customers/alfa/limit", json={"amount": amount, "reason": "x"}), 400,
                        "INVALID_REQUEST")
    assert error_locations(body) == {"amount"}


def test_limit_requests_are_validated(client):
    body = assert_error(client.put("/customers/alfa/limit", json={"amount": "100.00", "reason": "  "}), 400,
                        "INVALID_REQUEST")
    assert error_locations(body) == {"reason"}
    body = assert_error(client.put("/customers/alfa/limit", json={"amount": "100.00"}), 400)
    assert error_locations(body) == {"reason"}
    body = assert_error(client.put("/customers/alfa/limit", json={"amount": 100, "reason": "x"}), 400)
    assert error_locations(body) == {"amount"}
    body = assert_error(client.put("/customers/alfa/limit", json={"amount": "1.00", "reason": "x", "why": 1}), 400)
    assert error_locations(body) == {"why"}
    assert_error(client.put("/customers/alfa/limit", content=b"{", headers={"Content-Type": "application/json"}), 400)
    assert_error(client.put("/customers/nobody/limit", json={"amount": "100.00", "reason": "x"}), 404,
                 "UNKNOWN_CUSTOMER")
    assert_error(client.get("/customers/nobody/limit"), 404, "UNKNOWN_CUSTOMER")
    # The edges that are fine: no limit at all, the largest one, "-0" stored as zero.
    for amount, stored in (("0", "0.00"), ("9999999999999.99", "9999999999999.99"), ("-0", "0.00"),
                           ("25000", "25000.00")):
        response = client.put("/customers/delta/limit", json={"amount": amount, "reason": "teste de borda"})
        assert response.status_code == 200, response.text
        assert response.json()["limit"]["amount"] == stored


def test_each_key_reaches_only_its_scopes(server):
    limit = {"amount": "1000.00", "reason": "x"}
    calls = [("GET", "/customers/alfa/limit", None, "decisions:read"),
             ("GET", "/monitoring/reviews", None, "decisions:read"),
             ("PUT", "/customers/alfa/limit", limit, "monitoring"),
             ("POST", "/monitoring/recheck", {"dry_run": True}, "monitoring")]
    with server.client(headers={}) as anonymous:
        for method, path, body, _scope in calls:
            assert_error(anonymous.request(method, path, json=body), 401)
    for name, (_key, scopes) in KEYS.items():
        with server.client(bearer(name)) as client:
            for method, path, body, scope in calls:
                response = client.request(method, path, json=body)
                if scope in scopes:
                    assert response.status_code == 200, (name, path, response.text)
                else:
                    assert_error(response, 403)


# ---- reviews ----
def test_a_small_negativation_opens_a_review_that_a_person_closes(client, server):
    response = post_event(client, alert(document=CUSTOMERS[1]["document"], amount="300.00"))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["outcome"] == "review" and result["review"] is True and result["limit_change"] is None
    assert [r["code"] for r in result["reasons"]] == ["NEGATIVACAO_PEQUENA"]

    with server.client(bearer("auditor")) as auditor:  # reading reviews takes decisions:read
        reviews = auditor.get("/monitoring/reviews").json()
        mine = [r for r in reviews if r["customer_id"] == "delta"]
        assert [(r["decision_id"], r["reasons"], r["closed_at"]) for r in mine] == \
            [(result["decision_id"], ["NEGATIVACAO_PEQUENA"], None)]
        account = auditor.get("/customers/delta/limit").json()
        assert [r["decision_id"] for r in account["reviews"]] == [result["decision_id"]]

    closed = client.put("/customers/delta/limit", json={"amount": "8000.00", "reason": "negativação conferida"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["reviews"] == [] and closed.json()["limit"]["amount"] == "8000.00"
    assert closed.json()["history"][0]["actor"] == "user:backoffice"
    assert not [r for r in client.get("/monitoring/reviews").json() if r["customer_id"] == "delta"]


# ---- re-check ----
def test_recheck_requests_are_validated(client):
    body = assert_error(client.post("/monitoring/recheck", json={"budget": -1}), 400, "INVALID_REQUEST")
    assert error_locations(body) == {"budget"}
    body = assert_error(client.post("/monitoring/recheck", json={"budget": "ten"}), 400)
    assert error_locations(body) == {"budget"}
    body = assert_error(client.post("/monitoring/recheck", json={"as_of": "2026-02-30"}), 400)
    assert error_locations(body) == {"as_of"}
    body = assert_error(client.post("/monitoring/recheck", json={"everything": True}), 400)
    assert error_locations(body) == {"everything"}
    response = client.post("/monitoring/recheck", json={"budget": 0, "dry_run": True, "segment": "nenhum"})
    assert response.status_code == 200, response.text
    assert response.json()["customers"] == 0 and response.json()["budget"] == 0


def test_a_retry_serialised_differently_is_the_same_alert(client):
    first = alert(id="reordered-1", kind="inquiry", amount=None, inquirer="Banco Z")
    response = post_event(client, json.dumps(first).encode())
    assert response.status_code == 200, response.text
    reordered = json.dumps(dict(reversed(list(first.items()))), indent=2).encode()
    replay = post_event(client, reordered)
    assert replay.status_code == 200 and replay.headers["x-regua-replayed"] == "true"
    assert replay.json()["decision_id"] == response.json()["decision_id"]
