"""Built-in notification channels: e-mail (SMTP), signed webhooks and HTTP gateways (SMS/WhatsApp).

Every channel renders the notification's template with Jinja2 (Brazilian filters from
plugins.formatting: `brl`, `data`, `documento`, `pct`), and returns a DeliveryReceipt — it never
raises. `send()` is self-contained: it applies the deadline, retries with backoff and the circuit
breaker of plugins.runtime (Resilient) itself, so callers should not retry it again; a failure
comes back as `DeliveryReceipt(status="failed", error="CODE: detail")`.

Configuration (PluginSettings.config["notifications"]); a section that is absent, empty or has
`enabled: false` provides no channel:

    notifications:
      idempotency_db: var/notifications.db  # SQLite file (default: in memory, lost on restart)
      templates_dir: my_templates           # extra templates, looked up before the bundled ones
      non_collection_templates: [boas_vindas]  # templates exempt from the CDC art. 42-A guard
      creditor_address: "Rua X, 100 - São Paulo/SP"  # shown in the footer (or context credor_endereco)
      email:   {from_address, host, port, starttls, ssl, username, password | password_env, from_name,
                reply_to, ca_file, verify_tls, allow_insecure_auth, html, local_hostname}
      webhook: {url, secret | secret_env, headers, provider_id_header, provider_id_field, ca_file, verify_tls}
      sms:     {url, method, headers, auth_header, auth_value | auth_value_env, body, body_format,
                sender, provider_id_header, provider_id_path, status_path, delivered_values,
                failed_values, max_length, on_too_long, ascii_only, recipient_format, ca_file, verify_tls}
      whatsapp: {... same keys as sms ...}
      outbox:  {directory, from_address}    # offline sandbox: writes .eml files, sends nothing

Every section also takes name, timeout (per network operation), deadline (per attempt),
budget (per send, retries included), retries, backoff, failure_threshold, reset_after, templates_dir, non_collection_templates and
creditor_address. Secrets belong in environment variables (`*_env`) and in headers, never in
URLs (httpx logs request URLs).
Any other section name works too when it says its `type` (email, webhook, sms, whatsapp, outbox),
e.g. `sms_backup: {type: sms, url: ...}`; the section name becomes the channel's name.

CDC art. 42-A guard: every template is a collection template unless listed in
`non_collection_templates`. A collection notification without `creditor_name` or with a
`creditor_document` that is not a valid CNPJ (dsl.values.normalize_cnpj) is refused with
`error="CREDITOR_IDENTIFICATION_MISSING"` and nothing is sent. Bundled templates carry a footer
with the creditor's name and formatted CNPJ; when a custom template leaves either out, the
standard footer is appended, so every collection message identifies the creditor.

Idempotency: receipts of successful sends are kept per (channel name, idempotency key) in an
IdempotencyStore (SQLite; keys stored as sha256, never in clear). Sending the same key again
returns the original receipt without contacting the provider. Failed sends are not kept, so
they can be tried again.

Privacy: recipients, names and documents never reach the logs; recipients are masked and
provider error texts are scrubbed of e-mail addresses and long digit runs. The webhook body does
carry the recipient and the context (personal data) to the configured URL: use https.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import logging
import os
import re
import smtplib
import socket
import sqlite3
import ssl
import threading
import time
import types
import unicodedata
from dataclasses import dataclass
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path

import httpx
import jinja2
import msgspec
import sqlite_utils
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from dsl.values import normalize_cnpj
from engine.connectors import ConnectorError
from plugins.connectors import NotificationChannel, TransientError
from plugins.contracts import CONTRACT_VERSION, DeliveryReceipt, Notification
from plugins.formatting import documento, register_filters
from plugins.hookspecs import hookimpl
from plugins.runtime import Resilient

log = logging.getLogger("regua.notifications")

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
CREDITOR_IDENTIFICATION_MISSING = "CREDITOR_IDENTIFICATION_MISSING"

__all__ = [
    "CREDITOR_IDENTIFICATION_MISSING", "EmailChannel", "FileOutboxChannel", "HTTPGatewayChannel",
    "IdempotencyStore", "TemplateRenderer", "WebhookChannel", "mask_recipient", "scrub", "sign",
    "verify_signature",
]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# ---------------------------------------------------------------- privacy

_EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")
_DIGIT_RUN = re.compile(r"\+?\d[\d .()\-/]{6,}\d")


def mask_recipient(value: str) -> str:
    """An e-mail becomes `m***@***.com`; anything else keeps only its last two characters."""
    text = str(value or "").strip()
    if "@" in text:
        local, _, domain = text.rpartition("@")
        tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{local[:1]}***@***" + (f".{tld}" if tld else "")
    if len(text) <= 4:
        return "*" * len(text)
    return "*" * (len(text) - 2) + text[-2:]


def scrub(text: str, limit: int = 300) -> str:
    """Provider/server text made safe for receipts and logs: no e-mails, no long digit runs."""
    text = _EMAIL.sub("<e-mail>", str(text))
    text = _DIGIT_RUN.sub(lambda m: mask_recipient(re.sub(r"\D", "", m.group())), text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ref(key: str) -> str:
    """A short, stable reference to an idempotency key for logs."""
    return "key#" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConnectorError("CONFIG", f"{what}: environment variable {name} is not set")
    return value


class NotificationError(Exception):
    """A problem with this one notification (not retried, does not trip the circuit breaker)."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


# ---------------------------------------------------------------- idempotency


class InFlight(Exception):
    pass


class IdempotencyStore:
    """Receipts of successful sends, by (channel, idempotency key), in a SQLite table.

    `claim` marks a key as being sent (atomically, also across processes sharing the file);
    `complete` stores the receipt; `release` forgets a claim after a failure. A claim left by a
    crashed process is taken over after `stale_after` seconds. Keys are stored hashed; the
    receipt is stored without its key (the caller's key is put back on reads).
    """

    TABLE = "notification_receipts"

    def __init__(self, path: str = ":memory:", stale_after: float = 600.0, clock=time.time):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self.db = sqlite_utils.Database(connection)
        if self.path != ":memory:":
            self.db.enable_wal()
        self.stale_after = stale_after
        self.clock = clock
        self._lock = threading.Lock()
        with self._lock:
            if self.TABLE not in self.db.table_names():
                self.db[self.TABLE].create({"key": str, "channel": str, "state": str, "receipt": str,
                                            "claimed_at": float, "completed_at": float}, pk="key",
                                           if_not_exists=True)

    @staticmethod
    def _key(channel: str, key: str) -> str:
        return hashlib.sha256(f"{channel}\0{key}".encode()).hexdigest()

    @staticmethod
    def _decode(text: str, key: str) -> DeliveryReceipt:
        receipt = msgspec.json.decode(text, type=DeliveryReceipt)
        return msgspec.structs.replace(receipt, idempotency_key=key)

    def get(self, channel: str, key: str) -> DeliveryReceipt | None:
        with self._lock:
            rows = list(self.db.query(f"select state, receipt from {self.TABLE} where key = ?",
                                      [self._key(channel, key)]))
        if rows and rows[0]["state"] == "done":
            return self._decode(rows[0]["receipt"], key)
        return None

    def claim(self, channel: str, key: str) -> DeliveryReceipt | None:
        """The earlier receipt, or None when the caller may send (and now holds the claim).
        Raises InFlight while another caller holds a fresh claim on the same key."""
        hashed, now = self._key(channel, key), self.clock()
        with self._lock:
            conn = self.db.conn
            conn.execute("begin immediate")
            try:
                row = conn.execute(f"select state, receipt, claimed_at from {self.TABLE} where key = ?",
                                   [hashed]).fetchone()
                if row is not None and row[0] == "done":
                    conn.execute("commit")
                    return self._decode(row[1], key)
                if row is not None and now - (row[2] or 0) < self.stale_after:
                    conn.execute("commit")
                    raise InFlight()
                conn.execute(f"insert or replace into {self.TABLE} (key, channel, state, receipt, claimed_at, "
                             f"completed_at) values (?, ?, 'pending', '', ?, null)", [hashed, channel, now])
                conn.execute("commit")
                return None
            except InFlight:
                raise
            except BaseException:
                conn.execute("rollback")
                raise

    def complete(self, channel: str, key: str, receipt: DeliveryReceipt) -> None:
        stored = msgspec.json.encode(msgspec.structs.replace(receipt, idempotency_key="")).decode()
        with self._lock:
            self.db.conn.execute(f"insert or replace into {self.TABLE} (key, channel, state, receipt, claimed_at, "
                                 f"completed_at) values (?, ?, 'done', ?, ?, ?)",
                                 [self._key(channel, key), channel, stored, self.clock(), self.clock()])

    def release(self, channel: str, key: str) -> None:
        with self._lock:
            self.db.conn.execute(f"delete from {self.TABLE} where key = ? and state = 'pending'",
                                 [self._key(channel, key)])


# ---------------------------------------------------------------- templates

_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*")


class TemplateRenderer:
    """Jinja2 templates: an optional extra folder first, then plugins/templates. Missing variables
    are errors (StrictUndefined): a message never goes out with a blank amount or date. HTML
    templates are autoescaped; templates run sandboxed."""

    def __init__(self, extra_dirs: tuple[str, ...] = ()):
        loaders = [jinja2.FileSystemLoader(str(d)) for d in extra_dirs if d]
        loaders.append(jinja2.FileSystemLoader(str(TEMPLATES_DIR)))
        self.env = SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm"), default_for_string=False,
                                                default=False),
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
        register_filters(self.env)

    def exists(self, name: str) -> bool:
        try:
            self.env.get_template(name)
        except jinja2.TemplateNotFound:
            return False
        except jinja2.TemplateError:
            return True  # it exists; render() reports the error
        return True

    def render(self, name: str, context: dict) -> str:
        try:
            return self.env.get_template(name).render(context)
        except jinja2.TemplateNotFound:
            raise NotificationError("TEMPLATE_NOT_FOUND", name) from None
        except Exception as error:  # noqa: BLE001 — a bad template or value fails this notification only
            raise NotificationError("TEMPLATE_ERROR", f"{name}: {type(error).__name__}: {scrub(str(error), 200)}") \
                from None


@lru_cache(maxsize=32)
def _renderer(extra_dirs: tuple[str, ...]) -> TemplateRenderer:
    return TemplateRenderer(extra_dirs)


def _tidy(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


# ---------------------------------------------------------------- the common part


@dataclass(frozen=True)
class _Creditor:
    name: str
    document: str  # compact CNPJ ("" when absent)
    formatted: str  # 00.000.000/0000-00
    address: str = ""


class TemplatedChannel(NotificationChannel):
    """Template rendering, the CDC art. 42-A guard, idempotency and resilient delivery.

    Subclasses implement `_prepare(notification, creditor, context)` (render and build the
    message; raise NotificationError for a problem with this notification) and
    `_deliver(prepared)` (talk to the provider; return a DeliveryReceipt, raise TransientError
    to be retried, ConnectorError for provider-wide failures such as bad credentials).
    """

    #: `timeout` bounds each network operation (connect, each read…); the runtime abandons a whole
    #: attempt after `deadline` seconds (default: timeout × deadline_factor + 1), so the client's
    #: own timeout fires first and attempts end cleanly.
    deadline_factor: float = 2.0

    def __init__(self, *, name: str = "", timeout: float | None = None, retries: int | None = None,
                 backoff: float | None = None, failure_threshold: int | None = None,
                 reset_after: float | None = None, deadline: float | None = None, budget: float | None = None,
                 templates_dir: str | None = None,
                 non_collection_templates=(), creditor_address: str = "",
                 store: IdempotencyStore | None = None, now=_utcnow, sleep=time.sleep):
        self.name = name or self.name or self.channel
        for attribute, value in (("timeout", timeout), ("retries", retries), ("backoff", backoff),
                                 ("failure_threshold", failure_threshold), ("reset_after", reset_after)):
            if value is not None:
                setattr(self, attribute, type(getattr(NotificationChannel, attribute))(value))
        self.renderer = _renderer((str(templates_dir),) if templates_dir else ())
        self.non_collection_templates = frozenset(non_collection_templates or ())
        self.creditor_address = creditor_address
        self.store = store if store is not None else IdempotencyStore()
        self.now = now
        self.deadline = float(deadline) if deadline else self.timeout * self.deadline_factor + 1.0
        policy = types.SimpleNamespace(name=self.name, timeout=self.deadline,
                                       retries=self.retries, backoff=self.backoff,
                                       failure_threshold=self.failure_threshold, reset_after=self.reset_after)
        # overall seconds for one send, retries included (plugins.runtime); default: no cap
        self.budget = float(budget) if budget else float("inf")
        policy.budget = self.budget
        self.resilient = Resilient(policy, self._deliver, sleep=sleep)

    # -- hooks for subclasses
    def _prepare(self, notification: Notification, creditor: _Creditor, context: dict):
        raise NotImplementedError

    def _deliver(self, prepared) -> DeliveryReceipt:
        raise NotImplementedError

    # -- helpers
    def is_collection(self, template: str) -> bool:
        return template not in self.non_collection_templates

    def _creditor(self, notification: Notification) -> _Creditor | None:
        name = " ".join((notification.creditor_name or "").split())
        compact = normalize_cnpj(notification.creditor_document or "") if notification.creditor_document else None
        address = str((notification.context or {}).get("credor_endereco") or self.creditor_address or "")
        if not name or compact is None:
            if self.is_collection(notification.template):
                return None
            return _Creditor(name, compact or "", documento(compact) if compact else "", address)
        return _Creditor(name, compact, documento(compact), address)

    def _context(self, notification: Notification, creditor: _Creditor) -> dict:
        context = dict(notification.context or {})
        context["credor"] = {"nome": creditor.name, "cnpj": creditor.formatted, "cnpj_compacto": creditor.document,
                             "endereco": creditor.address}
        return context

    def _template(self, notification: Notification, suffix: str) -> str:
        if not _TEMPLATE_NAME.fullmatch(notification.template or ""):
            raise NotificationError("TEMPLATE_NOT_FOUND", "template names are lower-case letters, digits, _ and -")
        return f"{notification.template}{suffix}"

    def _identified(self, text: str, creditor: _Creditor, footer_template: str, context: dict,
                    collection: bool) -> str:
        """`text`, with the standard footer appended when the creditor's name or CNPJ is missing."""
        if not collection or (creditor.name in text and creditor.formatted in text):
            return text
        footer = self.renderer.render(footer_template, context).strip()
        return f"{text}\n\n{footer}" if "\n" in footer or "\n" in text else f"{text} {footer}"

    def _receipt(self, notification: Notification, status: str, *, provider_id: str = "", error: str = "",
                 delivered: bool = False) -> DeliveryReceipt:
        now = self.now() if status != "failed" else None
        return DeliveryReceipt(status=status, idempotency_key=notification.idempotency_key, provider_id=provider_id,
                               sent_at=now, delivered_at=now if delivered else None, error=error)

    def _failed(self, notification: Notification, code: str, detail: str = "") -> DeliveryReceipt:
        error = f"{code}: {detail}" if detail and detail != code else code
        log.warning("notification %s via %s to %s failed: %s", _ref(notification.idempotency_key or ""),
                    self.name, mask_recipient(notification.recipient), error)
        return DeliveryReceipt(status="failed", idempotency_key=notification.idempotency_key, error=error)

    # -- the one public method
    def send(self, notification: Notification) -> DeliveryReceipt:
        """Render and deliver `notification`; a receipt, never an exception."""
        key = notification.idempotency_key
        if not key:
            return self._failed(notification, "IDEMPOTENCY_KEY_MISSING")
        if notification.channel and notification.channel not in (self.channel, self.name):
            return self._failed(notification, "WRONG_CHANNEL", f"this is the {self.channel} channel '{self.name}'")
        creditor = self._creditor(notification)
        if creditor is None:  # CDC art. 42-A: refused, never sent
            return self._failed(notification, CREDITOR_IDENTIFICATION_MISSING)
        try:
            previous = self.store.claim(self.name, key)
        except InFlight:
            return self._failed(notification, "IN_FLIGHT", "another send with this idempotency key is in progress")
        except Exception as error:  # noqa: BLE001 — without the store we cannot promise "at most once"
            return self._failed(notification, "IDEMPOTENCY_STORE", type(error).__name__)
        if previous is not None:
            log.info("notification %s via %s: already %s (provider id %s); not sent again", _ref(key), self.name,
                     previous.status, previous.provider_id)
            return previous
        receipt = None
        try:
            try:
                prepared = self._prepare(notification, creditor, self._context(notification, creditor))
                receipt = self.resilient(prepared)
                if not isinstance(receipt, DeliveryReceipt):
                    raise ConnectorError("FAILED", "the channel returned no receipt")
            except NotificationError as error:
                receipt = self._failed(notification, error.code, error.detail)
            except ConnectorError as error:
                receipt = self._failed(notification, error.code, scrub(str(error)))
            except Exception as error:  # noqa: BLE001 — a bug here fails the notification, not the caller
                receipt = self._failed(notification, "FAILED", type(error).__name__)
        finally:
            try:
                if receipt is not None and receipt.status != "failed":
                    self.store.complete(self.name, key, receipt)
                else:
                    self.store.release(self.name, key)
            except Exception as error:  # noqa: BLE001 — the message went (or not) anyway: report, don't crash
                log.error("notification %s via %s: idempotency store failed (%s)", _ref(key), self.name,
                          type(error).__name__)
        if receipt.status != "failed":
            log.info("notification %s %s via %s to %s (provider id %s)", _ref(key), receipt.status, self.name,
                     mask_recipient(notification.recipient), receipt.provider_id)
        return receipt

    def rejected(self, prepared_notification: Notification, code: str, detail: str = "") -> DeliveryReceipt:
        """A per-message rejection by the provider (bad address, content refused): a failed receipt
        that does not count against the provider's circuit breaker."""
        return self._failed(prepared_notification, code, detail)


def _ssl_context(ca_file: str = "", verify: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file or None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# ---------------------------------------------------------------- e-mail


@dataclass
class _Email:
    notification: Notification
    message: EmailMessage
    recipient: str


class EmailChannel(TemplatedChannel):
    """E-mail over SMTP (smtplib): plain, STARTTLS or implicit TLS, optional AUTH.

    Renders `<template>.subject.txt` and `<template>.txt`, plus `<template>.html` when it exists
    (sent as multipart/alternative). The Message-ID is the receipt's provider_id.

    Status is "sent": the SMTP server accepted the message. SMTP cannot prove delivery to the
    mailbox (a bounce may still come later); for legal notices (STJ Tema 1.315) pair it with
    delivery evidence from the provider (DSN, webhooks, read receipts).
    """

    channel = "email"
    timeout = 10.0
    deadline_factor = 4.0  # connect, greeting, EHLO/STARTTLS/AUTH and DATA each get `timeout`
    retries = 2
    backoff = 0.5

    def __init__(self, *, from_address: str, host: str = "localhost", port: int | None = None,
                 starttls: bool = False, ssl: bool = False, username: str = "", password: str = "",
                 password_env: str = "", from_name: str = "", reply_to: str = "", ca_file: str = "",
                 verify_tls: bool = True, allow_insecure_auth: bool = False, html: bool = True,
                 local_hostname: str | None = None, **common):
        super().__init__(**common)
        if starttls and ssl:
            raise ValueError(f"{self.name}: choose starttls (port 587) or ssl (port 465), not both")
        if not from_address or "@" not in from_address:
            raise ValueError(f"{self.name}: from_address must be an e-mail address")
        if (username or password or password_env) and not (starttls or ssl) and not allow_insecure_auth:
            raise ValueError(f"{self.name}: SMTP AUTH without TLS would send the password in clear; "
                             "set starttls or ssl (or allow_insecure_auth for a local relay)")
        self.host, self.starttls, self.ssl = host, bool(starttls), bool(ssl)
        self.port = int(port) if port else (465 if ssl else 587 if starttls else 25)
        self.username, self._password, self.password_env = username, password, password_env
        self.from_address, self.from_name, self.reply_to = from_address, from_name, reply_to
        self.ca_file, self.verify_tls, self.html = ca_file, bool(verify_tls), bool(html)
        self.local_hostname = local_hostname
        if (starttls or ssl) and not verify_tls:
            log.warning("%s: TLS certificate verification is off", self.name)

    def _password_value(self) -> str:
        return _env(self.password_env, self.name) if self.password_env else self._password

    def _prepare(self, notification, creditor, context):
        recipient = (notification.recipient or "").strip()
        if not re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+", recipient):
            raise NotificationError("INVALID_RECIPIENT", "not an e-mail address")
        collection = self.is_collection(notification.template)
        subject = " ".join(self.renderer.render(self._template(notification, ".subject.txt"), context).split())
        text = _tidy(self.renderer.render(self._template(notification, ".txt"), context))
        text = self._identified(text, creditor, "_rodape.txt", context, collection)
        html = None
        html_name = self._template(notification, ".html")
        if self.html and self.renderer.exists(html_name):
            html = self.renderer.render(html_name, context)
            if collection and (str(escape(creditor.name)) not in html or creditor.formatted not in html):
                footer = self.renderer.render("_rodape.html", context)
                html = html.replace("</body>", footer + "</body>") if "</body>" in html else html + footer
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = email.utils.formataddr((self.from_name or creditor.name, self.from_address))
        message["To"] = recipient
        if self.reply_to:
            message["Reply-To"] = self.reply_to
        message["Date"] = email.utils.format_datetime(self.now())
        message["Message-ID"] = email.utils.make_msgid(domain=self.from_address.rpartition("@")[2])
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return _Email(notification, message, recipient)

    def _transport(self, prepared: _Email) -> None:
        phase = "connect"
        try:
            context = _ssl_context(self.ca_file, self.verify_tls) if (self.ssl or self.starttls) else None
            if self.ssl:
                client = smtplib.SMTP_SSL(self.host, self.port, self.local_hostname, timeout=self.timeout,
                                          context=context)
            else:
                client = smtplib.SMTP(self.host, self.port, self.local_hostname, timeout=self.timeout)
            with client:
                phase = "ehlo"
                client.ehlo()
                if self.starttls:
                    phase = "starttls"
                    client.starttls(context=context)
                    client.ehlo()
                if self.username:
                    phase = "auth"
                    client.login(self.username, self._password_value())
                phase = "send"
                client.send_message(prepared.message, from_addr=self.from_address, to_addrs=[prepared.recipient])
        except smtplib.SMTPAuthenticationError as error:
            raise ConnectorError("AUTH_FAILED", f"the server refused the credentials ({error.smtp_code})") from None
        except smtplib.SMTPNotSupportedError:
            code = "STARTTLS_UNAVAILABLE" if phase == "starttls" else "SMTP_NOT_SUPPORTED"
            raise ConnectorError(code, f"the server does not support this ({phase})") from None
        except smtplib.SMTPRecipientsRefused as error:
            codes = sorted({code for code, _ in error.recipients.values()}) or [550]
            if all(400 <= c < 500 for c in codes):
                raise TransientError("SMTP_TEMPORARY", f"recipient deferred ({codes[0]})") from None
            text = next(iter(error.recipients.values()))[1]
            raise _Rejected("RECIPIENT_REFUSED", f"{codes[0]} {_smtp_text(text)}") from None
        except smtplib.SMTPServerDisconnected as error:  # smtplib reports read timeouts this way
            if "timed out" in str(error):
                raise TransientError("TIMEOUT", f"{phase}: no answer within {self.timeout:g}s") from None
            raise TransientError("CONNECTION", f"{phase}: {type(error).__name__}") from None
        except smtplib.SMTPResponseException as error:  # connect/sender refused, data error, others
            detail = f"{error.smtp_code} {_smtp_text(error.smtp_error)}"
            if 400 <= error.smtp_code < 500:
                raise TransientError("SMTP_TEMPORARY", detail) from None
            if isinstance(error, smtplib.SMTPDataError):
                raise _Rejected("MESSAGE_REFUSED", detail) from None
            raise ConnectorError("SMTP_ERROR", f"{phase}: {detail}") from None
        except ssl.SSLCertVerificationError as error:
            raise ConnectorError("TLS_ERROR", f"certificate verification failed: {error.verify_message}") from None
        except ssl.SSLError as error:
            raise ConnectorError("TLS_ERROR", f"{phase}: {error.reason or type(error).__name__}") from None
        except (TimeoutError, socket.timeout):
            raise TransientError("TIMEOUT", f"{phase}: no answer within {self.timeout:g}s") from None
        except smtplib.SMTPException as error:  # e.g. "No suitable authentication method found"
            code = "AUTH_FAILED" if phase == "auth" else "SMTP_ERROR"
            raise ConnectorError(code, f"{phase}: {scrub(str(error), 120)}") from None
        except OSError as error:
            raise TransientError("CONNECTION", f"{phase}: {type(error).__name__}") from None

    def _deliver(self, prepared: _Email) -> DeliveryReceipt:
        try:
            self._transport(prepared)
        except _Rejected as rejection:
            return self.rejected(prepared.notification, rejection.code, rejection.detail)
        return self._receipt(prepared.notification, "sent", provider_id=str(prepared.message["Message-ID"]))


class _Rejected(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(code)
        self.code, self.detail = code, detail


def _smtp_text(value) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return scrub(text, 160)


class FileOutboxChannel(EmailChannel):
    """Offline sandbox: renders e-mails exactly like EmailChannel and writes them as .eml files
    to `directory` instead of sending them (status "sent", provider_id = Message-ID)."""

    name = "outbox"

    def __init__(self, *, directory: str, from_address: str = "regua@localhost", **common):
        super().__init__(from_address=from_address, **common)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _transport(self, prepared: _Email) -> None:
        message_id = prepared.message["Message-ID"]
        target = self.directory / (hashlib.sha256(message_id.encode()).hexdigest()[:24] + ".eml")
        partial = target.with_suffix(".eml.part")
        partial.write_bytes(bytes(prepared.message))
        os.replace(partial, target)


# ---------------------------------------------------------------- HTTP (webhook and gateways)


def sign(body: bytes, secret: str) -> str:
    """The X-Regua-Signature header value: `sha256=<hex HMAC-SHA256 of the raw body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str, secret: str) -> bool:
    """For receivers: does `header` (X-Regua-Signature) sign `body` with `secret`? Constant time."""
    return hmac.compare_digest(sign(body, secret), header or "")


def _json_safe(value):
    return msgspec.to_builtins(value, str_keys=True, enc_hook=str)


def _dig(data, path: str):
    """data['a']['0']['b'] for path 'a.0.b' (list indexes as numbers); None when absent."""
    for part in [p for p in (path or "").split(".") if p]:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


class _HTTPChannel(TemplatedChannel):
    retries = 3
    backoff = 0.5
    timeout = 10.0

    def __init__(self, *, url: str, headers: dict | None = None, verify_tls: bool = True, ca_file: str = "",
                 provider_id_header: str = "", **common):
        super().__init__(**common)
        if not re.match(r"https?://", url or ""):
            raise ValueError(f"{self.name}: url must start with http:// or https://")
        self.url = url
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self.provider_id_header = provider_id_header
        verify = _ssl_context(ca_file, verify_tls) if url.startswith("https") else True
        self.client = httpx.Client(timeout=httpx.Timeout(self.timeout), verify=verify, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def _request(self, method: str, **kwargs) -> httpx.Response:
        try:
            response = self.client.request(method, self.url, **kwargs)
        except httpx.TimeoutException:
            raise TransientError("TIMEOUT", f"no answer within {self.timeout:g}s") from None
        except httpx.TransportError as error:
            raise TransientError("CONNECTION", type(error).__name__) from None
        status = response.status_code
        if status >= 500 or status in (408, 425, 429):
            raise TransientError("HTTP_ERROR", f"HTTP {status}")
        return response

    def _refused(self, notification: Notification, status: int) -> DeliveryReceipt:
        if status in (401, 403, 404, 405):  # credentials or URL: every message would fail alike
            raise ConnectorError("HTTP_ERROR", f"HTTP {status} (check the {self.name} url and credentials)")
        return self.rejected(notification, "HTTP_ERROR", f"HTTP {status}")

    @staticmethod
    def _json(response: httpx.Response):
        try:
            return response.json()
        except ValueError:
            return None


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
            found = _dig(self._json(response), self.provider_id_field)
            provider_id = str(found) if found is not None and not isinstance(found, (dict, list)) else ""
        return self._receipt(prepared.notification, "delivered", provider_id=provider_id, delivered=True)


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
            found = _dig(data, self.provider_id_path)
            provider_id = str(found) if found is not None and not isinstance(found, (dict, list)) else ""
        status = _dig(data, self.status_path) if self.status_path else None
        status = str(status).lower() if status is not None else ""
        if status and status in self.failed_values:
            return self.rejected(prepared.notification, "PROVIDER_FAILED", scrub(status, 60))
        delivered = bool(status) and status in self.delivered_values
        return self._receipt(prepared.notification, "delivered" if delivered else "sent", provider_id=provider_id,
                             delivered=delivered)


# ---------------------------------------------------------------- the hook

_KINDS = {"email": EmailChannel, "webhook": WebhookChannel, "sms": HTTPGatewayChannel,
          "whatsapp": HTTPGatewayChannel, "outbox": FileOutboxChannel}
_SHARED = ("templates_dir", "non_collection_templates", "creditor_address")


def build_channels(settings: dict | None, store: IdempotencyStore | None = None, **extra) -> list:
    """Channels for the `notifications` config section (see the module docstring). `extra`
    (now=, sleep=) goes to every channel, for tests and embedding."""
    settings = dict(settings or {})
    shared = {key: settings.pop(key) for key in _SHARED if key in settings}
    db = settings.pop("idempotency_db", None)
    store = store if store is not None else IdempotencyStore(db or ":memory:")
    channels = []
    for section_name, section in settings.items():
        if not section or not isinstance(section, dict):
            continue
        section = dict(section)
        if section.pop("enabled", True) is False:
            continue
        kind = section.pop("type", section_name)
        cls = _KINDS.get(kind)
        if cls is None:
            raise ValueError(f"notifications.{section_name}: unknown channel type {kind!r} "
                             f"(expected one of {', '.join(sorted(_KINDS))})")
        options = {**shared, **section, "store": store, **extra}
        options.setdefault("name", section_name)
        if cls is HTTPGatewayChannel:
            options["channel"] = kind
        try:
            channels.append(cls(**options))
        except TypeError as error:
            raise ValueError(f"notifications.{section_name}: {error}") from None
    return channels


@hookimpl
def regua_notification_channels(config):
    return build_channels((config or {}).get("notifications"))
