"""POST /evaluate answered in front of Litestar (server/lean_evaluate.py, EvaluateFront): the common
case skips Litestar's layers, and everything else still gets Litestar's answer. The real app on a
real uvicorn over a socket; a spy on the front's way into Litestar tells which requests took it."""

from __future__ import annotations

import json
import socket
import time

import pytest
from server_harness import (
    ThreadedServer,
    assert_error,
    b2b_order,
    fresh_document,
    metric,
    sandbox_settings,
    scrape,
    without_durations,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ThreadedServer(sandbox_settings(tmp_path_factory.mktemp("front"))) as srv:
        yield srv


class Seen(list):
    front = None


@pytest.fixture
def to_litestar(server):
    """The requests (method, path) the front handed to Litestar during the test."""
    front = server.app.front
    seen = Seen()
    seen.front = front
    litestar = front.litestar

    async def spy(scope, receive, send):
        seen.append((scope["method"], scope["path"]))
        await litestar(scope, receive, send)

    front.litestar = spy
    yield seen
    front.litestar = litestar


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c


def comparable(body: dict) -> dict:
    body = dict(body)
    body.pop("duration_ms")
    body["connector_calls"] = without_durations(body["connector_calls"])
    return body


def test_a_well_formed_request_is_answered_in_front_the_same_as_by_litestar(server, client, to_litestar):
    payload = json.dumps({"input": b2b_order(fresh_document()), "dry_run": True, "trace": "rules"}).encode()
    json_type = {"content-type": "application/json"}
    front = client.post("/evaluate/credito_b2b", content=payload, headers=json_type)
    in_pieces = client.post("/evaluate/credito_b2b", content=(payload[i:i + 50] for i in range(0, len(payload), 50)),
                            headers=json_type)
    assert to_litestar == []
    server.app.front = None  # the app without its front: Litestar's layers and handler middleware
    try:
        litestar = client.post("/evaluate/credito_b2b", content=payload, headers=json_type)
    finally:
        server.app.front = to_litestar.front
    assert front.status_code == in_pieces.status_code == litestar.status_code == 200, (front.text, litestar.text)
    assert front.headers["content-type"] == litestar.headers["content-type"] == "application/json"
    assert comparable(front.json()) == comparable(in_pieces.json()) == comparable(litestar.json())


def test_the_front_records_the_key_the_route_and_the_timing(server, client, to_litestar):
    before = scrape(client)
    response = client.post("/evaluate", json={"policy": "credito_b2b", "input": b2b_order(fresh_document())})
    assert response.status_code == 200 and to_litestar == []
    decision_id = response.json()["decision_id"]
    assert server.services.decision_log.wait_flushed()
    stored = server.services.store.decision(decision_id)
    assert stored["api_key"] == "sandbox"  # the key's name, as the key middleware would have set it
    after = scrape(client)
    timed = "regua_http_request_seconds_count"
    labels = {"method": "POST", "route": "/evaluate", "status": "200"}
    assert metric(after, timed, **labels) == metric(before, timed, **labels) + 1


@pytest.mark.parametrize("path, body, status, code", [
    ("/evaluate/nao_existe", {"input": {}}, 404, "UNKNOWN_POLICY"),
    ("/evaluate/credito_b2b", {"input": {"cnpj": "11.222.333/0001-81"}}, 422, "INVALID_INPUT"),
    ("/evaluate/credito_b2b", {"policy": "credito_b2c", "input": {}}, 400, "POLICY_MISMATCH"),
])
def test_an_error_in_front_gets_the_error_body_the_handlers_give_it(client, to_litestar, path, body, status, code):
    before = scrape(client)
    response = client.post(path, json=body)
    assert to_litestar == []  # answered in front, by the route's exception handlers
    assert_error(response, status, code)
    after = scrape(client)
    assert metric(after, "regua_request_errors_total", code=code) == \
        metric(before, "regua_request_errors_total", code=code) + 1
    labels = {"method": "POST", "route": "/evaluate/{policy}", "status": str(status)}
    assert metric(after, "regua_http_request_seconds_count", **labels) == \
        metric(before, "regua_http_request_seconds_count", **labels) + 1


def test_an_unexpected_failure_in_front_is_a_500_with_the_error_body_and_no_traceback(server, client, to_litestar,
                                                                                     monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("CNPJ 11.222.333/0001-81 broke something")

    monkeypatch.setattr(server.services.evaluator, "evaluate", broken)
    response = client.post("/evaluate/credito_b2b", json={"input": {}})
    assert to_litestar == []
    body = assert_error(response, 500, "INTERNAL")
    assert "11.222.333" not in response.text and "Traceback" not in response.text, body


@pytest.mark.parametrize("headers, status, code", [
    ({"Content-Type": "application/json"}, 401, "UNAUTHORIZED"),
    ({"Content-Type": "application/json", "Authorization": "Bearer not-a-key"}, 401, "UNAUTHORIZED"),
    ({"Content-Type": "text/plain", "Authorization": "Bearer regua-sandbox"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
])
def test_what_the_front_is_unsure_of_goes_to_litestar(server, to_litestar, headers, status, code):
    # (A key without the evaluate scope: 403 from Litestar's key middleware, tests/test_server_auth.py.)
    with server.client(headers={}) as client:
        response = client.post("/evaluate/credito_b2b", content=b'{"input": {}}', headers=headers)
    assert_error(response, status, code)
    assert to_litestar == [("POST", "/evaluate/credito_b2b")]


def test_other_routes_and_malformed_bodies_go_to_litestar(client, to_litestar):
    assert_error(client.post("/evaluate/credito_b2b", content=b'{"input": ', headers={"content-type": "application/json"}),
                 400, "MALFORMED_JSON")
    assert client.post("/evaluate/batch", json={"policy": "credito_b2b", "items": []}).status_code == 200
    assert_error(client.post("/nowhere", json={}), 404)
    assert to_litestar == [("POST", "/evaluate/credito_b2b"), ("POST", "/evaluate/batch"), ("POST", "/nowhere")]


def raw_post(port: int, path: str, body: bytes, pause: float, parts: int = 1) -> bytes:
    """POST over a raw socket, the body sent `pause` seconds after the headers, in `parts` parts
    `pause` seconds apart."""
    head = (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer regua-sandbox\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (path.encode(), len(body)))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        size = -(-len(body) // parts)
        for start in range(0, len(body), size):
            time.sleep(pause)
            sock.sendall(body[start:start + size])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_body_sent_after_the_headers_is_waited_for(server, to_litestar):
    body = json.dumps({"input": b2b_order(fresh_document()), "dry_run": True}).encode()
    answer = raw_post(server.port, "/evaluate/credito_b2b", body, pause=0.3)
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:300]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["outcome"]
    assert to_litestar == []  # (a body that never comes: 408 from the front, tests/test_slow_clients.py)


def test_a_body_that_comes_in_parts_is_read_to_its_end(server, to_litestar):
    body = json.dumps({"input": b2b_order(fresh_document()), "dry_run": True}).encode()
    answer = raw_post(server.port, "/evaluate/credito_b2b", body, pause=0.15, parts=3)
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:300]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["outcome"]
    assert to_litestar == []


def test_an_invalid_host_is_refused_as_litestar_refuses_it(server, to_litestar):
    body = b'{"input": {}}'
    request = (b"POST /evaluate/credito_b2b HTTP/1.1\r\nHost: bad host\r\nAuthorization: Bearer regua-sandbox\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert to_litestar == [("POST", "/evaluate/credito_b2b")]


def test_header_verdicts_are_remembered_value_by_value_and_bounded(monkeypatch):
    """The front remembers each Content-Type and Host value it judged: the same verdict the next
    time, another value judged afresh, and the memory cleared when full."""
    from regua.server import lean_evaluate

    monkeypatch.setattr(lean_evaluate, "_JSON_TYPES", {})
    monkeypatch.setattr(lean_evaluate, "_VALID_HOSTS", {})
    monkeypatch.setattr(lean_evaluate, "_JUDGED_MAX", 3)

    def acceptable(content_type: bytes, host: bytes = b"127.0.0.1:8000") -> bool:
        headers = [(b"host", host), (b"content-type", content_type), (b"content-length", b"2")]
        return lean_evaluate._acceptable_headers(headers, 1000, check_host=True)

    for _ in range(2):
        assert acceptable(b"application/json") and acceptable(b"application/problem+json; charset=utf-8")
        assert not acceptable(b"text/plain") and not acceptable(b"application/json", host=b"bad host")
    assert len(lean_evaluate._JSON_TYPES) <= 3 and len(lean_evaluate._VALID_HOSTS) <= 3
    assert not acceptable(b"application/xml") and acceptable(b"application/json")
