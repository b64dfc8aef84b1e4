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
          failure_threshold: 5
          reset_after: 30
          ttl: 86400          # seconds an answer may be served from the cache (0: never cached)
          cost: "3.90"        # BRL per query, recorded with each decision
          mapping: {...}      # the provider's JSON -> BureauReport, below

Outcomes: 2xx with a mappable JSON body -> a BureauReport; 404 -> ConnectorError NOT_FOUND;
401/403 -> UNAUTHORIZED; 429 -> TransientError RATE_LIMITED; 5xx -> TransientError UNAVAILABLE;
timeouts -> TransientError TIMEOUT; connection failures -> TransientError CONNECTION; other
statuses -> REJECTED; a body that is not JSON or does not fit the mapping -> BAD_ANSWER. No
message ever contains the document, nor a value read from the answer.

The mapping
-----------
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
import datetime as dt
import logging
import os
import threading
import typing
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

import httpx
import msgspec

from engine.connectors import ConnectorError, mask_document
from plugins.connectors import BureauConnector, TransientError
from plugins.contracts import BureauReport
from plugins.hookspecs import hookimpl

_SPEC_KEYS = {"path", "map", "otherwise", "default", "const", "date_format", "number_format"}
_LIST_KEYS = {"from", "item"}
_MISSING = object()
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


# ---------------------------------------------------------------------------------------------
# The contract's shape, read from the Structs so the mapping follows the contract as it grows.


def _leaf_kind(tp) -> str | tuple:
    if tp is int:
        return "int"
    if tp is Decimal:
        return "decimal"
    if tp is dt.date:
        return "date"
    if tp is str:
        return "str"
    if typing.get_origin(tp) is typing.Literal:
        return ("literal", *typing.get_args(tp))
    raise TypeError(f"unsupported contract field type {tp!r}")  # pragma: no cover - contract changed


def _shape(struct) -> dict:
    """field name -> ("leaf", kind, required) | ("struct", shape, required) | ("list", shape)."""
    out = {}
    for field in msgspec.structs.fields(struct):
        required = field.required
        tp = field.type
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            out[field.name] = ("struct", _shape(tp), required)
        elif typing.get_origin(tp) is list:
            (item,) = typing.get_args(tp)
            out[field.name] = ("list", _shape(item), required)
        else:
            out[field.name] = ("leaf", _leaf_kind(tp), required)
    return out


_REPORT_SHAPE = _shape(BureauReport)
_REPORT_SHAPE.pop("version")  # ours, not the provider's


# ---------------------------------------------------------------------------------------------
# Compiling a mapping (once, at configuration time) and applying it (at each answer).


class _BadAnswer(Exception):
    """The answer does not fit the mapping; the message names paths, never values."""


class _Leaf:
    __slots__ = ("target", "path", "table", "otherwise", "default", "const", "date_format", "br", "kind")

    def __init__(self, target: str, spec, kind, label: str):
        if isinstance(spec, str):
            spec = {"path": spec}
        if not isinstance(spec, dict):
            raise ValueError(f"mapping for '{label}': expected a path or a dict, got {type(spec).__name__}")
        unknown = set(spec) - _SPEC_KEYS
        if unknown:
            raise ValueError(f"mapping for '{label}': unknown key(s) {', '.join(sorted(unknown))}")
        if ("path" in spec) == ("const" in spec):
            raise ValueError(f"mapping for '{label}': give exactly one of 'path' and 'const'")
        if "map" in spec and not isinstance(spec["map"], dict):
            raise ValueError(f"mapping for '{label}': 'map' must be a dict")
        if spec.get("number_format") not in (None, "br"):
            raise ValueError(f"mapping for '{label}': number_format must be \"br\"")
        self.target = target
        self.path = _split(spec["path"], label) if "path" in spec else None
        self.table = {str(k): v for k, v in spec["map"].items()} if "map" in spec else None
        self.otherwise = spec.get("otherwise", _MISSING)
        self.default = spec.get("default", _MISSING)
        self.const = spec.get("const", _MISSING)
        self.date_format = spec.get("date_format")
        self.br = spec.get("number_format") == "br"
        self.kind = kind

    def value(self, source, where: str):
        if self.const is not _MISSING:
            value = self.const
        else:
            value = _get(source, self.path)
            if value is not None and value is not _MISSING and self.table is not None:
                key = _text_key(value)
                if key in self.table:
                    value = self.table[key]
                elif self.otherwise is not _MISSING:
                    value = self.otherwise
                else:
                    raise _BadAnswer(f"{where}{self.target}: value not in the mapping's table")
        if value is None or value is _MISSING:
            if self.default is _MISSING:
                return _MISSING
            value = self.default
        return self._coerce(value, where)

    def _coerce(self, value, where: str):
        kind, here = self.kind, f"{where}{self.target}"
        if isinstance(value, bool):
            raise _BadAnswer(f"{here}: expected {_kind_name(kind)}, got a boolean")
        if kind == "str":
            if isinstance(value, str):
                return value
            if isinstance(value, (int, Decimal)):
                return str(value)
        elif kind == "int":
            if isinstance(value, int):
                return value
            number = _decimal(value, self.br) if isinstance(value, (str, Decimal)) else None
            if number is not None and number == number.to_integral_value():
                return int(number)
        elif kind == "decimal":
            number = _decimal(value, self.br) if isinstance(value, (str, int, Decimal)) else None
            if number is not None:
                return number
        elif kind == "date":
            if isinstance(value, str):
                parsed = _date(value.strip(), self.date_format)
                if parsed is not None:
                    return parsed
        elif kind[0] == "literal":
            if isinstance(value, str) and value in kind[1:]:
                return value
            raise _BadAnswer(f"{here}: not one of {', '.join(kind[1:])}")
        raise _BadAnswer(f"{here}: expected {_kind_name(kind)}")


class _List:
    __slots__ = ("target", "path", "item")

    def __init__(self, target: str, spec, shape: dict, label: str):
        if not isinstance(spec, dict) or set(spec) != _LIST_KEYS:
            raise ValueError(f"mapping for '{label}': a list takes {{\"from\": path, \"item\": {{...}}}}")
        self.target = target
        self.path = _split(spec["from"], label)
        self.item = _Mapping(spec["item"], shape, f"{label}[]")

    def value(self, source, where: str):
        items = _get(source, self.path)
        if items is None or items is _MISSING:
            return _MISSING
        if not isinstance(items, list):
            raise _BadAnswer(f"{where}{self.target}: expected a list")
        return [self.item.build(element, f"{where}{self.target}[{i}].") for i, element in enumerate(items)]


class _Mapping:
    """A compiled mapping for one Struct shape: targets grouped by field, checked up front."""

    def __init__(self, mapping, shape: dict, context: str = ""):
        if not isinstance(mapping, dict):
            raise ValueError(f"mapping{' for ' + context if context else ''}: expected a dict")
        # field -> compiled spec (leaf or list) or nested _Mapping (for dotted targets)
        self.fields: dict[str, object] = {}
        nested: dict[str, dict] = {}
        for target, spec in mapping.items():
            head, _, rest = str(target).partition(".")
            label = f"{context}.{target}" if context else str(target)
            if head not in shape:
                raise ValueError(f"mapping: '{label}' is not a field of the contract "
                                 f"(fields: {', '.join(shape)})")
            what = shape[head]
            if what[0] == "struct":
                if not rest:
                    raise ValueError(f"mapping: map the fields of '{label}' (e.g. '{label}.value')")
                nested.setdefault(head, {})[rest] = spec
            elif rest:
                raise ValueError(f"mapping: '{head}' has no subfields")
            elif what[0] == "list":
                self.fields[head] = _List(head, spec, what[1], label)
            else:
                self.fields[head] = _Leaf(head, spec, what[1], label)
        for head, sub in nested.items():
            self.fields[head] = _Nested(head, _Mapping(sub, shape[head][1], f"{context}.{head}" if context else head))
        for name, what in shape.items():
            if what[-1] is True and name not in self.fields:  # required and unmapped
                label = f"{context}.{name}" if context else name
                raise ValueError(f"mapping: the required field '{label}' is not mapped")

    def build(self, source, where: str = "") -> dict:
        out = {}
        for name, spec in self.fields.items():
            value = spec.value(source, where)
            if value is not _MISSING:
                out[name] = value
        return out

    def missing_required(self, built: dict, shape: dict, where: str = ""):
        for name, what in shape.items():
            if name not in built:
                if what[-1] is True:
                    return f"{where}{name}"
                continue
            if what[0] == "struct":
                found = self.fields[name].mapping.missing_required(built[name], what[1], f"{where}{name}.")
                if found:
                    return found
            elif what[0] == "list":
                item = self.fields[name].item
                for i, element in enumerate(built[name]):
                    found = item.missing_required(element, what[1], f"{where}{name}[{i}].")
                    if found:
                        return found
        return None


class _Nested:
    __slots__ = ("target", "mapping")

    def __init__(self, target: str, mapping: _Mapping):
        self.target = target
        self.mapping = mapping

    def value(self, source, where: str):
        return self.mapping.build(source, f"{where}{self.target}.")


def compile_mapping(mapping: dict | None) -> _Mapping:
    """Check a mapping against the contract and prepare it; raises ValueError when it is wrong.
    None: the provider answers in the contract's own shape (every field read from its own name)."""
    return _Mapping(identity_mapping() if mapping is None else mapping, _REPORT_SHAPE)


def identity_mapping(shape: dict | None = None) -> dict:
    """The mapping that reads each contract field from the same name in the answer."""
    out = {}
    for name, what in (shape or _REPORT_SHAPE).items():
        if what[0] == "struct":
            out.update({f"{name}.{k}": f"{name}.{v}" for k, v in identity_mapping(what[1]).items()})
        elif what[0] == "list":
            out[name] = {"from": name, "item": identity_mapping(what[1])}
        else:
            out[name] = name
    return out


def map_answer(compiled: _Mapping, data) -> BureauReport:
    """The provider's decoded JSON as a BureauReport; ConnectorError BAD_ANSWER when it does not fit."""
    try:
        if not isinstance(data, (dict, list)):
            raise _BadAnswer("the answer is not a JSON object")
        built = compiled.build(data)
        missing = compiled.missing_required(built, _REPORT_SHAPE)
        if missing:
            raise _BadAnswer(f"{missing}: required, and missing from the answer")
        return msgspec.convert(built, BureauReport)
    except _BadAnswer as error:
        raise ConnectorError("BAD_ANSWER", str(error)) from None
    except msgspec.ValidationError as error:
        # msgspec quotes offending values ('…'); keep the path, never the value.
        raise ConnectorError("BAD_ANSWER", _redact_quotes(str(error))) from None


# ---- helpers ----


def _split(path, target: str) -> tuple:
    if not isinstance(path, str) or not path:
        raise ValueError(f"mapping for '{target}': a path is a non-empty string")
    if path == "@":
        return ()
    return tuple(int(p) if p.isdigit() else p for p in path.split("."))


def _get(source, path: tuple):
    value = source
    for part in path:
        if isinstance(part, int) and isinstance(value, list):
            if part >= len(value):
                return _MISSING
            value = value[part]
        elif isinstance(value, dict):
            value = value.get(str(part), _MISSING)
            if value is _MISSING:
                return _MISSING
        else:
            return _MISSING
    return value


def _text_key(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _decimal(value, br: bool) -> Decimal | None:
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        return Decimal(value)
    else:
        text = value.strip().replace("R$", "").strip()
        if br:
            text = text.replace(".", "").replace(",", ".")
        try:
            number = Decimal(text)
        except InvalidOperation:
            return None
    return number if number.is_finite() else None


def _date(text: str, fmt: str | None) -> dt.date | None:
    try:
        if fmt:
            return dt.datetime.strptime(text, fmt).date()
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _kind_name(kind) -> str:
    return {"str": "text", "int": "an integer", "decimal": "a number", "date": "a date"}.get(kind, str(kind))


def _redact_quotes(message: str) -> str:
    out, inside = [], False
    for char in message:
        if char == "'":
            inside = not inside
            out.append("'…'" if inside else "")
        elif not inside:
            out.append(char)
    return "".join(out)


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


class HTTPJSONBureau(BureauConnector):
    """One HTTP JSON bureau provider; see the module docstring for every setting."""

    def __init__(self, name: str, base_url: str, path: str = "/{document}", *, method: str = "GET",
                 params: dict | None = None, body=None, headers: dict | None = None, auth: dict | None = None,
                 mapping: dict | None = None, timeout: float | None = None, retries: int | None = None,
                 backoff: float | None = None, failure_threshold: int | None = None,
                 reset_after: float | None = None, ttl: float | None = None, cost: str | int | None = None,
                 verify: bool | str = True):
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
                                          ("reset_after", reset_after, float), ("ttl", ttl, float)):
            if value is not None:
                setattr(self, attribute, convert(value))
        if self.timeout <= 0 or self.retries < 0 or self.failure_threshold < 1:
            raise ValueError(f"http_bureau {name}: timeout > 0, retries >= 0 and failure_threshold >= 1, please")
        if cost is not None:
            try:
                amount = Decimal(str(cost))
            except InvalidOperation:
                raise ValueError(f"http_bureau {name}: cost must be a decimal amount in BRL") from None
            if not amount.is_finite() or amount < 0:
                raise ValueError(f"http_bureau {name}: cost must be a non-negative amount in BRL")
            self.cost = str(cost)
        self.verify = verify
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def _check_auth(self, auth):
        if auth is None:
            return None
        if not isinstance(auth, dict) or "header" not in auth or ("value" in auth) == ("env" in auth) \
                or set(auth) - {"header", "value", "env", "prefix"}:
            raise ValueError(f"http_bureau {self.name}: auth takes header, and value or env (and an optional prefix)")
        return dict(auth)

    def __repr__(self) -> str:  # never the secret
        return f"HTTPJSONBureau(name={self.name!r}, base_url={self.base_url!r}, path={self.path!r})"

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
            response = self.client.send(request)
        except httpx.TimeoutException:
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
