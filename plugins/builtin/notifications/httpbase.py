"""The HTTP base shared by the webhook and gateway channels (httpx client, retry classification)."""

from __future__ import annotations

import re

import msgspec

from regua.engine.connectors import ConnectorError
from regua.plugins.connectors import TransientError
from regua.plugins.contracts import DeliveryReceipt, Notification
from regua.plugins.lazy import lazy_module

from ..http_client import MAX_ANSWER_BYTES, send_bounded
from .common import TemplatedChannel, _ssl_context

httpx = lazy_module("httpx")


def _json_safe(value):
    return msgspec.to_builtins(value, str_keys=True, enc_hook=str)


class _HTTPChannel(TemplatedChannel):
    retries = 3
    backoff = 0.5
    timeout = 10.0
    #: Largest answer body read; a provider's acknowledgement is bytes, a runaway one must not fill memory.
    max_answer_bytes = MAX_ANSWER_BYTES

    def __init__(self, *, url: str, headers: dict | None = None, verify_tls: bool = True, ca_file: str = "",
                 provider_id_header: str = "", max_answer_bytes: int | None = None, **common):
        super().__init__(**common)
        if max_answer_bytes is not None:
            if isinstance(max_answer_bytes, bool) or not isinstance(max_answer_bytes, int) or max_answer_bytes < 1:
                raise ValueError(f"{self.name}: max_answer_bytes must be a whole number of at least 1")
            self.max_answer_bytes = max_answer_bytes
        if not re.match(r"https?://", url or ""):
            raise ValueError(f"{self.name}: url must start with http:// or https://")
        self.url = url
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self.provider_id_header = provider_id_header
        verify = _ssl_context(ca_file, verify_tls) if url.startswith("https") else True
        self.client = httpx.Client(timeout=httpx.Timeout(self.timeout), verify=verify, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def _request(self, method: str, **kwargs) -> httpx.Response:
        try:
            # A 2xx whose body is too large or trickles past the timeout still means "accepted": its
            # body is dropped rather than raising, which would retry the send and notify twice.
            response = send_bounded(self.client, self.client.build_request(method, self.url, **kwargs),
                                    max_bytes=self.max_answer_bytes, timeout=self.timeout, drop_unreadable_body=True)
        except httpx.TimeoutException:
            raise TransientError("TIMEOUT", f"no answer within {self.timeout:g}s") from None
        except httpx.TransportError as error:
            raise TransientError("CONNECTION", type(error).__name__) from None
        status = response.status_code
        if status >= 500 or status in (408, 425, 429):
            raise TransientError("HTTP_ERROR", f"HTTP {status}")
        return response

    def _refused(self, notification: Notification, status: int) -> DeliveryReceipt:
        if status in (401, 403, 404, 405):  # credentials or URL: every message would fail alike
            raise ConnectorError("HTTP_ERROR", f"HTTP {status} (check the {self.name} url and credentials)")
        return self.rejected(notification, "HTTP_ERROR", f"HTTP {status}")

    @staticmethod
    def _json(response: httpx.Response):
        try:
            return response.json()
        except ValueError:
            return None

