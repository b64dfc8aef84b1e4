"""Issue 13: ordinary bad values are 4xx naming the field (never 500), and the API keeps its written contract
(strict request types, 415 for non-JSON bodies, idempotency on canonical values, the one error body and
`additionalProperties: false` in the OpenAPI document). A real server over a socket."""

from __future__ import annotations

import json

import pytest
from server_harness import assert_error, assert_error_body, b2b_order, server_with_policies

from regua.dsl import types as T
from regua.dsl.coercers import coerce
from regua.dsl.diagnostics import PolicyError
from regua.dsl.parser import parse
from regua.dsl.values import CoercionError

PROBE = """policy sonda kind credit
input
  n: int = 1
  prazo: duration = 30 days
  uteis: business_days = 5 business days
  nota: text = ""
  grande: int = 0
let quadrado = grande * grande
let q4 = quadrado * quadrado
let q8 = q4 * q4
let q16 = q8 * q8
let q32 = q16 * q16
let q64 = q32 * q32
let q128 = q64 * q64
let q256 = q128 * q128
let q512 = q256 * q256
rule sempre
  when n >= 0
  review "OK" "ok"
default approve
output quadrado, enorme = q512
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with server_with_policies(tmp_path_factory.mktemp("contract"), sonda=PROBE) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def probe(client, **inputs):
    return client.post("/evaluate/sonda", json={"input": {**inputs}, "dry_run": True})


# ---- item 3: bad values are 4xx naming the field ----
@pytest.mark.parametrize("field,value", [
    ("n", "9" * 5000),                         # Python's int() refuses over 4300 digits: was a 500
    ("n", "1" + "0" * 18),                     # 10^18 as text
    ("n", 10**18),                             # docs/language.md: 10^18 or more is OUT_OF_RANGE
    ("n", -(10**18)),
    ("n", 1e300),                              # was accepted as a 301-digit int
    ("prazo", 10**15),                         # timedelta OverflowError: was a 500
    ("prazo", "99999999999999999999 days"),
    ("prazo", "9" * 5000 + " days"),
    ("uteis", "9" * 5000 + " business days"),
])
def test_out_of_range_values_are_422_naming_the_field(client, field, value):
    body = assert_error(probe(client, **{field: value}), 422, "INVALID_INPUT")
    assert [(e["code"], e["location"]) for e in body["errors"]] == [("OUT_OF_RANGE", f"input.{field}")], body


def test_whole_numbers_in_range_and_integral_floats_are_taken(client):
    for value in (10**18 - 1, -(10**18) + 1, 4.0, "12", "1_000"):
        response = probe(client, n=value)
        assert response.status_code == 200, (value, response.text)


def test_int_coercion_limits():
    for value in (10**18, "9" * 5000, 1e300, float("inf")):
        with pytest.raises(CoercionError) as info:
            coerce(value, T.INT, "input.n")
        assert info.value.path == "input.n" and info.value.code in ("OUT_OF_RANGE", "VALUE")


def test_rollback_to_a_revision_sqlite_cannot_hold_is_400(client):
    for revision in (2**63, 2**64 + 5):
        body = assert_error(client.post("/policies/sonda/rollback", json={"revision": revision}), 400,
                            "INVALID_REQUEST")
        assert {e["location"] for e in body["errors"]} == {"revision"}, body
    assert_error(client.post("/policies/sonda/rollback", json={"revision": 2**63 - 1}), 404, "UNKNOWN_REVISION")


def test_an_int_literal_too_large_is_refused_when_the_policy_is_checked():
    source = PROBE.replace("grande: int = 0", "grande: int = " + "7" * 3000)
    with pytest.raises(PolicyError) as info:
        parse(source, "sonda.regua")
    assert info.value.errors[0].code == "E005"
    parse(PROBE.replace("grande: int = 0", "grande: int = 999_999_999_999_999_999"))


def test_a_decision_too_large_to_write_is_422_naming_the_output(client):
    # 10^17 squared nine times: about 9,000 digits, beyond what can be written as JSON text.
    body = assert_error(probe(client, grande=10**17), 422, "OUTPUT_OUT_OF_RANGE")
    assert "outputs.enorme" in {e["location"] for e in body["errors"]}, body
    assert probe(client, grande=2).status_code == 200


# ---- item 13: the contract ----
@pytest.mark.parametrize("field,value", [("dry_run", 0), ("dry_run", 1), ("dry_run", "true"), ("trace", 0)])
def test_request_fields_are_strictly_typed(client, field, value):
    response = client.post("/evaluate/sonda", json={"input": {}, field: value})
    body = assert_error(response, 400, "INVALID_REQUEST")
    assert {e["location"] for e in body["errors"]} == {field}, body


def test_strict_types_reach_batch_items_and_rollback(client):
    body = assert_error(client.post("/evaluate/batch", json={"items": [{"input": {}, "policy": "sonda"}],
                                                               "dry_run": 0}), 400, "INVALID_REQUEST")
    assert {e["location"] for e in body["errors"]} == {"dry_run"}
    body = assert_error(client.post("/policies/sonda/rollback", json={"revision": "1"}), 400, "INVALID_REQUEST")
    assert {e["location"] for e in body["errors"]} == {"revision"}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "text/json"])
def test_a_body_that_is_not_json_is_415(client, content_type):
    payload = json.dumps({"input": {}, "dry_run": True})
    assert_error(client.post("/evaluate/sonda", content=payload, headers={"content-type": content_type}),
                 415, "UNSUPPORTED_MEDIA_TYPE")
    assert_error(client.put("/policies/sonda", content=json.dumps({"source": PROBE}),
                            headers={"content-type": content_type}), 415, "UNSUPPORTED_MEDIA_TYPE")


def test_json_media_types_are_taken(client):
    payload = json.dumps({"input": {}, "dry_run": True})
    for content_type in ("application/json", "application/json; charset=utf-8", "application/vnd.regua+json"):
        response = client.post("/evaluate/sonda", content=payload, headers={"content-type": content_type})
        assert response.status_code == 200, (content_type, response.text)


def test_idempotency_compares_values_after_coercion(client):
    first = client.post("/evaluate/sonda", json={"input": {"n": 4}, "request_id": "canon-1"})
    assert first.status_code == 200, first.text
    for same in ({"n": 4.0}, {"n": "4"}, {"n": 4}):
        again = client.post("/evaluate/sonda", json={"input": same, "request_id": "canon-1"})
        assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true", again.text
        assert again.json()["decision_id"] == first.json()["decision_id"]
    assert_error(client.post("/evaluate/sonda", json={"input": {"n": 5}, "request_id": "canon-1"}), 409,
                 "IDEMPOTENCY_CONFLICT")
    order = b2b_order()
    money = client.post("/evaluate/credito_b2b", json={"input": order, "request_id": "canon-2"})
    assert money.status_code == 200, money.text
    cents = {**order, "valor_pedido": order["valor_pedido"].rstrip("0").rstrip(".") if "." in order["valor_pedido"]
             else order["valor_pedido"]}
    again = client.post("/evaluate/credito_b2b", json={"input": cents, "request_id": "canon-2"})
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true", again.text


def test_openapi_documents_the_one_error_body_and_closed_request_objects(client):
    schema = client.get("/schema/openapi.json").json()
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if status.startswith("4"):
                    ref = response["content"]["application/json"]["schema"].get("$ref", "")
                    assert ref.endswith("/ErrorBody"), (method, path, status, response)
    for name in ("EvaluateRequest", "EvaluateNamedRequest", "BatchRequest", "BatchItem", "PublishRequest",
                 "RollbackRequest"):
        assert components[name].get("additionalProperties") is False, (name, components[name])
    assert "additionalProperties" not in components["ErrorBody"] or components["ErrorBody"]["additionalProperties"]


def test_unknown_request_fields_are_still_400(client):
    body = assert_error(client.post("/evaluate/sonda", json={"input": {}, "colour": 1}), 400, "INVALID_REQUEST")
    assert_error_body(body)
    assert {e["location"] for e in body["errors"]} == {"colour"}
