"""API keys with scopes, stored hashed.

Clients send `Authorization: Bearer <key>` (or `X-API-Key: <key>`). The server keeps only
"sha256:<hex>" of each key (keys are long random tokens from `regua keys new`, so a fast
hash is enough; what matters is that the configuration never holds a usable secret).
Scopes: `evaluate`, `decisions:read`, `policies:admin`. Handlers declare the scope they
need in `opt={"scope": ...}` (a tuple: any of them); the guard answers 401 without a known
key, 403 without the scope. Reading policies takes `evaluate` or `policies:admin`.
In sandbox mode with no keys configured, the well-known key `regua-sandbox` has every scope.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

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
    def __init__(self, keys: list[ApiKey]):
        self._by_hash = {k.hash.lower(): k for k in keys}

    @classmethod
    def from_settings(cls, settings: Settings) -> "KeyRing":
        keys = list(settings.auth.keys)
        if settings.sandbox and not keys:
            keys = [ApiKey(name="sandbox", hash=hash_key(SANDBOX_KEY), scopes=list(SCOPES))]
        return cls(keys)

    def identify(self, presented: str | None) -> ApiKey | None:
        if not presented:
            return None
        digest = hash_key(presented)
        key = self._by_hash.get(digest)
        # The dict lookup already matched; compare_digest keeps the final check constant-time.
        if key is not None and hmac.compare_digest(key.hash.lower(), digest):
            return key
        return None

    def __len__(self) -> int:
        return len(self._by_hash)


def presented_key(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return connection.headers.get("x-api-key")


async def require_scope(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    # async on purpose: Litestar runs a sync guard in a worker thread, on every request.
    """Litestar guard: the request's key must carry the handler's `scope` (or one of a tuple)."""
    scope = handler.opt.get("scope")
    if scope is None:
        return
    wanted = scope if isinstance(scope, tuple) else (scope,)
    ring: KeyRing = connection.app.state.keyring
    key = ring.identify(presented_key(connection))
    if key is None:
        raise ApiError(401, "UNAUTHORIZED", "a valid API key is required (Authorization: Bearer <key>)",
                       headers={"WWW-Authenticate": "Bearer"})
    if not any(s in key.scopes for s in wanted):
        raise ApiError(403, "FORBIDDEN", f"this API key lacks the '{' or '.join(wanted)}' scope")
    connection.scope["regua_key"] = key.name
