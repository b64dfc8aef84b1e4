"""Collection and monitoring: the ranked queue, a debtor's timeline (steps planned, sent, delivered,
blocked by which legal guard and until when), the KPI charts (DSO trend, aging as stacked bars,
roll and recovery rates) and a customer's limit history, all drawn on the server as SVG."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import anyio.to_thread
from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery

from regua import dialect
from regua.engine import brazil
from regua.engine.connectors import mask_document
from regua.portfolio.collection.kpis import KpiArgumentError, compute_kpis

from .charts import Series, line_chart, stacked_bars
from .render import brl, date_br, number_br, page

BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
BUCKET_LABELS = {"current": "em dia", "1-30": "1-30 dias", "31-60": "31-60", "61-90": "61-90", "90+": "90+"}


def _table_exists(db, name: str) -> bool:
    return db[name].exists()


def _missing_table(error: Exception) -> bool:
    """SQLite's `no such table`, or PostgreSQL's undefined table: nothing was ever imported or run."""
    return "no such table" in str(error) or type(error).__name__ == "UndefinedTable"


def timeline(path: str, customer_id: str) -> dict | None:
    """`path`: the store's location, a SQLite file or a postgresql:// URL."""
    db = dialect.connect(path)
    try:
        if not _table_exists(db, "customers"):
            return None
        rows = list(db.query("select id, kind, segment, uf from customers where id = ?", [customer_id]))
        if not rows:
            return None
        receivables = list(db.query("select id, amount, due_date, status from receivables where customer_id = ? "
                                    "order by due_date", [customer_id]))
        steps, events = [], []
        if _table_exists(db, "outbox"):
            ids = [r["id"] for r in receivables]
            # By receivable (indexed), not by customer: the outbox indexes customers only for sent rows.
            steps = list(db.query(
                "select receivable_id, step, action, day, planned_on, status, not_before, block_code, channel, "
                "sent_at, delivered_at, result from outbox where receivable_id in (select value from json_each(?)) "
                "order by planned_on, day, key", [json.dumps(ids)]))
            events = list(db.query(
                "select at, receivable_id, kind, code from collection_events where receivable_id in "
                "(select value from json_each(?)) order by id desc limit 200", [json.dumps(ids)]))
        return {"customer": rows[0], "receivables": receivables, "steps": steps, "events": events}
    finally:
        db.conn.close()


def _months_back(today: dt.date, count: int) -> list[tuple[dt.date, dt.date]]:
    """The last `count` calendar months up to today (the current one to date), oldest first."""
    periods, end = [], today
    for _ in range(count):
        start = end.replace(day=1)
        periods.append((start, end))
        end = start - dt.timedelta(days=1)
    return periods[::-1]


def kpi_series(path: str, today: dt.date, months: int, segment: str | None) -> list[dict]:
    return [compute_kpis(path, start, end, segment).to_dict() for start, end in _months_back(today, months)]


def _dec(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class CollectionPages(Controller):
    path = "/"

    @get("/collection", opt={"console": ("collection",)})
    async def queue(self, request: Request, segment: FromQuery[str | None] = None) -> Response:
        svc = request.app.state.services
        try:
            rows = await anyio.to_thread.run_sync(lambda: svc.collection.queue(100, segment or None))
        except Exception as error:  # no collection tables yet: nothing was ever run
            if not _missing_table(error):
                raise
            rows = []
        return page(request, "collection.html", rows=rows, segment=segment or "")

    @get("/collection/debtors/{customer_id:str}", opt={"console": ("collection",)})
    async def debtor(self, request: Request, customer_id: FromPath[str]) -> Response:
        svc = request.app.state.services
        found = await anyio.to_thread.run_sync(lambda: timeline(svc.settings.store.location, customer_id))
        if found is None:
            raise NotFoundException(f"Nenhum cliente com o id {customer_id}.")
        return page(request, "debtor.html", customer_id=customer_id, **found)

    @get("/kpis", opt={"console": ("decisions:read",)})
    async def kpis(self, request: Request, months: FromQuery[int] = 6, segment: FromQuery[str | None] = None) -> Response:
        svc = request.app.state.services
        months = max(2, min(months, 24))
        try:
            reports = await anyio.to_thread.run_sync(
                lambda: kpi_series(svc.settings.store.location, brazil.today(), months, segment or None))
        except (KpiArgumentError, FileNotFoundError):
            reports = []
        labels = [dt.date.fromisoformat(str(r["date_to"])).strftime("%m/%Y") for r in reports]
        dso = line_chart("DSO (dias)", labels, [Series("DSO", [_dec(r["dso"]) for r in reports])],
                         fmt=lambda v: number_br(v, 1))
        aging = stacked_bars("Carteira por faixa de atraso (R$)", labels,
                             [Series(BUCKET_LABELS[b], [next((_dec(a["amount"]) for a in r["aging"] if a["bucket"] == b),
                                                             Decimal(0)) for r in reports]) for b in BUCKETS],
                             fmt=brl)
        recovery = line_chart("Recuperação e CEI (%)", labels,
                              [Series("recuperação", [_dec(r["recovery_rate"]) for r in reports]),
                               Series("CEI", [_dec(r["cei"]) for r in reports])], fmt=lambda v: number_br(v, 1) + "%")
        return page(request, "kpis.html", reports=reports, labels=labels, dso=dso, aging=aging, recovery=recovery,
                    months=months, segment=segment or "")

    @get("/customers/{customer_id:str}/limit", opt={"console": ("decisions:read",)})
    async def limit(self, request: Request, customer_id: FromPath[str]) -> Response:
        svc = request.app.state.services
        view = await anyio.to_thread.run_sync(lambda: svc.monitoring.account(customer_id))
        if view is None:
            raise NotFoundException(f"Nenhum cliente com o id {customer_id}.")
        history = list(reversed(view["history"]))  # oldest first
        labels = [date_br(h["at"])[:10] for h in history]
        chart = line_chart("Limite de crédito (R$)", labels, [Series("limite", [_dec(h["amount"]) for h in history])],
                           fmt=brl, step=True)
        return page(request, "limit.html", customer_id=customer_id, view=view, history=history[::-1], chart=chart,
                    mask=mask_document)
