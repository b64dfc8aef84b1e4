"""POST /replays (start replaying the decision log with a candidate policy) and GET /replays/{id}
(its progress and, when done, the report). Scope `lab`. See docs/lab.md and server/replays.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from regua.engine.connectors import mask_documents_in
from regua.lab.cuts import CutError, parse_cuts

from ..errors import ApiError
from ..replays import ReplayOrder, ReplayRefused
from ..schemas import ErrorBody
from .deps import Svc, api_key_name, services

MAX_BY = 10
MAX_TOP = 1000

_ERRORS = {401: ResponseSpec(ErrorBody, description="no valid API key"),
           403: ResponseSpec(ErrorBody, description="the key lacks the lab scope")}


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True):
    #: The candidate policy's source (a .regua file's text).
    candidate: str
    #: Whose decisions to replay (default: the candidate's name).
    policy: str | None = None
    #: First and last day (Brasília), inclusive.
    start: dt.date | None = msgspec.field(default=None, name="from")
    end: dt.date | None = msgspec.field(default=None, name="to")
    #: At most this many decisions, drawn at random (reproducibly) from the window.
    sample: int | None = None
    #: What to cut the changes by: stored input fields (uf), recorded connector facts
    #: (bureau.serasa.score.value), either in bands of numbers (bureau.serasa.score.value:100).
    by: list[str] = []
    #: How many changed decisions the report lists.
    top: int = 10


class ReplayProgress(msgspec.Struct):
    total: int
    processed: int
    fraction: float


class ReplayJob(msgspec.Struct):
    id: str
    status: str  # running, done, failed, interrupted
    policy: str
    candidate: dict[str, Any]
    request: dict[str, Any]
    created_at: str
    finished_at: str | None
    progress: ReplayProgress
    report: dict[str, Any] | None
    error: str | None


def _invalid(message: str, location: str) -> ApiError:
    return ApiError(400, "INVALID_REQUEST", message, [{"code": "VALUE", "message": message, "location": location}])


def _order(data: ReplayRequest) -> ReplayOrder:
    if not data.candidate.strip():
        raise _invalid("the candidate policy is empty", "candidate")
    if data.sample is not None and data.sample < 1:
        raise _invalid("sample must be 1 or more", "sample")
    if not 0 <= data.top <= MAX_TOP:
        raise _invalid(f"top must be between 0 and {MAX_TOP}", "top")
    if len(data.by) > MAX_BY:
        raise _invalid(f"at most {MAX_BY} fields to cut by", "by")
    for i, name in enumerate(data.by):
        try:
            parse_cuts([name])
        except CutError as error:
            raise _invalid(mask_documents_in(str(error)), f"by[{i}]") from None
    if data.start and data.end and data.start > data.end:
        raise _invalid("from is after to", "from")
    return ReplayOrder(data.candidate, data.policy, data.start, data.end, data.sample, tuple(data.by), data.top)


class ReplayController(Controller):
    path = "/replays"
    tags = ["lab"]
    opt = {"scope": "lab"}
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @post("/", status_code=202, summary="Replay the decision log with a candidate policy (a job)",
          responses={**_ERRORS, 422: ResponseSpec(ErrorBody, description="the candidate does not compile "
                                                  "(file:line:col), or there is nothing to replay"),
                     429: ResponseSpec(ErrorBody, description="too many replays running")})
    async def start(self, svc: Svc, request: Request, data: JSONBody[ReplayRequest]) -> Response[ReplayJob]:
        order = _order(data)
        # Read your own writes: this worker's pending decisions reach the store first.
        if svc.decision_log.backlog:
            await anyio.to_thread.run_sync(svc.decision_log.wait_flushed, 2.0)
        try:
            job = await anyio.to_thread.run_sync(lambda: svc.replays.start(order, api_key_name(request)))
        except ReplayRefused as refused:
            raise ApiError(refused.status, refused.code, refused.message, refused.errors) from None
        return Response(msgspec.convert(job, ReplayJob), status_code=202,
                        headers={"Location": f"/replays/{job['id']}"})

    @get("/{replay_id:str}", summary="A replay job: progress, and the report when done",
         responses={**_ERRORS, 404: ResponseSpec(ErrorBody, description="no such replay")})
    async def read(self, svc: Svc, replay_id: FromPath[str]) -> ReplayJob:
        job = await anyio.to_thread.run_sync(svc.replays.get, replay_id)
        if job is None:
            raise ApiError(404, "UNKNOWN_REPLAY", f"no replay with id '{replay_id[:40]}'")
        return msgspec.convert(job, ReplayJob)

    @delete("/{replay_id:str}", status_code=204, summary="Delete a finished replay job and its report",
            responses={**_ERRORS, 404: ResponseSpec(ErrorBody, description="no such replay"),
                       409: ResponseSpec(ErrorBody, description="the replay is still running")})
    async def remove(self, svc: Svc, replay_id: FromPath[str]) -> None:
        result = await anyio.to_thread.run_sync(svc.replays.delete, replay_id)
        if result == "unknown":
            raise ApiError(404, "UNKNOWN_REPLAY", f"no replay with id '{replay_id[:40]}'")
        if result == "running":
            raise ApiError(409, "REPLAY_RUNNING", "the replay is still running; delete it when it ends")
