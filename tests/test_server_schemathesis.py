"""Property-based tests of the HTTP API: no request, however odd, gets a 5xx.

- schemathesis, from the OpenAPI document the running server serves at /schema/openapi.json:
  every operation gets requests that fit the schema and requests that do not;
- Hypothesis strategies aimed where the schema says little: the policy input (a free-form
  object, checked against the policy's own types), raw bytes, /decisions query texts, and
  monitoring alerts signed with the sandbox secret (POST /events reads a raw, signed body).
  Their 4xx answers carry the one error body.

schemathesis' lazy pytest loader (`schemathesis.pytest.from_fixture`) does not work with the
pytest in use (it writes `node._nodeid`), and the server only exists once a fixture started it,
so each test drives one operation's Hypothesis strategy (`APIOperation.as_strategy`) itself.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from server_harness import DECISION_FIELDS, SANDBOX_HEADERS, ThreadedServer, assert_error_body, b2b_order, sandbox_settings

from regua.server.config import SANDBOX_KEY
from regua.server.monitoring import sign

#: Every operation of the API, served on either store (experiments too: on PostgreSQL they live in the
#: shared database, server/experiment_store.py). A new endpoint fails test_the_schema_lists_every_operation
#: until it is here.
OPERATIONS = [
    "POST /evaluate", "POST /evaluate/{policy}", "POST /evaluate/batch",
    "GET /policies", "GET /policies/{name}", "POST /policies", "PUT /policies/{name}",
    "POST /policies/{name}/rollback", "GET /policies/{name}/schema", "GET /policies/{name}/openapi.json",
    "GET /decisions", "GET /decisions/{decision_id}", "GET /decisions/{decision_id}/counterfactuals",
    "GET /health", "GET /ready", "GET /metrics",
    "POST /portfolio/customers", "POST /portfolio/receivables", "POST /portfolio/payments", "POST /portfolio/agreements",
    "GET /portfolio/receivables/{receivable_id}", "POST /collection/run", "POST /collection/deliveries",
    "GET /collection/queue", "GET /kpis",
    "POST /events", "GET /customers/{customer_id}/limit", "PUT /customers/{customer_id}/limit",
    "GET /monitoring/reviews", "POST /monitoring/recheck", "POST /replays", "GET /replays/{replay_id}",
    "DELETE /replays/{replay_id}",
    "GET /experiments", "POST /experiments", "GET /experiments/{name}", "PUT /experiments/{name}/shares",
    "POST /experiments/{name}/pause", "POST /experiments/{name}/resume", "POST /experiments/{name}/stop",
    "POST /experiments/{name}/promote", "GET /experiments/{name}/report",
]
#: Per operation: the whole file takes about 20 s on a 2-core machine. POST /events needs no API key
#: but a signature: schemathesis' unsigned requests all get 401 (test_signed_random_alerts_… signs them).
EXAMPLES = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_backend):
    """On the SQLite store, then as a replica on a PostgreSQL store (module_backend)."""
    with ThreadedServer(sandbox_settings(tmp_path_factory.mktemp("schemathesis"), store=module_backend)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def api_schema(server):
    schema = schemathesis.openapi.from_url(f"{server.url}/schema/openapi.json", wait_for_schema=10)
    schema.config.update(base_url=server.url, headers=SANDBOX_HEADERS)
    schema.validate()
    return schema


def test_the_schema_lists_every_operation(server, api_schema):
    """Every operation, on either backend."""
    found = {f"{result.ok().method.upper()} {result.ok().path}" for result in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_error(server, client, api_schema, label):
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    # Valid requests and invalid ones together: an operation with nothing to invalidate (no parameters,
    # or only a free-form string) simply draws valid ones.
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(case=cases)
    def run(case):
        case.call_and_validate(base_url=server.url, headers=SANDBOX_HEADERS, checks=[not_a_server_error])

    run()


# ---- hand-written strategies: JSON of any shape, requests close to valid ones, raw bytes, query texts ----
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
field_values = json_values | st.integers(min_value=-2**80, max_value=2**80) | st.sampled_from(
    ["", "0", "-1", "1e400", "NaN", "1.000,00", "2015-03-10", "2026-02-30", "0001-01-01", "9999-12-31",
     "11.222.333/0001-81", "12ABC34501DE35", "123.456.789-09", "30 days", "é" * 40])
orders = st.builds(lambda order, changes: {**order, **changes}, st.just(b2b_order()),
                   st.dictionaries(st.sampled_from([*b2b_order(), "dias_atraso_max", "extra"]), field_values,
                                   max_size=3))
requests = st.fixed_dictionaries(
    {"input": orders | json_values},
    optional={"policy": st.sampled_from(["credito_b2b", "credito_b2c"]) | json_values,
              "trace": st.sampled_from(["off", "rules", "full"]) | json_values,
              "dry_run": st.booleans() | json_values, "request_id": st.text(max_size=3) | json_values})
fuzz = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _never_a_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_error_body(response.json())
    else:
        assert set(response.json()) == DECISION_FIELDS


@fuzz
@given(body=requests | json_values)
def test_random_json_never_breaks_the_server(client, body):
    encoded = json.dumps(body).encode()
    _never_a_server_error(client.post("/evaluate", content=encoded, headers={"content-type": "application/json"}))


@fuzz
@given(payload=st.binary(max_size=300) | st.builds(lambda b, n: b[:n], st.just(json.dumps(
    {"input": b2b_order(), "policy": "credito_b2b"}).encode()), st.integers(0, 250)))
def test_random_bytes_never_break_the_server(client, payload):
    _never_a_server_error(client.post("/evaluate", content=payload, headers={"content-type": "application/json"}))


instants = st.one_of(
    st.dates().map(dt.date.isoformat), st.datetimes().map(dt.datetime.isoformat), st.text(max_size=12),
    st.sampled_from(["0001-01-01", "9999-12-31", "9999-12-31T23:59:59.999999-23:00", "0001-01-01T00:00+23:00"]),
    st.builds(lambda t, h: t.replace(tzinfo=dt.timezone(dt.timedelta(hours=h))).isoformat(), st.datetimes(),
              st.integers(-23, 23)))


@fuzz
@given(query=st.fixed_dictionaries({}, optional={
    "from": instants, "to": instants, "before": st.text(max_size=30), "policy": st.text(max_size=12),
    "document": st.text(max_size=20) | st.sampled_from(["11.222.333/0001-81", "12ABC34501DE35", "123.456.789-09"]),
    "limit": st.integers(-5, 1000).map(str) | st.text(max_size=4)}))
def test_random_queries_never_break_the_server(client, query):
    response = client.get("/decisions", params=query)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert_error_body(response.json())
    else:
        assert set(response.json()) == {"items", "next"}


# POST /events: in sandbox mode with no webhook secrets every source signs with the sandbox key.
_alert_ids = itertools.count(1)  # a new id per draw: a replayed id with another body is a 409, tested too
ALERT_KINDS = ["negativation", "protest", "score_change", "inquiry", "registration_change"]
valid_alerts = st.fixed_dictionaries(
    {"id": st.just(0).map(lambda _: f"fuzz-{next(_alert_ids)}"), "kind": st.sampled_from(ALERT_KINDS),
     "bureau": st.just("serasa"),
     "document": st.sampled_from(["11222333000181", "11.222.333/0001-81", "52998224725"]),
     "occurred_at": st.datetimes(timezones=st.timezones()).map(dt.datetime.isoformat)},
    optional={"amount": st.decimals(0, 10**7, places=2).map(str), "creditor": st.text(max_size=10),
              "score_before": st.integers(0, 1000), "score_after": st.integers(0, 1000),
              "registration_status": st.sampled_from(["active", "closed", "suspended", "inapt", "?"]),
              "inquirer": st.text(max_size=10)})
# Valid alerts with up to two fields replaced by odd values (or added), and JSON of any shape.
alert_fields = st.builds(lambda alert, changes: {**alert, **changes}, valid_alerts, st.just({}) | st.dictionaries(
    st.sampled_from(["id", "kind", "document", "occurred_at", "amount", "score_before", "score_after",
                     "registration_status", "version", "extra"]),
    field_values | instants | st.integers(-2**70, 2**70) | st.decimals(allow_nan=True).map(str), max_size=2))


@fuzz
@given(alert=st.one_of(valid_alerts, alert_fields, json_values))
def test_signed_random_alerts_never_break_the_server(client, alert):
    # A customer the alerts can match, so that the monitoring policy runs on the odd values.
    customer = {"id": "fuzz", "document": "11.222.333/0001-81", "name": "Comercial Alfa Ltda", "uf": "RJ",
                "email": "financeiro@alfa.example.com", "manager": "gerente@loja.example.com"}
    assert client.post("/portfolio/customers", json=[customer]).status_code == 200, "the customer was not loaded"
    body = json.dumps(alert).encode()
    response = client.post("/events", content=body, headers={
        "Content-Type": "application/json", "X-Regua-Source": "serasa",
        "X-Regua-Signature": sign(SANDBOX_KEY, body, int(time.time()))})
    assert response.status_code in (200, 409, 422), response.text
    if response.status_code == 200:
        assert response.json()["status"] in ("decided", "unmatched", "invalid_document", "no_policy")
    else:
        assert_error_body(response.json())
