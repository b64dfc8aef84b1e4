"""What the built-in HTTP connectors share: one lazily created httpx client per connector, and an
auth header whose secret comes from the settings or, better, from an environment variable read
at each call (so a rotated secret needs no restart, and the secret never sits in a repr)."""

from __future__ import annotations

import os
import threading

import httpx

from regua.engine.connectors import ConnectorError


class HTTPClientMixin:
    #: How configuration errors name the plugin, e.g. "http_bureau".
    plugin_label = ""
    name: str
    base_url: str
    path: str
    timeout: float
    verify: bool | str
    auth: dict | None

    def _init_client(self) -> None:
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def _check_auth(self, auth):
        if auth is None:
            return None
        if not isinstance(auth, dict) or "header" not in auth or ("value" in auth) == ("env" in auth) \
                or set(auth) - {"header", "value", "env", "prefix"}:
            raise ValueError(f"{self.plugin_label} {self.name}: auth takes header, and value or env "
                             "(and an optional prefix)")
        return dict(auth)

    def __repr__(self) -> str:  # never the secret
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r}, path={self.path!r})"

    @property
    def client(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                # httpx gives up at the same deadline as the runtime, so abandoned worker threads end too.
                self._client = httpx.Client(base_url=self.base_url, timeout=self.timeout, verify=self.verify,
                                            follow_redirects=False)
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _auth_headers(self) -> dict:
        if self.auth is None:
            return {}
        if "env" in self.auth:
            secret = os.environ.get(self.auth["env"])
            if not secret:
                raise ConnectorError("MISCONFIGURED",
                                     f"{self.name}: environment variable {self.auth['env']} is not set")
        else:
            secret = str(self.auth["value"])
        return {self.auth["header"]: self.auth.get("prefix", "") + secret}
