"""Bureau monitoring alerts polled over HTTP, for bureaus that cannot push them to POST /events.

Each entry of `config["monitoring_sources"]["sources"]` (see plugins.manager.PluginSettings)
becomes one `HTTPMonitoringSource`, a `MonitoringSource` named after the bureau:

    monitoring_sources:
      sources:
        - name: serasa
          base_url: https://api.provedor.com.br
          path: /v1/monitoramento/alertas             # default /alerts
          auth: {header: Authorization, prefix: "Bearer ", env: SERASA_TOKEN}
          # auth.value holds the secret itself; auth.env names the environment variable that
          # does (read at each poll, so the secret stays out of config files and can rotate)
          headers: {Accept: application/json}         # extra static headers
          page_size: 100        # the `limit` query parameter: most alerts per poll
          interval_minutes: 15  # between two polls, when the server polls on its own
          timeout: 5            # seconds, per poll (the runtime enforces it; retries come on top)
          retries: 2            # after a transient failure: 5xx, 429, timeout, connection error
          backoff: 0.5          # seconds before the first retry, doubling each time
          failure_threshold: 5
          reset_after: 60

A poll is `GET {base_url}{path}?cursor=<cursor>&limit=<page_size>` (no `cursor` on the first
poll) and the answer is the contract's own shape, decoded strictly into an AlertBatch:
`{"alerts": [MonitoringAlert, …], "cursor": "…"}`. An alert whose `bureau` is empty gets the
source's name; a null or missing `cursor` keeps the one polled with, so the next poll never
starts over.

Outcomes: 2xx with a valid body -> an AlertBatch; 5xx and 429 -> TransientError HTTP_<status>;
timeouts -> TransientError TIMEOUT; connection failures -> TransientError CONNECTION; any other
status -> ConnectorError HTTP_<status>; a body that is not JSON or not the contract (a wrong
type, an unknown kind, a naive `occurred_at`…) -> BAD_ANSWER naming the field path
(`$.alerts[0].kind`). No message ever contains a value read from the answer (documents above all).
"""

from __future__ import annotations

import re

import msgspec

from regua.engine.connectors import ConnectorError, mask_document
from regua.plugins.connectors import MonitoringSource, TransientError
from regua.plugins.contracts import AlertBatch
from regua.plugins.hookspecs import hookimpl
from regua.plugins.lazy import lazy_module

from .http_client import AnswerTooSlow, HTTPClientMixin

httpx = lazy_module("httpx")

_DECODER = msgspec.json.Decoder(AlertBatch)
_QUOTED = re.compile(r"'[^']*'")  # msgspec quotes the offending value: "Invalid enum value 'x'"
_DIGITS = re.compile(r"\d[\d.\-/]{7,}\d")  # a CPF/CNPJ, compact or formatted, e.g. as an unknown key


def _bad_answer(name: str, error: msgspec.ValidationError) -> ConnectorError:
    """BAD_ANSWER with msgspec's reason and field path, minus any value from the answer."""
    reason, _, where = str(error).partition(" - at ")
    reason = _DIGITS.sub(lambda m: mask_document(m.group()), _QUOTED.sub("", reason)).replace("  ", " ").strip()
    return ConnectorError("BAD_ANSWER", f"{name}: {reason} at {where or '`$`'}")


class HTTPMonitoringSource(HTTPClientMixin, MonitoringSource):
    plugin_label = "monitoring_sources"

    """One bureau's monitoring alerts over HTTP; see the module docstring for every setting."""

    def __init__(self, name: str, base_url: str, path: str = "/alerts", *, auth: dict | None = None,
                 headers: dict | None = None, page_size: int = 100, interval_minutes: int | None = None,
                 timeout: float | None = None, retries: int | None = None, backoff: float | None = None,
                 failure_threshold: int | None = None, reset_after: float | None = None, verify: bool | str = True,
                 max_answer_bytes: int | None = None):
        if not name or not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"monitoring_sources: name must be an identifier (the bureau's name), got {name!r}")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"monitoring_sources {name}: base_url must be an http(s) URL")
        if not isinstance(path, str):
            raise ValueError(f"monitoring_sources {name}: path must be a string")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.path = path if path.startswith("/") else "/" + path
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self.auth = self._check_auth(auth)
        for attribute, value, convert in (("page_size", page_size, int), ("interval_minutes", interval_minutes, int),
                                          ("timeout", timeout, float), ("retries", retries, int),
                                          ("backoff", backoff, float), ("failure_threshold", failure_threshold, int),
                                          ("reset_after", reset_after, float)):
            if value is not None:
                try:
                    setattr(self, attribute, convert(value))
                except (TypeError, ValueError):
                    raise ValueError(f"monitoring_sources {name}: {attribute} must be a number") from None
        if self.page_size < 1 or self.interval_minutes < 1:
            raise ValueError(f"monitoring_sources {name}: page_size >= 1 and interval_minutes >= 1, please")
        if self.timeout <= 0 or self.retries < 0 or self.backoff < 0 or self.failure_threshold < 1:
            raise ValueError(f"monitoring_sources {name}: timeout > 0, retries >= 0, backoff >= 0 and "
                             "failure_threshold >= 1, please")
        self._check_max_answer_bytes(max_answer_bytes)
        self.verify = verify
        self._init_client()

    def poll(self, cursor: str | None) -> AlertBatch:
        params = {"limit": str(self.page_size)} if cursor is None else {"cursor": cursor, "limit": str(self.page_size)}
        headers = {"Accept": "application/json", **self.headers, **self._auth_headers()}
        try:
            response = self.send_bounded(self.client.build_request("GET", self.path, params=params, headers=headers))
        except (httpx.TimeoutException, AnswerTooSlow):
            raise TransientError("TIMEOUT", f"{self.name}: no answer within {self.timeout:g}s") from None
        except httpx.TransportError as error:  # connection refused/reset, DNS, protocol errors
            raise TransientError("CONNECTION", f"{self.name}: {type(error).__name__}") from None
        return self._answer(response, cursor)

    def _answer(self, response: httpx.Response, cursor: str | None) -> AlertBatch:
        status = response.status_code
        if status >= 500 or status == 429:
            raise TransientError(f"HTTP_{status}", f"{self.name}: the provider could not answer (HTTP {status})")
        if not 200 <= status < 300:
            raise ConnectorError(f"HTTP_{status}", f"{self.name}: the provider refused the poll (HTTP {status})")
        try:
            batch = _DECODER.decode(response.content)
        except msgspec.ValidationError as error:
            raise _bad_answer(self.name, error) from None
        except msgspec.DecodeError:
            raise ConnectorError("BAD_ANSWER", f"{self.name}: the answer is not valid JSON") from None
        alerts = []
        for n, alert in enumerate(batch.alerts):
            if alert.occurred_at.tzinfo is None:
                raise ConnectorError("BAD_ANSWER", f"{self.name}: occurred_at has no timezone "
                                                   f"at `$.alerts[{n}].occurred_at`")
            alerts.append(alert if alert.bureau else msgspec.structs.replace(alert, bureau=self.name))
        return msgspec.structs.replace(batch, alerts=alerts,
                                       cursor=batch.cursor if batch.cursor is not None else cursor)


@hookimpl
def regua_monitoring_sources(config):
    settings = (config or {}).get("monitoring_sources") or {}
    if not isinstance(settings, dict):
        raise ValueError("monitoring_sources: the settings must be a dict with a 'sources' list")
    sources = settings.get("sources") or []
    if not isinstance(sources, list):
        raise ValueError("monitoring_sources: 'sources' must be a list of source settings")
    built = []
    for entry in sources:
        if not isinstance(entry, dict):
            raise ValueError("monitoring_sources: each source is a dict of settings")
        try:
            built.append(HTTPMonitoringSource(**entry))
        except TypeError as error:
            raise ValueError(f"monitoring_sources {entry.get('name', '?')}: {error}") from None
    return built
