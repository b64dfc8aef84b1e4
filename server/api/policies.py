"""GET /policies, GET /policies/{name} (with its /schema and /openapi.json), POST /policies,
PUT /policies/{name}, POST /policies/{name}/rollback."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post, put
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from .. import policy_contract
from ..errors import ApiError
from ..policies import NameMismatch, PolicyRejected
from ..schemas import (
    API_VERSION,
    ActivationOut,
    ErrorBody,
    PolicyDetail,
    PolicyList,
    PolicyRef,
    PolicySchema,
    PolicySummary,
    PolicyVersionOut,
    Problem,
    PublishRequest,
    PublishResponse,
    RollbackRequest,
)
from .deps import Svc, api_key_name, services

READ = ("evaluate", "policies:admin")  # systems that evaluate may read what they call
_ERRORS = {400: ResponseSpec(ErrorBody, description="malformed or invalid request"),
           401: ResponseSpec(ErrorBody, description="no valid API key"),
           403: ResponseSpec(ErrorBody, description="the key lacks the scope"),
           404: ResponseSpec(ErrorBody, description="unknown policy or revision"),
           413: ResponseSpec(ErrorBody, description="body over the size limit"),
           415: ResponseSpec(ErrorBody, description="a body that is not application/json"),
           422: ResponseSpec(ErrorBody, description="the policy failed its checks (file:line:col)")}


def _summary(name: str, active) -> PolicySummary:
    meta = active.prepared.meta
    return PolicySummary(name, meta.kind, meta.version, active.revision, meta.description,
                         [f.name for f in meta.input_type.fields], "inline" if active.inline else "thread")


def _rejected(error: PolicyRejected) -> ApiError:
    return ApiError(422, "POLICY_REJECTED", "the policy failed its checks; the running version is unchanged",
                    error.to_list())


class PolicyController(Controller):
    path = "/policies"
    tags = ["policies"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @get("/", summary="Loaded policies, and policy files that failed to load", opt={"scope": READ},
         responses=_ERRORS)
    async def list_policies(self, svc: Svc) -> PolicyList:
        active = svc.policies.active
        problems = [Problem(file, errors) for file, errors in sorted(svc.policies.problems.items())]
        return PolicyList([_summary(name, active[name]) for name in sorted(active)], problems)

    @get("/{name:str}/schema", summary="The policy's input and outputs as JSON Schema (its typed contract)",
         opt={"scope": READ}, responses=_ERRORS)
    async def policy_schema(self, svc: Svc, name: FromPath[str]) -> PolicySchema:
        active = self._active(svc, name)
        meta = active.prepared.meta
        own = policy_contract.schemas(meta)
        return PolicySchema(PolicyRef(meta.name, meta.version, active.revision), own["input"], own["output"])

    @get("/{name:str}/openapi.json", summary="OpenAPI for POST /evaluate/{name}, with the policy's types",
         opt={"scope": READ}, responses=_ERRORS)
    async def policy_openapi(self, svc: Svc, name: FromPath[str]) -> dict[str, Any]:
        active = self._active(svc, name)
        return policy_contract.openapi(active.prepared.meta, active.revision, API_VERSION)

    @staticmethod
    def _active(svc: Svc, name: str):
        active = svc.policies.get(name)
        if active is None:
            raise ApiError(404, "UNKNOWN_POLICY", f"no policy named '{name}' is loaded")
        return active

    @get("/{name:str}", summary="A policy: source, version history, activations and rule graph",
         opt={"scope": READ}, responses=_ERRORS)
    async def get_policy(self, svc: Svc, name: FromPath[str]) -> PolicyDetail:
        active = svc.policies.get(name)
        if active is None:
            raise ApiError(404, "UNKNOWN_POLICY", f"no policy named '{name}' is loaded")

        def read():
            return (svc.store.policy_version(name, active.revision), svc.store.policy_versions(name),
                    svc.store.activations(name))

        row, versions, activations = await anyio.to_thread.run_sync(read)
        meta = active.prepared.meta
        return PolicyDetail(
            name, meta.kind, meta.version, active.revision, meta.description, row["source"] if row else "",
            [PolicyVersionOut(v["revision"], v["version"], v["source_hash"], v["origin"], v["created_at"],
                              v["revision"] == active.revision) for v in versions],
            [ActivationOut(a["revision"], a["version"], a["activated_at"], a["activated_by"], a["reason"])
             for a in activations],
            meta.graph)

    async def _publish(self, svc: Svc, source: str, request: Request, name: str | None) -> PublishResponse:
        try:
            active, created = await anyio.to_thread.run_sync(
                lambda: svc.policies.publish(source, by=api_key_name(request) or "api", expected_name=name))
        except PolicyRejected as error:
            raise _rejected(error) from None
        except NameMismatch as error:
            raise ApiError(422, "POLICY_NAME_MISMATCH", str(error),
                           [{"code": "POLICY_NAME_MISMATCH", "message": str(error), "location": "source"}]) from None
        meta = active.prepared.meta
        return PublishResponse(meta.name, meta.version, active.revision, created)

    @post("/", summary="Publish a new version (the name comes from the source); checked first, activated atomically",
          opt={"scope": "policies:admin"}, status_code=201, responses=_ERRORS)
    async def publish(self, svc: Svc, data: JSONBody[PublishRequest], request: Request) -> Response[PublishResponse]:
        result = await self._publish(svc, data.source, request, None)
        return Response(result, status_code=201 if result.created else 200)  # 200: identical to the active one

    @put("/{name:str}", summary="Publish a new version of the named policy", opt={"scope": "policies:admin"},
         status_code=200, responses=_ERRORS)
    async def replace(self, svc: Svc, name: FromPath[str], data: JSONBody[PublishRequest], request: Request) -> PublishResponse:
        return await self._publish(svc, data.source, request, name)

    @post("/{name:str}/rollback", summary="Activate an earlier revision", opt={"scope": "policies:admin"},
          status_code=200, responses=_ERRORS)
    async def rollback(self, svc: Svc, name: FromPath[str], data: JSONBody[RollbackRequest], request: Request) -> PublishResponse:
        if svc.policies.get(name) is None:
            raise ApiError(404, "UNKNOWN_POLICY", f"no policy named '{name}' is loaded")
        try:
            active = await anyio.to_thread.run_sync(
                lambda: svc.policies.rollback(name, data.revision, by=api_key_name(request) or "api"))
        except LookupError as error:
            raise ApiError(404, "UNKNOWN_REVISION", str(error),
                           [{"code": "UNKNOWN_REVISION", "message": str(error), "location": "revision"}]) from None
        except PolicyRejected as error:
            raise _rejected(error) from None
        meta = active.prepared.meta
        return PublishResponse(meta.name, meta.version, active.revision, False)
