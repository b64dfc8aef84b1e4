"""Base classes for connectors. Subclass one, set its metadata, implement its method(s) —
sync (`def`) or async (`async def`) — and return it from the matching hook.

The engine calls every implementation through plugins.runtime: with a deadline, retries with
backoff on transient errors, a circuit breaker per connector and, for bureaus, a SQLite cache.
"""

from __future__ import annotations

from regua.engine.connectors import ConnectorError

from .contracts import AlertBatch, BureauReport, DeliveryReceipt, NegativationRecord, NegativationRequest, Notification


class TransientError(ConnectorError):
    """A failure worth retrying (timeouts, 5xx, connection resets)."""

    def __init__(self, code: str = "TRANSIENT", message: str = ""):
        super().__init__(code, message)


class Connector:
    #: Unique name within its kind, e.g. "serasa" (policies call bureau.serasa(...)).
    name: str = ""
    #: Deadline for one call, in seconds.
    timeout: float = 5.0
    #: Retries after a transient error (so at most retries + 1 attempts), with exponential backoff.
    retries: int = 2
    backoff: float = 0.2
    #: Overall budget for one call, retries included, in seconds: no retry starts that cannot finish.
    budget: float = 8.0
    #: Circuit breaker: open after this many consecutive failures, try again after reset_after seconds.
    failure_threshold: int = 5
    reset_after: float = 30.0
    #: True for a connector that answers without network I/O, in microseconds (the sandbox, from
    #: memory; a lookup in a local SQLite file in WAL mode also qualifies):
    #: it is called directly, with no worker thread or deadline, and the server may evaluate
    #: policies that use only such connectors on its event loop.
    inline: bool = False


class BureauConnector(Connector):
    #: True when the same document always gives the same report (the contract kit checks it).
    deterministic: bool = False

    #: How long an answer may be reused from the cache, in seconds (0: never cached).
    ttl: float = 24 * 3600
    #: What one query costs, in BRL (recorded with each decision).
    cost: str = "0"

    def fetch(self, document: str) -> BureauReport:  # or: async def fetch(...)
        """The report for a CPF (11 digits) or CNPJ (14 characters), compact form."""
        raise NotImplementedError


class NotificationChannel(Connector):
    #: The channel this implementation serves: email, sms, whatsapp, webhook…
    channel: str = ""

    def send(self, notification: Notification) -> DeliveryReceipt:
        raise NotImplementedError


class NegativationService(Connector):
    def submit(self, request: NegativationRequest) -> NegativationRecord:
        """Carry out request.action (include, remove or status) and return the record."""
        raise NotImplementedError


class MonitoringSource(Connector):
    """A bureau whose monitoring alerts are fetched (polled) rather than pushed to POST /events."""

    #: Minutes between two polls when the server polls on its own.
    interval_minutes: int = 15

    def poll(self, cursor: str | None) -> AlertBatch:
        """Alerts after `cursor` (None: from the start of the subscription) and the next cursor."""
        raise NotImplementedError
