"""E-mail channels: EmailChannel (SMTP via smtplib) and FileOutboxChannel (offline .eml files)."""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from markupsafe import escape

from regua.engine.connectors import ConnectorError
from regua.plugins.connectors import TransientError
from regua.plugins.contracts import DeliveryReceipt, Notification

from .common import NotificationError, TemplatedChannel, _env, _ssl_context, _tidy, log, scrub


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
        # Derived from the idempotency key: a message sent again after a crash carries the same
        # Message-ID, so mail systems (and the receiving side) can recognise the duplicate.
        digest = hashlib.sha256(f"{self.name}\0{notification.idempotency_key}".encode()).hexdigest()[:32]
        message["Message-ID"] = f"<{digest}@{self.from_address.rpartition('@')[2] or 'localhost'}>"
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
    #: Writing a local file: delivered directly, without a worker thread and its hand-offs.
    inline = True

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

