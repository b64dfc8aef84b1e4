"""The Litestar application: wiring only. Handlers live in server/api/, behaviour in the services.

    app = create_app(load_settings("regua.toml"))      # or: uvicorn --factory server.app:app_from_env

Services (server/services.py: store, plugin registry, policies, evaluator, decision log,
metrics, API keys) are built once per worker process and handed to handlers through `app.state`.
"""

from __future__ import annotations

import asyncio
import gc
import logging

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from regua.plugins.registry import Registry

from . import slow_clients
from .api import ROUTES
from .auth import PUBLIC, ApiKeyMiddleware, check_route_access
from .bodies import JsonBodyRequest, StrictStructSchemaPlugin, strict_request
from .config import Settings, load_settings
from .console import check_console_access, console_router, static_router
from .console.session import SessionStore
from .console.swagger import SWAGGER_ASSETS, swagger_assets_router
from .errors import exception_handlers
from .lean_evaluate import EvaluateFront
from .logs import configure_logging
from .metrics import RequestTimingMiddleware
from .schemas import API_VERSION
from .services import build_services

log = logging.getLogger("regua.server")


def create_app(settings: Settings | None = None, *, registry: Registry | None = None, today=None) -> Litestar:
    settings = settings or load_settings()
    configure_logging(settings.log_level, settings.server.access_log, settings.log_format)
    services = build_services(settings, registry, today)
    slow_clients.HEADER_TIMEOUT = settings.server.header_timeout  # for uvicorn's protocol (cli/serve.py)
    if settings.sandbox:
        log.warning("SANDBOX MODE: synthetic bureau answers, development API key; never use in production")

    async def on_startup(app: Litestar) -> None:
        services.start_background()
        if services.account is not None:  # portfolio.customer: the loop watches the SQLite file
            services.account.attach(asyncio.get_running_loop())
        # Everything loaded so far (the app, compiled policies, plugins) lives as long as the process:
        # keep it out of the garbage collector's full passes, which otherwise rescan it all.
        gc.collect()
        gc.freeze()

    async def on_shutdown(app: Litestar) -> None:
        services.stop()

    on_postgres = bool(settings.store.url)
    app = ReguaApp(
        route_handlers=[*ROUTES, console_router(), static_router(), swagger_assets_router()],
        # Timing first (outermost), so authentication and error answers are timed too.
        middleware=[DefineMiddleware(RequestTimingMiddleware, metrics=services.metrics),
                    slow_clients.body_timeout(settings.server.body_timeout),
                    ApiKeyMiddleware(services.keyring)],
        exception_handlers=exception_handlers(postgres=on_postgres),
        before_request=strict_request,
        request_class=JsonBodyRequest,
        plugins=[StrictStructSchemaPlugin()],
        state=State({"services": services,
                     "console_sessions": SessionStore(services.store, services.keyring)}),
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        request_max_body_size=settings.server.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Régua", version=API_VERSION, path="/schema",
            # The documents and their viewer need no key (Litestar adds their handlers to this router).
            openapi_router=Router("/schema", route_handlers=[], include_in_schema=False, dto=None, return_dto=None,
                                  opt=dict(PUBLIC)),
            description="Credit decisions from checked, compiled policies. See docs/http-api.md.",
            # Swagger UI from the swagger-ui-py package, served by this app: no CDN, works offline (and
            # no favicon request either).
            render_plugins=[SwaggerRenderPlugin(path=["/", "/swagger"], favicon="<link rel='icon' href='data:,'>",
                                                **SWAGGER_ASSETS)],
            components=Components(security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer", description="an API key (regua keys new)"),
                "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
            }),
            security=[{"bearer": []}, {"apiKey": []}]),
        logging_config=None,
        debug=False,
    )
    check_console_access(app)  # the console's pages too: each declares its scopes
    check_route_access(app)  # fail closed: a route that declares neither a scope nor PUBLIC stops the app here
    document_error_bodies(app)
    document_public_routes(app)
    app.front = EvaluateFront(app, super(ReguaApp, app).__call__)
    return app


class ReguaApp(Litestar):
    """Litestar, with the common case of POST /evaluate answered in front of it
    (server.lean_evaluate.EvaluateFront; every other request is Litestar's)."""

    front: EvaluateFront | None = None

    async def __call__(self, scope, receive, send) -> None:
        if self.front is not None and scope["type"] == "http" and scope["method"] == "POST":
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def document_public_routes(app: Litestar) -> None:
    """A route that needs no key (PUBLIC) says so in the OpenAPI document (`security: [{}]`);
    otherwise it would show the document-wide API-key requirement, and clients would send a key
    a bureau posting to /events does not have."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if handler.opt.get("public") is True and not any(layer.security for layer in handler.ownership_layers):
                handler.security = [{}]


def document_error_bodies(app: Litestar) -> None:
    """Every handler that can refuse its parameters answers 400 with the one error body: say so in the
    OpenAPI document, instead of Litestar's default ValidationException schema."""
    from litestar.openapi.datastructures import ResponseSpec

    from .schemas import ErrorBody

    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            responses = dict(handler.responses or {})
            if 400 not in responses:
                responses[400] = ResponseSpec(ErrorBody, description="malformed or invalid request")
                handler.responses = responses


def app_from_env() -> Litestar:
    """Factory for ASGI servers (`uvicorn --factory server.app:app_from_env`): REGUA_CONFIG + REGUA_*."""
    return create_app(load_settings())
