"""API keys with scopes, stored hashed.

Clients send `Authorization: Bearer <key>` (or `X-API-Key: <key>`). The server keeps only
"sha256:<hex>" of each key (keys are long random tokens from `regua keys new`, so a fast
hash is enough; what matters is that the configuration never holds a usable secret).
Scopes: `evaluate`, `decisions:read`, `policies:admin`, `collection`. Handlers declare the scope they
need in `opt={"scope": ...}` (a tuple: any of them); `ApiKeyMiddleware` answers 401 without
a known key, 403 without the scope. Reading policies takes `evaluate` or `policies:admin`.
In sandbox mode with no keys configured, the well-known key `regua-sandbox` has every scope.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from .config import SANDBOX_KEY, SCOPES, ApiKey, Settings
from .errors import ApiError

KEY_PREFIX = "rk_"


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

    @classmethod
    def from_settings(cls, settings: Settings) -> "KeyRing":
        keys = list(settings.auth.keys)
        if settings.sandbox and not keys:
            keys = [ApiKey(name="sandbox", hash=hash_key(SANDBOX_KEY), scopes=list(SCOPES))]
        return cls(keys)

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
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            continue  # e.g. Basic credentials added by a proxy: an X-API-Key may follow
        if name == b"x-api-key":
            return value.decode("latin-1").strip() or None
    return None


class ApiKeyMiddleware(ASGIMiddleware):
    """Checks the request's key against its route's `scope` option (a tuple: any of them).

    A middleware rather than a Litestar guard: it runs after routing, reads the raw headers
    and costs a few microseconds; the guard machinery copied the route handler per request."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, ring: KeyRing):
        self.ring = ring

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        required = scope["route_handler"].opt.get("scope")
        if required is not None:
            wanted = required if isinstance(required, tuple) else (required,)
            key = self.ring.identify(presented_key(scope["headers"]))
            if key is None:
                raise ApiError(401, "UNAUTHORIZED", "a valid API key is required (Authorization: Bearer <key>)",
                               headers={"WWW-Authenticate": "Bearer"})
            if not any(s in key.scopes for s in wanted):
                raise ApiError(403, "FORBIDDEN", f"this API key lacks the '{' or '.join(wanted)}' scope")
            scope["regua_key"] = key.name
        await next_app(scope, receive, send)
