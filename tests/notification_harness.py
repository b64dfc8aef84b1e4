"""Real servers on 127.0.0.1 for the notification channel tests (tests/test_notifications*.py): an
aiosmtpd SMTP server (plain, STARTTLS + AUTH, implicit TLS) and an http.server that records requests
and answers from a script; the channels pointed at them, and the people and creditor of the examples.

Each test file wraps `smtp_servers()`, `http_servers()` and `make_tls_files()` in the fixtures it needs."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import email
import email.policy
import http.server
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from decimal import Decimal

import pytest
from aiosmtpd.controller import Controller

from regua.plugins.builtin.notifications import (
    EmailChannel,
    HTTPGatewayChannel,
    WebhookChannel,
)
from regua.plugins.contracts import Notification

CREDITOR = "Loja Exemplo Comércio Ltda"
CNPJ = "11222333000181"
CNPJ_FORMATTED = "11.222.333/0001-81"
EMAIL = "maria.souza@example.com"
PHONE = "(11) 98765-4321"
DEBTOR = "Maria Aparecida Souza"
CPF = "52998224725"
SECRET = "s3gr3d0-compartilhado"
CONTEXT = {"nome": DEBTOR, "cpf": CPF, "valor": Decimal("1234.56"), "vencimento": dt.date(2026, 3, 10),
           "prazo": dt.date(2026, 3, 25), "bureau": "Serasa Experian", "dias_atraso": 5,
           "link_pagamento": "https://pague.example/abc"}
PERSONAL = [EMAIL, "98765-4321", "987654321", DEBTOR, CPF, "529.982.247-25"]


def notification(channel="email", recipient=EMAIL, template="lembrete_vencimento", key="contrato-1:d-3", **changes):
    values = dict(channel=channel, recipient=recipient, template=template, context=dict(CONTEXT),
                  idempotency_key=key, creditor_name=CREDITOR, creditor_document=CNPJ)
    values.update(changes)
    return Notification(**values)


def assert_utc(moment):
    assert moment is not None and moment.tzinfo is not None and moment.utcoffset() == dt.timedelta(0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------ SMTP server


class Collector:
    """aiosmtpd handler: keeps every accepted message; optional scripted answers."""

    def __init__(self, data_answers=(), rcpt_answer=None):
        self.messages = []
        self.data_calls = 0
        self.data_answers = list(data_answers)
        self.rcpt_answer = rcpt_answer

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_answer:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_calls += 1
        if self.data_answers:
            answer = self.data_answers.pop(0)
            if answer:
                return answer
        self.messages.append({
            "mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
            "message": email.message_from_bytes(envelope.content, policy=email.policy.default),
            "tls": session.ssl is not None, "authenticated": session.authenticated})
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def smtp_servers():
    """`start(handler=None, **controller_options)` -> (handler, port): aiosmtpd servers, stopped on exit."""
    controllers = []

    def start(handler=None, **kwargs):
        handler = handler or Collector()
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
        controller.start()
        controllers.append(controller)
        return handler, controller.port

    try:
        yield start
    finally:
        for controller in controllers:
            controller.stop()


def make_tls_files(folder):
    """A self-signed certificate for 127.0.0.1 (the venv has no `cryptography`: openssl CLI):
    (certificate path, server SSL context)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a certificate for the TLS tests")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


def email_channel(port, **options):
    options.setdefault("sleep", lambda seconds: None)
    options.setdefault("timeout", 3)
    return EmailChannel(host="127.0.0.1", port=port, from_address="cobranca@loja.example", **options)


# ------------------------------------------------------------------ HTTP servers


@dataclasses.dataclass
class Trickle:
    """An answer body sent `chunk` bytes at a time, `every` seconds apart (a slow or stuck provider)."""

    body: bytes
    chunk: int = 1
    every: float = 0.1


class HTTPRecorder:
    """A real HTTP server on 127.0.0.1: records every request, answers from a script (the last
    answer repeats). An answer is (status, headers, body, delay_seconds); body may be a Trickle."""

    def __init__(self):
        self.hits = []
        self.answers = [(200, {}, b"", 0.0)]
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                recorder.hits.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                      "body": body})
                status, headers, payload, delay = recorder.answers[min(len(recorder.hits) - 1,
                                                                       len(recorder.answers) - 1)]
                if delay:
                    time.sleep(delay)
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                    headers = {"Content-Type": "application/json", **headers}
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    trickle = payload if isinstance(payload, Trickle) else None
                    payload = trickle.body if trickle else payload
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if trickle:
                        for start in range(0, len(payload), trickle.chunk):
                            self.wfile.write(payload[start:start + trickle.chunk])
                            self.wfile.flush()
                            time.sleep(trickle.every)
                    else:
                        self.wfile.write(payload)
                except OSError:  # the client gave up (timeout tests)
                    pass

            do_PUT = do_POST

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def answer(self, *answers):
        self.answers = [a if isinstance(a, tuple) else (a, {}, b"", 0.0) for a in answers]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def http_servers():
    """`start()` -> a new HTTPRecorder; every one is closed on exit."""
    servers = []

    def start():
        servers.append(HTTPRecorder())
        return servers[-1]

    try:
        yield start
    finally:
        for server in servers:
            server.close()


def webhook(url, **options):
    options.setdefault("sleep", lambda seconds: None)
    options.setdefault("timeout", 3)
    return WebhookChannel(url=url, secret=SECRET, **options)


def gateway(url, **options):
    options.setdefault("sleep", lambda seconds: None)
    options.setdefault("timeout", 3)
    return HTTPGatewayChannel(url=url, **options)
