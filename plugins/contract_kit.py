"""The contract test kit for Régua plugin authors: `check_bureau_connector`,
`check_notification_channel`, `check_negativation_service` and the `sample_*` builders.

Plain functions with no pytest dependency; import them from `plugins.testing` (which re-exports
everything here). The usage guide — what each check proves, and an example — is the docstring
of plugins.testing; the pytest fixtures live there too.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import typing
import uuid
from decimal import Decimal, InvalidOperation

import msgspec

from regua.engine.connectors import ConnectorError, mask_document
from regua.plugins.connectors import TransientError
from regua.plugins.contracts import (
    CONTRACT_VERSION,
    BureauReport,
    Debt,
    DeliveryReceipt,
    DeliveryStatus,
    NegativationRecord,
    NegativationRequest,
    Notification,
)

__all__ = [
    "check_bureau_connector", "check_notification_channel", "check_negativation_service",
    "sample_notification", "sample_negativation_request", "KIT_CPF", "KIT_CNPJ", "CREDITOR_CNPJ",
]

#: Valid documents the kit uses by default (well-known test numbers, nobody's real data).
KIT_CPF = "52998224725"
KIT_CNPJ = "11222333000181"
CREDITOR_CNPJ = "11444777000161"

DELIVERY_STATUSES = frozenset(typing.get_args(DeliveryStatus))
_OPEN = frozenset({"notice_sent", "waiting", "included"})
_UNKNOWN_PROTOCOL = "KIT-NO-SUCH-PROTOCOL-0"


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
    from regua.plugins.runtime import call_with_deadline

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
