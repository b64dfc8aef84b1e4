"""What every notification channel shares: privacy masking, the idempotency store, template
rendering (Jinja2, Brazilian filters) and TemplatedChannel — the CDC art. 42-A creditor guard,
idempotent receipts and resilient delivery. See the package docstring for configuration."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import logging
import os
import re
import sqlite3
import ssl
import threading
import time
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import msgspec

from regua.dsl.values import normalize_cnpj
from regua.engine.connectors import ConnectorError
from regua.plugins.connectors import NotificationChannel
from regua.plugins.contracts import DeliveryReceipt, Notification
from regua.plugins.formatting import documento, register_filters
from regua.plugins.lazy import lazy_module
from regua.plugins.runtime import Resilient

jinja2 = lazy_module("jinja2")
sqlite_utils = lazy_module("sqlite_utils")

log = logging.getLogger("regua.notifications")

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"
CREDITOR_IDENTIFICATION_MISSING = "CREDITOR_IDENTIFICATION_MISSING"


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


#: Credit monitoring's bundled templates tell about a limit, they do not collect a debt.
MONITORING_TEMPLATES = frozenset({"monitoramento_gerente", "limite_atualizado"})


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
        self.stale_after = stale_after
        self.clock = clock
        self._lock = threading.Lock()
        if self.path == ":memory:":
            self._create_table()
            return
        # Two processes opening a new file at once (two `regua collect` runs) raced on the switch to
        # WAL and the table's creation: SQLite answers "database is locked" there without waiting.
        # The first does it under a file lock, as the stores' migrations do (regua/sqlite.py).
        with open(self.path + ".init-lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self.db.enable_wal()
            self._create_table()
        # As every Régua store (regua/sqlite.py): durable against a process crash in WAL mode;
        # FULL made each claim and receipt wait for an fsync (~5-20 ms per message here).
        connection.execute("pragma synchronous = NORMAL")

    def _create_table(self) -> None:
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
        from jinja2.sandbox import SandboxedEnvironment

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
        self.non_collection_templates = frozenset(non_collection_templates or ()) | MONITORING_TEMPLATES
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
        """`text`, with the standard footer appended when the creditor's name, CNPJ or (when known)
        address is missing from it."""
        if not collection or (creditor.name in text and creditor.formatted in text
                              and (not creditor.address or creditor.address in text)):
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
