"""The portfolio and the collection cadence over HTTP (scope `collection`):

- `POST /portfolio/customers|receivables|payments|agreements`: records as a JSON list; all or
  nothing, every rejected row named (`[3].amount`);
- `GET /portfolio/receivables/{id}`: a receivable with its steps, history and negative records;
- `POST /collection/run`: a run (or a dry run) as of a date and time of day, answering the run's summary;
- `POST /collection/deliveries`: a provider's receipt for a step: delivered (proof for notices),
  bounced or failed (the next channel is tried);
- `GET /collection/queue`: open receivables ranked by their régua's priority.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import anyio.to_thread
import msgspec
from litestar import Controller, get, post
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from regua.engine import brazil
from regua.engine.connectors import mask_document
from regua.portfolio import Portfolio, import_rows
from regua.portfolio.collection.receipts import DeliveryRequest, InvalidReceipt, to_receipt
from regua.portfolio.collection.runner import RunLocked, run_moment
from regua.portfolio.collection.store import CollectionStore, ReceiptRefused

from ..collection import CollectionUnavailable
from ..errors import ApiError
from ..schemas import ErrorBody
from .deps import Svc, services

_ERRORS = {400: ResponseSpec(ErrorBody, description="invalid rows or parameters"),
           401: ResponseSpec(ErrorBody, description="no valid API key"),
           403: ResponseSpec(ErrorBody, description="the key lacks the collection scope")}


class ImportResult(msgspec.Struct):
    kind: str
    imported: int


class RunRequest(msgspec.Struct, forbid_unknown_fields=True):
    as_of: dt.date | None = None  # default: today in São Paulo
    at: str | None = None  # "HH:MM" in São Paulo time; default: now for today, else 09:00 (like `regua collect --at`)
    dry_run: bool = False


class RunResult(msgspec.Struct):
    as_of: dt.date
    dry_run: bool
    receivables: int
    planned: dict[str, int]
    superseded: int
    settled: int
    removals: int
    outcomes: dict[str, int]
    reasons: dict[str, int]
    policy_errors: int
    unrouted: int
    seconds: float


class DeliveryResult(msgspec.Struct):
    key: str
    recorded: bool
    first: bool  # false: the step was delivered already; the first delivery is kept, this receipt is recorded as later
    # first | later (delivered), bounced (the next channel is tried at the next run), stale (a bounce of an earlier send)
    outcome: str = "first"


class ReceivableView(msgspec.Struct):
    receivable: dict[str, Any]
    customer: dict[str, Any]  # document masked; contacts left out
    payments: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    history: list[dict[str, Any]]
    negative_records: list[dict[str, Any]]


class QueueEntry(msgspec.Struct):
    receivable_id: str
    customer_id: str
    priority: float | None
    days_late: int
    open_amount: str
    policy: str
    as_of: str


class PortfolioController(Controller):
    path = "/portfolio"
    tags = ["collection"]
    opt = {"scope": "collection"}
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    async def _load(self, svc: Svc, kind: str, data: list[dict[str, Any]]) -> ImportResult:
        limit = svc.settings.server.batch_max_items * 10
        if len(data) > limit:
            raise ApiError(413, "BATCH_TOO_LARGE", f"at most {limit} records per request")

        def work():
            portfolio = Portfolio(svc.settings.store.location)
            try:
                return import_rows(portfolio, kind, [(f"[{i}]", row) for i, row in enumerate(data)])
            finally:
                portfolio.close()

        report = await anyio.to_thread.run_sync(work)
        if report.rejected:
            errors = [{"code": e.code, "message": e.message, "location": f"{where}.{e.field}" if e.field else where}
                      for where, e in report.rejected]
            raise ApiError(400, "INVALID_RECORDS", f"{len({w for w, _ in report.rejected})} of {report.read} "
                           f"{kind} rejected; nothing was written", errors)
        return ImportResult(kind, report.imported)

    @post("/customers", status_code=200, responses=_ERRORS, summary="Load customers (all or nothing)")
    async def customers(self, svc: Svc, data: JSONBody[list[dict[str, Any]]]) -> ImportResult:
        return await self._load(svc, "customers", data)

    @post("/receivables", status_code=200, responses=_ERRORS, summary="Load receivables (all or nothing)")
    async def receivables(self, svc: Svc, data: JSONBody[list[dict[str, Any]]]) -> ImportResult:
        return await self._load(svc, "receivables", data)

    @post("/payments", status_code=200, responses=_ERRORS, summary="Load payments (all or nothing)")
    async def payments(self, svc: Svc, data: JSONBody[list[dict[str, Any]]]) -> ImportResult:
        return await self._load(svc, "payments", data)

    @post("/agreements", status_code=200, responses=_ERRORS, summary="Load agreements (all or nothing)")
    async def agreements(self, svc: Svc, data: JSONBody[list[dict[str, Any]]]) -> ImportResult:
        return await self._load(svc, "agreements", data)

    @get("/receivables/{receivable_id:str}", responses={**_ERRORS, 404: ResponseSpec(ErrorBody, description="unknown")},
         summary="A receivable with its collection steps and history")
    async def receivable(self, svc: Svc, receivable_id: FromPath[str]) -> ReceivableView:
        def work():
            store = CollectionStore(svc.settings.store.location)
            try:
                rows = list(store.db.query("select * from receivables where id = ?", [receivable_id]))
                if not rows:
                    return None
                receivable = dict(rows[0], disputed=bool(rows[0]["disputed"]))
                customer = next(store.db.query("select id, document, kind, uf, segment, channels from customers "
                                               "where id = ?", [receivable["customer_id"]]))
                customer = dict(customer, document=mask_document(customer["document"]),
                                channels=json.loads(customer["channels"] or "[]"))
                payments = list(store.db.query("select id, amount, paid_on from payments where receivable_id = ? "
                                               "order by paid_on, id", [receivable_id]))
                steps = [dict(s, settings=json.loads(s["settings"] or "{}"), result=json.loads(s["result"] or "{}"))
                         for s in store.steps_of(receivable_id)]
                return ReceivableView(receivable, customer, payments, steps, store.history(receivable_id),
                                      store.records_of(receivable_id))
            finally:
                store.close()

        view = await anyio.to_thread.run_sync(work)
        if view is None:
            raise ApiError(404, "UNKNOWN_RECEIVABLE", f"no receivable with id '{receivable_id}'")
        return view


class CollectionController(Controller):
    path = "/collection"
    tags = ["collection"]
    opt = {"scope": "collection"}
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @post("/run", status_code=200, responses={**_ERRORS, 409: ResponseSpec(ErrorBody, description="a run is going"),
                                              503: ResponseSpec(ErrorBody, description="not configured")},
          summary="Run the cadence (or plan it: dry_run) as of a date")
    async def run(self, svc: Svc, data: JSONBody[RunRequest]) -> RunResult:
        today = brazil.today()
        day = data.as_of or today
        try:
            now = run_moment(day, data.at, today)
        except ValueError as error:
            raise ApiError(400, "INVALID_REQUEST", str(error),
                           [{"code": "VALUE", "message": "expected HH:MM (São Paulo time)", "location": "at"}]) from None
        try:
            summary = await anyio.to_thread.run_sync(lambda: svc.collection.run(day, now, data.dry_run, wait=False))
        except RunLocked:
            raise ApiError(409, "RUN_IN_PROGRESS", "another collection run is using the store; try again later") from None
        except CollectionUnavailable as error:
            raise ApiError(503, "COLLECTION_NOT_CONFIGURED", str(error)) from None
        return msgspec.convert(summary.to_dict(), RunResult)

    @post("/deliveries", status_code=200,
          responses={**_ERRORS, 404: ResponseSpec(ErrorBody, description="unknown step"),
                     409: ResponseSpec(ErrorBody, description="the step was never sent"),
                     422: ResponseSpec(ErrorBody, description="the receipt is dated before the send or in the future")},
          summary="Record a delivery, bounce or failure receipt for a step that was sent")
    async def delivery(self, svc: Svc, data: JSONBody[DeliveryRequest]) -> DeliveryResult:
        try:
            receipt = to_receipt(data, dt.datetime.now(dt.timezone.utc))
        except InvalidReceipt as invalid:
            raise ApiError(400, "INVALID_REQUEST", invalid.message,
                           [{"code": invalid.code, "message": invalid.message, "location": invalid.field}]) from None

        def work():
            store = CollectionStore(svc.settings.store.location)
            try:
                return store.record_receipt(receipt)
            finally:
                store.close()

        try:
            result = await anyio.to_thread.run_sync(work)
        except ReceiptRefused as refused:  # counted by code in regua_request_errors_total, like every error
            status = {"UNKNOWN_STEP": 404, "STEP_NOT_SENT": 409}.get(refused.code, 422)
            raise ApiError(status, refused.code, refused.message) from None
        return DeliveryResult(data.key, True, result == "first", result)

    @get("/queue", responses=_ERRORS, summary="Open receivables ranked by priority (last run)")
    async def queue(self, svc: Svc,
                    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
                    segment: FromQuery[str | None] = None) -> list[QueueEntry]:
        rows = await anyio.to_thread.run_sync(lambda: svc.collection.queue(limit, segment))
        return [QueueEntry(**row) for row in rows]
