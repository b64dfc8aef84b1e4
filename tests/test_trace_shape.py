"""Issue 15 point 3: `trace` has one shape whatever its level — in the evaluate response, in the
decision record (fresh or recorded by an older server) and in the OpenAPI document that describes
them. A real server over a socket."""

from __future__ import annotations

import json
import sqlite3

import jsonschema
import pytest
from server_harness import ThreadedServer, b2b_order, sandbox_settings

from regua.engine.trace import uniform

KEYS = {"level", "rules", "values", "tables"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ThreadedServer(sandbox_settings(tmp_path_factory.mktemp("trace"))) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def trace_schema(client):
    """The OpenAPI document's schema of `trace`, with its components, as one JSON Schema."""
    document = client.get("/schema/openapi.json").json()
    components = document["components"]["schemas"]
    trace = components["EvaluateResponse"]["properties"]["trace"]
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; refs point into #/components/schemas.
    return {**trace, "components": {"schemas": components}}


def _order(saldo: str) -> dict:
    return b2b_order(cnpj="11.222.333/0001-81", saldo_em_aberto=saldo)


@pytest.mark.parametrize("saldo", ["0.00", "150000.00"])  # approve (nothing fired) and review
def test_every_level_fits_the_one_documented_shape(client, trace_schema, saldo):
    traces = {}
    for level in ("off", "rules", "full"):
        response = client.post("/evaluate/credito_b2b", json={"input": _order(saldo), "trace": level,
                                                              "dry_run": True})
        assert response.status_code == 200, response.text
        traces[level] = response.json()["trace"]
        jsonschema.validate(traces[level], trace_schema)  # the OpenAPI document says what is sent
    assert traces["off"] is None
    assert set(traces["rules"]) == set(traces["full"]) == KEYS
    assert (traces["rules"]["level"], traces["full"]["level"]) == ("rules", "full")
    assert traces["rules"]["rules"] == [s for s in traces["full"]["rules"] if s["result"] != "not_fired"]


def test_the_schema_refuses_the_old_shapes(trace_schema):
    old_rules = [{"rule": "r", "line": 3, "result": "fired", "outcome": "review"}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(old_rules, trace_schema)
    old_full = {"rules": [{"rule": "r", "line": 3, "result": True}], "values": {}, "tables": {}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(old_full, trace_schema)


def test_the_decision_record_has_the_shape_even_for_decisions_recorded_before(server, client, trace_schema):
    fresh = client.post("/evaluate/credito_b2b", json={"input": _order("150000.00"), "trace": "rules"}).json()
    old = client.post("/evaluate/credito_b2b", json={"input": _order("150000.00"), "trace": "full"}).json()
    server.services.decision_log.wait_flushed()
    assert client.get(f"/decisions/{fresh['decision_id']}").json()["trace"] == fresh["trace"]
    # Rewrite the second record's trace as an older server stored it: result true/false, no level.
    legacy_full = {"rules": [{"rule": s["rule"], "line": s["line"],
                              "result": {"fired": True, "not_fired": False}.get(s["result"], s["result"]),
                              **({"error": s["error"]} if s["error"] else {})} for s in old["trace"]["rules"]],
                   "values": old["trace"]["values"], "tables": old["trace"]["tables"]}
    with sqlite3.connect(server.services.settings.store.path) as db:
        (body,) = db.execute("select body from decisions where id = ?", [old["decision_id"]]).fetchone()
        db.execute("update decisions set body = ? where id = ?",
                   [json.dumps({**json.loads(body), "trace": legacy_full}), old["decision_id"]])
    record = client.get(f"/decisions/{old['decision_id']}").json()
    jsonschema.validate(record["trace"], trace_schema)
    assert [(s["rule"], s["result"]) for s in record["trace"]["rules"]] == \
        [(s["rule"], s["result"]) for s in old["trace"]["rules"]]
    assert record["trace"]["values"] == old["trace"]["values"]


def test_uniform_reads_the_old_rules_level_list():
    old = [{"rule": "alta", "line": 9, "result": "fired", "outcome": "review"},
           {"rule": "razao", "line": 12, "result": "error", "outcome": "review"}]
    assert uniform(old) == {"level": "rules", "values": {}, "tables": {}, "rules": [
        {"rule": "alta", "line": 9, "result": "fired", "outcome": "review", "error": None},
        {"rule": "razao", "line": 12, "result": "error", "outcome": "review", "error": None}]}
    assert uniform(None) is None
    current = {"level": "full", "rules": [], "values": {}, "tables": {}}
    assert uniform(current) is current


def test_an_idempotent_replay_of_an_old_decision_has_the_shape(server, client):
    request = {"input": _order("150000.00"), "trace": "rules", "request_id": "forma-antiga-1"}
    first = client.post("/evaluate/credito_b2b", json=request).json()
    server.services.decision_log.wait_flushed()
    legacy_rules = [{"rule": s["rule"], "line": s["line"], "result": s["result"], "outcome": s["outcome"]}
                    for s in first["trace"]["rules"]]
    with sqlite3.connect(server.services.settings.store.path) as db:
        (body,) = db.execute("select body from decisions where id = ?", [first["decision_id"]]).fetchone()
        old_body = json.dumps({**json.loads(body), "trace": legacy_rules}, separators=(",", ":"))
        db.execute("update decisions set body = ? where id = ?", [old_body, first["decision_id"]])
    replay = client.post("/evaluate/credito_b2b", json=request)
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json()["trace"] == first["trace"]
