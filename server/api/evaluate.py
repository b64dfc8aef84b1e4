"""POST /evaluate, POST /evaluate/{policy}, POST /evaluate/batch (NDJSON)."""

from __future__ import annotations

from typing import AsyncIterator

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.response import Stream

from ..errors import INTERNAL_MESSAGE, ApiError, log_unexpected
from ..lean_evaluate import LEAN, LeanEvaluate
from ..schemas import BatchLine, BatchRequest, ErrorBody, EvaluateNamedRequest, EvaluateRequest, EvaluateResponse
from .deps import Svc, api_key_name, services

JSON = "application/json"
NDJSON = "application/x-ndjson"
_ERRORS = {400: ResponseSpec(ErrorBody, description="malformed or invalid request"),
           401: ResponseSpec(ErrorBody, description="no valid API key"),
           403: ResponseSpec(ErrorBody, description="the key lacks the evaluate scope"),
           404: ResponseSpec(ErrorBody, description="unknown policy"),
           409: ResponseSpec(ErrorBody, description="request_id reused with a different input"),
           413: ResponseSpec(ErrorBody, description="body over the size limit"),
           422: ResponseSpec(ErrorBody, description="input does not fit the policy (field paths)")}
_encode = msgspec.json.Encoder().encode


class EvaluateController(Controller):
    path = "/evaluate"
    tags = ["evaluation"]
    opt = {"scope": "evaluate"}
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    async def _one(self, svc: Svc, data: JSONBody[EvaluateRequest], request: Request, policy: str | None) -> Response:
        result = await svc.evaluator.evaluate(data.policy, data.input, trace=data.trace, dry_run=data.dry_run,
                                              request_id=data.request_id, api_key=api_key_name(request),
                                              path_name=policy)
        headers = {"Idempotent-Replayed": "true"} if result.replayed else None
        return Response(result.body, media_type=JSON, status_code=200, headers=headers)

    # The lean path answers the well-formed requests of these two handlers itself (server/lean_evaluate.py:
    # EvaluateFront in front of Litestar, else LeanEvaluate); the handlers answer the rest, and declare
    # the routes (OpenAPI, access, error bodies).
    @post("/", summary="Evaluate a policy on one input", status_code=200, middleware=[LeanEvaluate(named=False)],
          opt={LEAN: False}, responses={200: ResponseSpec(EvaluateResponse, description="the decision"), **_ERRORS})
    async def evaluate(self, svc: Svc, data: JSONBody[EvaluateRequest], request: Request) -> Response:
        return await self._one(svc, data, request, None)

    @post("/{policy:str}", summary="Evaluate the named policy on one input", status_code=200,
          middleware=[LeanEvaluate(named=True)], opt={LEAN: True},
          responses={200: ResponseSpec(EvaluateResponse, description="the decision"), **_ERRORS})
    async def evaluate_named(self, svc: Svc, policy: FromPath[str], data: JSONBody[EvaluateNamedRequest],
                             request: Request) -> Response:
        return await self._one(svc, data, request, policy)

    @post("/batch", summary="Evaluate many inputs; the answer streams back as NDJSON, one line per item",
          status_code=200, media_type=NDJSON,
          responses={200: ResponseSpec(BatchLine, description="one JSON line per item, in order",
                                       media_type=NDJSON), **_ERRORS})
    async def batch(self, svc: Svc, data: JSONBody[BatchRequest], request: Request) -> Stream:
        limit = svc.settings.server.batch_max_items
        if len(data.items) > limit:
            raise ApiError(413, "BATCH_TOO_LARGE", f"at most {limit} items per batch (got {len(data.items)})",
                           [{"code": "BATCH_TOO_LARGE", "message": f"more than {limit} items", "location": "items"}])
        key = api_key_name(request)

        async def lines() -> AsyncIterator[bytes]:
            for index, item in enumerate(data.items):
                try:
                    result = await svc.evaluator.evaluate(item.policy or data.policy, item.input, trace=data.trace,
                                                          dry_run=data.dry_run, request_id=item.request_id,
                                                          api_key=key)
                    # The decision is already JSON: splice it in rather than decode and re-encode.
                    yield b'{"index":%d,"decision":%s}\n' % (index, result.body)
                except ApiError as error:
                    svc.metrics.request_errors.labels(error.code).inc()
                    yield _encode(BatchLine(index, error=error.body())) + b"\n"
                except Exception as error:  # noqa: BLE001 — one item's failure must not cut the stream
                    log_unexpected(error, request)
                    svc.metrics.request_errors.labels("INTERNAL").inc()
                    yield _encode(BatchLine(index, error=ErrorBody("INTERNAL", INTERNAL_MESSAGE))) + b"\n"

        return Stream(lines(), media_type=NDJSON)
