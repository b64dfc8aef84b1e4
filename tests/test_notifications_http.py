"""The webhook and the SMS/WhatsApp gateway channels against a real HTTP server on 127.0.0.1: signed
JSON, retries, timeouts, idempotency, provider statuses, message length, bad numbers and credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from notification_harness import (
    CNPJ,
    CNPJ_FORMATTED,
    CREDITOR,
    PHONE,
    SECRET,
    Trickle,
    assert_utc,
    gateway,
    http_servers,
    notification,
    webhook,
)

from regua.plugins.builtin.notifications import (
    WebhookChannel,
    verify_signature,
)


@pytest.fixture
def http_server():
    with http_servers() as start:
        yield start


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


def test_webhook_answer_too_large_is_delivered_once_without_reading_its_body(http_server):
    # The receiver accepted (2xx): reading a runaway body would fill memory, and raising would
    # retry, so notify the debtor twice. The body is dropped; the headers still count.
    server = http_server()
    server.answer((200, {}, {"id": "wh-big", "pad": "x" * 5_000}, 0.0))
    channel = webhook(server.url, retries=2, max_answer_bytes=1_000, provider_id_header="")
    receipt = channel.send(notification(channel="webhook"))
    assert receipt.status == "delivered" and receipt.provider_id == ""
    assert len(server.hits) == 1


def test_webhook_answer_trickling_past_the_timeout_is_delivered_once(http_server):
    # httpx's timeout is per read: a byte every 0.1 s never trips it. The whole answer is bounded.
    server = http_server()
    server.answer((200, {}, Trickle(b'{"id": "wh-slow"}' + b" " * 200, every=0.1), 0.0))
    started = time.monotonic()
    receipt = webhook(server.url, timeout=0.5, retries=2).send(notification(channel="webhook"))
    assert time.monotonic() - started < 3
    assert receipt.status == "delivered" and receipt.provider_id == ""
    assert len(server.hits) == 1


def test_gateway_answer_too_large_is_sent_without_a_provider_id(http_server):
    server = http_server()
    server.answer((200, {}, {"id": "sms-1", "status": "queued", "pad": "x" * 5_000}, 0.0))
    channel = gateway(server.url, max_answer_bytes=1_000, provider_id_path="id")
    receipt = channel.send(notification(channel="sms", recipient=PHONE))
    assert receipt.status == "sent" and receipt.provider_id == ""
    assert len(server.hits) == 1


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
