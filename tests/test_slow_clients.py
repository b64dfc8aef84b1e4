"""Slow clients (issue 13, point 11): `regua serve`, on both runners, disconnects a client that
drips its headers or its body, after server.header_timeout / server.body_timeout. Real sockets
against the real command line; the clients here would drip for 20 s, the timeouts are 1 s."""

from __future__ import annotations

import json
import socket
import time

import pytest
from server_harness import ProcessServer

DRIP_FOR = 20.0  # seconds a client keeps dripping unless the server cuts it off (granian used to: at 30 s)


def drip(port: int, head: bytes, dribble: bytes) -> tuple[bytes, float]:
    """Send `head`, then `dribble` one byte every 0.2 s; what the server answered, and when it
    closed the connection (seconds after the head; DRIP_FOR when it never did)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        started, answer = time.monotonic(), b""
        sock.settimeout(0.2)
        for byte in dribble * 10_000:
            if time.monotonic() - started > DRIP_FOR:
                return answer, DRIP_FOR
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # reset: the server closed
                return answer, time.monotonic() - started
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return answer, time.monotonic() - started
            if not chunk:
                return answer, time.monotonic() - started
            answer += chunk
    raise AssertionError("unreachable")


@pytest.fixture(params=["uvicorn", "granian"])
def server(request, tmp_path):
    env = {"REGUA_SERVER__HEADER_TIMEOUT": "1", "REGUA_SERVER__BODY_TIMEOUT": "1"}
    with ProcessServer(tmp_path, "--runner", request.param, env=env) as running:
        yield running


def test_a_client_dripping_its_headers_is_disconnected(server):
    answer, closed_after = drip(server.port, b"POST /evaluate HTTP/1.1\r\nHost: x\r\n", b"X-Slow: aaaaaaaaaa\r\n")
    assert closed_after < DRIP_FOR
    if answer:  # uvicorn says why before closing; granian just closes
        assert answer.startswith(b"HTTP/1.1 408")


def test_a_client_dripping_its_body_gets_408_and_is_disconnected(server):
    body = json.dumps({"policy": "credito_b2b", "input": {}}).encode()
    head = (b"POST /evaluate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer regua-sandbox\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (len(body) * 100))
    answer, closed_after = drip(server.port, head, body)
    assert closed_after < DRIP_FOR
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    payload = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert payload["code"] == "REQUEST_TIMEOUT"
    assert "internal error" not in server.logs()  # an expected refusal, not a crash


def test_a_normal_client_is_not_affected(server):
    with server.client() as client:
        response = client.post("/evaluate/credito_b2b", json={"dry_run": True, "input": {
            "cnpj": "11.222.333/0001-81", "faturamento_anual": 1_000_000, "data_fundacao": "2015-01-01",
            "ticket_medio": 10_000, "valor_pedido": 5_000}})
        assert response.status_code == 200
        time.sleep(1.5)  # idle on a kept-alive connection longer than the header timeout: still fine
        assert client.get("/health").status_code == 200


# ---- server.slow_clients._within: a deadline armed only when receive() has to wait ----


def test_within_answers_at_once_what_needs_no_waiting_without_arming_a_timer():
    import asyncio

    from regua.server.slow_clients import _within

    async def ready():
        return "message"

    async def main():
        loop = asyncio.get_running_loop()
        armed = []
        call_at = loop.call_at
        loop.call_at = lambda *args, **kwargs: armed.append(args) or call_at(*args, **kwargs)
        answered = await _within(ready(), 5.0)
        return answered, armed

    assert asyncio.run(main()) == ("message", [])


def test_within_waits_up_to_its_deadline_then_cancels_what_it_waited_for():
    import asyncio

    from regua.server.slow_clients import _within

    cleaned = []

    async def slow(delay, result):
        try:
            await asyncio.sleep(delay)
            return result
        finally:
            cleaned.append(result)

    async def failing():
        await asyncio.sleep(0.01)
        raise ConnectionResetError("gone")

    async def main():
        assert await _within(slow(0.01, "in time"), 1.0) == "in time"
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await _within(slow(5.0, "too late"), 0.05)
        assert time.monotonic() - started < 1.0
        with pytest.raises(ConnectionResetError):
            await _within(failing(), 1.0)
        # The caller's own cancellation stays a cancellation (not a timeout), and reaches the awaitable.
        waiting = asyncio.ensure_future(_within(slow(5.0, "cancelled"), 10.0))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(main())
    assert cleaned == ["in time", "too late", "cancelled"]


def test_the_body_deadline_counts_from_when_reading_began():
    """The front reads a body's first part itself, then the rest with timed_receive(started=…): the
    deadline is the request's, not a new one; the 408 names the configured timeout."""
    import asyncio
    import time

    from regua.server.errors import ApiError
    from regua.server.slow_clients import timed_receive

    async def ready():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def main(started):
        return await timed_receive(ready, 2.0, started=started)()

    assert asyncio.run(main(time.monotonic() - 1.0))["body"] == b"{}"  # 1 s of 2 left
    with pytest.raises(ApiError) as refused:
        asyncio.run(main(time.monotonic() - 2.5))
    assert refused.value.status == 408 and "more than 2s" in str(refused.value)
