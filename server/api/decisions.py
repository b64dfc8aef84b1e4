"""GET /decisions/{id} and GET /decisions?policy=&document=&from=&to= (newest first, paged)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import anyio.to_thread
import msgspec
from litestar import Controller, get
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter

from regua.dsl.values import normalize_cnpj, normalize_cpf
from regua.engine.brazil import BRASILIA
from regua.engine.trace import uniform as uniform_trace

from ..counterfactuals import NotExplainable, counterfactuals_of, customer_counterfactuals, decision_policy
from ..errors import ApiError
from ..experiments import decision_experiment
from ..explanation import counterfactual_sentence, explain
from ..ids import ULID, id_floor, id_time
from ..policies import PolicyRejected
from ..schemas import (
    CounterfactualsOut,
    DecisionExperiment,
    DecisionPage,
    DecisionRecord,
    DecisionSummary,
    ErrorBody,
    PolicyRef,
)
from ..store_common import document_hash
from .deps import Svc, services

_ERRORS = {400: ResponseSpec(ErrorBody, description="bad query parameter"),
           401: ResponseSpec(ErrorBody, description="no valid API key"),
           403: ResponseSpec(ErrorBody, description="the key lacks the decisions:read scope"),
           404: ResponseSpec(ErrorBody, description="no such decision")}
_decode = msgspec.json.decode


def _created_at(row: dict) -> str:
    return id_time(row["id"]).isoformat(timespec="milliseconds")


def _record(row: dict, counterfactuals: dict | None = None, experiment: DecisionExperiment | None = None
            ) -> DecisionRecord:
    body = _decode(row["body"])
    created_at = _created_at(row)
    return DecisionRecord(
        row["id"], created_at, PolicyRef(row["policy"], row["version"], row["revision"]), row["outcome"],
        body["outputs"], body["reasons"], _decode(row["input"]),
        explain(row["outcome"], body["reasons"], row["policy"], row["version"], created_at, counterfactuals),
        body["connector_calls"], uniform_trace(body["trace"]), row["request_id"], row["api_key"], row["duration_ms"],
        experiment)


def _search(svc: Svc, row: dict, **options):
    """Counterfactuals of a stored decision, by the policy revision that made it."""
    prepared = decision_policy(row, svc.store, svc.policies.compile, svc.policies.get(row["policy"]))
    return counterfactuals_of(row, prepared, **options)


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
        found = await anyio.to_thread.run_sync(customer_counterfactuals, row, svc.store, svc.policies)
        experiment = await anyio.to_thread.run_sync(decision_experiment, svc.evaluator.experiments, row)
        return _record(row, found, experiment)

    @get("/{decision_id:str}/counterfactuals", responses={
        **_ERRORS, 409: ResponseSpec(ErrorBody, description="the decision cannot be re-evaluated"),
        410: ResponseSpec(ErrorBody, description="the decision's input was purged")},
        summary="The smallest changes of the policy's actionable facts that would reach the target outcome")
    async def counterfactuals(
            self, svc: Svc, decision_id: FromPath[str],
            target: Annotated[Literal["approve", "review"], QueryParameter(description="outcome to reach")] = "approve",
            alternatives: Annotated[int, QueryParameter(ge=1, le=10)] = 3,
            max_changes: Annotated[int, QueryParameter(ge=1, le=3)] = 2) -> CounterfactualsOut:
        await self._settle(svc)
        row = await anyio.to_thread.run_sync(svc.store.decision, decision_id)
        if row is None:
            raise ApiError(404, "UNKNOWN_DECISION", f"no decision with id '{decision_id}'")
        try:
            found = await anyio.to_thread.run_sync(
                lambda: _search(svc, row, target=target, alternatives=alternatives, max_changes=max_changes))
        except NotExplainable as error:
            raise ApiError(error.status, error.code, error.message) from None
        except PolicyRejected as error:
            raise ApiError(409, "POLICY_VERSION_INVALID", "the policy revision that made this decision no longer "
                           "compiles", error.to_list()) from None
        data = found.to_dict()
        return msgspec.convert({**data, "decision_id": row["id"], "sentence": counterfactual_sentence(data)},
                               CounterfactualsOut)

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
