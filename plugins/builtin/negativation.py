"""Built-in negativation services: a sandbox that behaves like a bureau, and an HTTP connector.

Both implement plugins.connectors.NegativationService: `submit(request)` carries out
`request.action` (include, remove or status) and returns a NegativationRecord.

SandboxNegativation (name "sandbox") — offline development and tests
--------------------------------------------------------------------
It follows the rules of docs ../shared/domain-br.md, like a bureau would:

- `include` sends the prior notice (CDC art. 43 §2): the record comes back "notice_sent" with
  `notice_sent_at` = now and a protocol number "SBX-00000001", "SBX-00000002"… (a counter:
  deterministic, and never derived from the debtor's document).
- During the waiting period a `status` query answers "waiting"; once it is over the record is
  public: "included", with `included_at` = notice_sent_at + waiting period. The waiting period
  is 10 calendar days by default (Serasa, SPC), configurable for the bureau (`waiting_days`)
  and per state (`waiting_days_by_uf`, e.g. {"SP": 15}). The UF comes from
  `submit(request, uf="SP")`, else from `request.debtor_uf` when the contract carries it, else
  the bureau default applies.
- `remove` (baixa) answers "removed" with `removed_at` = now; removing before the waiting
  period is over cancels the notice (included_at stays empty).
- 5-year limit (CDC art. 43 §1, Súmula 323, counted from the due date, the conservative
  choice): a debt whose limit has passed — or would pass before the waiting period ends — is
  "rejected" with a reason; a record reaching its limit is removed by itself ("removed",
  removed_at = the limit, reason says why).
- A debt not yet due (due date today or later) or with an amount <= 0 is "rejected".
- Explicit answers to invalid transitions (engine.connectors.ConnectorError codes):
  include twice for the same debt (creditor CNPJ + contract) returns the existing record
  (idempotent: a retried include never opens a second record); include of a debt whose record
  was removed raises ALREADY_REMOVED (a paid debt is not negativated again: use a new contract
  id for a new debt, e.g. a broken agreement); the same contract for another debtor raises
  CONFLICT; remove/status of an unknown protocol raises NOT_FOUND, of a protocol belonging to
  another debt CONFLICT, without a protocol MISSING_PROTOCOL; remove of a rejected record
  INVALID_TRANSITION; removing twice returns the removed record.
- Time comes from the request's `at` when it carries one (the collection run's moment, so a run
  or simulation as of another date judges the 5-year limit and stamps records on that date),
  else from an injected clock (a callable returning an aware datetime; UTC by default) so tests
  control it. Calendar dates (due dates, the 5-year limit) are read in
  America/Sao_Paulo.
- State lives in SQLite through sqlite-utils: in memory by default (`path=None`, lost when the
  object goes away), or in a file (`path="negativation.db"`, survives restarts: counter and
  records). Documents are never stored in clear: the debt key is a sha256 of creditor CNPJ +
  contract, the debtor is an HMAC of the document under a random key kept in the same file.

HTTPNegativation — a negativation provider's JSON API
-----------------------------------------------------
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

Configuration (plugin settings, section "negativation")
-------------------------------------------------------
    {"negativation": {
        "sandbox": {"waiting_days": 10, "waiting_days_by_uf": {"SP": 15}, "path": "neg.db"},
        "http": [{"name": "serasa_pefin", "base_url": "https://provider.example/api",
                  "auth_header": "Authorization", "auth_value_env": "SERASA_TOKEN",
                  "endpoints": {"include": "POST /v1/negativacoes",
                                "remove": "DELETE /v1/negativacoes/{protocol}",
                                "status": "GET /v1/negativacoes/{protocol}"},
                  "response_fields": {"protocol": "dados.protocolo", "status": "dados.situacao"},
                  "status_map": {"NOTIFICADO": "notice_sent", "INCLUIDO": "included",
                                 "BAIXADO": "removed"}}]}}
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import secrets
import sqlite3
import threading
import typing
import urllib.parse
from decimal import Decimal
from zoneinfo import ZoneInfo

import msgspec

from regua.engine.brazil import BRASILIA
from regua.engine.connectors import ConnectorError, mask_document
from regua.plugins.connectors import NegativationService, TransientError
from regua.plugins.contracts import NegativationRecord, NegativationRequest, NegativationStatus
from regua.plugins.hookspecs import hookimpl
from regua.plugins.lazy import lazy_module
from regua.plugins.mapping import get_path

from .http_client import HTTPClientMixin

httpx = lazy_module("httpx")
sqlite_utils = lazy_module("sqlite_utils")

log = logging.getLogger(__name__)

STATUSES: frozenset[str] = frozenset(typing.get_args(NegativationStatus))
ACTIONS = ("include", "remove", "status")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February: the earlier day, the conservative end of the limit
        return day.replace(year=day.year + years, day=28)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.timezone.utc).isoformat() if moment is not None else None


def _parse(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


# --------------------------------------------------------------------------------------------
# Sandbox
# --------------------------------------------------------------------------------------------

class SandboxNegativation(NegativationService):
    """A bureau-like negativation service, offline and deterministic (see the module docstring)."""

    name = "sandbox"
    timeout = 2.0
    retries = 0
    backoff = 0.0

    def __init__(self, clock=utc_now, *, waiting_days: int = 10, waiting_days_by_uf: dict | None = None,
                 max_years: int = 5, path: str | None = None, name: str = "sandbox",
                 protocol_prefix: str = "SBX-"):
        if int(waiting_days) < 0 or int(max_years) <= 0:
            raise ValueError("waiting_days must be >= 0 and max_years > 0")
        self.name = name
        self.clock = clock
        self.waiting_days = int(waiting_days)
        self.waiting_days_by_uf = {str(uf).upper(): int(days) for uf, days in (waiting_days_by_uf or {}).items()}
        if any(days < 0 for days in self.waiting_days_by_uf.values()):
            raise ValueError("waiting_days_by_uf: days must be >= 0")
        self.max_years = int(max_years)
        self.protocol_prefix = protocol_prefix
        self.path = path
        self._lock = threading.RLock()
        connection = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        self.db = sqlite_utils.Database(connection)
        self._setup()

    @classmethod
    def from_config(cls, config: dict | None, clock=utc_now) -> "SandboxNegativation":
        config = dict(config or {})
        unknown = set(config) - {"waiting_days", "waiting_days_by_uf", "max_years", "path", "name", "protocol_prefix"}
        if unknown:
            raise ValueError(f"negativation.sandbox: unknown settings {sorted(unknown)}")
        return cls(clock, **config)

    # ---- storage ----
    def _setup(self) -> None:
        with self._lock:
            if "meta" not in self.db.table_names():
                self.db["meta"].create({"key": str, "value": str}, pk="key")
                self.db["meta"].insert_all([{"key": "counter", "value": "0"},
                                            {"key": "secret", "value": secrets.token_hex(32)}])
            if "records" not in self.db.table_names():
                self.db["records"].create({
                    "protocol": str, "seq": int, "debt_key": str, "debtor": str, "status": str,
                    "notice_sent_at": str, "waiting_days": int, "limit_at": str, "removed_at": str,
                    "reason": str,
                }, pk="protocol")
                self.db["records"].create_index(["debt_key"])
            self._secret = self.db["meta"].get("secret")["value"].encode()

    def _next_protocol(self) -> tuple[str, int]:
        counter = int(self.db["meta"].get("counter")["value"]) + 1
        self.db["meta"].update("counter", {"value": str(counter)})
        return f"{self.protocol_prefix}{counter:08d}", counter

    @staticmethod
    def _debt_key(request: NegativationRequest) -> str:
        debt = request.debt
        return hashlib.sha256(f"{debt.creditor_document}\0{debt.contract}".encode()).hexdigest()

    def _debtor(self, document: str) -> str:
        return hmac.new(self._secret, document.encode(), hashlib.sha256).hexdigest()

    def _now(self, at: dt.datetime | None = None) -> dt.datetime:
        """The request's own moment when it carries one (a run as of another date), else the clock."""
        now = at if at is not None else self.clock()
        if not isinstance(now, dt.datetime) or now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("SandboxNegativation: the clock must return a timezone-aware datetime")
        return now.astimezone(dt.timezone.utc)

    # ---- the lifecycle, computed from the stored facts at `now` ----
    def _record(self, row: dict, now: dt.datetime) -> NegativationRecord:
        protocol = row["protocol"]
        if row["status"] == "rejected":
            return NegativationRecord(protocol=protocol, status="rejected", reason=row["reason"] or "")
        notice = _parse(row["notice_sent_at"])
        public_at = notice + dt.timedelta(days=row["waiting_days"])
        limit_at = _parse(row["limit_at"])
        removed_at = _parse(row["removed_at"])
        reason = row["reason"] or ""
        if removed_at is None and now >= limit_at:
            removed_at, reason = limit_at, f"{self.max_years}-year limit reached (CDC art. 43 §1)"
        if removed_at is not None and now >= removed_at:
            return NegativationRecord(protocol=protocol, status="removed", notice_sent_at=notice,
                                      included_at=public_at if public_at <= removed_at else None,
                                      removed_at=removed_at, reason=reason)
        if now >= public_at:
            return NegativationRecord(protocol=protocol, status="included", notice_sent_at=notice,
                                      included_at=public_at)
        return NegativationRecord(protocol=protocol, status="waiting" if now > notice else "notice_sent",
                                  notice_sent_at=notice)

    def waiting_period(self, uf: str | None = None) -> dt.timedelta:
        """The waiting period between the notice and the record going public, for a state."""
        days = self.waiting_days_by_uf.get((uf or "").upper(), self.waiting_days)
        return dt.timedelta(days=days)

    # ---- the service ----
    def submit(self, request: NegativationRequest, uf: str | None = None) -> NegativationRecord:
        if not isinstance(request, NegativationRequest):
            raise ConnectorError("BAD_REQUEST", "expected a NegativationRequest")
        with self._lock:
            now = self._now(request.at)
            if request.action == "include":
                return self._include(request, uf or getattr(request, "debtor_uf", "") or None, now)
            if request.action in ("remove", "status"):
                row = self._by_protocol(request)
                if request.action == "status":
                    return self._record(row, now)
                return self._remove(row, now)
            raise ConnectorError("BAD_REQUEST", f"unknown action {request.action!r}")

    def _by_protocol(self, request: NegativationRequest) -> dict:
        if not request.protocol:
            raise ConnectorError("MISSING_PROTOCOL", f"{request.action} needs the record's protocol")
        rows = list(self.db["records"].rows_where("protocol = ?", [request.protocol]))
        if not rows:
            raise ConnectorError("NOT_FOUND", f"no negativation with protocol {request.protocol}")
        row = rows[0]
        if row["debt_key"] != self._debt_key(request) or row["debtor"] != self._debtor(request.debtor_document):
            raise ConnectorError("CONFLICT", f"protocol {request.protocol} belongs to another debt or debtor")
        return row

    def _reject(self, request: NegativationRequest, reason: str, now: dt.datetime) -> NegativationRecord:
        protocol, seq = self._next_protocol()
        self.db["records"].insert({
            "protocol": protocol, "seq": seq, "debt_key": self._debt_key(request),
            "debtor": self._debtor(request.debtor_document), "status": "rejected", "notice_sent_at": None,
            "waiting_days": 0, "limit_at": None, "removed_at": None, "reason": reason})
        log.info("negativation %s rejected: %s", protocol, reason)
        return NegativationRecord(protocol=protocol, status="rejected", reason=reason)

    def _include(self, request: NegativationRequest, uf: str | None, now: dt.datetime) -> NegativationRecord:
        debt_key, debtor = self._debt_key(request), self._debtor(request.debtor_document)
        existing = list(self.db["records"].rows_where("debt_key = ? and status != 'rejected'", [debt_key],
                                                      order_by="seq desc", limit=1))
        if existing:
            row = existing[0]
            if row["debtor"] != debtor:
                raise ConnectorError("CONFLICT", f"contract {request.debt.contract!r} is already negativated "
                                                 f"(protocol {row['protocol']}) for another debtor")
            record = self._record(row, now)
            if record.status != "removed":
                return record  # idempotent: the same debt is never included twice
            if row["removed_at"] is not None:  # removed on request (paid, agreement…)
                raise ConnectorError("ALREADY_REMOVED", f"contract {request.debt.contract!r} was removed "
                                                        f"(protocol {row['protocol']}); it is not included again")
            # removed by the 5-year limit: the checks below reject it
        today = now.astimezone(BRASILIA).date()
        debt = request.debt
        limit_day = _add_years(debt.due_date, self.max_years)
        limit_at = dt.datetime.combine(limit_day, dt.time(), BRASILIA).astimezone(dt.timezone.utc)
        waiting = self.waiting_period(uf)
        if Decimal(debt.amount) <= 0:
            return self._reject(request, "the amount must be positive", now)
        if debt.due_date >= today:
            return self._reject(request, "the debt is not yet due", now)
        if limit_day <= today:
            return self._reject(request, f"due on {debt.due_date.isoformat()}: more than {self.max_years} years "
                                         f"ago (CDC art. 43 §1, Súmula 323)", now)
        if limit_at <= now + waiting:
            return self._reject(request, f"the {self.max_years}-year limit ({limit_day.isoformat()}) falls "
                                         f"before the waiting period ends", now)
        protocol, seq = self._next_protocol()
        self.db["records"].insert({
            "protocol": protocol, "seq": seq, "debt_key": debt_key, "debtor": debtor, "status": "open",
            "notice_sent_at": _iso(now), "waiting_days": waiting.days, "limit_at": _iso(limit_at),
            "removed_at": None, "reason": ""})
        log.info("negativation %s: notice sent, waiting %d days", protocol, waiting.days)
        return NegativationRecord(protocol=protocol, status="notice_sent", notice_sent_at=now)

    def _remove(self, row: dict, now: dt.datetime) -> NegativationRecord:
        record = self._record(row, now)
        if record.status == "rejected":
            raise ConnectorError("INVALID_TRANSITION", f"protocol {row['protocol']} was rejected; nothing to remove")
        if record.status == "removed":
            return record  # removing twice is harmless
        self.db["records"].update(row["protocol"], {"removed_at": _iso(now), "reason": "removal requested"})
        log.info("negativation %s removed", row["protocol"])
        return self._record(self.db["records"].get(row["protocol"]), now)

    def close(self) -> None:
        self.db.conn.close()


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Hook
# --------------------------------------------------------------------------------------------

@hookimpl
def regua_negativation_services(config):
    settings = (config or {}).get("negativation", {}) or {}
    services: list[NegativationService] = [SandboxNegativation.from_config(settings.get("sandbox", {}))]
    services += [HTTPNegativation.from_config(item) for item in settings.get("http", []) or []]
    return services
