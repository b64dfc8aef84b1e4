"""Credit monitoring over HTTP:

- `POST /events`: a bureau's monitoring alert, HMAC-signed (no API key: the signature is the
  credential), idempotent by (bureau, id);
- `GET /customers/{id}/limit` (scope `decisions:read`): the current limit, its history and open reviews;
- `PUT /customers/{id}/limit` (scope `monitoring`): a person sets the limit (and may lift a block);
- `GET /monitoring/reviews` (scope `decisions:read`): decisions waiting for a person;
- `POST /monitoring/recheck` (scope `monitoring`): re-check the portfolio (or a segment) within a budget.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from regua.portfolio.monitoring.monitor import AlertConflict

from ..auth import PUBLIC
from ..errors import ApiError
from ..monitoring import SignatureError
from ..schemas import ErrorBody
from .deps import Svc, api_key_name, services

_READ = {401: ResponseSpec(ErrorBody, description="no valid API key"),
         403: ResponseSpec(ErrorBody, description="the key lacks the scope"),
         404: ResponseSpec(ErrorBody, description="unknown customer")}
MAX_LIMIT = Decimal("1e13")
_FIELD = re.compile(r"Object (?:missing required|contains unknown) field `([^`]*)`")


class EventResult(msgspec.Struct):
    status: str  # decided, unmatched, no_policy, invalid_document
    replayed: bool
    alert: str | None
    customer_id: str | None
    decision_id: str | None
    policy: str | None
    version: str | None
    outcome: str | None
    reasons: list[dict[str, Any]]
    limit_before: dict[str, Any] | None
    limit_after: dict[str, Any] | None
    limit_change: int | None
    review: bool
    notifications: list[dict[str, Any]]


class LimitRequest(msgspec.Struct, forbid_unknown_fields=True):
    amount: str  # BRL, e.g. "25000.00"
    reason: str
    blocked: bool = False


class LimitView(msgspec.Struct):
    customer_id: str
    limit: dict[str, Any]
    history: list[dict[str, Any]]
    reviews: list[dict[str, Any]]


class RecheckRequest(msgspec.Struct, forbid_unknown_fields=True):
    segment: str | None = None
    budget: int | None = None  # paid bureau queries; default monitoring.recheck_budget
    as_of: dt.date | None = None
    dry_run: bool = False


class CustomerRecheck(msgspec.Struct):
    """One customer's re-check: ids and amounts, never names or documents."""

    customer_id: str
    outcome: str
    decision_id: str | None
    limit_before: str | None
    limit_after: str | None
    blocked: bool
    review: bool
    reasons: list[str]


class RecheckResult(msgspec.Struct):
    as_of: str
    customers: int
    evaluated: int
    outcomes: dict[str, int]
    limit_changes: int
    raised: int
    reduced: int
    blocked: int
    reviews: int
    notifications: int
    notifications_failed: int
    paid_queries: int
    cached_queries: int
    cost: str
    budget: int
    stopped_by_budget: bool
    not_reached: int
    no_policy: int
    dry_run: bool
    results: list[CustomerRecheck] = []


class EventController(Controller):
    path = "/events"
    tags = ["monitoring"]
    opt = PUBLIC  # no API key: the bureau signs each alert (HMAC, X-Regua-Signature), checked in the handler
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @post("/", status_code=200, summary="A bureau monitoring alert (HMAC-signed, idempotent by id)",
          responses={401: ResponseSpec(ErrorBody, description="missing, wrong or expired signature"),
                     409: ResponseSpec(ErrorBody, description="the same alert id with a different body"),
                     422: ResponseSpec(ErrorBody, description="not a valid alert")})
    async def event(self, svc: Svc, request: Request) -> Response[EventResult]:
        body = await request.body()
        monitoring = svc.monitoring
        try:
            monitoring.verify(request.headers.get("x-regua-source"), request.headers.get("x-regua-signature"), body)
        except SignatureError as error:
            raise ApiError(401, error.code, str(error)) from None
        try:
            alert = monitoring.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            message, _, path = str(error).partition(" - at `$.")
            location = path.rstrip("`") or "body"
            if (named := _FIELD.search(message)) and not path:  # a missing or unknown top-level field
                location = named.group(1)
            raise ApiError(422, "INVALID_EVENT", f"not a valid monitoring alert: {message}",
                           [{"code": "INVALID_EVENT", "message": message, "location": location}]) from None
        if alert.bureau != request.headers.get("x-regua-source"):
            raise ApiError(422, "SOURCE_MISMATCH", "the alert's bureau differs from X-Regua-Source",
                           [{"code": "SOURCE_MISMATCH", "message": "differs from X-Regua-Source", "location": "bureau"}])
        try:
            result, replayed = await anyio.to_thread.run_sync(lambda: monitoring.handle(alert, body))
        except AlertConflict as conflict:
            raise ApiError(409, "IDEMPOTENCY_CONFLICT", f"alert '{conflict.key}' was already received with "
                           "a different body", [{"code": "IDEMPOTENCY_CONFLICT", "message": "already received",
                                                  "location": "id"}]) from None
        data = EventResult(replayed=replayed, **result.to_dict())
        return Response(data, headers={"X-Regua-Replayed": "true"} if replayed else {})


class LimitController(Controller):
    path = "/customers"
    tags = ["monitoring"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @get("/{customer_id:str}/limit", opt={"scope": "decisions:read"}, responses=_READ,
         summary="A customer's current limit, its history and open reviews")
    async def limit(self, svc: Svc, customer_id: FromPath[str]) -> LimitView:
        view = await anyio.to_thread.run_sync(lambda: svc.monitoring.account(customer_id))
        if view is None:
            raise ApiError(404, "UNKNOWN_CUSTOMER", f"no customer with id '{customer_id}'")
        return LimitView(**view)

    @put("/{customer_id:str}/limit", opt={"scope": "monitoring"},
         responses={**_READ, 400: ResponseSpec(ErrorBody, description="invalid amount or reason")},
         summary="Set a customer's limit by hand (closes open reviews; may lift a block)")
    async def set_limit(self, svc: Svc, request: Request, customer_id: FromPath[str],
                        data: JSONBody[LimitRequest]) -> LimitView:
        try:
            amount = Decimal(data.amount)
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite() or amount < 0 or amount >= MAX_LIMIT or amount != amount.quantize(Decimal("0.01")):
            raise ApiError(400, "INVALID_REQUEST", "amount must be BRL with at most 2 decimal places",
                           [{"code": "VALUE", "message": "expected e.g. \"25000.00\"", "location": "amount"}])
        amount = abs(amount)  # "-0" passes the checks above; store 0.00, not -0.00
        if not data.reason.strip():
            raise ApiError(400, "INVALID_REQUEST", "say why the limit changes",
                           [{"code": "REQUIRED", "message": "is required", "location": "reason"}])
        actor = f"user:{api_key_name(request) or 'unknown'}"

        def work():
            monitor = svc.monitoring.monitor()
            if monitor.store.customer(customer_id) is None:
                return None
            monitor.set_limit(customer_id, amount, data.blocked, actor, data.reason.strip(),
                              dt.datetime.now(dt.timezone.utc))
            return svc.monitoring.account(customer_id)

        view = await anyio.to_thread.run_sync(work)
        if view is None:
            raise ApiError(404, "UNKNOWN_CUSTOMER", f"no customer with id '{customer_id}'")
        return LimitView(**view)


class MonitoringController(Controller):
    path = "/monitoring"
    tags = ["monitoring"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @get("/reviews", opt={"scope": "decisions:read"}, responses=_READ, summary="Open reviews, oldest first")
    async def reviews(self, svc: Svc) -> list[dict[str, Any]]:
        return await anyio.to_thread.run_sync(lambda: svc.monitoring.monitor().store.reviews(open_only=True))

    @post("/recheck", status_code=200, opt={"scope": "monitoring"},
          responses={**_READ, 400: ResponseSpec(ErrorBody, description="invalid request")},
          summary="Re-check the portfolio (or a segment) with a budget of paid bureau queries")
    async def recheck(self, svc: Svc, data: JSONBody[RecheckRequest]) -> RecheckResult:
        if data.budget is not None and data.budget < 0:
            raise ApiError(400, "INVALID_REQUEST", "budget cannot be negative",
                           [{"code": "VALUE", "message": "must be 0 or more", "location": "budget"}])
        summary = await anyio.to_thread.run_sync(
            lambda: svc.monitoring.recheck(data.as_of, data.segment, data.budget, data.dry_run))
        return msgspec.convert(summary.to_dict(), RecheckResult)
