"""Simulation: run the régua over a date range on a copy of the portfolio, sending nothing, and
read back each receivable's timeline.

The copy goes through the very same runner as production (settle, plan, dispatch with the legal
guards), at the configured run hours of every day, with simulated providers: every message is
delivered at once and a bureau includes a record at once. The real database is never written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass, field

from regua import dialect, postgres
from regua.engine.brazil import zone_of
from regua.plugins.builtin.negativation import SandboxNegativation
from regua.plugins.connectors import NotificationChannel
from regua.plugins.contracts import DeliveryReceipt, Notification

from ..store import MIGRATIONS as PORTFOLIO
from .migrations import MIGRATIONS as COLLECTION
from .runner import Runner, run_time
from .settings import CollectionSettings


class SimulatedChannel(NotificationChannel):
    """Delivers everything at once and remembers nothing: for simulations only."""

    inline = True

    def __init__(self, channel: str, clock):
        self.name = f"simulated_{channel}"
        self.channel = channel
        self.clock = clock

    def send(self, notification: Notification) -> DeliveryReceipt:
        now = self.clock()
        return DeliveryReceipt(status="delivered", idempotency_key=notification.idempotency_key,
                               provider_id=f"sim-{notification.idempotency_key}", sent_at=now, delivered_at=now)


@dataclass
class SimulatedRegistry:
    """What the dispatcher needs from a plugin registry, with simulated providers."""

    clock: object
    channels: dict = field(default_factory=dict)
    negativators: dict = field(default_factory=dict)

    def __post_init__(self):
        for kind in ("email", "sms", "whatsapp"):
            channel = SimulatedChannel(kind, self.clock)
            self.channels[channel.name] = channel

    def add_services(self, names) -> None:
        for name in names:
            service = SandboxNegativation(self.clock, waiting_days=0)
            service.name = name
            self.negativators[name] = service

    def event_recorded(self, event: dict) -> None:
        """Simulated events stay in the copy; plugins hear only about real ones."""


@dataclass
class TimelineEntry:
    at: dt.datetime  # local time of the debtor's state
    step: str
    kind: str  # sent, delivered, deferred, blocked, negativated, superseded, paid…
    code: str | None
    detail: dict


def simulate(path: str, policies: dict, settings: CollectionSettings, date_from: dt.date, date_to: dt.date,
             receivables: list[str] | None = None, progress=None) -> dict[str, list[TimelineEntry]]:
    """Timelines by receivable id (all, or those listed) for runs from `date_from` to `date_to`."""
    if date_to < date_from:
        raise ValueError("the simulation ends before it starts")
    if (date_to - date_from).days > 3660:
        raise ValueError("simulate at most ten years at a time")
    handle, copy = tempfile.mkstemp(suffix=".db", prefix="regua-simulation-")
    os.close(handle)
    try:
        if postgres.is_url(path):  # the portfolio and the cadence's state, into the throwaway file
            dialect.copy_to_sqlite(path, copy, [PORTFOLIO, COLLECTION])
        else:
            source, target = sqlite3.connect(path), sqlite3.connect(copy)
            with target:
                source.backup(target)
            source.close()
            target.close()
        current = {"now": run_time(date_from)}
        registry = SimulatedRegistry(lambda: current["now"])
        names = {settings.bureau, settings.protest_service or settings.bureau}
        registry.add_services(names)
        runner = Runner(copy, policies, registry, settings)
        try:
            day = date_from
            while day <= date_to:
                for hour in sorted(settings.run_hours) or [9]:
                    current["now"] = run_time(day, hour)
                    runner.run(day, now=current["now"])
                if progress is not None:
                    progress(1)
                day += dt.timedelta(days=1)
            return _timelines(runner, receivables)
        finally:
            runner.close()
    finally:
        for suffix in ("", "-wal", "-shm", ".collect-lock", ".migrate-lock"):
            try:
                os.unlink(copy + suffix)
            except FileNotFoundError:
                pass


def _timelines(runner: Runner, receivables: list[str] | None) -> dict[str, list[TimelineEntry]]:
    db = runner.store.db
    where, params = "", []
    if receivables:
        where = f"where e.receivable_id in ({', '.join('?' for _ in receivables)})"
        params = list(receivables)
    rows = db.query(f"""select e.receivable_id, e.at, e.kind, e.code, e.detail, c.uf from collection_events e
                        join customers c on c.id = e.customer_id {where} order by e.receivable_id, e.at, e.id""", params)
    out: dict[str, list[TimelineEntry]] = {rid: [] for rid in receivables or []}
    for row in rows:
        detail = json.loads(row["detail"])
        at = dt.datetime.fromisoformat(row["at"]).astimezone(zone_of(row["uf"]))
        out.setdefault(row["receivable_id"], []).append(
            TimelineEntry(at, detail.pop("step", ""), row["kind"], row["code"], detail))
    return out
