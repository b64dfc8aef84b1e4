"""A module imported on first attribute access.

`httpx = lazy_module("httpx")` at the top of a plugin module reads like the import it replaces,
but the import (httpx alone is ~0.3 s with its optional command line, sqlite_utils and jinja2
~0.1 s each) happens only when a connector actually uses it: `regua eval` with the sandbox or
fixtures, and the server's start-up, never pay for HTTP clients or SQLite helpers they do not use.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class _LazyModule:
    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str):
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str):
    return _LazyModule(name)


def preload(module) -> None:
    """Import a lazy module now: when a connector is built, so that its first lookup's deadline
    is not spent importing its HTTP client."""
    if isinstance(module, _LazyModule) and module._module is None:
        module._module = importlib.import_module(module._name)
