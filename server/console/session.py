"""Console sign-in: an API key buys a session cookie; every page checks it and its scope.

- The cookie (`regua_console`) is a random token, `Secure` (except over plain http on loopback,
  where browsers refuse to send secure cookies to `http://127.0.0.1`), `HttpOnly`,
  `SameSite=Strict`, `Path=/console`. The store keeps only its sha256 (console_sessions).
- A session remembers its key by the key's hash, so a key removed from the configuration ends
  every session opened with it at the next request; the scopes are the key's, read each time.
- CSRF: each session has a token; every form carries it (`csrf` field) and every POST must
  return it (synchronizer token). SameSite=Strict already keeps other sites' forms out; the
  token also covers same-site pages that are not ours.
- Every console handler declares `opt={"console": (scopes...)}` (any of them) or
  `opt={"console": "signed-in"}`, or `"public"` for the sign-in page: `check_console_access`
  refuses to build a console whose handler declares nothing (fail closed, like the API).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from ..auth import KeyRing, hash_key
from ..store import Store, utc_now

COOKIE = "regua_console"
SESSION_HOURS = 8
SIGNED_IN = "signed-in"
PUBLIC_PAGE = "public"


class SignInRequired(Exception):
    """No session (or an expired one): the page redirects to the sign-in form."""


class ScopeMissing(Exception):
    """Signed in, but the key lacks the page's scope."""

    def __init__(self, wanted: tuple[str, ...]):
        super().__init__(" ou ".join(wanted))
        self.wanted = wanted


class CsrfFailed(Exception):
    """A POST without this session's CSRF token."""


@dataclass(frozen=True)
class Session:
    key_name: str
    scopes: frozenset[str]
    csrf: str

    def may(self, *scopes: str) -> bool:
        return any(s in self.scopes for s in scopes)

    @property
    def actor(self) -> str:
        return f"console:{self.key_name}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionStore:
    def __init__(self, store: Store, ring: KeyRing):
        self.store = store
        self.ring = ring

    def open(self, presented_key: str) -> tuple[str, Session] | None:
        """A new session for a valid key: (cookie value, session); None for an unknown key."""
        key = self.ring.identify(presented_key.strip())
        if key is None:
            return None
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = dt.datetime.now(dt.timezone.utc)
        with self.store.transaction() as db:
            # Expired sessions go when a new one opens: the table stays small without a sweeper.
            db.execute("delete from console_sessions where expires_at < ?", [now.isoformat()])
            db["console_sessions"].insert({
                "id_hash": _digest(token), "key_hash": hash_key(presented_key.strip()), "key_name": key.name,
                "csrf": csrf, "created_at": utc_now(),
                "expires_at": (now + dt.timedelta(hours=SESSION_HOURS)).isoformat()})
        return token, Session(key.name, frozenset(key.scopes), csrf)

    def find(self, token: str | None) -> Session | None:
        if not token:
            return None
        row = self.store.db.execute(
            "select key_hash, key_name, csrf, expires_at from console_sessions where id_hash = ?",
            [_digest(token)]).fetchone()
        if row is None or row[3] < dt.datetime.now(dt.timezone.utc).isoformat():
            return None
        key = self.ring.by_hash(row[0])
        if key is None:  # the key was removed from the configuration
            return None
        return Session(key.name, frozenset(key.scopes), row[2])

    def close(self, token: str | None) -> None:
        if token:
            with self.store.transaction() as db:
                db.execute("delete from console_sessions where id_hash = ?", [_digest(token)])


def cookie_is_secure(connection: ASGIConnection) -> bool:
    """Secure everywhere but plain http to a loopback host (local development, the browser tests)."""
    host = (connection.url.hostname or "").lower()
    return connection.url.scheme == "https" or host not in ("127.0.0.1", "localhost", "::1")


def console_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Loads the session into `connection.scope["console_session"]` and checks the page's scope."""
    wanted = handler.opt.get("console")
    if wanted == PUBLIC_PAGE:
        return
    sessions: SessionStore = connection.app.state.console_sessions
    session = sessions.find(connection.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired()
    connection.scope["console_session"] = session  # type: ignore[typeddict-unknown-key]
    if wanted != SIGNED_IN and not session.may(*wanted):
        raise ScopeMissing(tuple(wanted))


def check_csrf(session: Session, form: dict) -> None:
    sent = form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
        raise CsrfFailed()


def check_console_access(app) -> None:
    """Fail closed: every console page (a handler under /console, static files aside) declares its
    scopes, signed-in or public."""
    from ..config import SCOPES

    problems = []
    handlers = [h for route in app.routes if route.path.startswith("/console") and
                not route.path.startswith("/console/static") for h in getattr(route, "route_handlers", ())
                if h.http_methods != {"OPTIONS"}]
    for handler in handlers:
        wanted = handler.opt.get("console")
        if wanted in (SIGNED_IN, PUBLIC_PAGE):
            continue
        if not isinstance(wanted, tuple) or not wanted or not all(s in SCOPES for s in wanted):
            problems.append(f"{handler}: declares no console access (opt={{'console': (scopes...)}})")
    if problems:
        raise RuntimeError("console pages must declare their access:\n  " + "\n  ".join(problems))
