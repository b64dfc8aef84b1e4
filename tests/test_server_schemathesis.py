"""Property-based tests of the HTTP API: no request, however odd, gets a 5xx.

- schemathesis, from the OpenAPI document the running server serves at /schema/openapi.json:
  every operation gets requests that fit the schema and requests that do not;
- Hypothesis strategies aimed where the schema says little: the policy input (a free-form
  object, checked against the policy's own types), raw bytes, and /decisions query texts.
  Their 4xx answers carry the one error body.

schemathesis' lazy pytest loader (`schemathesis.pytest.from_fixture`) does not work with the
pytest in use (it writes `node._nodeid`), and the server only exists once a fixture started it,
so each test drives one operation's Hypothesis strategy (`APIOperation.as_strategy`) itself.
"""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from server_harness import (DECISION_FIELDS, SANDBOX_HEADERS, ThreadedServer, assert_error_body, b2b_order,
                            sandbox_settings)

#: Every operation of the API. A new endpoint fails test_the_schema_lists_every_operation until it is here.
OPERATIONS = [
    "POST /evaluate", "POST /evaluate/{policy}", "POST /evaluate/batch",
    "GET /policies", "GET /policies/{name}", "POST /policies", "PUT /policies/{name}",
    "POST /policies/{name}/rollback",
    "GET /decisions", "GET /decisions/{decision_id}",
    "GET /health", "GET /ready", "GET /metrics",
    "POST /portfolio/customers", "POST /portfolio/receivables", "POST /portfolio/payments", "POST /portfolio/agreements",
    "GET /portfolio/receivables/{receivable_id}", "POST /collection/run", "POST /collection/deliveries",
    "GET /collection/queue", "GET /kpis",
]
#: Per operation: the whole file takes about 20 s on a 2-core machine.
EXAMPLES = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ThreadedServer(sandbox_settings(tmp_path_factory.mktemp("schemathesis"))) as srv:
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


def test_the_schema_lists_every_operation(api_schema):
    found = {f"{result.ok().method.upper()} {result.ok().path}" for result in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_error(server, api_schema, label):
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
