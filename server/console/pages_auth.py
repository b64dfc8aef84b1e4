"""Sign-in, sign-out and the start page."""

from __future__ import annotations

import logging

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect

from .render import SECURITY_HEADERS, page
from .session import COOKIE, PUBLIC_PAGE, SESSION_HOURS, SIGNED_IN, SessionStore, check_csrf, cookie_is_secure

log = logging.getLogger("regua.console")


def _safe_next(target: str | None) -> str:
    """Only a console path: never another site (an open redirect)."""
    if not target or not target.startswith("/console") or target.startswith("//") or "\\" in target:
        return "/console/"
    return target


class AuthPages(Controller):
    path = "/"

    @get("/login", opt={"console": PUBLIC_PAGE})
    async def login_form(self, request: Request) -> Response:
        return page(request, "login.html", next=_safe_next(request.query_params.get("next")), error=None)

    @post("/login", opt={"console": PUBLIC_PAGE})
    async def login(self, request: Request) -> Response:
        form = await request.form()
        sessions: SessionStore = request.app.state.console_sessions
        opened = sessions.open(str(form.get("key") or ""))
        target = _safe_next(str(form.get("next") or ""))
        if opened is None:
            log.info("console sign-in refused (unknown key)")
            # 200, not 401: the form is shown again (a 401 document makes browsers log an error).
            return page(request, "login.html", next=target, error="Chave de API desconhecida.")
        token, session = opened
        log.info("console sign-in: key %s", session.key_name)
        response = Redirect(target, status_code=303)
        response.set_cookie(COOKIE, token, path="/console", max_age=SESSION_HOURS * 3600, httponly=True,
                            secure=cookie_is_secure(request), samesite="strict")
        response.headers.update(SECURITY_HEADERS)
        return response

    @post("/logout", opt={"console": SIGNED_IN})
    async def logout(self, request: Request) -> Response:
        check_csrf(request.scope["console_session"], dict(await request.form()))
        request.app.state.console_sessions.close(request.cookies.get(COOKIE))
        response = Redirect("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        response.headers.update(SECURITY_HEADERS)
        return response

    @get("/", opt={"console": SIGNED_IN})
    async def home(self, request: Request) -> Response:
        return page(request, "home.html")

    @get("/{rest:path}", opt={"console": SIGNED_IN})
    async def unknown(self, request: Request, rest: FromPath[str]) -> Response:
        """Any other console address: a page saying so (more specific routes always win)."""
        return page(request, "message.html", 404, title="Não encontrado", message="Esta página não existe.")
