"""HTTPNegativation: a negativation provider's JSON API.

Configured, not coded: base URL, an auth header (value given directly or read from an
environment variable), one endpoint per action ("METHOD /path", `{protocol}` is replaced by
the URL-quoted protocol; the debtor's document never goes into a URL), the request body
(by default the request as JSON; or `request_fields`, provider field -> dotted path in the
request, e.g. {"devedor.documento": "debtor_document", "contrato": "debt.contract"}), and how to
read the answer: `response_fields` (our field -> dotted path in the provider's JSON, e.g.
{"protocol": "dados.protocolo", "status": "dados.situacao"}) plus `status_map` (provider value
-> our status). Errors: timeouts, connection failures, 5xx and 429 raise TransientError
(retried by plugins.runtime.Resilient); other 4xx raise ProviderError (a ConnectorError, code
"HTTP_<status>", the provider's own error code in `provider_code` when `error_code_field` says
where it is); a 2xx answer that is not JSON, lacks the protocol or status, carries an unknown
status, a bad or naive timestamp (unless `assume_timezone` is set), another protocol or a
protocol containing the debtor's document raises ConnectorError("BAD_ANSWER"). Messages never
carry the debtor's document. TLS: `verify` is True (system CAs via certifi), a CA bundle path,
or False (off, logged as a warning).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import typing
import urllib.parse
from zoneinfo import ZoneInfo

import msgspec

from regua.engine.connectors import ConnectorError, mask_document
from regua.plugins.connectors import NegativationService, TransientError
from regua.plugins.contracts import NegativationRecord, NegativationRequest, NegativationStatus
from regua.plugins.lazy import lazy_module
from regua.plugins.mapping import get_path

from .http_client import HTTPClientMixin

httpx = lazy_module("httpx")

log = logging.getLogger(__name__)

STATUSES: frozenset[str] = frozenset(typing.get_args(NegativationStatus))
ACTIONS = ("include", "remove", "status")


class ProviderError(ConnectorError):
    """A 4xx answer: `code` is "HTTP_<status>", `provider_code` the provider's own code (if any)."""

    def __init__(self, status: int, provider_code: str = "", message: str = ""):
        super().__init__(f"HTTP_{status}", message)
        self.status = status
        self.provider_code = provider_code


_LONG_NUMBER = re.compile(r"\d[\d.\-/]{9,}\d")


def _set_path(data: dict, path: str, value) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        data = data.setdefault(part, {})
    data[parts[-1]] = value


def _scrub(text: str, document: str) -> str:
    """Provider text fit for a message: short, without the document or anything like one."""
    text = str(text)[:120]
    if document:
        text = text.replace(document, mask_document(document))
    return _LONG_NUMBER.sub("***", text)


DEFAULT_ENDPOINTS = {
    "include": "POST /negativations",
    "remove": "DELETE /negativations/{protocol}",
    "status": "GET /negativations/{protocol}",
}
DEFAULT_RESPONSE_FIELDS = {
    "protocol": "protocol", "status": "status", "notice_sent_at": "notice_sent_at",
    "included_at": "included_at", "removed_at": "removed_at", "reason": "reason",
}


class HTTPNegativation(HTTPClientMixin, NegativationService):
    """A negativation provider's JSON API, described by configuration (see the module docstring).

    The httpx client and its TLS setup are the built-in connectors' shared ones (http_client.py); the
    auth header is read once, at configuration, and sent by the client with every request."""

    plugin_label = "negativation.http"

    def __init__(self, name: str, base_url: str, *, endpoints: dict | None = None, auth_header: str = "Authorization",
                 auth_value: str = "", auth_value_env: str = "", headers: dict | None = None,
                 request_fields: dict | None = None, response_fields: dict | None = None,
                 status_map: dict | None = None, error_code_field: str = "", assume_timezone: str | None = None,
                 timeout: float = 5.0, retries: int = 2, backoff: float = 0.2, failure_threshold: int = 5,
                 reset_after: float = 30.0, verify: bool | str = True, transport: httpx.BaseTransport | None = None):
        if not name:
            raise ValueError("HTTPNegativation needs a name")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"{name}: base_url must be an http(s) URL")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.endpoints: dict[str, tuple[str, str]] = {}
        for action, spec in {**DEFAULT_ENDPOINTS, **(endpoints or {})}.items():
            if action not in ACTIONS:
                raise ValueError(f"{name}: unknown action {action!r} in endpoints")
            method, _, path = str(spec).strip().partition(" ")
            if not path.startswith("/"):
                raise ValueError(f"{name}: endpoint {action!r} must look like 'POST /path', got {spec!r}")
            self.endpoints[action] = (method.upper(), path.strip())
        self.request_fields = dict(request_fields or {})
        self.response_fields = {**DEFAULT_RESPONSE_FIELDS, **(response_fields or {})}
        self.status_map = {str(k): v for k, v in (status_map or {s: s for s in STATUSES}).items()}
        bad = {v for v in self.status_map.values() if v not in STATUSES}
        if bad:
            raise ValueError(f"{name}: status_map values must be among {sorted(STATUSES)}, got {sorted(bad)}")
        self.error_code_field = error_code_field
        self.assume_timezone = ZoneInfo(assume_timezone) if assume_timezone else None
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.failure_threshold, self.reset_after = int(failure_threshold), float(reset_after)
        self.client_headers = {"Accept": "application/json", **(headers or {})}
        secret = auth_value or (os.environ.get(auth_value_env, "") if auth_value_env else "")
        if auth_header and secret:
            self.client_headers[auth_header] = secret
        self.auth = None  # the secret is in client_headers, not read per call
        if verify is False:
            log.warning("%s: TLS certificate verification is off", name)
        self.verify = verify
        self.transport = transport
        self._init_client()

    @classmethod
    def from_config(cls, config: dict) -> "HTTPNegativation":
        config = dict(config)
        try:
            return cls(config.pop("name"), config.pop("base_url"), **config)
        except (KeyError, TypeError) as error:
            raise ValueError(f"negativation.http: bad settings ({error})") from None

    def __repr__(self) -> str:  # never the auth secret
        return f"HTTPNegativation(name={self.name!r}, base_url={self.base_url!r})"

    def _body(self, request: NegativationRequest) -> dict:
        builtins = msgspec.to_builtins(request)
        if builtins.get("at") is None:
            builtins.pop("at", None)
        if not self.request_fields:
            return builtins
        body: dict = {}
        for target, source in self.request_fields.items():
            value = get_path(builtins, source, None)
            if value is not None:
                _set_path(body, target, value)
        return body

    def submit(self, request: NegativationRequest) -> NegativationRecord:
        if request.action not in ACTIONS:
            raise ConnectorError("BAD_REQUEST", f"unknown action {request.action!r}")
        if request.action != "include" and not request.protocol:
            raise ConnectorError("MISSING_PROTOCOL", f"{request.action} needs the record's protocol")
        method, template = self.endpoints[request.action]
        path = template.replace("{protocol}", urllib.parse.quote(request.protocol, safe=""))
        document = request.debtor_document
        try:
            if method in ("GET", "HEAD"):
                response = self.client.request(method, path)
            else:
                response = self.client.request(method, path, json=self._body(request))
        except httpx.TimeoutException:
            raise TransientError("TIMEOUT", f"{self.name}: no answer within {self.timeout:g}s") from None
        except httpx.TransportError as error:
            raise TransientError("CONNECTION", f"{self.name}: {type(error).__name__}") from None
        status = response.status_code
        if status >= 500 or status == 429:
            raise TransientError(f"HTTP_{status}", f"{self.name}: provider answered {status}")
        if 400 <= status < 500:
            provider_code = ""
            if self.error_code_field:
                try:
                    found = get_path(response.json(), self.error_code_field, "")
                except ValueError:
                    found = ""
                provider_code = _scrub(found, document) if isinstance(found, (str, int)) else ""
            raise ProviderError(status, provider_code, f"{self.name}: {request.action} refused with {status}"
                                + (f" ({provider_code})" if provider_code else ""))
        if not 200 <= status < 300:
            raise ConnectorError("BAD_ANSWER", f"{self.name}: unexpected HTTP {status}")
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            raise ConnectorError("BAD_ANSWER", f"{self.name}: the answer is not JSON") from None
        record = self._record(data, request)
        log.info("negativation %s via %s: %s", record.protocol, self.name, record.status)
        return record

    def _record(self, data, request: NegativationRequest) -> NegativationRecord:
        def bad(why: str) -> ConnectorError:
            return ConnectorError("BAD_ANSWER", f"{self.name}: {why}")

        fields = self.response_fields
        protocol = get_path(data, fields["protocol"], None)
        if isinstance(protocol, bool) or not isinstance(protocol, (str, int, type(None))):
            raise bad(f"'{fields['protocol']}' is not a protocol")
        protocol = str(protocol) if protocol is not None else ""
        if not protocol:
            protocol = request.protocol
        if not protocol:
            raise bad(f"no protocol at '{fields['protocol']}'")
        if request.protocol and protocol != request.protocol:
            raise bad("the answer is about another protocol")
        if len(request.debtor_document) >= 8 and request.debtor_document in re.sub(r"[^0-9A-Za-z]", "", protocol):
            raise bad("the protocol contains the debtor's document; refusing to store or log it")
        raw_status = get_path(data, fields["status"], None)
        if raw_status is None:
            raise bad(f"no status at '{fields['status']}'")
        status = self.status_map.get(str(raw_status))
        if status is None:
            raise bad(f"unknown status {_scrub(raw_status, request.debtor_document)!r}")
        moments = {key: self._moment(get_path(data, fields[key], None), key, bad)
                   for key in ("notice_sent_at", "included_at", "removed_at")}
        reason = get_path(data, fields["reason"], None)
        reason = _scrub(reason, request.debtor_document) if isinstance(reason, str) and reason else ""
        return NegativationRecord(protocol=protocol, status=status, reason=reason, **moments)

    def _moment(self, value, key: str, bad) -> dt.datetime | None:
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise bad(f"{key} is not a timestamp")
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise bad(f"{key} is not an ISO 8601 timestamp") from None
        if moment.tzinfo is None:
            if self.assume_timezone is None:
                raise bad(f"{key} has no timezone")
            moment = moment.replace(tzinfo=self.assume_timezone)
        return moment.astimezone(dt.timezone.utc)
