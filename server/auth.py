"""API keys with scopes, stored hashed.

Clients send `Authorization: Bearer <key>` (or `X-API-Key: <key>`). The server keeps only
"sha256:<hex>" of each key (keys are long random tokens from `regua keys new`, so a fast
hash is enough; what matters is that the configuration never holds a usable secret).
Scopes: `evaluate`, `decisions:read`, `policies:admin`, `collection`, `monitoring`, `lab`. Access fails
closed: every route handler declares either the scope it needs, `opt={"scope": ...}` (a tuple:
any of them), or that it needs no key, `opt=PUBLIC` (health, metrics, the OpenAPI documents,
the HMAC-signed monitoring events); on the handler, its controller or its router.
`check_route_access(app)` refuses to build an app with a handler that declares neither (or
both, or an unknown scope), and `ApiKeyMiddleware` answers 401 without a known key, 403 without
the scope, whatever the route declares. Reading policies takes `evaluate` or `policies:admin`.
In sandbox mode with no keys configured, the well-known key `regua-sandbox` has every scope.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from .config import SANDBOX_KEY, SCOPES, ApiKey, Settings
from .errors import ApiError

KEY_PREFIX = "rk_"
#: The `opt` of a route that needs no API key.
PUBLIC = {"public": True}


class RouteAccessError(Exception):
    """A route handler declares no access (neither a scope nor PUBLIC), or a contradictory one."""


def _is_auto_options(handler) -> bool:
    """Litestar's own OPTIONS handler, added to every path that has none (it answers the Allow header)."""
    return getattr(handler.fn, "__qualname__", "").startswith("HTTPRoute.create_options_handler")


def check_route_access(app: Litestar) -> None:
    """Fail closed: every route handler of `app` must declare its scope or PUBLIC (RouteAccessError).

    Litestar's automatic OPTIONS handlers get the access of their path's other handlers: public if
    one of them is, else any of their scopes."""
    problems = []
    for route in app.routes:
        handlers = list(getattr(route, "route_handlers", None) or [route.route_handler])
        declared = [h for h in handlers if not _is_auto_options(h)]
        for handler in declared:
            opt = handler.opt
            scope = opt.get("scope")
            wanted = scope if isinstance(scope, tuple) else (scope,)
            where = f"{'/'.join(sorted(getattr(handler, 'http_methods', ()) or ('?',)))} {route.path}"
            if opt.get("public") is True and scope is not None:
                problems.append(f"{where}: declares both a scope and public")
            elif opt.get("public") is True:
                continue
            elif scope is None:
                problems.append(f"{where}: declares no access (opt={{'scope': ...}} or opt=PUBLIC)")
            elif not wanted or not all(s in SCOPES for s in wanted):
                problems.append(f"{where}: unknown scope {scope!r} (known: {', '.join(SCOPES)})")
        for handler in handlers:
            if _is_auto_options(handler) and "scope" not in handler.opt and not handler.opt.get("public"):
                if any(h.opt.get("public") is True for h in declared):
                    handler.opt = {**handler.opt, **PUBLIC}
                else:
                    scopes = [s for h in declared for s in (h.opt["scope"] if isinstance(h.opt.get("scope"), tuple)
                                                          else (h.opt.get("scope"),)) if s is not None]
                    handler.opt = {**handler.opt, "scope": tuple(dict.fromkeys(scopes))}
    if problems:
        raise RouteAccessError("routes must declare their access, refusing to build the app:\n  "
                               + "\n  ".join(problems))


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its hash for the configuration."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_key(key)


class KeyRing:
    #: Keys already verified, by the key presented: a request with a known key is not hashed again.
    #: Bounded (cleared when full), and only keys that matched are kept.
    VERIFIED_MAX = 1024

    def __init__(self, keys: list[ApiKey]):
        self._by_hash = {k.hash.lower(): k for k in keys}
        self._verified: dict[str, ApiKey] = {}
        # Whether a key may use a route, by (the key's id, the route's scopes): a few of each. Each
        # entry keeps its key, so a reused id is never taken for the same key.
        self._allowed: dict[tuple[int, tuple], tuple[ApiKey, bool]] = {}

    def allows(self, key: ApiKey, wanted: tuple) -> bool:
        """Whether `key` has one of the scopes `wanted`."""
        entry = self._allowed.get((id(key), wanted))
        if entry is None or entry[0] is not key:
            entry = self._allowed[(id(key), wanted)] = (key, any(s in key.scopes for s in wanted))
        return entry[1]

    @classmethod
    def from_settings(cls, settings: Settings) -> "KeyRing":
        keys = list(settings.auth.keys)
        if settings.sandbox and not keys:
            keys = [ApiKey(name="sandbox", hash=hash_key(SANDBOX_KEY), scopes=list(SCOPES))]
        return cls(keys)

    def by_hash(self, digest: str) -> ApiKey | None:
        """The configured key with this "sha256:<hex>" hash (console sessions remember keys by hash)."""
        return self._by_hash.get(digest.lower())

    def identify(self, presented: str | None) -> ApiKey | None:
        if not presented:
            return None
        known = self._verified.get(presented)
        if known is not None:
            return known
        digest = hash_key(presented)
        key = self._by_hash.get(digest)
        # The dict lookup already matched; compare_digest keeps the final check constant-time.
        if key is not None and hmac.compare_digest(key.hash.lower(), digest):
            if len(self._verified) >= self.VERIFIED_MAX:
                self._verified.clear()
            self._verified[presented] = key
            return key
        return None


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>` (raw ASGI headers)."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                token = token.strip()
                if token:
                    return token
            continue  # e.g. Basic credentials added by a proxy: an X-API-Key may follow
        if name == b"x-api-key":
            return value.decode("latin-1").strip() or None
    return None


class ApiKeyMiddleware(ASGIMiddleware):
    """Checks the request's key against its route's `scope` option (a tuple: any of them); routes
    marked PUBLIC pass, and a route that declares nothing needs a key with a scope nobody has (403).

    A middleware rather than a Litestar guard: it runs after routing, reads the raw headers
    and costs a few microseconds; the guard machinery copied the route handler per request."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, ring: KeyRing):
        self.ring = ring

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        opt = scope["route_handler"].opt
        if opt.get("public") is not True:
            scope["regua_key"] = authorize(self.ring, opt, scope["headers"]).name
        await next_app(scope, receive, send)


def authorize(ring: KeyRing, opt: dict, headers: list[tuple[bytes, bytes]]) -> ApiKey:
    """The key the request presents, if it has a scope the route (its `opt`) accepts; else ApiError
    401 (no known key) or 403 (no accepted scope). For ApiKeyMiddleware and the fast path of POST
    /evaluate (server.lean_evaluate)."""
    key = ring.identify(presented_key(headers))
    if key is None:
        raise ApiError(401, "UNAUTHORIZED", "a valid API key is required (Authorization: Bearer <key>)",
                       headers={"WWW-Authenticate": "Bearer"})
    required = opt.get("scope", ())
    wanted = required if required.__class__ is tuple else (required,)
    if not ring.allows(key, wanted):
        raise ApiError(403, "FORBIDDEN", f"this API key lacks the '{' or '.join(wanted)}' scope" if wanted
                       else "this route declares no scope: no API key may use it")
    return key
