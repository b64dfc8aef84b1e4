"""The collection cadence as a service of the server and of the `regua collect` command line:
its plugin configuration, its policies, runs, the scheduler, and what the API reads back.

Exactly-once needs receipts that survive a crash, so the notification channels always get a
SQLite idempotency store next to the database unless one is configured. In sandbox mode the
channels write e-mails (`.eml`), SMS (`.sms.txt`) and WhatsApp messages (`.whatsapp.txt`) to
`<db folder>/outbox/` and the sandbox bureau keeps its records in a file.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path
from typing import Callable

import msgspec

from regua.dialect import connect
from regua.engine.brazil import BRASILIA
from regua.engine.prepared import PreparedPolicy
from regua.portfolio.collection.runner import CreditorNotIdentified, RunLocked, Runner, RunSummary
from regua.portfolio.collection.settings import CollectionSettings
from regua.portfolio.collection.simulate import simulate

from .config import Settings

log = logging.getLogger("regua.collection")
SANDBOX_CREDITOR = ("Régua Sandbox Ltda", "11.222.333/0001-81", "Avenida Paulista, 1000, São Paulo - SP, 01310-100")


class CollectionUnavailable(Exception):
    """The cadence cannot run as configured (e.g. the creditor is not identified)."""


def plugin_config(settings: Settings) -> dict:
    """The plugins' configuration with the defaults the cadence needs (see the module docstring).
    The idempotency store and the sandbox's files are this host's, next to store.path, also when
    the store is PostgreSQL: the outbox's claims keep two hosts from sending the same step."""
    config = {name: dict(section) for name, section in settings.plugins.config.items()}
    base = Path(settings.store.path)
    if settings.sandbox:
        notifications = config.setdefault("notifications", {})
        outbox = str(base.parent / "outbox")
        notifications.setdefault("outbox", {"directory": outbox})
        # A debtor who only accepts SMS or WhatsApp is reached in the sandbox too: text files next to the e-mails.
        notifications.setdefault("sms_outbox", {"directory": outbox})
        notifications.setdefault("whatsapp_outbox", {"directory": outbox})
        sandbox = config.setdefault("negativation", {}).setdefault("sandbox", {})
        sandbox.setdefault("path", str(base.with_name(base.name + ".negativation.db")))
    if config.get("notifications"):
        config["notifications"].setdefault("idempotency_db", str(base.with_name(base.name + ".notifications.db")))
    return config


def collection_settings(settings: Settings) -> CollectionSettings:
    chosen = settings.collection
    if settings.sandbox and len(chosen.creditor_missing()) == 3:  # a test company, only when none is configured
        chosen = msgspec.structs.replace(chosen, creditor_name=SANDBOX_CREDITOR[0],
                                         creditor_document=SANDBOX_CREDITOR[1], creditor_address=SANDBOX_CREDITOR[2])
    return chosen


class CollectionService:
    def __init__(self, settings: Settings, registry, policies: Callable[[], dict[str, PreparedPolicy]]):
        self.path = settings.store.location  # a SQLite file or the PostgreSQL database (store.url)
        self.settings = collection_settings(settings)
        self.registry = registry
        self.policies = policies
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _collection_policies(self) -> dict[str, PreparedPolicy]:
        return {name: p for name, p in self.policies().items() if p.meta.kind == "collection"}

    def run(self, as_of: dt.date, now: dt.datetime | None = None, dry_run: bool = False, progress=None,
            wait: bool = True) -> RunSummary:
        missing = self.settings.creditor_missing()
        if not dry_run and missing:
            raise CollectionUnavailable(str(CreditorNotIdentified(missing)))
        runner = Runner(self.path, self._collection_policies(), self.registry, self.settings)
        try:
            return runner.run(as_of, now, dry_run, progress, wait)
        finally:
            runner.close()

    def simulate(self, date_from: dt.date, date_to: dt.date, receivables: list[str] | None = None, progress=None):
        return simulate(self.path, self._collection_policies(), self.settings, date_from, date_to, receivables,
                        progress)

    # ---- reads for the API ----
    def queue(self, limit: int = 50, segment: str | None = None) -> list[dict]:
        db = connect(self.path)
        try:
            where, params = "", []
            if segment:
                where, params = "where c.segment = ?", [segment]
            return list(db.query(
                f"select q.receivable_id, q.customer_id, q.priority, q.days_late, q.open_amount, q.policy, q.as_of "
                f"from collection_queue q join customers c on c.id = q.customer_id join receivables r "
                f"on r.id = q.receivable_id and r.status = 'open' {where} "
                f"order by q.priority desc nulls last, q.receivable_id limit ?", [*params, limit]))
        finally:
            db.conn.close()

    # ---- scheduler ----
    def start_scheduler(self) -> None:
        self._thread = threading.Thread(target=self._schedule, name="regua-collection", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def next_run(self, now: dt.datetime) -> dt.datetime:
        local = now.astimezone(BRASILIA)
        for offset in (0, 1):
            day = local.date() + dt.timedelta(days=offset)
            for hour in sorted(self.settings.run_hours):
                moment = dt.datetime.combine(day, dt.time(hour), BRASILIA)
                if moment > local:
                    return moment
        raise ValueError("collection.run_hours is empty")

    def _schedule(self) -> None:
        while True:
            moment = self.next_run(dt.datetime.now(dt.timezone.utc))
            if self._stop.wait(max((moment - dt.datetime.now(dt.timezone.utc)).total_seconds(), 0)):
                return
            try:
                summary = self.run(moment.date(), wait=False)
                log.info("collection run %s: %s", moment.date(), summary.to_dict())
            except RunLocked:
                log.info("collection run %s: another worker is running it", moment.date())
            except Exception as error:  # noqa: BLE001 — the next scheduled run tries again
                log.error("collection run %s failed: %s", moment.date(), type(error).__name__)
