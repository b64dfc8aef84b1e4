"""`regua serve`'s uvicorn protocol (server/uvicorn_protocol.py) writes a response's headers and body
in one write, and still answers every other kind of response as uvicorn does: HEAD, streaming,
`100 Continue`, an app failing after it started its answer, pipelined requests, `Connection:
close`. A real uvicorn server on 127.0.0.1 with the protocol, raw sockets as clients; the
connection's transport is wrapped in a spy that counts the writes reaching it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
import uvicorn

from regua.server.uvicorn_protocol import HeaderTimeoutHttpTools

WRITES: list[bytes] = []  # every write that reached a connection's transport, in order


class _CountingTransport:
    def __init__(self, transport):
        self.transport = transport

    def write(self, data: bytes) -> None:
        WRITES.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name):
        return getattr(self.transport, name)


class _SpiedProtocol(HeaderTimeoutHttpTools):
    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(_CountingTransport(transport))


RELEASE = threading.Event()  # lets the streaming answer send its first chunk


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        while not RELEASE.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"chunk", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/fail-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        raise RuntimeError("the app failed after starting its answer")
    answer = b"echo:" + body if body else b"hello " + path.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]})
    if scope["method"] != "HEAD":
        await send({"type": "http.response.body", "body": answer})
    else:
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def port():
    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=_SpiedProtocol, lifespan="off", log_config=None,
                            server_header=False, date_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (server.started and server.servers):
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(10)


def exchange(port: int, request: bytes, until: bytes | None = None, timeout: float = 5.0) -> bytes:
    """Send `request`; read until `until` appears, or until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return read(sock, until)


def read(sock: socket.socket, until: bytes | None = None) -> bytes:
    answer = b""
    while until is None or until not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def test_an_answer_with_a_length_leaves_in_one_write(port):
    WRITES.clear()
    answer = exchange(port, b"GET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\nhello /one")
    assert WRITES == [answer]  # status line, headers and body: one write


def test_every_answer_on_a_kept_alive_connection_is_one_write(port):
    WRITES.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for index in range(3):
            body = b"n=%d" % index
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            answer = read(sock, b"echo:" + body)
            assert answer.endswith(b"\r\n\r\necho:" + body)
    assert len(WRITES) == 3
    assert [w.rsplit(b"\r\n\r\n", 1)[1] for w in WRITES] == [b"echo:n=0", b"echo:n=1", b"echo:n=2"]


def test_a_head_answer_has_its_headers_sent_though_no_body_follows(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"HEAD /one HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = read(sock, b"\r\n\r\n")  # would time out if the headers were still held
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"content-length: 10" in answer.lower()
        sock.sendall(b"GET /two HTTP/1.1\r\nHost: x\r\n\r\n")  # and the connection goes on
        assert read(sock, b"hello /two").endswith(b"hello /two")


def test_a_streaming_answer_sends_its_headers_before_its_first_chunk(port):
    RELEASE.clear()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            head = read(sock, b"\r\n\r\n")  # the app is still waiting to send its first chunk
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
            assert not RELEASE.is_set()
            RELEASE.set()
            rest = read(sock, b"0\r\n\r\n")
            assert b"5\r\nchunk\r\n" in head + rest
    finally:
        RELEASE.set()


def test_100_continue_is_sent_before_the_body_is(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        assert read(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"data")
        assert read(sock, b"echo:data").endswith(b"\r\n\r\necho:data")


def test_an_app_failing_after_it_started_gets_its_headers_sent_and_the_connection_closed(port):
    answer = exchange(port, b"GET /fail-after-start HTTP/1.1\r\nHost: x\r\n\r\n")  # reads until closed
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\n")  # the headers, then the close: no body


def test_pipelined_requests_are_answered_in_order(port):
    requests = (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = exchange(port, requests)
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.index(b"hello /a") < answer.index(b"hello /c")
    assert b"hello /b" not in answer  # HEAD: headers only
    assert answer.endswith(b"hello /c")
