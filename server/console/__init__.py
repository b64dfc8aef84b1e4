"""The web console at /console: server-rendered pages (Jinja2) over the same services as the API.

One module per page group (auth, policies, playground, decisions, reviews, collection, replays), a small
stylesheet and script under static/ (no CDN: the console works on an air-gapped network), and
charts drawn on the server as SVG. Sign-in and access are in session.py; docs/console.md.
"""

from __future__ import annotations

from litestar import Request, Response, Router
from litestar.exceptions import NotFoundException, ValidationException
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from ..auth import PUBLIC
from .pages_auth import AuthPages
from .pages_collection import CollectionPages
from .pages_decisions import DecisionPages
from .pages_playground import PlaygroundPages
from .pages_policies import PolicyPages
from .pages_replays import ReplayPages
from .pages_reviews import ReviewPages
from .render import HERE, SECURITY_HEADERS, page
from .session import CsrfFailed, ScopeMissing, SignInRequired, check_console_access, console_guard

__all__ = ["check_console_access", "console_router", "static_router"]

PAGES = [AuthPages, PolicyPages, PlaygroundPages, DecisionPages, ReviewPages, CollectionPages, ReplayPages]


def _sign_in(request: Request, _: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = Redirect("/console/login", query_params={"next": target}, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def _forbidden(request: Request, error: ScopeMissing) -> Response:
    return page(request, "message.html", 403, title="Sem permissão",
                message=f"Esta página pede o escopo {error}, que a sua chave não tem.")


def _csrf(request: Request, _: Exception) -> Response:
    return page(request, "message.html", 403, title="Formulário expirado",
                message="O formulário não trouxe o código de segurança desta sessão. Recarregue a página e tente de novo.")


def _not_found(request: Request, error: Exception) -> Response:
    return page(request, "message.html", 404, title="Não encontrado", message=getattr(error, "detail", "") or
                "Esta página não existe.")


def _invalid(request: Request, error: Exception) -> Response:
    return page(request, "message.html", 400, title="Pedido inválido",
                message="Algum parâmetro da página não tem o formato esperado.")


def console_router() -> Router:
    # The API key middleware lets console pages through (PUBLIC to it): the console's own guard
    # checks the session cookie and each page's scopes instead.
    return Router("/console", route_handlers=PAGES, guards=[console_guard], opt=dict(PUBLIC),
                  include_in_schema=False,
                  exception_handlers={SignInRequired: _sign_in, ScopeMissing: _forbidden, CsrfFailed: _csrf,
                                      NotFoundException: _not_found, ValidationException: _invalid})


def static_router() -> Router:
    return create_static_files_router("/console/static", [HERE / "static"], name="console-static",
                                      opt=dict(PUBLIC), include_in_schema=False)
