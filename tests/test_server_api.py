"""The HTTP API end to end: the real Litestar app over a socket (tests/server_harness.py).

Decisions are checked against what the engine itself decides (`engine.compile_file(...).evaluate`
with the same sandbox connectors), never against numbers copied from a run.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import re
import threading
import time

import httpx
import pytest
from server_harness import (
    DECISION_FIELDS,
    ULID_PATTERN,
    ThreadedServer,
    assert_error,
    assert_error_body,
    b2b_order,
    b2c_order,
    error_locations,
    fresh_document,
    local_decision,
    metric,
    ndjson,
    sandbox_settings,
    scrape,
    ulid_millis,
    without_durations,
)
from stdnum.br import cnpj as cnpj_format
from stdnum.br import cpf as cpf_format

from regua.engine.brazil import BRASILIA

TODAY = dt.date(2026, 11, 22)  # the server's "today": the engine gets the same as_of
fresh = fresh_document


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_backend):
    """One server per backend: every test here runs on SQLite, then on PostgreSQL."""
    with ThreadedServer(sandbox_settings(tmp_path_factory.mktemp("api"), store=module_backend),
                        today=lambda: TODAY) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def evaluate(client, data: dict, policy="credito_b2b", **fields) -> dict:
    response = client.post(f"/evaluate/{policy}", json={"input": data, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_body_streamed_in_chunks_is_decided_like_the_same_body_sent_whole(client):
    """The lean path (server/lean_evaluate.py) reads a body that arrives in many pieces."""
    payload = json.dumps({"policy": "credito_b2b", "input": b2b_order(fresh()), "dry_run": True}).encode()
    json_type = {"content-type": "application/json"}
    whole = client.post("/evaluate", content=payload, headers=json_type)
    streamed = client.post("/evaluate", content=(payload[i:i + 64] for i in range(0, len(payload), 64)),
                           headers=json_type)
    assert whole.status_code == streamed.status_code == 200, (whole.text, streamed.text)
    first, second = whole.json(), streamed.json()
    for body in (first, second):
        body.pop("duration_ms")
        body["connector_calls"] = without_durations(body["connector_calls"])
    assert first == second


# ---- POST /evaluate ----
@pytest.mark.parametrize("profile", ["clean", "protest", "negativated", "closed", "down"])
@pytest.mark.parametrize("trace", ["off", "rules", "full"])
def test_decision_is_what_the_engine_decides(client, profile, trace):
    order = b2b_order(fresh(profile), dias_atraso_max=45 if profile == "clean" else 0)
    if profile == "down":  # the bureau's circuit breaker opens after consecutive failures: start both at zero
        evaluate(client, b2b_order(fresh()), dry_run=True)
        local_decision("credito_b2b", b2b_order(fresh()), as_of=TODAY)
    before = int(time.time() * 1000)
    # Both forms: the policy in the URL, and in the body.
    by_url = client.post("/evaluate/credito_b2b", json={"input": order, "trace": trace})
    by_body = client.post("/evaluate", json={"input": order, "trace": trace, "policy": "credito_b2b"})
    after = int(time.time() * 1000)
    active = client.get("/policies/credito_b2b").json()
    expected = local_decision("credito_b2b", order, trace, as_of=TODAY)
    for response in (by_url, by_body):
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == DECISION_FIELDS
        assert re.fullmatch(ULID_PATTERN, body["decision_id"]) and before - 1 <= ulid_millis(body["decision_id"]) <= after
        assert body["policy"] == {**expected["policy"], "revision": active["revision"]}
        assert body["policy"]["version"] == active["version"]
        for field in ("outcome", "outputs", "reasons", "trace"):
            assert body[field] == expected[field], field
        assert without_durations(body["connector_calls"]) == expected["connector_calls"]
        assert body["dry_run"] is False and body["duration_ms"] >= 0
        assert all(call["duration_ms"] >= 0 for call in body["connector_calls"])
        # The document never leaves unmasked, formatted or not.
        digits = order["cnpj"]
        assert digits not in response.text and cnpj_format.format(digits) not in response.text
        assert all(arg.endswith(digits[-2:]) and set(arg[:-2]) == {"*"}
                   for call in body["connector_calls"] for arg in call["args"])
    assert by_url.json()["decision_id"] != by_body.json()["decision_id"]
    # One shape at every level (null when off): the same keys, `level` says which.
    got = by_url.json()["trace"]
    assert got is None if trace == "off" else (set(got) == {"level", "rules", "values", "tables"}
                                               and got["level"] == trace)


def test_other_policy_and_its_document(client):
    cpf = fresh(kind="cpf")
    body = evaluate(client, b2c_order(cpf), policy="credito_b2c", trace="rules")
    expected = local_decision("credito_b2c", b2c_order(cpf), "rules", as_of=TODAY)
    assert (body["policy"]["name"], body["outcome"], body["reasons"]) == ("credito_b2c", expected["outcome"],
                                                                         expected["reasons"])
    assert cpf not in json.dumps(body) and cpf_format.format(cpf) not in json.dumps(body)


def test_dry_run_answers_but_stores_nothing(client):
    cnpj = fresh()
    dry = evaluate(client, b2b_order(cnpj), dry_run=True)
    assert dry["decision_id"] is None and dry["dry_run"] is True
    assert dry["outcome"] == local_decision("credito_b2b", b2b_order(cnpj), as_of=TODAY)["outcome"]
    assert client.get("/decisions", params={"document": cnpj}).json() == {"items": [], "next": None}
    real = evaluate(client, b2b_order(cnpj))  # the store is written: still only the real decision
    found = client.get("/decisions", params={"document": cnpj}).json()["items"]
    assert [item["decision_id"] for item in found] == [real["decision_id"]]


def test_body_policy_must_match_the_url(client):
    response = client.post("/evaluate/credito_b2b", json={"input": b2b_order(), "policy": "credito_b2c"})
    body = assert_error(response, 400, "POLICY_MISMATCH")
    assert error_locations(body) == {"policy"}


# ---- bad requests: 4xx with the one error body, never 500 ----
def _request(**fields) -> dict:
    return {"json": {"input": {}, "policy": "credito_b2b", **fields}}


BAD_REQUESTS = [
    # (method, path, request kwargs, status, code, locations that must be named)
    ("POST", "/evaluate", {"content": b'{"input": {'}, 400, "MALFORMED_JSON", set()),
    ("POST", "/evaluate", {"content": b"\xff\xfe garbage"}, 400, "MALFORMED_JSON", set()),
    ("POST", "/evaluate", {"content": b'{"input": {}, "policy": "credito_b2b"'}, 400, "MALFORMED_JSON", set()),
    # A JSON number is read from its text, never through a float: 1e999 is a number too large, not bad JSON.
    ("POST", "/evaluate/credito_b2b", {"content": b'{"input": {"valor_pedido": 1e999}}'}, 422, "INVALID_INPUT",
     {"input.valor_pedido"}),
    ("POST", "/evaluate", {"content": b'{"input": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}"}, 400, "MALFORMED_JSON",
     set()),  # deeper than the decoder's recursion limit
    ("POST", "/evaluate", {"content": b""}, 400, "EMPTY_BODY", set()),
    ("POST", "/evaluate", _request(trace=3), 400, "INVALID_REQUEST", {"trace"}),
    ("POST", "/evaluate", _request(trace="verbose"), 400, "INVALID_REQUEST", {"trace"}),
    ("POST", "/evaluate", _request(input=[1]), 400, "INVALID_REQUEST", {"input"}),
    ("POST", "/evaluate", {"json": {"policy": "credito_b2b"}}, 400, "INVALID_REQUEST", {"input"}),
    ("POST", "/evaluate", _request(dry_run="yes"), 400, "INVALID_REQUEST", {"dry_run"}),
    ("POST", "/evaluate", _request(colour=1), 400, "INVALID_REQUEST", {"colour"}),
    ("POST", "/evaluate", _request(request_id=""), 400, "INVALID_REQUEST", {"request_id"}),
    ("POST", "/evaluate", {"json": [1, 2]}, 400, "INVALID_REQUEST", set()),
    ("POST", "/evaluate", {"json": {"input": {}}}, 400, "INVALID_REQUEST", {"policy"}),
    ("POST", "/evaluate", {"json": {"input": {}, "policy": "credito_b2bb"}}, 404, "UNKNOWN_POLICY", {"policy"}),
    ("POST", "/evaluate/credito_b3b", {"json": {"input": {}}}, 404, "UNKNOWN_POLICY", {"policy"}),
    ("POST", "/evaluate/credito_b2b", {"json": {"input": {"cnpj": "11.222.333/0001-00", "valor_pedido": "muito"}}},
     422, "INVALID_INPUT", {"input.cnpj", "input.faturamento_anual", "input.valor_pedido", "input.ticket_medio"}),
    ("POST", "/evaluate/credito_b2b", {"json": {"input": b2b_order(cnpj="x", zzz=1)}}, 422, "INVALID_INPUT",
     {"input.cnpj", "input.zzz"}),
    ("POST", "/evaluate/batch", {"json": {"items": {}}}, 400, "INVALID_REQUEST", {"items"}),
    ("GET", "/no/such/route", {}, 404, "NOT_FOUND", set()),
    ("GET", "/evaluate", {}, 405, "METHOD_NOT_ALLOWED", set()),
    ("DELETE", "/decisions", {}, 405, "METHOD_NOT_ALLOWED", set()),
    ("GET", "/decisions/01ARZ3NDEKTSV4RRFFQ69G5FAV", {}, 404, "UNKNOWN_DECISION", set()),
    ("GET", "/decisions?document=123", {}, 400, "INVALID_QUERY", {"query.document"}),
    ("GET", "/decisions?document=11.222.333/0001-82", {}, 400, "INVALID_QUERY", {"query.document"}),
    ("GET", "/decisions?from=yesterday", {}, 400, "INVALID_QUERY", {"query.from"}),
    ("GET", "/decisions?to=2026-02-30", {}, 400, "INVALID_QUERY", {"query.to"}),
    ("GET", "/decisions?before=zzz", {}, 400, "INVALID_QUERY", {"query.before"}),
    ("GET", "/decisions?limit=0", {}, 400, "INVALID_REQUEST", {"limit"}),
    ("GET", "/decisions?limit=many", {}, 400, "INVALID_REQUEST", {"limit"}),
    # No NUL in a URL: PostgreSQL cannot hold or compare one, so both stores refuse it alike.
    ("GET", "/decisions?policy=%00", {}, 400, "INVALID_REQUEST", {"query.policy"}),
    ("GET", "/decisions?policy=a&policy=b%00c", {}, 400, "INVALID_REQUEST", {"query.policy"}),
    ("GET", "/policies/credito%00b2b", {}, 400, "INVALID_REQUEST", {"path"}),
    # Nor in a body: a decision holding one could never be written to PostgreSQL.
    ("POST", "/evaluate/credito_b2b", {"json": {"input": {"cnpj": "11.222.333/0001-81\u0000"}}}, 400,
     "INVALID_REQUEST", {"input.cnpj"}),
    ("POST", "/evaluate", {"json": {"policy": "credito_b2b\u0000", "input": {}}}, 400, "INVALID_REQUEST", {"policy"}),
    ("POST", "/evaluate/batch", {"json": {"items": [{"policy": "credito_b2b", "input": {"a": ["x", "\u0000"]}}]}},
     400, "INVALID_REQUEST", {"items[0].input.a[1]"}),
    ("POST", "/monitoring/recheck", {"json": {"segment": "atacado\u0000"}}, 400, "INVALID_REQUEST", {"segment"}),
]


@pytest.mark.parametrize("method,path,kwargs,status,code,locations", BAD_REQUESTS,
                         ids=[f"{r[0]} {r[1]} {r[4]}" for r in BAD_REQUESTS])
def test_bad_request_gets_the_error_body(client, method, path, kwargs, status, code, locations):
    headers = {"content-type": "application/json"} if "content" in kwargs else {}
    body = assert_error(client.request(method, path, headers=headers, **kwargs), status, code)
    assert locations <= error_locations(body), body


def test_error_details_help(client):
    unknown = assert_error(client.post("/evaluate", json={"input": {}, "policy": "credito_b2bb"}), 404)
    assert "did you mean 'credito_b2b'" in unknown["message"]
    nameless = assert_error(client.post("/evaluate", json={"input": {}, "policy": "credito_b2b", "": 1}), 400)
    assert [(d["code"], d["location"]) for d in nameless["errors"]] == [("UNKNOWN_FIELD", "")]
    wrong = client.put("/evaluate", json={})
    assert_error(wrong, 405)
    assert "POST" in wrong.headers["allow"]


def test_body_size_limit_and_batch_size_limit(tmp_path, backend):
    limit = 2048
    settings_ = sandbox_settings(tmp_path, server={"max_body_bytes": limit, "batch_max_items": 3})

    def body_of(size: int) -> bytes:
        data = {"policy": "credito_b2b", "input": {"pad": ""}}
        data["input"]["pad"] = "x" * (size - len(json.dumps(data)))
        return json.dumps(data).encode()

    def chunks(payload: bytes):  # no Content-Length: the limit holds for streamed bodies too
        yield from (payload[i:i + 256] for i in range(0, len(payload), 256))

    json_type = {"content-type": "application/json"}
    with ThreadedServer(settings_) as srv, srv.client() as c:
        assert_error(c.post("/evaluate", content=body_of(limit), headers=json_type), 422, "INVALID_INPUT")
        assert_error(c.post("/evaluate", content=body_of(limit + 1), headers=json_type), 413, "PAYLOAD_TOO_LARGE")
        assert_error(c.post("/evaluate", content=chunks(body_of(limit * 4)), headers=json_type), 413,
                     "PAYLOAD_TOO_LARGE")
        items = [{"input": b2b_order(fresh())} for _ in range(4)]
        ok = c.post("/evaluate/batch", json={"policy": "credito_b2b", "items": items[:3], "dry_run": True})
        assert ok.status_code == 200 and len(ndjson(ok)) == 3
        too_many = c.post("/evaluate/batch", json={"policy": "credito_b2b", "items": items})
        assert error_locations(assert_error(too_many, 413, "BATCH_TOO_LARGE")) == {"items"}


# ---- POST /evaluate/batch ----
def test_batch_streams_one_line_per_item_in_order(client):
    good, other = b2b_order(fresh()), b2c_order(fresh(kind="cpf"))
    items = [{"input": good}, {"input": {"cnpj": "nope"}}, {"input": other, "policy": "credito_b2c"},
             {"input": good, "policy": "credito_b2x"}, {"input": b2b_order(fresh("negativated"))}]
    response = client.post("/evaluate/batch", json={"policy": "credito_b2b", "items": items, "trace": "rules"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.text.endswith("\n")
    lines = ndjson(response)
    assert [line["index"] for line in lines] == list(range(len(items)))
    assert [set(line) - {"index"} for line in lines] == [{"decision"}, {"error"}, {"decision"}, {"error"},
                                                        {"decision"}]
    assert lines[1]["error"]["code"] == "INVALID_INPUT" and "input.cnpj" in error_locations(lines[1]["error"])
    assert lines[3]["error"]["code"] == "UNKNOWN_POLICY"
    for i in (1, 3):
        assert_error_body(lines[i]["error"])
    for i in (0, 2, 4):
        decision, item = lines[i]["decision"], items[i]
        policy = item.get("policy", "credito_b2b")
        expected = local_decision(policy, item["input"], "rules", as_of=TODAY)
        assert (decision["policy"]["name"], decision["outcome"], decision["reasons"], decision["trace"]) == \
            (policy, expected["outcome"], expected["reasons"], expected["trace"])
        stored = client.get(f"/decisions/{decision['decision_id']}").json()
        assert stored["input"] == item["input"] and stored["outcome"] == decision["outcome"]
    dry = ndjson(client.post("/evaluate/batch", json={"policy": "credito_b2b", "items": items[:1], "dry_run": True}))
    assert dry[0]["decision"]["decision_id"] is None


# ---- idempotency ----
def test_request_id_replays_the_same_decision(client):
    order = b2b_order(fresh())
    first = client.post("/evaluate/credito_b2b", json={"input": order, "request_id": "pedido-1"})
    again = client.post("/evaluate/credito_b2b", json={"input": dict(reversed(order.items())), "request_id": "pedido-1",
                                                      "trace": "full"})
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    stored = client.get("/decisions", params={"document": order["cnpj"]}).json()["items"]
    assert [item["decision_id"] for item in stored] == [first.json()["decision_id"]]
    conflict = client.post("/evaluate/credito_b2b", json={"input": {**order, "valor_pedido": "1.00"},
                                                          "request_id": "pedido-1"})
    assert error_locations(assert_error(conflict, 409, "IDEMPOTENCY_CONFLICT")) == {"request_id"}
    # The id is per policy: another policy may use it.
    other = client.post("/evaluate/credito_b2c", json={"input": b2c_order(fresh(kind="cpf")), "request_id": "pedido-1"})
    assert other.status_code == 200 and "idempotent-replayed" not in other.headers


def test_concurrent_identical_requests_make_one_decision(server):
    order, threads = b2b_order(fresh()), 8
    barrier = threading.Barrier(threads)

    def send(_):
        with server.client() as c:
            barrier.wait()
            return c.post("/evaluate/credito_b2b", json={"input": order, "request_id": "corrida"})

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        responses = list(pool.map(send, range(threads)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["decision_id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == threads - 1
    with server.client() as c:
        assert len(c.get("/decisions", params={"document": order["cnpj"]}).json()["items"]) == 1


# ---- decisions ----
def test_stored_decision_explains_itself(client):
    order = b2b_order(fresh("protest"))
    answer = evaluate(client, order, trace="rules", request_id="explica-1")
    record = client.get(f"/decisions/{answer['decision_id']}").json()
    for field in ("decision_id", "policy", "outcome", "outputs", "reasons", "trace", "connector_calls", "duration_ms"):
        assert record[field] == answer[field], field
    assert record["input"] == order and record["request_id"] == "explica-1" and record["api_key"] == "sandbox"
    created = dt.datetime.fromisoformat(record["created_at"])
    assert abs(created.timestamp() * 1000 - ulid_millis(record["decision_id"])) < 1000
    text = record["explanation"]
    assert "art. 20" in text and "decisão automatizada" in text
    assert answer["policy"]["name"] in text and answer["policy"]["version"] in text
    assert all(reason["message"] in text for reason in answer["reasons"])
    assert order["cnpj"] not in text and cnpj_format.format(order["cnpj"]) not in text


def test_find_decisions_pages_filters_and_documents(tmp_path, backend):
    with ThreadedServer(sandbox_settings(tmp_path)) as srv, srv.client() as c:
        cnpjs = [fresh() for _ in range(7)]
        made = ndjson(c.post("/evaluate/batch", json={"policy": "credito_b2b",
                                                      "items": [{"input": b2b_order(x)} for x in cnpjs]}))
        cpf = fresh(kind="cpf")
        evaluate(c, b2c_order(cpf), policy="credito_b2c")
        ids = {line["decision"]["decision_id"] for line in made}

        def all_pages(limit, **query):
            seen, before = [], None
            while True:
                page = c.get("/decisions", params={**query, "limit": limit, **({"before": before} if before else {})})
                assert page.status_code == 200, page.text
                seen.extend(page.json()["items"])
                before = page.json()["next"]
                if before is None:
                    return seen

        for limit in (1, 3, 7, 50):
            items = all_pages(limit, policy="credito_b2b")
            found = [item["decision_id"] for item in items]
            assert set(found) == ids and len(found) == len(ids)  # complete, no duplicates
            assert found == sorted(found, reverse=True)  # newest first
        assert all(item["policy"]["name"] == "credito_b2b" for item in items)
        everything = all_pages(4)
        assert len(everything) == 8 and {i["policy"]["name"] for i in everything} == {"credito_b2b", "credito_b2c"}

        for document in (cnpjs[2], cnpj_format.format(cnpjs[2]), cnpj_format.format(cnpjs[2]).lower()):
            (item,) = c.get("/decisions", params={"document": document}).json()["items"]
            assert item["decision_id"] == made[2]["decision"]["decision_id"]
            assert item["document"].endswith(cnpjs[2][-2:]) and cnpjs[2] not in json.dumps(item)
        for document in (cpf, cpf_format.format(cpf)):
            (item,) = c.get("/decisions", params={"document": document}).json()["items"]
            assert item["policy"]["name"] == "credito_b2c"

        # from (inclusive) and to (exclusive) instants, and whole Brasília days.
        def made(item):
            return dt.datetime.fromisoformat(item["created_at"])

        for pivot in everything:
            newer = {i["decision_id"] for i in all_pages(50, **{"from": pivot["created_at"]})}
            older = {i["decision_id"] for i in all_pages(50, to=pivot["created_at"])}
            assert newer == {i["decision_id"] for i in everything if made(i) >= made(pivot)}
            assert older == {i["decision_id"] for i in everything if made(i) < made(pivot)}
        days = {dt.datetime.fromisoformat(i["created_at"]).astimezone(BRASILIA).date() for i in everything}
        first, last = min(days), max(days)
        assert len(all_pages(50, **{"from": first.isoformat(), "to": last.isoformat()})) == 8
        assert len(all_pages(50, **{"from": "0001-01-01", "to": "9999-12-31"})) == 8  # the calendar's ends
        assert all_pages(50, to=(first - dt.timedelta(days=1)).isoformat()) == []
        assert all_pages(50, **{"from": (last + dt.timedelta(days=1)).isoformat()}) == []


# ---- operations ----
def test_health_ready_and_openapi(server, client):
    assert client.get("/health").json()["status"] == "ok"
    health = httpx.get(f"{server.url}/health").json()  # no key needed
    assert health["sandbox"] is True and isinstance(health["version"], str)
    ready = httpx.get(f"{server.url}/ready")
    policies = client.get("/policies").json()["policies"]
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["policies"] == len(policies) and ready.json()["problems"] == 0

    import schemathesis

    doc = httpx.get(f"{server.url}/schema/openapi.json").json()
    schemathesis.openapi.from_dict(doc).validate()  # a valid OpenAPI 3.1 document
    schemas = doc["components"]["schemas"]

    def resolve(node):
        return schemas[node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node

    # POST /evaluate needs the policy in the body; POST /evaluate/{policy} has it in the URL.
    for path, required in (("/evaluate", ["input", "policy"]), ("/evaluate/{policy}", ["input"])):
        operation = doc["paths"][path]["post"]
        request = resolve(operation["requestBody"]["content"]["application/json"]["schema"])
        assert set(request["properties"]) == {"input", "policy", "trace", "dry_run", "request_id"}
        assert sorted(request["required"]) == required
        assert request["properties"]["trace"]["enum"] == ["off", "rules", "full"]
        assert {"bearer", "apiKey"} <= {name for option in operation.get("security", doc["security"]) for name in option}
        answer = resolve(operation["responses"]["200"]["content"]["application/json"]["schema"])
        # `experiment` only when the request was routed to an experiment's arm (tests/test_experiment_arms.py)
        assert set(answer["properties"]) == DECISION_FIELDS | {"experiment"}
        assert "experiment" not in answer["required"]
        for status in ("400", "404", "409", "413", "422"):
            error = resolve(operation["responses"][status]["content"]["application/json"]["schema"])
            assert set(error["properties"]) == {"code", "message", "errors"}
    assert doc["paths"]["/health"]["get"]["security"] == [{}]  # public
    assert doc["paths"]["/events"]["post"]["security"] == [{}]  # public: the bureau signs, it has no key
    public = set()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == [{}]:
                public.add(f"{method.upper()} {path}")
            else:  # everything else needs a key
                assert {"bearer", "apiKey"} <= {name for option in operation.get("security", doc["security"])
                                                for name in option}, (method, path)
    assert public == {"GET /health", "GET /ready", "GET /metrics", "POST /events"}
    refs = re.findall(r'"\$ref": ?"#/components/schemas/([^"]+)"', json.dumps(doc))
    assert refs and set(refs) <= set(schemas)


def test_metrics_count_decisions_latency_and_connector_calls(client):
    before = scrape(client)
    answers = [evaluate(client, b2b_order(fresh(profile))) for profile in ("clean", "clean", "negativated", "down")]
    after = scrape(client)
    response = client.get("/metrics")
    assert response.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"
    for outcome in {a["outcome"] for a in answers}:
        grown = metric(after, "regua_decisions_total", policy="credito_b2b", outcome=outcome) - \
            metric(before, "regua_decisions_total", policy="credito_b2b", outcome=outcome)
        assert grown == sum(a["outcome"] == outcome for a in answers), outcome
    count = metric(after, "regua_evaluation_seconds_count", policy="credito_b2b")
    assert count - metric(before, "regua_evaluation_seconds_count", policy="credito_b2b") == len(answers)
    assert metric(after, "regua_evaluation_seconds_bucket", policy="credito_b2b", le="+Inf") == count
    buckets = sorted((float(dict(labels)["le"]), value) for (name, labels), value in after.items()
                     if name == "regua_evaluation_seconds_bucket" and dict(labels)["policy"] == "credito_b2b")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    calls = [(c["connector"], c["status"]) for a in answers for c in a["connector_calls"]]
    assert len({status for _, status in calls}) > 1  # the bureau that is down is counted apart
    for connector, status in set(calls):
        grown = metric(after, "regua_connector_calls_total", connector=connector, status=status) - \
            metric(before, "regua_connector_calls_total", connector=connector, status=status)
        assert grown == calls.count((connector, status))


def test_a_busy_store_is_503_and_a_batch_item_failure_stays_on_its_line(server, client, monkeypatch):
    """SQLite's write lock held past the busy timeout (another worker's long transaction) is
    simulated at the store's edge: a single request answers 503 STORE_BUSY with Retry-After; in a
    batch only that item fails, and the stream goes on."""
    import sqlite3

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(server.services.store, "decision_by_request", locked)
    order = b2b_order(fresh_document())
    response = client.post("/evaluate/credito_b2b", json={"input": order, "request_id": "busy-1"})
    assert_error(response, 503, "STORE_BUSY")
    assert response.headers["retry-after"] == "1"
    lines = ndjson(client.post("/evaluate/batch", json={"policy": "credito_b2b", "items": [
        {"input": order}, {"input": order, "request_id": "busy-2"}, {"input": order}]}))
    assert [sorted(line) for line in lines] == [["decision", "index"], ["error", "index"], ["decision", "index"]]
    assert lines[1]["error"]["code"] == "INTERNAL" and "locked" not in json.dumps(lines[1])

