"""Dependencies injected into handlers, from app state."""

from __future__ import annotations

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from ..services import Services

#: How handlers receive the services: `svc: Svc`.
Svc = NamedDependency[Services]


def services(state: State):
    return state.services


def api_key_name(request: Request) -> str | None:
    """The name of the API key that authorised this request (set by the auth guard)."""
    return request.scope.get("regua_key")
