"""What the built-in HTTP connectors share: one lazily created httpx client per connector (TLS
contexts built once per `verify` setting and shared), and an auth header whose secret comes from
the settings or, better, from an environment variable read at each call (so a rotated secret
needs no restart, and the secret never sits in a repr)."""

from __future__ import annotations

import functools
import os
import ssl
import threading
import time

import certifi

from regua.engine.connectors import ConnectorError
from regua.plugins.lazy import lazy_module, preload

httpx = lazy_module("httpx")

#: Default cap on one answer's body: a bureau report is kilobytes; a runaway answer must not fill memory.
MAX_ANSWER_BYTES = 5_000_000


class AnswerTooSlow(Exception):
    """The answer's body did not arrive within the total time allowed (a trickling server)."""


@functools.lru_cache(maxsize=8)
def tls_context(verify: bool | str) -> ssl.SSLContext | bool:
    """The TLS setting for httpx: False (verification off), or a context trusting certifi's CAs
    (True) or a CA bundle file (a path). One per setting, shared by every client (building one
    costs ~0.1 s)."""
    if verify is False:
        return False
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else certifi.where())


class AnswerTooLarge(Exception):
    """The answer's body is larger than the caller allows."""


def send_bounded(client: httpx.Client, request: httpx.Request, *, max_bytes: int, timeout: float,
                 drop_unreadable_body: bool = False) -> httpx.Response:
    """Send `request` with `client` and read a 2xx answer's body with two bounds httpx alone does
    not give: at most `max_bytes` (AnswerTooLarge) and `timeout` seconds in total from sending to
    the last byte (AnswerTooSlow: httpx's timeout is per read, so a server trickling a byte at a
    time would otherwise hold the call forever). Non-2xx bodies are not read. Transport errors
    propagate as httpx raises them.

    With `drop_unreadable_body`, a body past either bound is dropped instead (the answer keeps its
    status and headers, empty content): for a send whose 2xx already means "accepted", where
    raising would make the caller retry, and so send twice."""
    deadline = time.monotonic() + timeout
    response = client.send(request, stream=True)
    headers = [(k, v) for k, v in response.headers.multi_items()
               if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
    try:
        if not 200 <= response.status_code < 300:
            return httpx.Response(response.status_code, headers=headers, request=request)
        try:
            content = _read_body(response, max_bytes, deadline)
        except (AnswerTooLarge, AnswerTooSlow):
            if not drop_unreadable_body:
                raise
            content = b""
        return httpx.Response(response.status_code, headers=headers, content=content, request=request)
    finally:
        response.close()


def _read_body(response: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise AnswerTooLarge()
    chunks, size = [], 0
    for chunk in response.iter_bytes():  # as it arrives, decoded: a compressed bomb counts at full size
        size += len(chunk)
        if size > max_bytes:
            raise AnswerTooLarge()
        if time.monotonic() > deadline:
            raise AnswerTooSlow()
        chunks.append(chunk)
    return b"".join(chunks)


class HTTPClientMixin:
    #: How configuration errors name the plugin, e.g. "http_bureau".
    plugin_label = ""
    name: str
    base_url: str
    path: str
    timeout: float
    verify: bool | str
    auth: dict | None
    #: Headers the client sends with every request (None: only httpx's own).
    client_headers: dict | None = None
    #: An httpx transport to use instead of the network's (None: httpx's default).
    transport: httpx.BaseTransport | None = None
    #: Largest answer body read, in bytes; a larger one is refused (ConnectorError ANSWER_TOO_LARGE).
    max_answer_bytes: int = MAX_ANSWER_BYTES

    def _init_client(self) -> None:
        preload(httpx)
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
                self._client = httpx.Client(base_url=self.base_url, headers=self.client_headers, timeout=self.timeout,
                                            verify=tls_context(self.verify), transport=self.transport,
                                            follow_redirects=False)
            return self._client

    def _check_max_answer_bytes(self, value) -> None:
        if value is None:
            return
        try:
            self.max_answer_bytes = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.plugin_label} {self.name}: max_answer_bytes must be a whole number") from None
        if self.max_answer_bytes < 1:
            raise ValueError(f"{self.plugin_label} {self.name}: max_answer_bytes must be at least 1")

    def send_bounded(self, request: httpx.Request) -> httpx.Response:
        """Send `request` and read its answer with two bounds httpx alone does not give: at most
        `max_answer_bytes` of body (ConnectorError ANSWER_TOO_LARGE) and `timeout` seconds in total
        from sending to the last byte (AnswerTooSlow). Non-2xx bodies are not read. Transport
        errors propagate as httpx raises them."""
        try:
            return send_bounded(self.client, request, max_bytes=self.max_answer_bytes, timeout=self.timeout)
        except AnswerTooLarge:
            raise self._too_large() from None

    def _too_large(self) -> ConnectorError:
        return ConnectorError("ANSWER_TOO_LARGE",
                              f"{self.name}: the answer is larger than {self.max_answer_bytes} bytes")

    def close(self) -> None:
        with self._client_lock:
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
