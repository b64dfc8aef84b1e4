"""SandboxNegativation (name "sandbox"): a negativation service for offline development and tests.

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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import sqlite3
import threading
from decimal import Decimal

from regua.engine.brazil import BRASILIA
from regua.engine.connectors import ConnectorError
from regua.plugins.connectors import NegativationService
from regua.plugins.contracts import NegativationRecord, NegativationRequest
from regua.plugins.lazy import lazy_module

sqlite_utils = lazy_module("sqlite_utils")

log = logging.getLogger(__name__)


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
