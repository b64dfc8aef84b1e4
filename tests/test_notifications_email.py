"""The e-mail channel against a real aiosmtpd server on 127.0.0.1 (plain, STARTTLS + AUTH, implicit TLS):
messages in Portuguese with the creditor identified (CDC art. 42-A), bundled and custom templates,
failures, timeouts and retries, idempotency across restarts and threads, and the file outbox.
"""

from __future__ import annotations

import email
import email.policy
import socket
import sqlite3
import threading
import time

import pytest
from aiosmtpd.smtp import AuthResult
from notification_harness import (
    CNPJ_FORMATTED,
    CONTEXT,
    CPF,
    CREDITOR,
    DEBTOR,
    EMAIL,
    Collector,
    assert_utc,
    email_channel,
    free_port,
    make_tls_files,
    notification,
    smtp_servers,
)

from regua.plugins.builtin import notifications as N
from regua.plugins.builtin.notifications import (
    EmailChannel,
    FileOutboxChannel,
    IdempotencyStore,
)


@pytest.fixture
def smtp_server():
    with smtp_servers() as start:
        yield start


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


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


def _open_store_at_once(path, barrier, errors):
    barrier.wait()
    try:
        IdempotencyStore(path).db.execute("select count(*) from notification_receipts").fetchone()
    except sqlite3.Error as error:  # reported to the test, which names it
        errors.put(f"{type(error).__name__}: {error}")


def test_processes_opening_a_new_receipts_file_at_once_all_succeed(tmp_path):
    # Two `regua collect` runs start together on a fresh receipts file: the switch to WAL and the
    # table's creation raced ("database is locked" without waiting). Real processes, started together.
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for attempt in range(3):
        path = str(tmp_path / f"receipts-{attempt}.db")
        barrier, errors = context.Barrier(8), context.Queue()
        processes = [context.Process(target=_open_store_at_once, args=(path, barrier, errors)) for _ in range(8)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        assert [process.exitcode for process in processes] == [0] * 8
        assert errors.empty(), errors.get()
