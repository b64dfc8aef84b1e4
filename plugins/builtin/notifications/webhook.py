"""Signed webhooks: WebhookChannel, its JSON payload, and sign/verify_signature for receivers."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

import msgspec

from regua.plugins.contracts import CONTRACT_VERSION, DeliveryReceipt, Notification
from regua.plugins.mapping import get_path

from .common import _env
from .httpbase import _HTTPChannel, _json_safe


def sign(body: bytes, secret: str) -> str:
    """The X-Regua-Signature header value: `sha256=<hex HMAC-SHA256 of the raw body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str, secret: str) -> bool:
    """For receivers: does `header` (X-Regua-Signature) sign `body` with `secret`? Constant time."""
    return hmac.compare_digest(sign(body, secret), header or "")


@dataclass
class _Webhook:
    notification: Notification
    body: bytes
    headers: dict


class WebhookCreditor(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    document: str  # compact CNPJ
    document_formatted: str


class WebhookPayload(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body a webhook receives (sign: X-Regua-Signature over these exact bytes)."""

    event: str = "notification"
    idempotency_key: str  # also in the X-Regua-Idempotency-Key header: dedupe on it
    channel: str
    template: str
    recipient: str  # personal data
    context: dict  # the template's values, JSON-safe: money as text "1234.56", dates ISO
    creditor: WebhookCreditor
    created_at: dt.datetime
    version: str = CONTRACT_VERSION


class WebhookChannel(_HTTPChannel):
    """POSTs the notification as signed JSON (WebhookPayload) to `url`.

    Headers: `X-Regua-Signature: sha256=<hex HMAC-SHA256 of the raw body with the shared secret>`
    (check it with `verify_signature`) and `X-Regua-Idempotency-Key` (retries reuse the exact same
    body, so receivers can dedupe). 5xx, 408/429 and timeouts are retried with backoff; any 2xx
    is "delivered" (the receiver acknowledged it); other statuses fail. provider_id comes from
    the `provider_id_header` response header or the `provider_id_field` of a JSON response.
    """

    channel = "webhook"

    def __init__(self, *, url: str, secret: str = "", secret_env: str = "", provider_id_header: str = "X-Request-Id",
                 provider_id_field: str = "id", **common):
        super().__init__(url=url, provider_id_header=provider_id_header, **common)
        if not secret and not secret_env:
            raise ValueError(f"{self.name}: set secret_env (or secret) to sign webhook bodies")
        self._secret, self.secret_env, self.provider_id_field = secret, secret_env, provider_id_field

    def _prepare(self, notification, creditor, context):
        payload = WebhookPayload(
            idempotency_key=notification.idempotency_key, channel=notification.channel or self.channel,
            template=notification.template, recipient=notification.recipient,
            context=_json_safe(notification.context),
            creditor=WebhookCreditor(name=creditor.name, document=creditor.document,
                                     document_formatted=creditor.formatted),
            created_at=self.now())
        body = msgspec.json.encode(payload)
        secret = _env(self.secret_env, self.name) if self.secret_env else self._secret
        headers = {**self.headers, "Content-Type": "application/json", "User-Agent": "regua-webhook",
                   "X-Regua-Signature": sign(body, secret), "X-Regua-Idempotency-Key": notification.idempotency_key}
        return _Webhook(notification, body, headers)

    def _deliver(self, prepared: _Webhook) -> DeliveryReceipt:
        response = self._request("POST", content=prepared.body, headers=prepared.headers)
        if not 200 <= response.status_code < 300:
            return self._refused(prepared.notification, response.status_code)
        provider_id = response.headers.get(self.provider_id_header, "") if self.provider_id_header else ""
        if not provider_id and self.provider_id_field:
            found = get_path(self._json(response), self.provider_id_field, None)
            provider_id = str(found) if found is not None and not isinstance(found, (dict, list)) else ""
        return self._receipt(prepared.notification, "delivered", provider_id=provider_id, delivered=True)
