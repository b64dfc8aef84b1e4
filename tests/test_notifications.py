"""Notification channels as a whole: personal data never reaches the logs whatever the channel or
the failure, the masking helpers, and the plugin hook that builds the configured channels.
"""

from __future__ import annotations

import logging

import pytest
from notification_harness import (
    CONTEXT,
    DEBTOR,
    EMAIL,
    PERSONAL,
    PHONE,
    Collector,
    email_channel,
    gateway,
    http_servers,
    notification,
    smtp_servers,
    webhook,
)

from regua.plugins.builtin import notifications as N
from regua.plugins.builtin.notifications import build_channels
from regua.plugins.manager import PluginSettings
from regua.plugins.registry import Registry


@pytest.fixture
def smtp_server():
    with smtp_servers() as start:
        yield start


@pytest.fixture
def http_server():
    with http_servers() as start:
        yield start


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
