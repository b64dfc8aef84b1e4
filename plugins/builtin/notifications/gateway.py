"""HTTPGatewayChannel: a configurable HTTP gateway for SMS or WhatsApp."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import msgspec

from regua.plugins.contracts import DeliveryReceipt, Notification
from regua.plugins.mapping import get_path

from .common import NotificationError, _Creditor, _env, _tidy, scrub
from .httpbase import _HTTPChannel


def _ascii(text: str) -> str:
    """Accents off (SMS in GSM-7): 'cobrança' -> 'cobranca', '…' -> '...'."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


@dataclass
class _Gateway:
    notification: Notification
    kwargs: dict


_PLACEHOLDERS = ("recipient", "text", "idempotency_key", "sender", "channel", "template")


def _fill(template, values: dict):
    """Placeholders like {text} replaced inside a parsed body (never in raw JSON text: no injection)."""
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    if isinstance(template, str):
        for name in _PLACEHOLDERS:
            template = template.replace("{" + name + "}", values[name])
        return template
    return template


class HTTPGatewayChannel(_HTTPChannel):
    """A configurable HTTP gateway for SMS or WhatsApp (`channel: sms | whatsapp`).

    Text comes from `<template>.<channel>.txt`, else `<template>.sms.txt`, and must fit
    `max_length` characters (default 459 for SMS — three concatenated GSM-7 segments; accents
    switch most gateways to UCS-2, so set `ascii_only: true` to stay in GSM-7 — and 4096 for
    WhatsApp). Too long: `on_too_long: fail` (default) refuses it with MESSAGE_TOO_LONG;
    `truncate` shortens the body at a word boundary and keeps the creditor footer intact.

    The request: `method` to `url` with `headers`, an auth header (`auth_header`: `auth_value` or,
    better, `auth_value_env`), and `body` — a JSON structure (or form fields with
    `body_format: form`) whose strings may hold {recipient}, {text}, {idempotency_key}, {sender},
    {channel}, {template}. The recipient is formatted per `recipient_format`: e164 (+5511…),
    digits (5511…) or raw. The URL is fixed (no placeholders: URLs end up in logs).

    The answer: provider_id from `provider_id_header` or the JSON path `provider_id_path`
    (e.g. `messages.0.id`); `status_path` read against `delivered_values` ("delivered") and
    `failed_values` (failed); otherwise "sent" (the gateway accepted it). 5xx/408/429/timeouts
    are retried. WhatsApp Business gateways usually require pre-approved templates for
    business-initiated messages: put the gateway's template fields in `body`.
    """

    def __init__(self, *, url: str, channel: str = "sms", method: str = "POST", auth_header: str = "Authorization",
                 auth_value: str = "", auth_value_env: str = "", body=None, body_format: str = "json",
                 sender: str = "", provider_id_header: str = "", provider_id_path: str = "id",
                 status_path: str = "", delivered_values=(), failed_values=(), max_length: int | None = None,
                 on_too_long: str = "fail", ascii_only: bool = False, recipient_format: str = "e164", **common):
        if channel not in ("sms", "whatsapp"):
            raise ValueError(f"gateway channel must be sms or whatsapp, not {channel!r}")
        self.channel = channel
        super().__init__(url=url, provider_id_header=provider_id_header, **common)
        if body_format not in ("json", "form"):
            raise ValueError(f"{self.name}: body_format must be json or form")
        if on_too_long not in ("fail", "truncate"):
            raise ValueError(f"{self.name}: on_too_long must be fail or truncate")
        if recipient_format not in ("e164", "digits", "raw"):
            raise ValueError(f"{self.name}: recipient_format must be e164, digits or raw")
        self.method = method.upper()
        if self.method not in ("POST", "PUT", "PATCH"):  # no GET: query strings (recipient, text) end up in logs
            raise ValueError(f"{self.name}: method must be POST, PUT or PATCH")
        self.auth_header, self._auth_value, self.auth_value_env = auth_header, auth_value, auth_value_env
        self.body = body if body is not None else {"to": "{recipient}", "text": "{text}"}
        self.body_format, self.sender = body_format, sender
        self.provider_id_path, self.status_path = provider_id_path, status_path
        self.delivered_values = {str(v).lower() for v in delivered_values or ()}
        self.failed_values = {str(v).lower() for v in failed_values or ()}
        self.max_length = int(max_length) if max_length else (4096 if channel == "whatsapp" else 459)
        self.on_too_long, self.ascii_only, self.recipient_format = on_too_long, bool(ascii_only), recipient_format

    def _recipient(self, recipient: str) -> str:
        if self.recipient_format == "raw":
            if not recipient.strip():
                raise NotificationError("INVALID_RECIPIENT", "empty")
            return recipient.strip()
        digits = re.sub(r"\D", "", recipient or "")
        if len(digits) in (10, 11):  # DDD + number: a Brazilian number without the country code
            digits = "55" + digits
        if not 12 <= len(digits) <= 15:
            raise NotificationError("INVALID_RECIPIENT", "not a phone number (DDD + number, or +55…)")
        return "+" + digits if self.recipient_format == "e164" else digits

    def render_text(self, notification: Notification, creditor: _Creditor, context: dict) -> str:
        name = self._template(notification, f".{self.channel}.txt")
        if not self.renderer.exists(name):
            name = self._template(notification, ".sms.txt")
        text = self.renderer.render(name, context)
        text = " ".join(text.split()) if self.channel == "sms" else _tidy(text)
        collection = self.is_collection(notification.template)
        text = self._identified(text, creditor, "_rodape.sms.txt", context, collection)
        if self.ascii_only:
            text = _ascii(text)
        if len(text) > self.max_length:
            footer = " ".join(self.renderer.render("_rodape.sms.txt", context).split())
            text = self._shorten(text, _ascii(footer) if self.ascii_only else footer)
        return text

    def _shorten(self, text: str, footer: str) -> str:
        too_long = NotificationError("MESSAGE_TOO_LONG", f"{len(text)} characters; the limit is {self.max_length}")
        if self.on_too_long != "truncate" or not text.endswith(footer):
            raise too_long
        ellipsis = "..." if self.ascii_only else "…"
        head = text[: len(text) - len(footer)].rstrip()
        budget = self.max_length - len(footer) - len(ellipsis) - 1
        if budget < 20:
            raise too_long
        cut = head[:budget]
        if " " in cut and not head[budget: budget + 1].isspace():
            cut = cut[: cut.rfind(" ")]
        return f"{cut.rstrip(' ,.;:')}{ellipsis} {footer}"

    def _prepare(self, notification, creditor, context):
        recipient = self._recipient(notification.recipient)
        text = self.render_text(notification, creditor, context)
        values = {"recipient": recipient, "text": text, "idempotency_key": notification.idempotency_key,
                  "sender": self.sender, "channel": self.channel, "template": notification.template}
        body = _fill(self.body, values)
        headers = dict(self.headers)
        if self.auth_header and (self._auth_value or self.auth_value_env):
            headers[self.auth_header] = _env(self.auth_value_env, self.name) if self.auth_value_env \
                else self._auth_value
        headers.setdefault("Idempotency-Key", notification.idempotency_key)
        kwargs = {"headers": headers}
        if self.body_format == "form":
            kwargs["data"] = body
        else:
            kwargs["content"] = msgspec.json.encode(body)
            headers["Content-Type"] = "application/json"
        return _Gateway(notification, kwargs)

    def _deliver(self, prepared: _Gateway) -> DeliveryReceipt:
        response = self._request(self.method, **prepared.kwargs)
        if not 200 <= response.status_code < 300:
            return self._refused(prepared.notification, response.status_code)
        data = self._json(response)
        provider_id = response.headers.get(self.provider_id_header, "") if self.provider_id_header else ""
        if not provider_id and self.provider_id_path:
            found = get_path(data, self.provider_id_path, None)
            provider_id = str(found) if found is not None and not isinstance(found, (dict, list)) else ""
        status = get_path(data, self.status_path, None) if self.status_path else None
        status = str(status).lower() if status is not None else ""
        if status and status in self.failed_values:
            return self.rejected(prepared.notification, "PROVIDER_FAILED", scrub(status, 60))
        delivered = bool(status) and status in self.delivered_values
        return self._receipt(prepared.notification, "delivered" if delivered else "sent", provider_id=provider_id,
                             delivered=delivered)



class FileOutboxTextChannel(HTTPGatewayChannel):
    """Offline sandbox for SMS and WhatsApp: renders the text exactly like HTTPGatewayChannel
    (same templates, length limit, footer and recipient check) and writes it to `directory` as a
    `.sms.txt` / `.whatsapp.txt` file instead of calling a gateway (status "sent": the sandbox
    proves no delivery; provider_id = the file's name)."""

    #: Writing a local file: delivered directly, without a worker thread and its hand-offs.
    inline = True

    def __init__(self, *, directory: str, channel: str = "sms", **common):
        common.setdefault("name", f"{channel}_outbox")
        super().__init__(url="http://sandbox.invalid/", channel=channel, **common)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _prepare(self, notification, creditor, context):
        return _Gateway(notification, {"recipient": self._recipient(notification.recipient),
                                       "text": self.render_text(notification, creditor, context)})

    def _deliver(self, prepared: _Gateway) -> DeliveryReceipt:
        notification = prepared.notification
        digest = hashlib.sha256(f"{self.name}\0{notification.idempotency_key}".encode()).hexdigest()[:24]
        target = self.directory / f"{digest}.{self.channel}.txt"
        partial = target.with_name(target.name + ".part")
        partial.write_text(f"To: {prepared.kwargs['recipient']}\nChannel: {self.channel}\n"
                           f"Template: {notification.template}\n\n{prepared.kwargs['text']}\n", encoding="utf-8")
        os.replace(partial, target)
        return self._receipt(notification, "sent", provider_id=target.name)
