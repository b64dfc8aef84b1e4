"""Credit monitoring as a service of the server and of `regua monitor`: signed alerts, polled
sources, portfolio re-checks, manual limit changes, and monitoring decisions recorded in the
decision log like every other decision (GET /decisions/{id} explains them).

Signatures (POST /events): the sender puts its name in `X-Regua-Source` and
`X-Regua-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, keyed with the
source's secret (`monitoring.webhook_secrets`). The timestamp must be within
`signature_tolerance_seconds` of the server's clock, so a captured request cannot be replayed
later; within that window the alert's id makes a replay harmless.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import logging
import os
import queue
import threading
import time

import msgspec

from regua.dialect import transaction
from regua.engine import brazil
from regua.engine.connectors import Connectors, mask_document
from regua.engine.recorded import encode_answers
from regua.plugins.contracts import MonitoringAlert
from regua.plugins.runtime import Resilient
from regua.portfolio.monitoring.monitor import AlertConflict, Monitor, Result, alert_problems
from regua.portfolio.monitoring.recheck import RecheckSummary, recheck
from regua.portfolio.monitoring.settings import MonitoringSettings
from regua.portfolio.monitoring.store import MonitoringStore

from .collection import collection_settings
from .config import SANDBOX_KEY, Settings
from .ids import new_decision_id
from .schemas import EvaluateResponse, PolicyRef
from .store import DECISION_COLUMNS
from .store_common import document_hash

log = logging.getLogger("regua.monitoring")
_encode = msgspec.json.Encoder().encode
_decode_alert = msgspec.json.Decoder(MonitoringAlert).decode


#: Who the account-manager e-mails go to in sandbox mode when none is configured.
SANDBOX_MANAGER = "gerente@sandbox.regua.example"


class SignatureError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Regua-Signature` value for `body` sent at `timestamp` (what a bureau computes)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


#: The advisory lock of the process polling the monitoring sources (PostgreSQL).
POLL_LOCK = 0x5265677561_706F6C


class MonitoringService:
    def __init__(self, settings: Settings, registry, policies, connectors: Connectors, today=brazil.today):
        self.settings: MonitoringSettings = settings.monitoring
        if settings.sandbox and not self.settings.manager_email:  # sandbox e-mails land in the outbox folder
            self.settings = msgspec.structs.replace(self.settings, manager_email=SANDBOX_MANAGER)
        self.path = settings.store.location  # a SQLite file or the PostgreSQL database (store.url)
        self.sandbox = settings.sandbox
        self.registry = registry
        self.policies = policies  # server.policies.PolicyService
        self.connectors = connectors
        self.today = today
        collection = collection_settings(settings)
        self.creditor = (collection.creditor_name, collection.creditor_document)
        self._local = threading.local()
        self._stop = threading.Event()
        # Notifications of alerts are sent by one thread of their own, off the alert's path:
        # rendering and delivering an e-mail costs milliseconds, queueing it microseconds.
        self._outgoing: queue.Queue = queue.Queue()
        self._sender: threading.Thread | None = None
        self._sender_lock = threading.Lock()
        self._sources: dict[str, Resilient] = {}
        MonitoringStore(self.path).close()  # migrated once here; each thread then opens a connection
        # Monitoring decisions are written in the monitor's own transaction, next to the state they
        # change: the decision log's tables must exist in that database (SQLite file or PostgreSQL).
        from .store import open_store

        open_store(self.path).close()

    # ---- plumbing ----
    def monitor(self) -> Monitor:
        """One Monitor (and SQLite connection) per thread."""
        monitor = getattr(self._local, "monitor", None)
        if monitor is None:
            prepared = lambda: {name: active.prepared for name, active in self.policies.active.items()}  # noqa: E731
            monitor = self._local.monitor = Monitor(
                MonitoringStore(self.path, migrate=False), prepared, self.connectors, self.registry.channels, self.settings,
                self.record_decision, self.creditor, sink=self.registry.event_recorded)
        return monitor

    def record_decision(self, db, prepared, decision, inputs: dict, elapsed_ms: float) -> str:
        """Write a monitoring decision to the decision log (inside the monitor's transaction)."""
        decision_id = new_decision_id()
        active = self.policies.active.get(prepared.name)
        revision = active.revision if active is not None and active.prepared is prepared else 0
        result = decision.to_dict()
        body = _encode(EvaluateResponse(decision_id, PolicyRef(prepared.name, prepared.version, revision),
                                        decision.outcome, result["outputs"], result["reasons"], result["trace"],
                                        result["connector_calls"], round(elapsed_ms, 3), False))
        document = inputs.get("document") or None
        shown = {k: (mask_document(v) if k == "document" and v else v) for k, v in inputs.items()}
        row = (decision_id, prepared.name, prepared.version, revision, decision.outcome, body.decode(),
               _encode(shown).decode(), None, document_hash(document) if document else None,
               mask_document(document) if document else None, None, "monitoring", round(elapsed_ms, 3),
               encode_answers(decision.connector_calls))
        db.execute(f"insert into decisions ({', '.join(DECISION_COLUMNS)}) values "
                   f"({', '.join('?' for _ in DECISION_COLUMNS)})", list(row))
        return decision_id

    # ---- alerts ----
    def secret(self, source: str) -> str | None:
        secret = self.settings.webhook_secrets.get(source)
        if secret and secret.startswith("env:"):
            secret = os.environ.get(secret[4:]) or None
        if secret is None and self.sandbox and not self.settings.webhook_secrets:
            return SANDBOX_KEY  # local development only: every source signs with the sandbox secret
        return secret

    def verify(self, source: str | None, signature: str | None, body: bytes, now: float | None = None) -> None:
        if not source or not signature:
            raise SignatureError("SIGNATURE_MISSING", "send X-Regua-Source and X-Regua-Signature (t=…,v1=…)")
        secret = self.secret(source)
        if secret is None:
            raise SignatureError("UNKNOWN_SOURCE", f"no webhook secret is configured for source '{source}'")
        parts = dict(part.split("=", 1) for part in signature.split(",") if "=" in part)
        try:
            timestamp = int(parts.get("t", ""))
        except ValueError:
            raise SignatureError("SIGNATURE_INVALID", "the signature needs t=<unix seconds>") from None
        expected = sign(secret, body, timestamp).split("v1=")[1]
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            raise SignatureError("SIGNATURE_INVALID", "the signature does not match the body")
        if abs((now or time.time()) - timestamp) > self.settings.signature_tolerance_seconds:
            raise SignatureError("SIGNATURE_EXPIRED", "the signature's timestamp is too far from now; "
                                 "sign each delivery when sending it")

    @staticmethod
    def decode(body: bytes) -> MonitoringAlert:
        """The alert, or msgspec.ValidationError / DecodeError naming the field."""
        alert = _decode_alert(body)
        for field, message in alert_problems(alert)[:1]:
            raise msgspec.ValidationError(f"{message} - at `$.{field}`")
        return alert

    def handle(self, alert: MonitoringAlert, body: bytes, now: dt.datetime | None = None) -> tuple[Result, bool]:
        now = now or dt.datetime.now(dt.timezone.utc)
        # The alert as Régua encodes it, not the raw bytes: a retry serialised differently (key order,
        # spacing) and the same alert pushed and polled are one alert.
        canonical = hashlib.sha256(msgspec.json.encode(alert)).hexdigest()
        return self.monitor().handle_alert(alert, canonical, now, self.today(), defer=self._defer)

    # ---- sending, off the alert's path ----
    def _defer(self, now: dt.datetime, keys: list[str], alert_key: str | None) -> None:
        with self._sender_lock:
            if self._sender is None:
                self._sender = threading.Thread(target=self._send_loop, name="regua-monitoring-send", daemon=True)
                self._sender.start()
        self._outgoing.put((now, keys, alert_key))

    def _send_loop(self) -> None:
        while True:
            item = self._outgoing.get()
            try:
                if item is None:
                    return
                self.monitor().deliver(*item)
            except Exception as error:  # noqa: BLE001 — the rows stay pending: the next pass sends them
                log.error("monitoring notifications not sent: %s", type(error).__name__)
            finally:
                self._outgoing.task_done()

    def drain(self) -> None:
        """Wait until every queued notification was tried (tests, and stop())."""
        self._outgoing.join()

    # ---- polled sources ----
    def poll(self, now: dt.datetime | None = None) -> dict[str, dict]:
        """One poll of every monitoring source; each alert handled like a webhook's."""
        now = now or dt.datetime.now(dt.timezone.utc)
        monitor = self.monitor()
        out = {}
        for name, source in sorted(self.registry.monitoring_sources.items()):
            counts = {"alerts": 0, "decided": 0, "replayed": 0, "unmatched": 0, "invalid": 0, "error": None}
            try:
                call = self._sources.get(name)
                if call is None:  # deadline, retries with backoff and a circuit breaker, like every connector
                    call = self._sources[name] = Resilient(source, source.poll)
                batch = call(monitor.store.cursor(name))
                for alert in batch.alerts:
                    if alert_problems(alert):  # the same checks as POST /events; the rest of the batch goes on
                        counts["invalid"] += 1
                        log.warning("monitoring source %s: alert %s is invalid: %s", name, alert.id[:40],
                                    alert_problems(alert)[0][0])
                        continue
                    body = msgspec.json.encode(alert)
                    result, replayed = self.handle(alert, body, now)
                    counts["alerts"] += 1
                    counts["replayed" if replayed else ("decided" if result.status == "decided" else "unmatched")] += 1
                if batch.cursor is not None:
                    with transaction(monitor.store.db) as db:
                        monitor.store.set_cursor(db, name, batch.cursor, now)
            except AlertConflict as conflict:
                counts["error"] = f"IDEMPOTENCY_CONFLICT: {conflict.key}"
            except Exception as error:  # noqa: BLE001 — one failing source must not stop the others
                counts["error"] = getattr(error, "code", type(error).__name__)
                log.error("monitoring source %s failed: %s", name, counts["error"])
            out[name] = counts
        return out

    def poll_locked(self, now: dt.datetime | None = None) -> dict[str, dict] | None:
        """poll(), by one process at a time (server workers and `regua monitor --poll`); None when
        another one is polling: a paid feed is never polled twice at once."""
        store = self.monitor().store
        if store.postgres:  # replicas and hosts share the database: an advisory lock, held while polling
            if not store.db.execute("select pg_try_advisory_lock(?)", [POLL_LOCK]).fetchone()[0]:
                return None
            try:
                return self.poll(now)
            finally:
                store.db.execute("select pg_advisory_unlock(?)", [POLL_LOCK])
        with open(self.path + ".monitor-lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            return self.poll(now)

    def start_poller(self) -> None:
        def loop():
            interval = min((s.interval_minutes for s in self.registry.monitoring_sources.values()), default=15) * 60
            while not self._stop.wait(interval):
                try:
                    result = self.poll_locked()
                    if result is not None:
                        log.info("monitoring poll: %s", result)
                        self.monitor().send(dt.datetime.now(dt.timezone.utc))  # failed notifications again
                except Exception as error:  # noqa: BLE001 — the next poll tries again
                    log.error("monitoring poll failed: %s", type(error).__name__)

        if self.settings.poll and self.registry.monitoring_sources:
            threading.Thread(target=loop, name="regua-monitoring", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        with self._sender_lock:
            sender, self._sender = self._sender, None
        if sender is not None:  # what was queued is sent first: nothing waits for the next pass
            self._outgoing.put(None)
            sender.join(timeout=30)

    # ---- re-checks and people ----
    def recheck(self, as_of: dt.date | None = None, segment: str | None = None, budget: int | None = None,
                dry_run: bool = False, progress=None) -> RecheckSummary:
        cache = self.registry.cache

        def cache_has(name: str, document: str) -> bool:
            return cache is not None and cache.get(name, document) is not None

        return recheck(self.monitor(), as_of or self.today(), dt.datetime.now(dt.timezone.utc), segment=segment,
                       budget=self.settings.recheck_budget if budget is None else budget, cache_has=cache_has,
                       dry_run=dry_run, progress=progress)

    def account(self, customer_id: str) -> dict | None:
        store = self.monitor().store
        customer = store.customer(customer_id)
        if customer is None:
            return None
        return {"customer_id": customer_id, "limit": store.limit(customer_id).to_dict(),
                "history": store.history(customer_id),
                "reviews": store.reviews(open_only=True, limit=1000, customer_id=customer_id)}

