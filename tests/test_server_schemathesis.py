"""Property-based tests of the HTTP API from its own OpenAPI document (schemathesis).

The schema is the one the running server serves at /schema/openapi.json; every operation in it
gets requests that fit the schema and requests that do not, and none may answer 5xx.

schemathesis' lazy pytest loader (`schemathesis.pytest.from_fixture`) does not work with the
pytest in use (it writes `node._nodeid`), and the server only exists once a fixture started it,
so each test drives one operation's Hypothesis strategy (`APIOperation.as_strategy`) itself.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from server_harness import SANDBOX_HEADERS, ThreadedServer, sandbox_settings

#: Every operation of the API. A new endpoint fails test_the_schema_lists_every_operation until it is here.
OPERATIONS = [
    "POST /evaluate", "POST /evaluate/{policy}", "POST /evaluate/batch",
    "GET /policies", "GET /policies/{name}", "POST /policies", "PUT /policies/{name}",
    "POST /policies/{name}/rollback",
    "GET /decisions", "GET /decisions/{decision_id}",
    "GET /health", "GET /ready", "GET /metrics",
]
#: Per operation; about 40 s for the whole file on a small machine.
EXAMPLES = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ThreadedServer(sandbox_settings(tmp_path_factory.mktemp("schemathesis"))) as srv:
        yield srv


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
