"""GET /decisions/{id} and GET /decisions?policy=&document=&from=&to= (newest first, paged)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import anyio.to_thread
import msgspec
from litestar import Controller, get
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter

from regua.dsl.values import normalize_cnpj, normalize_cpf
from regua.engine.brazil import BRASILIA
from regua.engine.trace import uniform as uniform_trace

from ..errors import ApiError
from ..evaluator import document_hash
from ..explanation import explain
from ..ids import ULID, id_floor, id_time
from ..schemas import DecisionPage, DecisionRecord, DecisionSummary, ErrorBody, PolicyRef
from .deps import Svc, services

_ERRORS = {400: ResponseSpec(ErrorBody, description="bad query parameter"),
           401: ResponseSpec(ErrorBody, description="no valid API key"),
           403: ResponseSpec(ErrorBody, description="the key lacks the decisions:read scope"),
           404: ResponseSpec(ErrorBody, description="no such decision")}
_decode = msgspec.json.decode


def _created_at(row: dict) -> str:
    return id_time(row["id"]).isoformat(timespec="milliseconds")


def _record(row: dict) -> DecisionRecord:
    body = _decode(row["body"])
    created_at = _created_at(row)
    return DecisionRecord(
        row["id"], created_at, PolicyRef(row["policy"], row["version"], row["revision"]), row["outcome"],
        body["outputs"], body["reasons"], _decode(row["input"]),
        explain(row["outcome"], body["reasons"], row["policy"], row["version"], created_at),
        body["connector_calls"], uniform_trace(body["trace"]), row["request_id"], row["api_key"], row["duration_ms"])


def _normalize_document(text: str) -> str:
    compact = normalize_cpf(text) or normalize_cnpj(text.upper())
    if compact:
        return compact
    raise ApiError(400, "INVALID_QUERY", "document is not a valid CPF or CNPJ",
                   [{"code": "INVALID_DOCUMENT", "message": "not a valid CPF or CNPJ", "location": "query.document"}])


def _bound(value: str | None, name: str) -> str | None:
    """A date (its midnight in Brasília) or an ISO instant, as the first decision id made from then on."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            instant = dt.datetime.combine(day, dt.time(), BRASILIA)
        else:
            instant = dt.datetime.fromisoformat(value)
            if instant.tzinfo is None:
                instant = instant.replace(tzinfo=BRASILIA)
    except ValueError:
        raise ApiError(400, "INVALID_QUERY", f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 instant",
                       [{"code": "INVALID_DATE", "message": "expected YYYY-MM-DD or an ISO 8601 instant",
                         "location": f"query.{name}"}]) from None
    return id_floor(instant)


class DecisionController(Controller):
    path = "/decisions"
    tags = ["decisions"]
    opt = {"scope": "decisions:read"}
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @staticmethod
    async def _settle(svc: Svc) -> None:
        """Read your own writes: let this worker's pending decisions reach the store first."""
        if svc.decision_log.backlog:
            await anyio.to_thread.run_sync(svc.decision_log.wait_flushed, 2.0)

    @get("/{decision_id:str}", summary="One decision: input, outcome, reasons, policy version, explanation",
         responses=_ERRORS)
    async def get_decision(self, svc: Svc, decision_id: FromPath[str]) -> DecisionRecord:
        await self._settle(svc)
        row = await anyio.to_thread.run_sync(svc.store.decision, decision_id)
        if row is None:
            raise ApiError(404, "UNKNOWN_DECISION", f"no decision with id '{decision_id}'")
        return _record(row)

    @get("/", summary="Find decisions, newest first", responses=_ERRORS)
    async def find(self, svc: Svc, policy: FromQuery[str | None] = None,
                   document: Annotated[str | None, QueryParameter(description="CPF or CNPJ")] = None,
                   from_: Annotated[str | None, QueryParameter(name="from", description="date or instant, inclusive")] = None,
                   to: Annotated[str | None, QueryParameter(description="date (inclusive) or instant (exclusive)")] = None,
                   before: Annotated[str | None, QueryParameter(description="decision id: page after it")] = None,
                   limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50) -> DecisionPage:
        start = _bound(from_, "from")
        end = _bound(to, "to")
        if to is not None and len(to) == 10:  # a date `to` includes that whole day (the last one: no bound)
            day = dt.date.fromisoformat(to)
            end = _bound((day + dt.timedelta(days=1)).isoformat(), "to") if day < dt.date.max else None
        if before is not None and not ULID.match(before):
            raise ApiError(400, "INVALID_QUERY", "before must be a decision id (the `next` of a previous page)",
                           [{"code": "INVALID_DECISION_ID", "message": "not a decision id", "location": "query.before"}])
        doc_hash = document_hash(_normalize_document(document)) if document else None
        await self._settle(svc)
        rows = await anyio.to_thread.run_sync(
            lambda: svc.store.find_decisions(policy, doc_hash, start, end, before, limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        items = [DecisionSummary(r["id"], _created_at(r), PolicyRef(r["policy"], r["version"], r["revision"]),
                                 r["outcome"], [x["code"] for x in _decode(r["body"])["reasons"] if x.get("code")],
                                 r["document_masked"])
                 for r in rows]
        return DecisionPage(items, rows[-1]["id"] if more and rows else None)
