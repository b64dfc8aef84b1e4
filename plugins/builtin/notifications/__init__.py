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
      sms_outbox: {directory, ...}          # offline sandbox: writes .sms.txt files (same text as sms)
      whatsapp_outbox: {directory, ...}     # offline sandbox: writes .whatsapp.txt files

Every section also takes name, timeout (per network operation), deadline (per attempt),
budget (per send, retries included), retries, backoff, failure_threshold, reset_after, templates_dir, non_collection_templates and
creditor_address. Secrets belong in environment variables (`*_env`) and in headers, never in
URLs (httpx logs request URLs).
Any other section name works too when it says its `type` (email, webhook, sms, whatsapp, outbox, sms_outbox, whatsapp_outbox),
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

from regua.plugins.hookspecs import hookimpl

# re-exported: everything importable from plugins.builtin.notifications before it became a package
from .common import (  # noqa: F401
    CREDITOR_IDENTIFICATION_MISSING,
    TEMPLATES_DIR,
    IdempotencyStore,
    InFlight,
    NotificationError,
    TemplatedChannel,
    TemplateRenderer,
    mask_recipient,
    scrub,
)
from .email import EmailChannel, FileOutboxChannel
from .gateway import FileOutboxTextChannel, HTTPGatewayChannel
from .httpbase import _HTTPChannel  # noqa: F401
from .webhook import WebhookChannel, WebhookCreditor, WebhookPayload, sign, verify_signature  # noqa: F401

__all__ = [
    "CREDITOR_IDENTIFICATION_MISSING", "EmailChannel", "FileOutboxChannel", "FileOutboxTextChannel", "HTTPGatewayChannel",
    "IdempotencyStore", "TemplateRenderer", "WebhookChannel", "mask_recipient", "scrub", "sign",
    "verify_signature",
]


# ---------------------------------------------------------------- the hook

_KINDS = {"email": EmailChannel, "webhook": WebhookChannel, "sms": HTTPGatewayChannel,
          "whatsapp": HTTPGatewayChannel, "outbox": FileOutboxChannel, "sms_outbox": FileOutboxTextChannel,
          "whatsapp_outbox": FileOutboxTextChannel}
_SHARED = ("templates_dir", "non_collection_templates", "creditor_address")


def build_channels(settings: dict | None, store: IdempotencyStore | None = None, **extra) -> list:
    """Channels for the `notifications` config section (see the module docstring). `extra`
    (now=, sleep=) goes to every channel, for tests and embedding."""
    settings = dict(settings or {})
    shared = {key: settings.pop(key) for key in _SHARED if key in settings}
    db = settings.pop("idempotency_db", None)
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
        if store is None:  # made for the first channel: no channel, no SQLite file (nor sqlite_utils import)
            store = IdempotencyStore(db or ":memory:")
        options = {**shared, **section, "store": store, **extra}
        options.setdefault("name", section_name)
        if cls is HTTPGatewayChannel:
            options["channel"] = kind
        elif cls is FileOutboxTextChannel:
            options["channel"] = kind.removesuffix("_outbox")
        try:
            channels.append(cls(**options))
        except TypeError as error:
            raise ValueError(f"notifications.{section_name}: {error}") from None
    return channels


@hookimpl
def regua_notification_channels(config):
    return build_channels((config or {}).get("notifications"))
