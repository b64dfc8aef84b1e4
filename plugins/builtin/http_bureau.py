"""A bureau connector for any provider that answers JSON over HTTP, configured as data.

Each entry of `config["http_bureau"]["bureaus"]` (see plugins.manager.PluginSettings) becomes
one `HTTPJSONBureau`; policies call it by its name (`bureau.serasa(cnpj)`):

    http_bureau:
      bureaus:
        - name: serasa
          base_url: https://api.provedor.com.br
          path: /v1/relatorios/{kind}/{document}     # {document}: compact CPF/CNPJ, URL-quoted;
                                                     # {kind}: "cpf" or "cnpj"
          # method: POST                              # with a JSON body instead (strings may use
          # body: {documento: "{document}"}           # {document} and {kind}); `params` likewise
          auth: {header: Authorization, prefix: "Bearer ", env: SERASA_TOKEN}
          # auth.value holds the secret itself; auth.env names the environment variable that
          # does (read at each call, so the secret stays out of config files and can rotate)
          headers: {Accept: application/json}        # extra static headers
          timeout: 3          # seconds, per call (the runtime enforces it; retries come on top)
          retries: 2          # after a transient failure: 5xx, 429, timeout, connection error
          backoff: 0.2        # seconds before the first retry, doubling each time
          budget: 8           # seconds for one lookup, retries included (the server's
                              # connector_budget also bounds all the lookups of a decision)
          failure_threshold: 5
          reset_after: 30
          ttl: 86400          # seconds an answer may be served from the cache (0: never cached)
          cost: "3.90"        # BRL per query, recorded with each decision
          max_answer_bytes: 5000000  # a larger answer is refused (ANSWER_TOO_LARGE)
          mapping: {...}      # the provider's JSON -> BureauReport, below

Outcomes: 2xx with a mappable JSON body -> a BureauReport; 404 -> ConnectorError NOT_FOUND;
401/403 -> UNAUTHORIZED; 429 -> TransientError RATE_LIMITED; 5xx -> TransientError UNAVAILABLE;
timeouts -> TransientError TIMEOUT; connection failures -> TransientError CONNECTION; other
statuses -> REJECTED; a body that is not JSON or does not fit the mapping -> BAD_ANSWER; a body over
`max_answer_bytes` -> ANSWER_TOO_LARGE; a body still arriving after `timeout` seconds in all -> TIMEOUT. No
message ever contains the document, nor a value read from the answer.

The mapping
-----------
(Compiled and applied by plugins.mapping: compile_mapping, map_answer, identity_mapping.)
A dict from *target* fields of the contract (plugins.contracts.BureauReport) to *specs* saying
where each value is in the provider's JSON. Targets are dotted: `score.value`, `score.band`,
`registration_status`; the list fields `restrictions`, `inquiries` and `partners` take a list
spec whose `item` is a mapping of the same form for each element (`kind`, `amount`, …).

A spec is either a source path (a string) or a dict with these keys:

    path       source path: dotted keys from the root (or, inside `item`, from the element);
               a numeric segment indexes a list (`data.scores.0.valor`); "@" is the value itself
    map        translation table applied to the value found (keys are compared as text, so
               numeric codes work: {"1": "active"}); a value mapped to null counts as missing
    otherwise  what an unmapped value becomes (without it, an unmapped value is BAD_ANSWER)
    default    the value used when the path is missing or null (without it, the contract's
               default applies, and a missing required field is BAD_ANSWER)
    const      a fixed value instead of a path (e.g. {"const": "serasa"} for score.bureau)
    date_format  strptime format for dates that are not ISO 8601, e.g. "%d/%m/%Y"
    number_format  "br" for numbers written as text the Brazilian way: "1.234,56"

A list spec is {"from": source path of a JSON list, "item": {target: spec, …}}; a missing or
null list is empty. Example (a provider answering in Portuguese):

    mapping = {
        "score.value": "data.score.pontuacao",
        "score.band": "data.score.faixa",
        "score.bureau": {"const": "serasa"},
        "registration_status": {"path": "data.situacao",
                                "map": {"ATIVA": "active", "SUSPENSA": "suspended", "BAIXADA": "closed"},
                                "otherwise": "other"},
        "restrictions": {"from": "data.pendencias", "item": {
            "kind": {"path": "tipo", "map": {"PEFIN": "pefin", "REFIN": "refin", "PROTESTO": "protest"}},
            "amount": "valor", "date": {"path": "data", "date_format": "%d/%m/%Y"}, "creditor": "credor"}},
        "inquiries": {"from": "data.consultas", "item": {"date": "data", "inquirer": "consulente"}},
    }

Without a mapping the provider must answer in the contract's own shape (`identity_mapping()`). Mappings are checked
when the connector is built (unknown targets, unknown spec keys, required fields not mapped
raise ValueError), so a typo fails at start-up rather than at the first query.

Values are converted to the contract's types exactly: JSON numbers are parsed as Decimal
(never through float), so "amount": 1234.56 is Decimal("1234.56"); integers for `score.value`
may also come as integral decimals or digit strings; dates are ISO 8601 unless `date_format`.

Privacy: httpx logs each request URL at INFO level; a filter on the "httpx" logger masks the
document in the URLs this connector requests (see `_RedactDocuments`).
"""

from __future__ import annotations

import contextvars
import logging
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

import msgspec

from regua.engine.connectors import ConnectorError, mask_document
from regua.plugins.connectors import BureauConnector, TransientError
from regua.plugins.contracts import BureauReport
from regua.plugins.hookspecs import hookimpl
from regua.plugins.lazy import lazy_module
from regua.plugins.mapping import compile_mapping, identity_mapping, map_answer  # noqa: F401 — public here too

from .http_client import AnswerTooSlow, HTTPClientMixin

httpx = lazy_module("httpx")

_DECODER = msgspec.json.Decoder(float_hook=Decimal)


# ---------------------------------------------------------------------------------------------
# Keeping documents out of httpx's own logs.

_REQUEST_URL: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("regua_http_bureau_url",
                                                                                       default=None)


class _RedactDocuments(logging.Filter):
    """httpx logs `HTTP Request: GET <url> "HTTP/1.1 200 OK"` at INFO: mask our document in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _REQUEST_URL.get()
        if current is not None and isinstance(record.args, tuple):
            real, masked = current
            record.args = tuple(masked if isinstance(a, (httpx.URL, str)) and str(a) == real else a
                                for a in record.args)
        return True


_HTTPX_LOGGER = logging.getLogger("httpx")
if not any(isinstance(f, _RedactDocuments) for f in _HTTPX_LOGGER.filters):
    _HTTPX_LOGGER.addFilter(_RedactDocuments())


# ---------------------------------------------------------------------------------------------
# The connector.


def _render(template, document: str, kind: str, quote_document: bool = False):
    if isinstance(template, str):
        doc = quote(document, safe="") if quote_document else document
        return template.replace("{document}", doc).replace("{kind}", kind)
    if isinstance(template, dict):
        return {k: _render(v, document, kind, quote_document) for k, v in template.items()}
    if isinstance(template, list):
        return [_render(v, document, kind, quote_document) for v in template]
    return template


class HTTPJSONBureau(HTTPClientMixin, BureauConnector):
    plugin_label = "http_bureau"

    """One HTTP JSON bureau provider; see the module docstring for every setting."""

    def __init__(self, name: str, base_url: str, path: str = "/{document}", *, method: str = "GET",
                 params: dict | None = None, body=None, headers: dict | None = None, auth: dict | None = None,
                 mapping: dict | None = None, timeout: float | None = None, retries: int | None = None,
                 backoff: float | None = None, failure_threshold: int | None = None,
                 reset_after: float | None = None, ttl: float | None = None, cost: str | int | None = None,
                 verify: bool | str = True, max_answer_bytes: int | None = None, budget: float | None = None):
        if not name or not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"http_bureau: name must be an identifier (policies call bureau.<name>), got {name!r}")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"http_bureau {name}: base_url must be an http(s) URL")
        method = method.upper()
        if method not in ("GET", "POST"):
            raise ValueError(f"http_bureau {name}: method must be GET or POST")
        if body is not None and method != "POST":
            raise ValueError(f"http_bureau {name}: a body needs method POST")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.path = path if path.startswith("/") else "/" + path
        self.method = method
        self.params = dict(params or {})
        self.body = body
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self.auth = self._check_auth(auth)
        try:
            self.mapping = compile_mapping(mapping)
        except ValueError as error:
            raise ValueError(f"http_bureau {name}: {error}") from None
        for attribute, value, convert in (("timeout", timeout, float), ("retries", retries, int),
                                          ("backoff", backoff, float), ("failure_threshold", failure_threshold, int),
                                          ("reset_after", reset_after, float), ("ttl", ttl, float),
                                          ("budget", budget, float)):
            if value is not None:
                setattr(self, attribute, convert(value))
        if self.timeout <= 0 or self.retries < 0 or self.failure_threshold < 1 or self.budget <= 0:
            raise ValueError(f"http_bureau {name}: timeout > 0, retries >= 0, failure_threshold >= 1 and "
                             "budget > 0, please")
        self._check_max_answer_bytes(max_answer_bytes)
        if cost is not None:
            try:
                amount = Decimal(str(cost))
            except InvalidOperation:
                raise ValueError(f"http_bureau {name}: cost must be a decimal amount in BRL") from None
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"http_bureau {name}: cost must be a non-negative amount in BRL")
            self.cost = str(cost)
        self.verify = verify
        self._init_client()

    def fetch(self, document: str) -> BureauReport:
        kind = "cpf" if len(document) == 11 else "cnpj"
        path = _render(self.path, document, kind, quote_document=True)
        request = self.client.build_request(
            self.method, path, params=_render(self.params, document, kind) or None,
            json=_render(self.body, document, kind) if self.body is not None else None,
            headers={"Accept": "application/json", **self.headers, **self._auth_headers()})
        masked = str(request.url).replace(quote(document, safe=""), mask_document(document))
        token = _REQUEST_URL.set((str(request.url), masked))
        try:
            response = self.send_bounded(request)
        except (httpx.TimeoutException, AnswerTooSlow):
            raise TransientError("TIMEOUT", f"{self.name}: no answer within {self.timeout:g}s") from None
        except httpx.TransportError as error:  # connection refused/reset, DNS, protocol errors
            raise TransientError("CONNECTION", f"{self.name}: {type(error).__name__}") from None
        finally:
            _REQUEST_URL.reset(token)
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> BureauReport:
        status = response.status_code
        if status == 404:
            raise ConnectorError("NOT_FOUND", f"{self.name}: the provider has no report for this document")
        if status in (401, 403):
            raise ConnectorError("UNAUTHORIZED", f"{self.name}: the provider refused our credentials (HTTP {status})")
        if status == 429:
            raise TransientError("RATE_LIMITED", f"{self.name}: too many requests (HTTP 429)")
        if status >= 500:
            raise TransientError("UNAVAILABLE", f"{self.name}: provider error (HTTP {status})")
        if not 200 <= status < 300:
            raise ConnectorError("REJECTED", f"{self.name}: the provider rejected the query (HTTP {status})")
        try:
            data = _DECODER.decode(response.content)
        except msgspec.DecodeError:
            raise ConnectorError("BAD_ANSWER", f"{self.name}: the answer is not valid JSON") from None
        try:
            return map_answer(self.mapping, data)
        except ConnectorError as error:
            raise ConnectorError(error.code, f"{self.name}: {error}") from None


@hookimpl
def regua_bureau_connectors(config):
    settings = (config or {}).get("http_bureau") or {}
    bureaus = settings.get("bureaus") or []
    if not isinstance(bureaus, list):
        raise ValueError("http_bureau: 'bureaus' must be a list of provider settings")
    connectors = []
    for entry in bureaus:
        if not isinstance(entry, dict):
            raise ValueError("http_bureau: each bureau is a dict of settings")
        try:
            connectors.append(HTTPJSONBureau(**entry))
        except TypeError as error:
            raise ValueError(f"http_bureau {entry.get('name', '?')}: {error}") from None
    return connectors
