"""Built-in notification channels against real servers on 127.0.0.1: an aiosmtpd SMTP server
(plain, STARTTLS + AUTH, implicit TLS) and http.server webhooks/gateways. Plus the Brazilian
formatting filters (hypothesis) and the CDC art. 42-A guard."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import hmac
import http.server
import json
import logging
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from hypothesis import given
from hypothesis import strategies as st
from stdnum.br import cnpj as stdnum_cnpj
from stdnum.br import cpf as stdnum_cpf

from regua.dsl.values import Percent, normalize_cnpj
from regua.plugins.builtin import notifications as N
from regua.plugins.builtin.notifications import (
    EmailChannel,
    FileOutboxChannel,
    HTTPGatewayChannel,
    IdempotencyStore,
    WebhookChannel,
    build_channels,
    verify_signature,
)
from regua.plugins.contracts import Notification
from regua.plugins.formatting import brl, data, documento, parse_brl, pct
from regua.plugins.manager import PluginSettings
from regua.plugins.registry import Registry

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


@pytest.fixture
def smtp_server():
    controllers = []

    def start(handler=None, **kwargs):
        handler = handler or Collector()
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
        controller.start()
        controllers.append(controller)
        return handler, controller.port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (the venv has no `cryptography`: openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a certificate for the TLS tests")
    folder = tmp_path_factory.mktemp("tls")
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


def test_email_over_plain_smtp_in_portuguese_with_creditor_footer(smtp_server):
    collector, port = smtp_server()
    receipt = email_channel(port).send(notification())
    assert receipt.status == "sent" and receipt.error == ""
    assert receipt.idempotency_key == "contrato-1:d-3"
    assert_utc(receipt.sent_at)
    assert receipt.delivered_at is None  # SMTP cannot prove delivery
    [got] = collector.messages
    message = got["message"]
    assert receipt.provider_id == message["Message-ID"] and receipt.provider_id.endswith("@loja.example>")
    assert got["rcpt_tos"] == [EMAIL] and got["mail_from"] == "cobranca@loja.example"
    assert "R$ 1.234,56" in message["Subject"] and "10/03/2026" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert "R$ 1.234,56" in body and "10/03/2026" in body
        assert CREDITOR in body and CNPJ_FORMATTED in body
        assert "https://pague.example/abc" in body
    assert f"Olá, {DEBTOR}." in text and "lembrete" in text
    assert message["From"].addresses[0].display_name == CREDITOR


@pytest.mark.parametrize("template, phrases", [
    ("cobranca_atraso", ["Não identificamos o pagamento", "5 dias em aberto"]),
    ("aviso_negativacao", ["25/03/2026", "Serasa Experian", "10 dias", "art. 43", "contestá-lo"]),
])
def test_bundled_templates_by_email(smtp_server, template, phrases):
    collector, port = smtp_server()
    assert email_channel(port).send(notification(template=template)).status == "sent"
    text = collector.messages[0]["message"].get_body(("plain",)).get_content()
    for phrase in ["R$ 1.234,56", "10/03/2026", CREDITOR, CNPJ_FORMATTED, *phrases]:
        assert phrase in text


def test_bundled_templates_are_polite():
    """CDC art. 42: no threats, no exposure. A crude word list over every bundled template."""
    banned = ["prisão", "polícia", "processo criminal", "ameaça", "vergonha", "exposição", "última chance",
              "urgente", "caloteiro", "devedor", "seus vizinhos", "empregador"]
    folder = N.TEMPLATES_DIR
    names = sorted(p.name for p in folder.iterdir())
    for base in ("lembrete_vencimento", "cobranca_atraso", "aviso_negativacao"):
        for suffix in (".subject.txt", ".txt", ".html", ".sms.txt"):
            assert base + suffix in names
    for path in folder.iterdir():
        if path.suffix not in (".txt", ".html"):
            continue
        text = path.read_text(encoding="utf-8").lower()
        assert not [word for word in banned if word in text], path.name


def test_email_starttls_with_auth(smtp_server, tls_files, monkeypatch):
    cert, server_context = tls_files
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == b"regua" and auth_data.password == b"senha-forte"
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    collector, port = smtp_server(tls_context=server_context, require_starttls=True, authenticator=authenticator,
                                  auth_require_tls=True)
    monkeypatch.setenv("REGUA_TEST_SMTP_PASSWORD", "senha-forte")
    channel = email_channel(port, starttls=True, ca_file=str(cert), username="regua",
                            password_env="REGUA_TEST_SMTP_PASSWORD")
    receipt = channel.send(notification())
    assert receipt.status == "sent", receipt.error
    assert logins[0] == (b"regua", b"senha-forte")
    [got] = collector.messages
    assert got["tls"] and got["authenticated"]

    wrong = email_channel(port, starttls=True, ca_file=str(cert), username="regua", password="errada")
    receipt = wrong.send(notification(key="outra"))
    assert receipt.status == "failed" and receipt.error.startswith("AUTH_FAILED")
    assert wrong.resilient.attempts == 1  # bad credentials are not retried
    assert len(collector.messages) == 1


def test_email_implicit_tls(smtp_server, tls_files):
    cert, server_context = tls_files
    collector, port = smtp_server(ssl_context=server_context)
    receipt = email_channel(port, ssl=True, ca_file=str(cert)).send(notification())
    assert receipt.status == "sent", receipt.error
    assert len(collector.messages) == 1


def test_email_untrusted_certificate_is_a_clear_failure(smtp_server, tls_files):
    _, server_context = tls_files
    collector, port = smtp_server(tls_context=server_context)
    channel = email_channel(port, starttls=True)  # the system trust store does not know our certificate
    receipt = channel.send(notification())
    assert receipt.status == "failed" and receipt.error.startswith("TLS_ERROR")
    assert collector.messages == [] and channel.resilient.attempts == 1


def test_email_starttls_not_offered(smtp_server):
    collector, port = smtp_server()  # no TLS context: the server does not advertise STARTTLS
    channel = email_channel(port, starttls=True)
    receipt = channel.send(notification())
    assert receipt.status == "failed" and receipt.error.startswith("STARTTLS_UNAVAILABLE")
    assert collector.messages == [] and channel.resilient.attempts == 1


def test_email_auth_without_tls_is_refused_by_configuration():
    with pytest.raises(ValueError, match="in clear"):
        EmailChannel(host="127.0.0.1", from_address="a@b.example", username="u", password="p")
    with pytest.raises(ValueError, match="not both"):
        EmailChannel(host="127.0.0.1", from_address="a@b.example", starttls=True, ssl=True)


def test_email_temporary_failure_is_retried(smtp_server):
    collector, port = smtp_server(Collector(data_answers=["451 4.3.0 Tente novamente mais tarde"]))
    sleeps = []
    channel = email_channel(port, sleep=sleeps.append, backoff=0.01)
    receipt = channel.send(notification())
    assert receipt.status == "sent"
    assert collector.data_calls == 2 and len(collector.messages) == 1 and sleeps == [0.01]
    assert collector.messages[0]["message"]["Message-ID"] == receipt.provider_id


def test_email_rejected_recipient_fails_without_retry_or_leaking_the_address(smtp_server):
    collector, port = smtp_server(Collector(rcpt_answer=f"550 5.1.1 <{EMAIL}>: usuario desconhecido"))
    channel = email_channel(port)
    receipt = channel.send(notification())
    assert receipt.status == "failed" and receipt.error.startswith("RECIPIENT_REFUSED: 550")
    assert EMAIL not in receipt.error and "maria" not in receipt.error
    assert channel.resilient.attempts == 1 and channel.resilient.breaker.failures == 0


def test_email_server_that_never_answers_times_out(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the kernel, but no greeting ever comes
    try:
        channel = email_channel(silent.getsockname()[1], timeout=0.3, retries=1)
        started = time.monotonic()
        receipt = channel.send(notification())
        assert time.monotonic() - started < 5
    finally:
        silent.close()
    assert receipt.status == "failed" and receipt.error.startswith("TIMEOUT")
    assert channel.resilient.attempts == 2 and receipt.sent_at is None


def test_email_attempt_deadline_is_enforced_by_the_runtime():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        channel = email_channel(silent.getsockname()[1], timeout=5, deadline=0.3, retries=0)
        started = time.monotonic()
        receipt = channel.send(notification())
        assert time.monotonic() - started < 2
    finally:
        silent.close()
    assert receipt.status == "failed" and receipt.error.startswith("TIMEOUT")


def test_email_connection_refused_is_a_failed_receipt():
    receipt = email_channel(free_port(), retries=0).send(notification())
    assert receipt.status == "failed" and receipt.error.startswith("CONNECTION")


def test_email_idempotency_same_key_sends_once_even_after_restart(smtp_server, tmp_path):
    collector, port = smtp_server()
    db = str(tmp_path / "receipts.db")
    first = email_channel(port, store=IdempotencyStore(db)).send(notification())
    again = email_channel(port, store=IdempotencyStore(db))  # a new process, the same database
    assert again.send(notification()) == first
    assert again.send(notification(key="contrato-1:d+1")).provider_id != first.provider_id
    assert len(collector.messages) == 2
    # the key is not stored in clear
    raw = (tmp_path / "receipts.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("receipts.db-*"))
    assert b"contrato-1" not in raw


def test_email_idempotency_under_concurrency(smtp_server):
    collector, port = smtp_server()
    channel = email_channel(port)
    barrier = threading.Barrier(4)
    receipts = []

    def send():
        barrier.wait()
        receipts.append(channel.send(notification()))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(collector.messages) == 1
    sent = [r for r in receipts if r.status == "sent"]
    assert sent and all(r == sent[0] for r in sent)
    assert all(r.error.startswith("IN_FLIGHT") for r in receipts if r.status == "failed")


def test_failed_send_can_be_tried_again(smtp_server):
    collector, port = smtp_server(Collector(data_answers=["554 5.7.1 Mensagem recusada"]))
    channel = email_channel(port)
    assert channel.send(notification()).error.startswith("MESSAGE_REFUSED")
    assert channel.send(notification()).status == "sent"  # the failure was not remembered
    assert len(collector.messages) == 1


@pytest.mark.parametrize("changes", [
    {"creditor_name": ""}, {"creditor_name": "   "}, {"creditor_document": ""},
    {"creditor_document": "11222333000182"},  # wrong check digits
    {"creditor_document": CPF},  # a CPF is not a CNPJ
])
def test_cdc_42a_refuses_without_creditor_identification(smtp_server, changes):
    collector, port = smtp_server()
    channel = email_channel(port)
    receipt = channel.send(notification(**changes))
    assert receipt.status == "failed" and receipt.error == "CREDITOR_IDENTIFICATION_MISSING"
    assert receipt.sent_at is None and collector.messages == [] and channel.resilient.attempts == 0


def test_cdc_42a_alphanumeric_cnpj_is_accepted(smtp_server):
    collector, port = smtp_server()
    receipt = email_channel(port).send(notification(creditor_document="12.ABC.345/01DE-35"))
    assert receipt.status == "sent"
    assert "12.ABC.345/01DE-35" in collector.messages[0]["message"].get_body(("plain",)).get_content()


def test_custom_templates_always_identify_the_creditor(smtp_server, tmp_path):
    (tmp_path / "simples.subject.txt").write_text("Aviso de {{ valor|brl }}")
    (tmp_path / "simples.txt").write_text("Valor: {{ valor|brl }}, vencimento {{ vencimento|data }}.")
    (tmp_path / "boas_vindas.subject.txt").write_text("Bem-vindo")
    (tmp_path / "boas_vindas.txt").write_text("Seja bem-vindo!")
    collector, port = smtp_server()
    channel = email_channel(port, templates_dir=str(tmp_path), non_collection_templates=["boas_vindas"])
    assert channel.send(notification(template="simples")).status == "sent"
    text = collector.messages[0]["message"].get_body(("plain",)).get_content()
    assert text.startswith("Valor: R$ 1.234,56, vencimento 10/03/2026.")
    assert CREDITOR in text and CNPJ_FORMATTED in text  # the standard footer was appended
    # a template exempted from the guard goes out without creditor identification
    receipt = channel.send(notification(template="boas_vindas", key="bv", creditor_name="", creditor_document=""))
    assert receipt.status == "sent"
    assert collector.messages[1]["message"].get_body(("plain",)).get_content().strip() == "Seja bem-vindo!"


def test_template_problems_fail_clearly_and_send_nothing(smtp_server):
    collector, port = smtp_server()
    channel = email_channel(port)
    context = {k: v for k, v in CONTEXT.items() if k != "valor"}
    receipt = channel.send(notification(context=context))
    assert receipt.status == "failed" and receipt.error.startswith("TEMPLATE_ERROR") and "valor" in receipt.error
    assert channel.send(notification(template="nao_existe", key="x")).error.startswith("TEMPLATE_NOT_FOUND")
    assert channel.send(notification(template="../segredo", key="y")).error.startswith("TEMPLATE_NOT_FOUND")
    bad = dict(CONTEXT, valor="mil reais")
    receipt = channel.send(notification(context=bad, key="z"))
    assert receipt.error.startswith("TEMPLATE_ERROR") and "mil reais" not in receipt.error
    assert channel.send(notification(recipient="nao-e-email", key="w")).error.startswith("INVALID_RECIPIENT")
    assert channel.send(notification(channel="sms", key="v")).error.startswith("WRONG_CHANNEL")
    assert channel.send(notification(key="")).error == "IDEMPOTENCY_KEY_MISSING"
    assert collector.messages == []


def test_html_is_escaped_and_subject_is_one_line(smtp_server):
    collector, port = smtp_server()
    context = dict(CONTEXT, nome="<script>alert(1)</script>")
    assert email_channel(port).send(notification(context=context)).status == "sent"
    message = collector.messages[0]["message"]
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "\n" not in message["Subject"]


def test_context_from_json_strings_is_formatted(smtp_server):
    """A notification that went through JSON carries money as text and dates as ISO text."""
    collector, port = smtp_server()
    context = dict(CONTEXT, valor="1234.56", vencimento="2026-03-10")
    assert email_channel(port).send(notification(context=context)).status == "sent"
    text = collector.messages[0]["message"].get_body(("plain",)).get_content()
    assert "R$ 1.234,56" in text and "10/03/2026" in text


def test_file_outbox_writes_eml(tmp_path):
    channel = FileOutboxChannel(directory=str(tmp_path / "outbox"))
    receipt = channel.send(notification(template="aviso_negativacao"))
    assert receipt.status == "sent"
    [path] = (tmp_path / "outbox").glob("*.eml")
    assert EMAIL not in path.name and DEBTOR not in path.name
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["Message-ID"] == receipt.provider_id
    assert CNPJ_FORMATTED in message.get_body(("plain",)).get_content()


# ------------------------------------------------------------------ HTTP servers


class HTTPRecorder:
    """A real HTTP server on 127.0.0.1: records every request, answers from a script (the last
    answer repeats). An answer is (status, headers, body, delay_seconds)."""

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
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
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


@pytest.fixture
def http_server():
    servers = []

    def start():
        servers.append(HTTPRecorder())
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def webhook(url, **options):
    options.setdefault("sleep", lambda seconds: None)
    options.setdefault("timeout", 3)
    return WebhookChannel(url=url, secret=SECRET, **options)


def test_webhook_signed_json_delivered(http_server):
    server = http_server()
    server.answer((202, {"X-Request-Id": "wh-123"}, b"", 0.0))
    receipt = webhook(server.url).send(notification(channel="webhook", recipient="cliente-42"))
    assert receipt.status == "delivered" and receipt.provider_id == "wh-123"
    assert_utc(receipt.sent_at) and assert_utc(receipt.delivered_at)
    [hit] = server.hits
    body, headers = hit["body"], hit["headers"]
    # the receiver can check the signature with the shared secret, independently of Régua
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Regua-Signature"] == f"sha256={expected}"
    assert verify_signature(body, headers["X-Regua-Signature"], SECRET)
    assert not verify_signature(body + b" ", headers["X-Regua-Signature"], SECRET)
    assert headers["X-Regua-Idempotency-Key"] == "contrato-1:d-3"
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["template"] == "lembrete_vencimento" and payload["idempotency_key"] == "contrato-1:d-3"
    assert payload["context"]["valor"] == "1234.56" and payload["context"]["vencimento"] == "2026-03-10"
    assert payload["creditor"] == {"name": CREDITOR, "document": CNPJ, "document_formatted": CNPJ_FORMATTED}
    assert payload["version"] == "1" and payload["created_at"].endswith("Z")


def test_webhook_retries_5xx_then_succeeds_with_the_same_signed_body(http_server):
    server = http_server()
    server.answer(500, 503, (200, {}, {"id": "wh-9"}, 0.0))
    sleeps = []
    channel = webhook(server.url, sleep=sleeps.append, backoff=0.05, retries=3)
    receipt = channel.send(notification(channel="webhook"))
    assert receipt.status == "delivered" and receipt.provider_id == "wh-9"
    assert len(server.hits) == 3 and sleeps == [0.05, 0.1]
    assert len({hit["body"] for hit in server.hits}) == 1
    assert len({hit["headers"]["X-Regua-Signature"] for hit in server.hits}) == 1


def test_webhook_gives_up_after_retries(http_server):
    server = http_server()
    server.answer(500)
    receipt = webhook(server.url, retries=2).send(notification(channel="webhook"))
    assert receipt.status == "failed" and receipt.error == "HTTP_ERROR: HTTP 500"
    assert len(server.hits) == 3


def test_webhook_timeout_is_a_failed_receipt(http_server):
    server = http_server()
    server.answer((200, {}, b"", 1.0))
    started = time.monotonic()
    receipt = webhook(server.url, timeout=0.2, retries=1).send(notification(channel="webhook"))
    assert time.monotonic() - started < 3
    assert receipt.status == "failed" and receipt.error.startswith("TIMEOUT")
    assert len(server.hits) == 2


def test_webhook_4xx_is_not_retried(http_server):
    server = http_server()
    server.answer(422)
    channel = webhook(server.url)
    receipt = channel.send(notification(channel="webhook"))
    assert receipt.status == "failed" and receipt.error == "HTTP_ERROR: HTTP 422" and len(server.hits) == 1


def test_webhook_idempotency(http_server):
    server = http_server()
    channel = webhook(server.url)
    first = channel.send(notification(channel="webhook"))
    assert channel.send(notification(channel="webhook")) == first
    assert len(server.hits) == 1


def test_webhook_needs_a_secret(monkeypatch, http_server):
    with pytest.raises(ValueError, match="secret"):
        WebhookChannel(url="http://127.0.0.1:9/x")
    server = http_server()
    channel = WebhookChannel(url=server.url, secret_env="REGUA_TEST_WEBHOOK_SECRET")
    monkeypatch.delenv("REGUA_TEST_WEBHOOK_SECRET", raising=False)
    receipt = channel.send(notification(channel="webhook"))
    assert receipt.error.startswith("CONFIG") and "REGUA_TEST_WEBHOOK_SECRET" in receipt.error
    monkeypatch.setenv("REGUA_TEST_WEBHOOK_SECRET", SECRET)
    assert channel.send(notification(channel="webhook")).status == "delivered"
    assert verify_signature(server.hits[0]["body"], server.hits[0]["headers"]["X-Regua-Signature"], SECRET)


def gateway(url, **options):
    options.setdefault("sleep", lambda seconds: None)
    options.setdefault("timeout", 3)
    return HTTPGatewayChannel(url=url, **options)


def test_sms_gateway(http_server, monkeypatch):
    server = http_server()
    server.answer((201, {}, {"data": {"message_id": "sms-77", "status": "queued"}}, 0.0))
    monkeypatch.setenv("REGUA_TEST_SMS_TOKEN", "tok-123")
    channel = gateway(server.url, channel="sms", auth_value_env="REGUA_TEST_SMS_TOKEN",
                      body={"to": "{recipient}", "message": "{text}", "from": "{sender}", "ref": "{idempotency_key}"},
                      sender="LOJA", provider_id_path="data.message_id", status_path="data.status",
                      delivered_values=["delivered"])
    receipt = channel.send(notification(channel="sms", recipient=PHONE))
    assert receipt.status == "sent" and receipt.provider_id == "sms-77"
    assert_utc(receipt.sent_at) and receipt.delivered_at is None
    [hit] = server.hits
    assert hit["headers"]["Authorization"] == "tok-123"
    sent = json.loads(hit["body"])
    assert sent["to"] == "+5511987654321" and sent["from"] == "LOJA" and sent["ref"] == "contrato-1:d-3"
    text = sent["message"]
    assert "R$ 1.234,56" in text and "10/03/2026" in text and CREDITOR in text and CNPJ_FORMATTED in text
    assert "\n" not in text and len(text) <= 459


def test_whatsapp_gateway_delivered_status(http_server):
    server = http_server()
    server.answer((200, {}, {"messages": [{"id": "wamid.ABC"}], "status": "DELIVERED"}, 0.0))
    channel = gateway(server.url, channel="whatsapp", body={"messaging_product": "whatsapp", "to": "{recipient}",
                                                            "text": {"body": "{text}"}},
                      recipient_format="digits", provider_id_path="messages.0.id", status_path="status",
                      delivered_values=["delivered"])
    assert channel.name == "whatsapp"
    receipt = channel.send(notification(channel="whatsapp", recipient="+55 11 98765-4321",
                                        template="aviso_negativacao"))
    assert receipt.status == "delivered" and receipt.provider_id == "wamid.ABC"
    assert_utc(receipt.delivered_at)
    sent = json.loads(server.hits[0]["body"])
    assert sent["to"] == "5511987654321"
    for phrase in ("R$ 1.234,56", "10/03/2026", "25/03/2026", "Serasa Experian", CREDITOR, CNPJ_FORMATTED):
        assert phrase in sent["text"]["body"]


def test_gateway_provider_failure_status(http_server):
    server = http_server()
    server.answer((200, {}, {"id": "x1", "status": "rejected"}, 0.0))
    channel = gateway(server.url, status_path="status", failed_values=["rejected", "undeliverable"])
    receipt = channel.send(notification(channel="sms", recipient=PHONE))
    assert receipt.status == "failed" and receipt.error == "PROVIDER_FAILED: rejected"


def test_sms_too_long_fails_clearly_or_truncates_keeping_the_footer(http_server):
    server = http_server()
    strict = gateway(server.url, max_length=120)
    receipt = strict.send(notification(channel="sms", recipient=PHONE, template="aviso_negativacao"))
    assert receipt.status == "failed" and receipt.error.startswith("MESSAGE_TOO_LONG")
    assert server.hits == []
    lenient = gateway(server.url, max_length=120, on_too_long="truncate", ascii_only=True)
    assert lenient.send(notification(channel="sms", recipient=PHONE, template="aviso_negativacao")).status == "sent"
    text = json.loads(server.hits[0]["body"])["text"]
    assert len(text) <= 120 and text.isascii()
    assert text.endswith(f"Loja Exemplo Comercio Ltda, CNPJ {CNPJ_FORMATTED}") and "..." in text
    assert text.startswith("Aviso: debito de R$ 1.234,56")


def test_gateway_retries_then_succeeds_and_sends_once_per_key(http_server):
    server = http_server()
    server.answer(502, (200, {"X-Message-Id": "g-1"}, b"ok", 0.0))
    channel = gateway(server.url, provider_id_header="X-Message-Id", body_format="form",
                      body={"numero": "{recipient}", "mensagem": "{text}"})
    first = channel.send(notification(channel="sms", recipient=PHONE))
    assert first.status == "sent" and first.provider_id == "g-1"
    assert channel.send(notification(channel="sms", recipient=PHONE)) == first
    assert len(server.hits) == 2  # one retry, no second send
    assert server.hits[1]["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert b"numero=%2B5511987654321" in server.hits[1]["body"]


def test_gateway_timeout_and_bad_numbers(http_server):
    server = http_server()
    server.answer((200, {}, b"", 1.0))
    channel = gateway(server.url, timeout=0.2, retries=0)
    receipt = channel.send(notification(channel="sms", recipient=PHONE))
    assert receipt.status == "failed" and receipt.error.startswith("TIMEOUT") and len(server.hits) == 1
    receipt = channel.send(notification(channel="sms", recipient="1234", key="outra"))
    assert receipt.error.startswith("INVALID_RECIPIENT") and len(server.hits) == 1


def test_gateway_bad_credentials_open_the_circuit(http_server):
    server = http_server()
    server.answer(401)
    channel = gateway(server.url, failure_threshold=2, reset_after=60)
    for key in ("a", "b"):
        assert channel.send(notification(channel="sms", recipient=PHONE, key=key)).error.startswith("HTTP_ERROR")
    receipt = channel.send(notification(channel="sms", recipient=PHONE, key="c"))
    assert receipt.error.startswith("CIRCUIT_OPEN") and len(server.hits) == 2


def test_personal_data_never_reaches_the_logs(caplog, smtp_server, http_server):
    caplog.set_level(logging.DEBUG)
    collector, port = smtp_server(Collector(rcpt_answer=f"550 <{EMAIL}> recusado"))
    ok_collector, ok_port = smtp_server()
    server = http_server()
    server.answer(500, (200, {}, {"id": "p-1"}, 0.0))
    receipts = [
        email_channel(ok_port).send(notification()),
        email_channel(ok_port).send(notification()),  # replay
        email_channel(port).send(notification()),
        email_channel(ok_port).send(notification(creditor_name="", key="r")),
        email_channel(ok_port).send(notification(context=dict(CONTEXT, valor=DEBTOR), key="t")),
        webhook(server.url).send(notification(channel="webhook", recipient=EMAIL)),
        gateway(server.url).send(notification(channel="sms", recipient=PHONE, key="s")),
        gateway(server.url).send(notification(channel="sms", recipient="11 9876", key="u")),
    ]
    assert [r.status for r in receipts] == ["sent", "sent", "failed", "failed", "failed", "delivered", "sent",
                                            "failed"]
    assert caplog.records, "the channels log what they do"
    # everything our process logs (regua.*, httpx, httpcore…); mail.log is the test SMTP server's own logger
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    logged = "\n".join(caplog.handler.format(r) for r in ours) + "\n".join(r.error for r in receipts)
    for secret in PERSONAL:
        assert secret not in logged
    assert "m***@***.com" in caplog.text


def test_masking_helpers():
    assert N.mask_recipient(EMAIL) == "m***@***.com"
    assert N.mask_recipient("+5511987654321") == "************21"
    scrubbed = N.scrub(f"550 <{EMAIL}> CPF 529.982.247-25 tel +55 11 98765-4321")
    assert EMAIL not in scrubbed and "529.982.247" not in scrubbed and "98765" not in scrubbed


# ------------------------------------------------------------------ the hook


def test_hook_builds_configured_channels_only(tmp_path):
    config = {"notifications": {
        "idempotency_db": str(tmp_path / "n.db"),
        "email": {"host": "127.0.0.1", "port": 2525, "from_address": "cobranca@loja.example"},
        "webhook": {"url": "http://127.0.0.1:9/hook", "secret_env": "X"},
        "sms": {"url": "http://127.0.0.1:9/sms"},
        "whatsapp": {"url": "http://127.0.0.1:9/wa", "max_length": 1000},
        "sms_reserva": {"type": "sms", "url": "http://127.0.0.1:9/sms2", "enabled": False},
        "outbox": {"directory": str(tmp_path / "outbox")},
    }}
    registry = Registry.load(PluginSettings(allow=["notifications"], config=config))
    channels = registry.channels
    assert sorted(channels) == ["email", "outbox", "sms", "webhook", "whatsapp"]
    assert {name: c.channel for name, c in channels.items()} == {
        "email": "email", "outbox": "email", "sms": "sms", "webhook": "webhook", "whatsapp": "whatsapp"}
    assert channels["whatsapp"].max_length == 1000 and channels["sms"].max_length == 459
    assert channels["email"].store is channels["sms"].store  # one idempotency database
    assert Registry.load(PluginSettings(allow=["notifications"], config={})).channels == {}
    assert N.regua_notification_channels({"notifications": {"email": {}, "sms": None}}) == []


def test_hook_reports_configuration_mistakes():
    with pytest.raises(ValueError, match="notifications.email"):
        build_channels({"email": {"from_address": "a@b.example", "startls": True}})
    with pytest.raises(ValueError, match="unknown channel type"):
        build_channels({"telegrama": {"url": "http://127.0.0.1:9"}})
    with pytest.raises(ValueError, match="https?"):
        build_channels({"sms": {"url": "ftp://x"}})


# ------------------------------------------------------------------ formatting filters

money = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, min_value=-10**15, max_value=10**15),
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10**9, max_value=10**9),
    st.integers(min_value=-10**20, max_value=10**20).map(Decimal),
    st.builds(lambda d, e: d.scaleb(e), st.decimals(allow_nan=False, allow_infinity=False, min_value=-999,
                                                    max_value=999), st.integers(-30, 30)),
)


@given(money)
def test_brl_round_trip(value):
    text = brl(value)
    assert re.fullmatch(r"-?R\$ \d{1,3}(\.\d{3})*,\d{2}", text)
    with localcontext() as ctx:
        ctx.prec = 100
        expected = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert parse_brl(text) == expected
    assert text.startswith("-") == (expected < 0)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_brl_floats_go_through_their_repr(value):
    assert brl(value) == brl(Decimal(repr(value)))


def test_brl_examples():
    assert brl(Decimal("1234.56")) == "R$ 1.234,56"
    assert brl(Decimal("-1234.56")) == "-R$ 1.234,56"
    assert brl(Decimal("0.005")) == "R$ 0,01" and brl(Decimal("-0.005")) == "-R$ 0,01"  # half-up
    assert brl(2.675) == "R$ 2,68"  # exact: not the binary float 2.67499999…
    assert brl(Decimal("-0.004")) == "R$ 0,00"
    assert brl(1000000) == "R$ 1.000.000,00" and brl("12.3") == "R$ 12,30"
    for bad in (None, True, float("nan"), "1.234,56", Decimal("Infinity"), [1]):
        with pytest.raises((TypeError, ValueError)) as raised:
            brl(bad)
        assert "1.234,56" not in str(raised.value).split("(")[0]


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(9999, 12, 31)))
def test_data_round_trip(day):
    text = data(day)
    assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", text)
    assert dt.datetime.strptime(text, "%d/%m/%Y").date() == day
    assert data(day.isoformat()) == text


def test_data_examples():
    assert data(dt.date(2026, 3, 1)) == "01/03/2026"
    assert data(dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.timezone.utc)) == "01/03/2026"  # Brasília time
    assert data(dt.datetime(2026, 3, 2, 1, 30)) == "02/03/2026"
    assert data("2026-03-02T12:00:00Z") == "02/03/2026"
    with pytest.raises(ValueError):
        data("02/03/2026")


ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@given(st.text(alphabet=ALNUM, min_size=12, max_size=12))
def test_documento_cnpj_round_trip(base):
    compact = base + stdnum_cnpj.calc_check_digits(base)
    formatted = documento(compact)
    assert re.fullmatch(r"[0-9A-Z]{2}\.[0-9A-Z]{3}\.[0-9A-Z]{3}/[0-9A-Z]{4}-\d{2}", formatted)
    assert documento(formatted) == formatted
    if len(set(compact)) > 1:
        assert normalize_cnpj(formatted) == compact


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_documento_cpf(base):
    compact = base + stdnum_cpf._calc_check_digits(base)
    formatted = documento(compact)
    assert re.fullmatch(r"\d{3}\.\d{3}\.\d{3}-\d{2}", formatted) and formatted.replace(".", "").replace("-", "") \
        == compact


def test_documento_examples():
    assert documento("11222333000181") == "11.222.333/0001-81"
    assert documento("12ABC34501DE35") == "12.ABC.345/01DE-35"
    assert documento("52998224725") == "529.982.247-25"
    assert documento("abc") == "abc"


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10**6, max_value=10**6))
def test_pct_round_trip(value):
    text = pct(value)
    assert text.endswith("%")
    assert Decimal(text[:-1].replace(".", "").replace(",", ".")) == value
    assert pct(Percent(value / 100)) == text


def test_pct_examples():
    assert pct(10.5) == "10,5%" and pct(Decimal("10.50")) == "10,5%" and pct(10) == "10%"
    assert pct(Percent("0.105")) == "10,5%"  # a policy's 10,5% is the fraction 0.105
    assert pct(Decimal("0.125")) == "0,13%" and pct(12.3456, 3) == "12,346%" and pct(1500) == "1.500%"
    assert pct(Decimal("-2.5")) == "-2,5%"
