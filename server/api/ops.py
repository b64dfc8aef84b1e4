"""GET /health, GET /ready, GET /metrics: unauthenticated, for load balancers and Prometheus."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from litestar import Controller, Response, get
from litestar.di import Provide

from ..auth import PUBLIC
from ..schemas import Health, Readiness
from .deps import Svc, services

try:
    VERSION = version("regua")
except PackageNotFoundError:  # pragma: no cover — running from a source tree
    VERSION = "0"


class OperationsController(Controller):
    path = "/"
    tags = ["operations"]
    opt = PUBLIC
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @get("/health", summary="The process is up")
    async def health(self, svc: Svc) -> Health:
        return Health("ok", svc.settings.sandbox, VERSION)

    @get("/ready", summary="Policies are loaded and decisions can be recorded")
    async def ready(self, svc: Svc) -> Response[Readiness]:
        policies = len(svc.policies.active)
        backlog = svc.decision_log.backlog
        ok = policies > 0 and backlog < 50 * svc.settings.store.flush_max
        body = Readiness("ready" if ok else "not ready", policies, len(svc.policies.problems), backlog,
                         svc.registry.breaker_states())
        return Response(body, status_code=200 if ok else 503)

    @get("/metrics", summary="Prometheus metrics", media_type="text/plain")
    async def metrics(self, svc: Svc) -> Response[bytes]:
        payload, content_type = svc.metrics.render()
        # Litestar appends "; charset=utf-8" to text/* types; prometheus_client's type already has it, and a
        # repeated parameter makes the Content-Type invalid (Prometheus refuses to parse such scrapes).
        return Response(payload, media_type=content_type.replace("; charset=utf-8", ""))
