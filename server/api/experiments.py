"""/experiments: champion/challenger experiments (create, shares, pause, resume, stop, promote, report).

Every change is validated first and written in one transaction with its audit entry
(server/experiment_store.py): bad input is a 4xx with a stable code, and nothing changed.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
import msgspec
from litestar import Controller, Request, get, post, put
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from regua.engine import brazil

from ..errors import ApiError
from ..experiment_report import build_report
from ..experiment_store import ExperimentConflict
from ..schemas import ErrorBody, ExperimentCreate, PromoteIn, SharesIn
from .deps import Svc, api_key_name, services

_ERRORS = {400: ResponseSpec(ErrorBody, description="invalid request (shares, arms, key)"),
           401: ResponseSpec(ErrorBody, description="no valid API key"),
           403: ResponseSpec(ErrorBody, description="the key lacks the experiments scope"),
           404: ResponseSpec(ErrorBody, description="unknown experiment or policy"),
           409: ResponseSpec(ErrorBody, description="conflicts with the experiment's state or another experiment"),
           422: ResponseSpec(ErrorBody, description="a challenger that fails its checks")}


def _error(error: ExperimentConflict) -> ApiError:
    details = [{"code": error.code, "message": error.message, "location": error.location}] if error.location else None
    return ApiError(error.status, error.code, error.message, details)


def _view(experiment: dict) -> dict[str, Any]:
    return {"name": experiment["name"], "policy": experiment["policy"], "status": experiment["status"],
            "key": experiment["key_field"], "champion_revision": experiment["champion_revision"],
            "created_at": experiment["created_at"], "created_by": experiment["created_by"],
            "updated_at": experiment["updated_at"],
            "arms": [{"arm": a["arm"], "role": a["role"], "revision": a["revision"], "share": a["share"] / 100,
                      "shadow": a["share"] == 0, "sample": a["sample"], "buckets": a["buckets"]}
                     for a in experiment["arms"]]}


async def _run(call):
    try:
        return await anyio.to_thread.run_sync(call)
    except ExperimentConflict as error:
        raise _error(error) from None


class ExperimentController(Controller):
    path = "/experiments"
    tags = ["experiments"]
    opt = {"scope": "experiments"}
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @get("/", summary="Experiments, running and finished", responses=_ERRORS)
    async def list_experiments(self, svc: Svc) -> dict[str, Any]:
        store = svc.evaluator.experiments.store
        return {"items": await _run(lambda: [_view(store.get(n)) for n in store.names()])}

    @post("/", summary="Create an experiment on a policy: its active revision is the champion", status_code=201,
          responses=_ERRORS)
    async def create(self, svc: Svc, data: JSONBody[ExperimentCreate], request: Request) -> dict[str, Any]:
        by = api_key_name(request) or "api"
        return _view(await _run(lambda: svc.evaluator.experiments.create(msgspec.to_builtins(data), by)))

    @get("/{name:str}", summary="One experiment with its arms and audit trail", responses=_ERRORS)
    async def get_experiment(self, svc: Svc, name: FromPath[str]) -> dict[str, Any]:
        store = svc.evaluator.experiments.store

        def read():
            experiment = store.get(name)
            if experiment is None:
                raise ExperimentConflict(404, "UNKNOWN_EXPERIMENT", f"no experiment named '{name}'")
            return {**_view(experiment), "audit": store.audit(name)}

        return await _run(read)

    @put("/{name:str}/shares", summary="Change traffic shares (moves only the customers it must)", responses=_ERRORS)
    async def shares(self, svc: Svc, name: FromPath[str], data: JSONBody[SharesIn], request: Request) -> dict[str, Any]:
        by = api_key_name(request) or "api"
        return _view(await _run(lambda: svc.evaluator.experiments.set_shares(name, data.shares, data.samples, by)))

    async def _status(self, svc: Svc, name: str, status: str, request: Request) -> dict[str, Any]:
        by = api_key_name(request) or "api"
        return _view(await _run(lambda: svc.evaluator.experiments.set_status(name, status, by)))

    @post("/{name:str}/pause", summary="Pause: every request goes to the champion, no shadows", status_code=200,
          responses=_ERRORS)
    async def pause(self, svc: Svc, name: FromPath[str], request: Request) -> dict[str, Any]:
        return await self._status(svc, name, "paused", request)

    @post("/{name:str}/resume", summary="Resume a paused experiment", status_code=200, responses=_ERRORS)
    async def resume(self, svc: Svc, name: FromPath[str], request: Request) -> dict[str, Any]:
        return await self._status(svc, name, "running", request)

    @post("/{name:str}/stop", summary="Stop for good (the report stays)", status_code=200, responses=_ERRORS)
    async def stop(self, svc: Svc, name: FromPath[str], request: Request) -> dict[str, Any]:
        return await self._status(svc, name, "stopped", request)

    @post("/{name:str}/promote", summary="Activate a challenger's revision and end the experiment, atomically",
          status_code=200, responses=_ERRORS)
    async def promote(self, svc: Svc, name: FromPath[str], data: JSONBody[PromoteIn], request: Request) -> dict[str, Any]:
        by = api_key_name(request) or "api"
        return _view(await _run(lambda: svc.evaluator.experiments.promote(name, data.arm, by)))

    @get("/{name:str}/report", summary="Per arm: volume, outcome rates, average limit (95% CIs), shadow "
         "disagreements, bad rates", responses=_ERRORS)
    async def report(self, svc: Svc, name: FromPath[str],
                     output: Annotated[str | None, QueryParameter(description="money output to average")] = None,
                     bad_days: Annotated[int, QueryParameter(ge=1, le=3650, description="days late that make a "
                                                             "customer bad")] = 60) -> dict[str, Any]:
        experiments = svc.evaluator.experiments
        await anyio.to_thread.run_sync(experiments.worker.wait_idle, 2.0)

        def read():
            experiment = experiments.store.get(name)
            if experiment is None:
                raise ExperimentConflict(404, "UNKNOWN_EXPERIMENT", f"no experiment named '{name}'")
            return build_report(experiment, experiments.store.decisions(name), svc.store.db, output=output,
                                bad_days=bad_days, as_of=brazil.today() if svc.evaluator.today is None
                                else svc.evaluator.today())

        return await _run(read)

