"""Pytest fixtures and the contract test kit for Régua plugin authors.

This module is a pytest plugin (entry point `pytest11: regua`): once `regua` is installed its
fixtures are available in every pytest run, nothing to import. The kit functions are plain
functions: import them and call them in your own tests.

Fixtures
--------
- `regua_plugin_manager(plugin, allow=None, deny=None, config=None)` -> PluginManager with the
  built-ins, installed plugins and `plugin` (an object with hookimpls: a module, a class or an
  instance). When `allow` is given your plugin's name is added to it, so `allow=[]` loads your
  plugin alone. `config` is the per-plugin settings dict ({"my_plugin": {...}}).
- `regua_registry(plugin, allow=None, deny=None, config=None, sandbox_aliases=False)` -> the
  plugins.registry.Registry the engine would use, with a bureau cache in the test's tmp_path.
- `regua_negativation_provider` -> a started FakeNegativationProvider (below), stopped after.

The contract kit
----------------
One call proves an implementation honours its contract; each raises AssertionError naming
the violation (and returns what it saw, for further checks of your own):

- `check_bureau_connector(connector, document=..., deterministic=None, bad_documents=...)`:
  a name usable in policies, sane metadata (timeout, retries, backoff, breaker, ttl, cost as a
  decimal string), `fetch` returns a BureauReport whose fields have the contract's types (a
  msgspec round trip: Decimal money, `date` dates, aware datetimes, known literals), the score
  within its range; the same report twice when the connector is deterministic (argument, or
  attribute `deterministic = True`); for bad documents either a valid report or a
  non-transient ConnectorError — never another exception.
- `check_notification_channel(channel, notification=..., delivered_count=None)`: a
  DeliveryReceipt with the notification's idempotency_key, a known status, aware timestamps
  (sent_at for sent/delivered, delivered_at for delivered, an error for failed), no recipient
  in provider_id/error; the same notification sent twice gives the same receipt (and, when
  `delivered_count()` tells how many messages reached the provider, exactly one).
- `check_negativation_service(service, request=..., advance_clock=None, idempotent=True)`:
  include answers a protocol and notice_sent/waiting/included with the notice's timestamp,
  including again gives the same protocol, status by protocol works, after `advance_clock()`
  (if given: move the service's clock past its waiting period) the record is "included",
  remove answers "removed" and status agrees, an unknown protocol is a non-transient
  ConnectorError, and the protocol (nor reason) never contains the debtor's document.

Connectors may be sync or async; the kit calls them the way the engine does
(plugins.runtime.call_with_deadline, with the connector's own timeout).

Example (tests/test_my_plugin.py of a plugin providing a bureau "acme"):

    from plugins.hookspecs import hookimpl
    from plugins.testing import check_bureau_connector
    from my_plugin import AcmeBureau

    class MyPlugin:
        @hookimpl
        def regua_bureau_connectors(self, config):
            return [AcmeBureau(**config.get("MyPlugin", {}))]

    def test_acme_honours_the_contract():
        check_bureau_connector(AcmeBureau(), document="11222333000181", deterministic=True)

    def test_acme_is_loaded(regua_registry):
        registry = regua_registry(MyPlugin(), allow=[])
        assert "acme" in registry.bureaus
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import threading
import time
import typing
import uuid
from collections import deque
from decimal import Decimal, InvalidOperation

import msgspec
import pytest

from engine.connectors import ConnectorError, mask_document
from plugins.connectors import TransientError
from plugins.contracts import (
    CONTRACT_VERSION, BureauReport, Debt, DeliveryReceipt, DeliveryStatus, NegativationRecord,
    NegativationRequest, Notification,
)

__all__ = [
    "check_bureau_connector", "check_notification_channel", "check_negativation_service",
    "sample_notification", "sample_negativation_request", "FakeNegativationProvider",
    "KIT_CPF", "KIT_CNPJ", "CREDITOR_CNPJ",
]

#: Valid documents the kit uses by default (well-known test numbers, nobody's real data).
KIT_CPF = "52998224725"
KIT_CNPJ = "11222333000181"
CREDITOR_CNPJ = "11444777000161"

DELIVERY_STATUSES = frozenset(typing.get_args(DeliveryStatus))
_OPEN = frozenset({"notice_sent", "waiting", "included"})
_UNKNOWN_PROTOCOL = "KIT-NO-SUCH-PROTOCOL-0"


# ============================================================================================
# Fixtures
# ============================================================================================

def _plugin_name(plugin) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def _settings(plugins: list, allow, deny, config):
    from plugins.manager import PluginSettings

    if allow is not None:
        allow = list(allow) + [_plugin_name(p) for p in plugins if _plugin_name(p) not in allow]
    return PluginSettings(allow=allow, deny=list(deny or []), config=dict(config or {}))


@pytest.fixture
def regua_plugin_manager():
    """Factory: regua_plugin_manager(plugin, allow=None, deny=None, config=None) -> PluginManager."""
    from plugins.manager import get_plugin_manager

    def factory(plugin=None, *more, allow=None, deny=None, config=None):
        plugins = [p for p in (plugin, *more) if p is not None]
        return get_plugin_manager(_settings(plugins, allow, deny, config), extra=plugins)

    return factory


@pytest.fixture
def regua_registry(tmp_path):
    """Factory: regua_registry(plugin, allow=None, deny=None, config=None, sandbox_aliases=False) -> Registry."""
    from plugins.cache import BureauCache
    from plugins.manager import get_plugin_manager
    from plugins.registry import Registry

    def factory(plugin=None, *more, allow=None, deny=None, config=None, sandbox_aliases=False):
        plugins = [p for p in (plugin, *more) if p is not None]
        pm = get_plugin_manager(_settings(plugins, allow, deny, config), extra=plugins)
        return Registry(pm, BureauCache(str(tmp_path / "regua-cache.db")), sandbox_aliases=sandbox_aliases)

    return factory


@pytest.fixture
def regua_negativation_provider():
    """A FakeNegativationProvider listening on 127.0.0.1 for the duration of the test."""
    with FakeNegativationProvider() as provider:
        yield provider


# ============================================================================================
# The contract kit
# ============================================================================================

def _fail(what: str, message: str) -> typing.NoReturn:
    raise AssertionError(f"{what}: {message}")


def _label(connector) -> str:
    return f"{type(connector).__name__}({getattr(connector, 'name', '?')!r})"


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_metadata(connector, what: str, *, bureau: bool = False) -> None:
    name = getattr(connector, "name", None)
    if not isinstance(name, str) or not name or name != name.strip() or " " in name:
        _fail(what, f"`name` must be a non-empty string without spaces, got {name!r}")
    if bureau and not (name.isascii() and name.isidentifier()):
        _fail(what, f"a bureau's name is used in policies (bureau.{name}(...)): it must be an identifier")
    timeout = getattr(connector, "timeout", None)
    if not _number(timeout) or not 0 < timeout <= 120:
        _fail(what, f"`timeout` must be a number of seconds in (0, 120], got {timeout!r}")
    retries = getattr(connector, "retries", None)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        _fail(what, f"`retries` must be an int in [0, 10], got {retries!r}")
    for attribute in ("backoff", "reset_after"):
        value = getattr(connector, attribute, None)
        if not _number(value) or value < 0:
            _fail(what, f"`{attribute}` must be a number >= 0, got {value!r}")
    threshold = getattr(connector, "failure_threshold", None)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        _fail(what, f"`failure_threshold` must be an int >= 1, got {threshold!r}")
    if bureau:
        ttl = getattr(connector, "ttl", None)
        if not _number(ttl) or ttl < 0:
            _fail(what, f"`ttl` must be a number of seconds >= 0, got {ttl!r}")
        cost = getattr(connector, "cost", None)
        try:
            ok = isinstance(cost, str) and Decimal(cost).is_finite() and Decimal(cost) >= 0
        except InvalidOperation:
            ok = False
        if not ok:
            _fail(what, f"`cost` must be a decimal string in BRL >= 0 (e.g. \"0.35\"), got {cost!r}")


def _call(connector, method_name: str, *args):
    """Call like the engine does: sync or async, with the connector's own deadline."""
    from plugins.runtime import call_with_deadline

    method = getattr(connector, method_name, None)
    if not callable(method):
        _fail(_label(connector), f"has no `{method_name}` method")
    return call_with_deadline(method, args, float(connector.timeout))


def _same_types(value, expected, path: str, what: str) -> None:
    if type(value) is not type(expected):
        _fail(what, f"{path} is a {type(value).__name__} where the contract has a {type(expected).__name__}")
    if isinstance(value, msgspec.Struct):
        for field in value.__struct_fields__:
            _same_types(getattr(value, field), getattr(expected, field), f"{path}.{field}", what)
    elif isinstance(value, (list, tuple)):
        for i, (a, b) in enumerate(zip(value, expected)):
            _same_types(a, b, f"{path}[{i}]", what)
    elif isinstance(value, dict):
        for key in value:
            if key in expected:
                _same_types(value[key], expected[key], f"{path}[{key!r}]", what)


def _aware(value, path: str, what: str) -> None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            _fail(what, f"{path} is a naive datetime ({value.isoformat()}); instants must be timezone-aware")
    elif isinstance(value, msgspec.Struct):
        for field in value.__struct_fields__:
            _aware(getattr(value, field), f"{path}.{field}", what)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _aware(item, f"{path}[{i}]", what)


def _valid(value, contract: type, what: str):
    """`value` is a `contract` whose fields hold the contract's types (msgspec round trip)."""
    if not isinstance(value, contract):
        _fail(what, f"returned a {type(value).__name__}, not a {contract.__name__}")
    try:
        again = msgspec.convert(msgspec.to_builtins(value), contract)
        msgspec.json.encode(value)
    except (msgspec.ValidationError, msgspec.EncodeError, TypeError, ValueError) as error:
        _fail(what, f"the {contract.__name__} does not follow its contract: {error}")
    _same_types(value, again, contract.__name__, what)
    _aware(value, contract.__name__, what)
    if value.version != CONTRACT_VERSION:
        _fail(what, f"{contract.__name__}.version is {value.version!r}; "
                    f"this Régua speaks contract {CONTRACT_VERSION!r}")
    return value


def _document_forms(document: str) -> list[str]:
    forms = {document, re.sub(r"[^0-9A-Za-z]", "", document)}
    return [form for form in forms if len(form) >= 8]


def _contains_document(text: str, document: str) -> bool:
    compact = re.sub(r"[^0-9A-Za-z]", "", text or "")
    return any(form in (text or "") or form in compact for form in _document_forms(document))


# ---- bureaus ----

def check_bureau_connector(connector, document: str = KIT_CNPJ, *, deterministic: bool | None = None,
                           bad_documents: typing.Iterable[str] = ("", "123", "not-a-document", "00000000000")
                           ) -> BureauReport:
    """Prove `connector` honours the BureauConnector contract; returns the report for `document`."""
    what = _label(connector)
    _check_metadata(connector, what, bureau=True)
    try:
        report = _call(connector, "fetch", document)
    except Exception as error:  # noqa: BLE001 — any failure on a good document is a violation
        _fail(what, f"fetch({mask_document(document)}) failed: {type(error).__name__} "
                    f"{getattr(error, 'code', '')} {error}".rstrip())
    _valid(report, BureauReport, f"{what}.fetch")
    score = report.score
    if not score.range_min < score.range_max:
        _fail(what, f"score range [{score.range_min}, {score.range_max}] is empty")
    if not score.range_min <= score.value <= score.range_max:
        _fail(what, f"score {score.value} outside its range [{score.range_min}, {score.range_max}]")
    for i, restriction in enumerate(report.restrictions):
        if restriction.amount < 0:
            _fail(what, f"restrictions[{i}].amount is negative")
    if deterministic is None:
        deterministic = bool(getattr(connector, "deterministic", False))
    if deterministic:
        again = _call(connector, "fetch", document)
        if again != report:
            _fail(what, "declared deterministic but fetch gave two different reports for the same document")
    for bad in bad_documents:
        try:
            answer = _call(connector, "fetch", bad)
        except TransientError as error:
            _fail(what, f"fetch of a bad document raised TransientError {error.code}: a bad document is not "
                        "worth retrying; raise a ConnectorError (e.g. code INVALID_DOCUMENT)")
        except ConnectorError:
            continue
        except Exception as error:  # noqa: BLE001
            _fail(what, f"fetch of a bad document {bad!r} raised {type(error).__name__}; "
                        "connectors raise only ConnectorError (engine.connectors) subclasses")
        _valid(answer, BureauReport, f"{what}.fetch({bad!r})")
    return report


# ---- notification channels ----

_RECIPIENTS = {"email": "devedor@example.com", "sms": "+5511999990000", "whatsapp": "+5511999990000",
               "webhook": "http://127.0.0.1:9/hook"}


def sample_notification(channel: str = "email", **changes) -> Notification:
    """A reminder notification with a fresh idempotency key (override any field with `changes`)."""
    fields = dict(
        channel=channel, recipient=_RECIPIENTS.get(channel, "devedor@example.com"),
        template="lembrete_vencimento",
        context={"nome": "Devedor Exemplo", "valor": Decimal("150.00"), "vencimento": dt.date(2026, 3, 10),
                 "link_pagamento": "https://pagamento.example/boleto/1"},
        idempotency_key=f"kit-{uuid.uuid4().hex}", creditor_name="Credora Exemplo Ltda",
        creditor_document=CREDITOR_CNPJ)
    fields.update(changes)
    return Notification(**fields)


_PROGRESS = {"failed": 0, "sent": 1, "delivered": 2}


def check_notification_channel(channel, notification: Notification | None = None, *,
                               allowed_statuses: typing.Iterable[str] = DELIVERY_STATUSES,
                               delivered_count: typing.Callable[[], int] | None = None) -> DeliveryReceipt:
    """Prove `channel` honours the NotificationChannel contract; returns the first receipt."""
    what = _label(channel)
    allowed = set(allowed_statuses)
    _check_metadata(channel, what)
    kind = getattr(channel, "channel", None)
    if not isinstance(kind, str) or not kind:
        _fail(what, f"`channel` must name the kind of channel (email, sms…), got {kind!r}")
    notification = notification or sample_notification(kind)

    def send(label: str) -> DeliveryReceipt:
        try:
            receipt = _call(channel, "send", notification)
        except Exception as error:  # noqa: BLE001
            _fail(what, f"{label} send raised {type(error).__name__} {getattr(error, 'code', '')} {error}; "
                        "a channel reports what happened in a DeliveryReceipt")
        _valid(receipt, DeliveryReceipt, f"{what}.send")
        if receipt.idempotency_key != notification.idempotency_key:
            _fail(what, f"{label} receipt has idempotency_key {receipt.idempotency_key!r}, "
                        f"not the notification's {notification.idempotency_key!r}")
        if receipt.status not in allowed:
            _fail(what, f"{label} receipt status {receipt.status!r} is not one of {sorted(allowed)}")
        if receipt.status in ("sent", "delivered") and receipt.sent_at is None:
            _fail(what, f"{label} receipt is {receipt.status!r} without sent_at (legal notices need proof of sending)")
        if receipt.status == "delivered":
            if receipt.delivered_at is None:
                _fail(what, f"{label} receipt is 'delivered' without delivered_at")
            if receipt.sent_at is not None and receipt.delivered_at < receipt.sent_at:
                _fail(what, f"{label} receipt was delivered before it was sent")
        if receipt.status == "failed" and not receipt.error:
            _fail(what, f"{label} receipt is 'failed' without an error saying why")
        recipient = notification.recipient
        if recipient and (recipient in receipt.error or recipient in receipt.provider_id):
            _fail(what, f"{label} receipt carries the recipient (personal data) in error/provider_id")
        return receipt

    first = send("first")
    second = send("second (same idempotency_key)")
    if first.status != "failed":
        same = (second.provider_id == first.provider_id and second.sent_at == first.sent_at
                and _PROGRESS[second.status] >= _PROGRESS[first.status])
        if not same:
            _fail(what, "the same idempotency_key sent twice gave a different receipt "
                        f"({first.status}/{first.provider_id!r}/{first.sent_at} then "
                        f"{second.status}/{second.provider_id!r}/{second.sent_at}): was it delivered twice?")
    if delivered_count is not None and first.status != "failed":
        count = delivered_count()
        if count != 1:
            _fail(what, f"the same idempotency_key sent twice reached the provider {count} times, not once")
    return first


# ---- negativation services ----

def sample_negativation_request(document: str = KIT_CPF, *, today: dt.date | None = None, **debt_changes
                                ) -> NegativationRequest:
    """An include request for a due, undisputed R$ 150,00 debt with a fresh contract id."""
    today = today or dt.date.today()
    debt = dict(contract=f"KIT-{uuid.uuid4().hex[:12]}", amount=Decimal("150.00"),
                due_date=today - dt.timedelta(days=40), creditor_name="Credora Exemplo Ltda",
                creditor_document=CREDITOR_CNPJ)
    debt.update(debt_changes)
    return NegativationRequest(action="include", debtor_document=document, debt=Debt(**debt))


def check_negativation_service(service, request: NegativationRequest | None = None, *,
                               advance_clock: typing.Callable[[], object] | None = None,
                               idempotent: bool = True) -> dict[str, NegativationRecord]:
    """Prove `service` honours the NegativationService contract; returns the records it saw, by step."""
    what = _label(service)
    _check_metadata(service, what)
    request = msgspec.structs.replace(request or sample_negativation_request(), action="include", protocol="")
    document = request.debtor_document
    seen: dict[str, NegativationRecord] = {}

    def submit(step: str, action: str, protocol: str = "") -> NegativationRecord:
        try:
            record = _call(service, "submit", msgspec.structs.replace(request, action=action, protocol=protocol))
        except Exception as error:  # noqa: BLE001
            _fail(what, f"{step}: {type(error).__name__} {getattr(error, 'code', '')} {error}")
        _valid(record, NegativationRecord, f"{what} {step}")
        if not isinstance(record.protocol, str) or not record.protocol.strip():
            _fail(what, f"{step}: the record has no protocol")
        for field in ("protocol", "reason"):
            if _contains_document(getattr(record, field), document):
                _fail(what, f"{step}: the record's {field} contains the debtor's document (personal data)")
        if protocol and record.protocol != protocol:
            _fail(what, f"{step}: asked about protocol {protocol!r}, answered about {record.protocol!r}")
        if record.status in _OPEN | {"removed"}:
            if record.notice_sent_at is None:
                _fail(what, f"{step}: status {record.status!r} without notice_sent_at (prior notice, CDC art. 43 §2)")
        if record.included_at is not None and record.notice_sent_at is not None \
                and record.included_at < record.notice_sent_at:
            _fail(what, f"{step}: included before the notice was sent")
        if record.status == "included" and record.included_at is None:
            _fail(what, f"{step}: status 'included' without included_at")
        if record.status == "removed" and record.removed_at is None:
            _fail(what, f"{step}: status 'removed' without removed_at")
        seen[step] = record
        return record

    included = submit("include", "include")
    if included.status == "rejected":
        _fail(what, f"include of a due, undisputed debt was rejected ({included.reason!r}); "
                    "pass a `request` your service accepts")
    if included.status not in _OPEN:
        _fail(what, f"include answered {included.status!r}; expected one of {sorted(_OPEN)}")
    protocol = included.protocol
    if idempotent:
        again = submit("include again", "include")
        if again.protocol != protocol:
            _fail(what, f"including the same debt twice opened two records ({protocol!r}, {again.protocol!r}); "
                        "a retried include must not negativate twice")
    status = submit("status", "status", protocol)
    if status.status not in _OPEN:
        _fail(what, f"status right after include is {status.status!r}; expected one of {sorted(_OPEN)}")
    if advance_clock is not None:
        advance_clock()
        status = submit("status after the waiting period", "status", protocol)
        if status.status != "included":
            _fail(what, f"after the waiting period the status is {status.status!r}, not 'included'")
    removed = submit("remove", "remove", protocol)
    if removed.status != "removed":
        _fail(what, f"remove answered {removed.status!r}, not 'removed'")
    if removed.notice_sent_at is not None and removed.removed_at < removed.notice_sent_at:
        _fail(what, "remove: removed before the notice was sent")
    after = submit("status after remove", "status", protocol)
    if after.status != "removed":
        _fail(what, f"status after remove is {after.status!r}, not 'removed'")
    try:
        answer = _call(service, "submit", msgspec.structs.replace(request, action="status", protocol=_UNKNOWN_PROTOCOL))
    except TransientError as error:
        _fail(what, f"status of an unknown protocol raised TransientError {error.code}; it is not worth retrying")
    except ConnectorError:
        pass
    except Exception as error:  # noqa: BLE001
        _fail(what, f"status of an unknown protocol raised {type(error).__name__}; raise a ConnectorError")
    else:
        _fail(what, f"status of an unknown protocol answered a record ({answer!r}); raise a ConnectorError "
                    "(e.g. NOT_FOUND)")
    return seen


# ============================================================================================
# A fake negativation provider: real HTTP on 127.0.0.1, for HTTP connectors' tests
# ============================================================================================

_PT_STATUS = {"notice_sent": "NOTIFICADO", "waiting": "EM_PRAZO", "included": "INCLUIDO",
              "removed": "BAIXADO", "rejected": "RECUSADO"}
_ERROR_STATUS = {"NOT_FOUND": 404, "CONFLICT": 409, "ALREADY_REMOVED": 409, "INVALID_TRANSITION": 409}


class FakeNegativationProvider:
    """A negativation provider's JSON API (Portuguese field names) served on 127.0.0.1:<free port>.

    Behind it is a SandboxNegativation whose clock is `provider.now` (advance with
    `provider.advance(days=...)`). Routes: POST /v1/negativacoes, GET and DELETE
    /v1/negativacoes/{protocolo}; answers {"dados": {"protocolo", "situacao", "notificado_em",
    "incluido_em", "baixado_em", "motivo"}}; errors {"erro": {"codigo", "mensagem"}} (401 without
    the token, 422 for an invalid document). `script(status, body)` makes the next answer(s)
    whatever you need (503, garbage…); `calls` lists (method, path, headers) received.
    `connector(**overrides)` builds the matching plugins.builtin.negativation.HTTPNegativation.
    """

    token = "Bearer kit-token"

    def __init__(self, *, waiting_days: int = 10, start: dt.datetime | None = None):
        from plugins.builtin.negativation import SandboxNegativation

        self.now = start or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self.backend = SandboxNegativation(lambda: self.now, waiting_days=waiting_days, protocol_prefix="NEG-")
        self.calls: list[tuple[str, str, dict]] = []
        self.bodies: list[bytes] = []
        self._scripted: deque[tuple[int, bytes, str, float]] = deque()
        self._requests: dict[str, NegativationRequest] = {}
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    # ---- control ----
    def advance(self, days: float = 0, **timedelta) -> None:
        self.now += dt.timedelta(days=days, **timedelta)

    def script(self, status: int, body: bytes | str | dict = b"", times: int = 1,
               content_type: str = "application/json", delay: float = 0.0) -> None:
        """The next `times` requests get this answer, after `delay` seconds (to provoke timeouts)."""
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        for _ in range(times):
            self._scripted.append((status, body, content_type, delay))

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def connector_config(self, **overrides) -> dict:
        config = {
            "name": "fake_provider", "base_url": self.url, "auth_header": "Authorization", "auth_value": self.token,
            "endpoints": {"include": "POST /v1/negativacoes", "remove": "DELETE /v1/negativacoes/{protocol}",
                          "status": "GET /v1/negativacoes/{protocol}"},
            "request_fields": {"devedor.documento": "debtor_document", "divida.contrato": "debt.contract",
                               "divida.valor": "debt.amount", "divida.vencimento": "debt.due_date",
                               "divida.credor": "debt.creditor_name", "divida.cnpj_credor": "debt.creditor_document"},
            "response_fields": {"protocol": "dados.protocolo", "status": "dados.situacao",
                                "notice_sent_at": "dados.notificado_em", "included_at": "dados.incluido_em",
                                "removed_at": "dados.baixado_em", "reason": "dados.motivo"},
            "status_map": {pt: ours for ours, pt in _PT_STATUS.items()},
            "error_code_field": "erro.codigo", "timeout": 2.0, "retries": 2, "backoff": 0.0,
        }
        config.update(overrides)
        return config

    def connector(self, **overrides):
        from plugins.builtin.negativation import HTTPNegativation

        return HTTPNegativation.from_config(self.connector_config(**overrides))

    # ---- lifecycle ----
    def start(self) -> "FakeNegativationProvider":
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload, content_type, delay = provider._answer(self.command, self.path,
                                                                        dict(self.headers), body)
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

            def log_message(self, *args):  # quiet, and no request lines in test output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-negativation", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None
        self.backend.close()

    def __enter__(self) -> "FakeNegativationProvider":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- the API ----
    @staticmethod
    def _json(status: int, data: dict) -> tuple[int, bytes, str, float]:
        return status, json.dumps(data, ensure_ascii=False).encode(), "application/json", 0.0

    def _error(self, status: int, code: str, message: str = "") -> tuple[int, bytes, str, float]:
        return self._json(status, {"erro": {"codigo": code, "mensagem": message}})

    def _record(self, status: int, record: NegativationRecord) -> tuple[int, bytes, str, float]:
        def iso(moment):
            return moment.isoformat() if moment else None

        return self._json(status, {"dados": {
            "protocolo": record.protocol, "situacao": _PT_STATUS[record.status],
            "notificado_em": iso(record.notice_sent_at), "incluido_em": iso(record.included_at),
            "baixado_em": iso(record.removed_at), "motivo": record.reason}})

    def _answer(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, bytes, str, float]:
        from stdnum.br import cnpj, cpf

        with self._lock:
            self.calls.append((method, path, headers))
            self.bodies.append(body)
            if self._scripted:
                return self._scripted.popleft()
            if headers.get("Authorization") != self.token:
                return self._error(401, "NAO_AUTORIZADO")
            parts = [p for p in path.split("?")[0].split("/") if p]
            if parts[:2] != ["v1", "negativacoes"] or len(parts) > 3:
                return self._error(404, "ROTA_INEXISTENTE")
            try:
                if method == "POST" and len(parts) == 2:
                    data = json.loads(body)
                    document = str(data["devedor"]["documento"])
                    if not (cpf.is_valid(document) or cnpj.is_valid(document)):
                        return self._error(422, "DOCUMENTO_INVALIDO", f"documento {document} inválido")
                    divida = data["divida"]
                    request = NegativationRequest(action="include", debtor_document=document, debt=Debt(
                        contract=divida["contrato"], amount=Decimal(divida["valor"]),
                        due_date=dt.date.fromisoformat(divida["vencimento"]), creditor_name=divida["credor"],
                        creditor_document=divida["cnpj_credor"]))
                    record = self.backend.submit(request)
                    self._requests.setdefault(record.protocol, request)
                    return self._record(201, record)
                if method in ("GET", "DELETE") and len(parts) == 3:
                    request = self._requests.get(parts[2])
                    if request is None:
                        return self._error(404, "PROTOCOLO_INEXISTENTE")
                    action = "status" if method == "GET" else "remove"
                    record = self.backend.submit(msgspec.structs.replace(request, action=action, protocol=parts[2]))
                    return self._record(200, record)
            except (KeyError, TypeError, ValueError, ArithmeticError):
                return self._error(400, "REQUISICAO_INVALIDA")
            except ConnectorError as error:
                return self._error(_ERROR_STATUS.get(error.code, 422), error.code)
            return self._error(405, "METODO_NAO_PERMITIDO")
