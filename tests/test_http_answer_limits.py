"""Issue 13 item 10: the built-in HTTP connectors (bureau, monitoring feed) read at most
`max_answer_bytes` of an answer (5 MB by default) and give up when the whole answer has not arrived
within `timeout` seconds, even if bytes keep trickling in. A real loopback HTTP server."""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
from loopback import LoopbackHTTP

from regua.engine.connectors import ConnectorError
from regua.plugins.builtin.http_bureau import HTTPJSONBureau
from regua.plugins.builtin.http_client import MAX_ANSWER_BYTES
from regua.plugins.builtin.monitoring_source import HTTPMonitoringSource

CNPJ = "11222333000181"
ANSWER = b'{"registration_status": "active", "score": {"value": 800, "band": "A", "bureau": "x"}, ' \
         b'"restrictions": [], "inquiries": [], "partners": []}'


class Script:
    mode = "ok"
    size = 0
    stop = threading.Event()


def _handler(script: type[Script]):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            try:
                if script.mode == "ok":
                    body = ANSWER if "alerts" not in self.path else b'{"alerts": [], "cursor": null}'
                    self._send(body, len(body))
                elif script.mode == "huge_declared":
                    self._send(b"", script.size, write=False)
                    self.wfile.write(b" " * 1024)
                elif script.mode == "huge_chunked":  # no Content-Length: the size shows only while reading
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    block = b" " * 65536
                    for _ in range(script.size // len(block) + 2):
                        self.wfile.write(block)
                elif script.mode == "gzip_bomb":
                    body = gzip.compress(b" " * script.size)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif script.mode == "trickle":  # a byte every 0.1 s: no single read times out
                    self._send(b"", 10_000, write=False)
                    for _ in range(10_000):
                        if script.stop.is_set():
                            return
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, body: bytes, length: int, write: bool = True):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if write:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def server():
    script = type("S", (Script,), {"stop": threading.Event()})
    with LoopbackHTTP(_handler(script), "fake-limits") as http:
        script.base_url = http.base_url
        try:
            yield script
        finally:
            script.stop.set()


def bureau(server, **overrides) -> HTTPJSONBureau:
    return HTTPJSONBureau(**{"name": "serasa", "base_url": server.base_url, "timeout": 1.0, **overrides})


def test_the_default_cap_is_5_mb_and_configurable():
    assert MAX_ANSWER_BYTES == 5_000_000
    assert HTTPJSONBureau("b", "http://x").max_answer_bytes == 5_000_000
    assert HTTPJSONBureau("b", "http://x", max_answer_bytes=1000).max_answer_bytes == 1000
    with pytest.raises(ValueError, match="max_answer_bytes"):
        HTTPJSONBureau("b", "http://x", max_answer_bytes=0)
    with pytest.raises(ValueError, match="max_answer_bytes"):
        HTTPMonitoringSource("m", "http://x", max_answer_bytes="lots")


def test_an_ordinary_answer_is_read(server):
    assert bureau(server).fetch(CNPJ).score.value == 800


@pytest.mark.parametrize("mode", ["huge_declared", "huge_chunked", "gzip_bomb"])
def test_an_answer_over_the_cap_is_refused(server, mode):
    server.mode, server.size = mode, 300_000
    started = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        bureau(server, max_answer_bytes=100_000, timeout=5).fetch(CNPJ)
    assert caught.value.code == "ANSWER_TOO_LARGE" and CNPJ not in str(caught.value)
    assert time.monotonic() - started < 3


def test_a_trickling_answer_times_out_in_total(server):
    server.mode = "trickle"
    started = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        bureau(server, timeout=0.5).fetch(CNPJ)
    assert caught.value.code == "TIMEOUT"
    assert time.monotonic() - started < 2.0


def test_the_monitoring_feed_is_bounded_too(server):
    feed = HTTPMonitoringSource("serasa", server.base_url, timeout=0.5, max_answer_bytes=100_000)
    assert feed.poll(None).alerts == []
    server.mode, server.size = "huge_chunked", 300_000
    with pytest.raises(ConnectorError) as caught:
        feed.poll(None)
    assert caught.value.code == "ANSWER_TOO_LARGE"
    server.mode = "trickle"
    with pytest.raises(ConnectorError) as caught:
        feed.poll(None)
    assert caught.value.code == "TIMEOUT"
