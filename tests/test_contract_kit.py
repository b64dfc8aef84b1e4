"""The contract test kit (plugins.testing) applied to every built-in implementation, and proof
that it fails — with a message naming the violation — on deliberately broken ones."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgspec
import pytest
from stdnum.br import cnpj as stdnum_cnpj
from stdnum.br import cpf as stdnum_cpf

from regua.engine.connectors import ConnectorError
from regua.plugins.builtin.negativation import HTTPNegativation, SandboxNegativation
from regua.plugins.builtin.sandbox_bureau import PROFILES, SandboxBureau, sandbox_document
from regua.plugins.connectors import BureauConnector, NegativationService, NotificationChannel, TransientError
from regua.plugins.contracts import (
    BureauReport,
    DeliveryReceipt,
    NegativationRecord,
    Notification,
    Restriction,
    Score,
)
from regua.plugins.hookspecs import hookimpl
from regua.plugins.manager import PluginManager
from regua.plugins.testing import (
    KIT_CNPJ,
    KIT_CPF,
    ManualClock,
    check_bureau_connector,
    check_negativation_service,
    check_notification_channel,
    sample_negativation_request,
    sample_notification,
)

UTC = dt.timezone.utc
START = dt.datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def Clock(start: dt.datetime = START) -> ManualClock:
    return ManualClock(start)


class LocalServer:
    """A tiny JSON server on 127.0.0.1 (port 0) answering with `answer(method, path, body)`."""

    def __init__(self, answer):
        self.calls: list[tuple[str, str, bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.calls.append((self.command, self.path, body))
                status, data, headers = answer(self.command, self.path, body)
                payload = json.dumps(data).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# ============================================================================================
# Built-in implementations pass the kit
# ============================================================================================

@pytest.mark.parametrize("profile", sorted(set(PROFILES) - {"down"}) + ["clean"])
@pytest.mark.parametrize("kind", ["cpf", "cnpj"])
def test_sandbox_bureau_honours_the_contract(profile, kind):
    today = dt.date(2026, 3, 2)
    report = check_bureau_connector(SandboxBureau(today=lambda: today), sandbox_document(profile, kind),
                                    deterministic=True)
    assert report.score.bureau == "sandbox"


def test_http_json_bureau_honours_the_contract():
    from regua.plugins.builtin.http_bureau import HTTPJSONBureau

    def answer(method, path, body):
        document = path.strip("/")
        if not (stdnum_cpf.is_valid(document) or stdnum_cnpj.is_valid(document)):
            return 400, {"erro": "documento inválido"}, {}
        score = 300 + int(hashlib.sha256(document.encode()).hexdigest(), 16) % 700
        return 200, {"score": {"value": score, "bureau": "local", "band": "bom"},
                     "restrictions": [{"kind": "pefin", "amount": "1234.56", "date": "2025-11-03",
                                       "creditor": "Fornecedor"}],
                     "inquiries": [{"date": "2026-02-01", "inquirer": "Banco"}]}, {}

    with LocalServer(answer) as server:
        bureau = HTTPJSONBureau("local", server.url, "/{document}", cost="1.50", timeout=2, retries=0)
        report = check_bureau_connector(bureau, KIT_CNPJ, deterministic=True)
        assert report.restrictions[0].amount == Decimal("1234.56")
        check_bureau_connector(bureau, KIT_CPF)
        bureau.close()


def test_sandbox_negativation_honours_the_contract():
    clock = Clock()
    service = SandboxNegativation(clock)
    records = check_negativation_service(service, sample_negativation_request(today=START.date()),
                                         advance_clock=lambda: clock.advance(days=10))
    assert records["status after the waiting period"].included_at == START + dt.timedelta(days=10)
    # per-UF waiting periods don't change the contract
    sp = SandboxNegativation(clock, waiting_days_by_uf={"SP": 15}, path=None)
    check_negativation_service(sp, sample_negativation_request(today=clock().date()),
                               advance_clock=lambda: clock.advance(days=15))


def test_http_negativation_honours_the_contract(regua_negativation_provider):
    provider = regua_negativation_provider
    connector = provider.connector()
    records = check_negativation_service(connector, advance_clock=lambda: provider.advance(days=10))
    assert records["include"].protocol.startswith("NEG-")
    connector.close()


def test_the_outbox_channel_honours_the_contract(tmp_path):
    from regua.plugins.builtin.notifications import FileOutboxChannel

    outbox = tmp_path / "outbox"
    channel = FileOutboxChannel(directory=str(outbox))
    receipt = check_notification_channel(channel, delivered_count=lambda: len(list(outbox.glob("*.eml"))))
    assert receipt.status == "sent"


@pytest.mark.parametrize("kind", ["sms", "whatsapp"])
def test_the_sandbox_text_outbox_channels_honour_the_contract(tmp_path, kind):
    from regua.plugins.builtin.notifications import FileOutboxTextChannel

    outbox = tmp_path / "outbox"
    channel = FileOutboxTextChannel(directory=str(outbox), channel=kind)
    receipt = check_notification_channel(channel, delivered_count=lambda: len(list(outbox.glob(f"*.{kind}.txt"))))
    assert receipt.status == "sent" and receipt.provider_id.endswith(f".{kind}.txt")
    channel.close()


def _receiver():
    count = {"n": 0}

    def answer(method, path, body):
        count["n"] += 1
        return 200, {"id": f"msg-{count['n']}", "status": "accepted"}, {"X-Request-Id": f"req-{count['n']}"}

    return LocalServer(answer)


def test_the_webhook_channel_honours_the_contract():
    from regua.plugins.builtin.notifications import WebhookChannel

    with _receiver() as server:
        channel = WebhookChannel(url=server.url + "/hook", secret="kit-secret", timeout=2)
        receipt = check_notification_channel(channel, delivered_count=lambda: len(server.calls))
        assert receipt.status == "delivered" and receipt.provider_id == "req-1"
        channel.close()


@pytest.mark.parametrize("kind", ["sms", "whatsapp"])
def test_the_http_gateway_channels_honour_the_contract(kind):
    from regua.plugins.builtin.notifications import HTTPGatewayChannel

    with _receiver() as server:
        channel = HTTPGatewayChannel(url=server.url + "/send", channel=kind, name=f"kit_{kind}", timeout=2)
        receipt = check_notification_channel(channel, delivered_count=lambda: len(server.calls))
        assert receipt.status == "sent" and receipt.provider_id == "msg-1"
        channel.close()


def test_the_email_channel_honours_the_contract():
    controller_module = pytest.importorskip("aiosmtpd.controller")
    from regua.plugins.builtin.notifications import EmailChannel

    class Inbox:
        def __init__(self):
            self.messages: list[bytes] = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope.content)
            return "250 OK"

    with socket.socket() as sock:  # aiosmtpd 1.4 cannot listen on port 0: pick a free port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inbox = Inbox()
    controller = controller_module.Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        channel = EmailChannel(from_address="cobranca@credora.example", host="127.0.0.1", port=port, timeout=3)
        receipt = check_notification_channel(channel, delivered_count=lambda: len(inbox.messages))
        assert receipt.status == "sent" and receipt.provider_id
    finally:
        controller.stop()


def test_every_builtin_channel_kind_is_covered():
    from regua.plugins.builtin import notifications

    covered = {"email", "outbox", "webhook", "sms", "whatsapp", "sms_outbox", "whatsapp_outbox"}
    assert set(notifications._KINDS) <= covered, "a new built-in channel kind needs a contract test here"


# ============================================================================================
# As a plugin author would: fixtures from plugins.testing + the kit
# ============================================================================================

class AcmeBureau(BureauConnector):
    name = "acme"
    timeout = 1.0
    retries = 1
    ttl = 3600
    cost = "0.90"
    deterministic = True

    def fetch(self, document: str) -> BureauReport:
        if not (stdnum_cpf.is_valid(document) or stdnum_cnpj.is_valid(document)):
            raise ConnectorError("INVALID_DOCUMENT", "not a CPF/CNPJ")
        value = int(hashlib.sha256(document.encode()).hexdigest(), 16) % 1001
        return BureauReport(score=Score(value=value, bureau="acme"))


class AsyncAcmeBureau(AcmeBureau):
    name = "acme_async"

    async def fetch(self, document: str) -> BureauReport:  # async connectors are fine too
        return AcmeBureau.fetch(self, document)


class AcmeChannel(NotificationChannel):
    """A small, correct channel: remembers receipts by idempotency key."""

    name = "acme_sms"
    channel = "sms"

    def __init__(self):
        self.receipts: dict[str, DeliveryReceipt] = {}
        self.delivered = 0

    def send(self, notification: Notification) -> DeliveryReceipt:
        if notification.idempotency_key not in self.receipts:
            self.delivered += 1
            self.receipts[notification.idempotency_key] = DeliveryReceipt(
                status="sent", idempotency_key=notification.idempotency_key, provider_id=f"acme-{self.delivered}",
                sent_at=dt.datetime.now(UTC))
        return self.receipts[notification.idempotency_key]


class AcmePlugin:
    @hookimpl
    def regua_bureau_connectors(self, config):
        return [AcmeBureau(), AsyncAcmeBureau()]

    @hookimpl
    def regua_notification_channels(self, config):
        return [AcmeChannel()]


def test_a_plugin_author_checks_what_the_registry_loads(regua_registry):
    registry = regua_registry(AcmePlugin(), allow=[])  # allow=[]: my plugin alone
    assert set(registry.bureaus) == {"acme", "acme_async"}
    for bureau in registry.bureaus.values():
        check_bureau_connector(bureau)
    channel = registry.channels["acme_sms"]
    check_notification_channel(channel, delivered_count=lambda: channel.delivered)
    assert registry.negativators == {}


def test_the_plugin_manager_fixture(regua_plugin_manager):
    pm = regua_plugin_manager(AcmePlugin(), allow=["negativation"], config={"negativation": {}})
    assert isinstance(pm, PluginManager)
    assert set(pm.infos) == {"negativation", "AcmePlugin"}
    assert pm.infos["AcmePlugin"].hooks == ["regua_bureau_connectors", "regua_notification_channels"]
    services = [s for provided in pm.hook.regua_negativation_services(config={}) for s in provided]
    assert [s.name for s in services] == ["sandbox"]
    assert "AcmePlugin" not in regua_plugin_manager(AcmePlugin(), deny=["AcmePlugin"]).infos


def test_the_registry_fixture_with_builtins(regua_registry):
    registry = regua_registry(config={"sandbox_bureau": {}})
    assert "sandbox" in registry.bureaus and "sandbox" in registry.negativators
    check_bureau_connector(registry.bureaus["sandbox"], deterministic=True)


# ============================================================================================
# The kit fails on broken implementations
# ============================================================================================

def broken_bureau(fetch=None, **attributes) -> BureauConnector:
    attributes.setdefault("name", "broken")
    attributes.setdefault("retries", 0)
    if fetch is not None:
        attributes["fetch"] = lambda self, document: fetch(document)
    return type("BrokenBureau", (AcmeBureau,), attributes)()


def fine_report(**changes) -> BureauReport:
    fields = dict(score=Score(value=700), restrictions=[
        Restriction(kind="pefin", amount=Decimal("10.00"), date=dt.date(2025, 1, 2))])
    fields.update(changes)
    return BureauReport(**fields)


def reject_bad_documents(answer):
    def fetch(document):
        if not stdnum_cnpj.is_valid(document) and not stdnum_cpf.is_valid(document):
            raise ConnectorError("INVALID_DOCUMENT")
        return answer(document)
    return fetch


counter = iter(range(10**9))


@pytest.mark.parametrize("bureau, message", [
    pytest.param(broken_bureau(reject_bad_documents(lambda d: msgspec.to_builtins(fine_report()))),
                 "returned a dict, not a BureauReport", id="dict"),
    pytest.param(broken_bureau(reject_bad_documents(lambda d: fine_report(restrictions=[
        Restriction(kind="pefin", amount=10.5, date=dt.date(2025, 1, 2))]))),
        r"restrictions\[0\].amount is a float where the contract has a Decimal", id="float-money"),
    pytest.param(broken_bureau(reject_bad_documents(lambda d: fine_report(restrictions=[
        Restriction(kind="pefin", amount=Decimal(1), date=dt.datetime(2025, 1, 2, 10, 0))]))),
        "does not follow its contract", id="datetime-for-date"),
    pytest.param(broken_bureau(reject_bad_documents(lambda d: fine_report(restrictions=[
        Restriction(kind="divida", amount=Decimal(1), date=dt.date(2025, 1, 2))]))),
        "does not follow its contract", id="unknown-restriction-kind"),
    pytest.param(broken_bureau(reject_bad_documents(lambda d: fine_report(score=Score(value="742")))),
                 "does not follow its contract", id="score-as-text"),
    pytest.param(broken_bureau(reject_bad_documents(lambda d: fine_report(score=Score(value=1200)))),
                 "outside its range", id="score-out-of-range"),
    pytest.param(broken_bureau(reject_bad_documents(lambda d: fine_report(version="0"))),
                 "contract '1'", id="wrong-version"),
    pytest.param(broken_bureau(lambda d: fine_report() if len(d) in (11, 14) else int("x")),
                 "raised ValueError", id="crash-on-bad-document"),
    pytest.param(broken_bureau(lambda d: fine_report() if stdnum_cnpj.is_valid(d)
                               else (_ for _ in ()).throw(TransientError("TIMEOUT"))),
                 "not worth retrying", id="transient-for-bad-document"),
    pytest.param(broken_bureau(reject_bad_documents(lambda d: fine_report(score=Score(value=next(counter) % 1000))),
                               deterministic=True), "two different reports", id="not-deterministic"),
    pytest.param(broken_bureau(lambda d: (_ for _ in ()).throw(ConnectorError("DOWN"))),
                 "failed: ConnectorError DOWN", id="fails-on-a-good-document"),
    pytest.param(broken_bureau(name="acme bureau"), "without spaces", id="name-with-space"),
    pytest.param(broken_bureau(name="2acme"), "must be an identifier", id="name-not-identifier"),
    pytest.param(broken_bureau(name=""), "non-empty", id="no-name"),
    pytest.param(broken_bureau(timeout=0), "timeout", id="zero-timeout"),
    pytest.param(broken_bureau(retries=-1), "retries", id="negative-retries"),
    pytest.param(broken_bureau(ttl=-5), "ttl", id="negative-ttl"),
    pytest.param(broken_bureau(cost=0.35), "cost", id="float-cost"),
    pytest.param(broken_bureau(cost="grátis"), "cost", id="cost-not-decimal"),
    pytest.param(broken_bureau(failure_threshold=0), "failure_threshold", id="no-breaker"),
])
def test_the_kit_rejects_broken_bureaus(bureau, message):
    with pytest.raises(AssertionError, match=message):
        check_bureau_connector(bureau)


# ---- channels ----

def broken_channel(receipt, *, duplicates: bool = False, **attributes) -> NotificationChannel:
    """A channel answering `receipt(notification, attempt)`."""

    class Broken(AcmeChannel):
        name = "broken"

        def send(self, notification):
            self.delivered += 1
            return receipt(notification, self.delivered)

    for key, value in attributes.items():
        setattr(Broken, key, value)
    return Broken()


def sent(notification, attempt, **changes):
    fields = dict(status="sent", idempotency_key=notification.idempotency_key, provider_id="p-1",
                  sent_at=dt.datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    fields.update(changes)
    return DeliveryReceipt(**fields)


@pytest.mark.parametrize("channel, message", [
    pytest.param(broken_channel(lambda n, i: sent(n, i, sent_at=dt.datetime(2026, 3, 2, 12, 0))),
                 "naive datetime", id="naive-sent-at"),
    pytest.param(broken_channel(lambda n, i: sent(n, i, idempotency_key="other")),
                 "not the notification's", id="other-key"),
    pytest.param(broken_channel(lambda n, i: sent(n, i, provider_id=f"p-{i}")),
                 "delivered twice", id="duplicate-delivery"),
    pytest.param(broken_channel(lambda n, i: sent(n, i, status="queued")),
                 "does not follow its contract", id="unknown-status"),
    pytest.param(broken_channel(lambda n, i: sent(n, i, sent_at=None)), "without sent_at", id="no-sent-at"),
    pytest.param(broken_channel(lambda n, i: sent(n, i, status="delivered")),
                 "without delivered_at", id="delivered-without-time"),
    pytest.param(broken_channel(lambda n, i: sent(n, i, status="delivered", delivered_at=dt.datetime(
        2026, 3, 1, tzinfo=UTC))), "delivered before it was sent", id="delivered-before-sent"),
    pytest.param(broken_channel(lambda n, i: DeliveryReceipt(status="failed", idempotency_key=n.idempotency_key)),
                 "without an error", id="failed-silently"),
    pytest.param(broken_channel(lambda n, i: DeliveryReceipt(status="failed", idempotency_key=n.idempotency_key,
                                                             error=f"mailbox {n.recipient} full")),
                 "recipient", id="recipient-in-error"),
    pytest.param(broken_channel(lambda n, i: {"status": "sent", "idempotency_key": n.idempotency_key}),
                 "returned a dict", id="dict"),
    pytest.param(broken_channel(lambda n, i: (_ for _ in ()).throw(RuntimeError("smtp down"))),
                 "raised RuntimeError", id="raises"),
    pytest.param(broken_channel(lambda n, i: sent(n, i), channel=""), "`channel` must name", id="no-kind"),
])
def test_the_kit_rejects_broken_channels(channel, message):
    with pytest.raises(AssertionError, match=message):
        check_notification_channel(channel)


def test_the_kit_counts_real_deliveries():
    channel = broken_channel(lambda n, i: sent(n, i))  # same receipt each time, but delivered twice
    with pytest.raises(AssertionError, match="reached the provider 2 times"):
        check_notification_channel(channel, delivered_count=lambda: channel.delivered)
    check_notification_channel(AcmeChannel(), sample_notification("sms", recipient="+5521988887777"))


# ---- negativation services ----

class BrokenNegativation(NegativationService):
    """The sandbox, with one thing broken by `mutate(record, request) -> record` (or raising)."""

    name = "broken"

    def __init__(self, mutate, clock=None):
        self.clock = clock or Clock()
        self.inner = SandboxNegativation(self.clock)
        self.mutate = mutate
        self.calls = 0

    def submit(self, request):
        self.calls += 1
        return self.mutate(self.inner.submit(request), request, self)


def replace(record, **changes):
    return msgspec.structs.replace(record, **changes)


def kit_request():
    return sample_negativation_request(today=START.date())


@pytest.mark.parametrize("mutate, message", [
    pytest.param(lambda r, q, s: replace(r, protocol=f"PR-{q.debtor_document}"),
                 "protocol contains the debtor's document", id="protocol-with-cpf"),
    pytest.param(lambda r, q, s: replace(r, protocol="PR-529.982.247-25"),
                 "protocol contains the debtor's document", id="protocol-with-formatted-cpf"),
    pytest.param(lambda r, q, s: replace(r, reason=f"devedor {q.debtor_document}"),
                 "reason contains the debtor's document", id="reason-with-cpf"),
    pytest.param(lambda r, q, s: replace(r, notice_sent_at=r.notice_sent_at.replace(tzinfo=None)),
                 "naive datetime", id="naive-notice"),
    pytest.param(lambda r, q, s: replace(r, protocol=f"SBX-{s.calls}"), "two records|answered about",
                 id="not-idempotent"),
    pytest.param(lambda r, q, s: replace(r, status="waiting") if q.action == "remove" else r,
                 "remove answered 'waiting'", id="remove-ignored"),
    pytest.param(lambda r, q, s: replace(r, status="included", included_at=START - dt.timedelta(days=1))
                 if q.action == "include" else r, "included before the notice was sent", id="included-before-notice"),
    pytest.param(lambda r, q, s: replace(r, status="included", notice_sent_at=None, included_at=START),
                 r"without notice_sent_at \(prior notice", id="no-prior-notice"),
    pytest.param(lambda r, q, s: replace(r, status="rejected", reason="no"), "was rejected", id="rejects-all"),
    pytest.param(lambda r, q, s: msgspec.to_builtins(r), "returned a dict", id="dict"),
    pytest.param(lambda r, q, s: replace(r, status="removed", removed_at=None) if q.action == "remove" else r,
                 "without removed_at", id="removed-without-time"),
    pytest.param(lambda r, q, s: replace(r, protocol=""), "has no protocol", id="no-protocol"),
    pytest.param(lambda r, q, s: replace(r, status="included") if q.action == "status" and r.status == "removed"
                 else r, "status after remove", id="status-forgets-removal"),
])
def test_the_kit_rejects_broken_negativation_services(mutate, message):
    with pytest.raises(AssertionError, match=message):
        check_negativation_service(BrokenNegativation(mutate), kit_request())


def test_the_kit_wants_not_found_for_unknown_protocols():
    def answer_anything(record, request, service):
        return record

    class Lenient(BrokenNegativation):
        def submit(self, request):
            if request.protocol.startswith("KIT-"):
                return NegativationRecord(protocol=request.protocol, status="removed", notice_sent_at=START,
                                          removed_at=START)
            return super().submit(request)

    with pytest.raises(AssertionError, match="unknown protocol answered a record"):
        check_negativation_service(Lenient(answer_anything), kit_request())

    class Flaky(BrokenNegativation):
        def submit(self, request):
            if request.protocol.startswith("KIT-"):
                raise TransientError("TIMEOUT")
            return super().submit(request)

    with pytest.raises(AssertionError, match="not worth retrying"):
        check_negativation_service(Flaky(answer_anything), kit_request())


def test_the_kit_checks_the_waiting_period_when_it_can_move_the_clock():
    clock = Clock()
    service = BrokenNegativation(lambda r, q, s: r, clock)
    with pytest.raises(AssertionError, match="after the waiting period the status is 'waiting'"):
        check_negativation_service(service, kit_request(), advance_clock=lambda: clock.advance(days=3))


def test_the_kit_rejects_bad_metadata_on_negativation_services():
    service = HTTPNegativation("x", "http://127.0.0.1:9")
    service.timeout = float("inf")
    with pytest.raises(AssertionError, match="timeout"):
        check_negativation_service(service)
