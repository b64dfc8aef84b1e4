"""Contracts between Régua and its connectors: msgspec Structs, versioned, documented field by field.

Connectors return these; the engine turns a BureauReport into the `BureauReport` record that
policies read (engine/builtins.py mirrors it field by field, and a test keeps the two in step).
Money is Decimal (never float), dates are `datetime.date`, instants are timezone-aware.
Bump CONTRACT_VERSION on any incompatible change; additions with defaults are compatible.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

import msgspec

CONTRACT_VERSION = "1"

RestrictionKind = Literal["pefin", "refin", "protest", "bounced_cheque", "lawsuit", "bankruptcy", "judicial_recovery"]


class Score(msgspec.Struct, frozen=True, kw_only=True):
    value: int  # the score itself, e.g. 742
    bureau: str = ""  # who computed it: serasa, spc, boavista, quod…
    model: str = ""  # the bureau's model name, e.g. "Score PJ 3.0"
    range_min: int = 0  # lowest possible value of this model
    range_max: int = 1000  # highest possible value of this model
    band: str = ""  # the bureau's own band label, e.g. "excelente"


class Restriction(msgspec.Struct, frozen=True, kw_only=True):
    kind: RestrictionKind  # pefin/refin (negativations), protest, bounced_cheque (CCF), lawsuit, bankruptcy…
    amount: Decimal  # in BRL
    date: dt.date  # when it was registered (or the debt's due date, as the bureau reports it)
    creditor: str = ""  # who reported it (a company name; never a person's document)


class Inquiry(msgspec.Struct, frozen=True, kw_only=True):
    date: dt.date  # when someone consulted this document
    inquirer: str = ""  # who consulted (company name)


class Partner(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # personal data: masked in traces
    document: str = ""  # CPF/CNPJ of the partner: personal data
    role: str = ""  # sócio, administrador…


class BureauReport(msgspec.Struct, frozen=True, kw_only=True):
    """A credit report for one CPF or CNPJ."""

    score: Score
    restrictions: list[Restriction] = []
    inquiries: list[Inquiry] = []
    registration_status: str = "active"  # active, suspended, closed, null… (Receita Federal status)
    partners: list[Partner] = []  # companies only (QSA)
    version: str = CONTRACT_VERSION


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """A message to send: the channel renders `template` with `context`."""

    channel: str  # email, sms, whatsapp, webhook…
    recipient: str  # address/number/URL: personal data
    template: str  # template name, e.g. "lembrete_vencimento"
    context: dict = {}  # values for the template (money as Decimal, dates as date)
    idempotency_key: str  # the same key is never delivered twice
    creditor_name: str = ""  # CDC art. 42-A: every collection message identifies the creditor
    creditor_document: str = ""  # the creditor's CNPJ
    version: str = CONTRACT_VERSION


DeliveryStatus = Literal["sent", "delivered", "failed"]


class DeliveryReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """Proof of what happened to a notification (legal notices need proof of delivery)."""

    status: DeliveryStatus
    idempotency_key: str
    provider_id: str = ""  # the provider's message id
    sent_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    error: str = ""  # why it failed, when it did
    version: str = CONTRACT_VERSION


class Debt(msgspec.Struct, frozen=True, kw_only=True):
    contract: str  # the creditor's id for the receivable
    amount: Decimal
    due_date: dt.date
    creditor_name: str
    creditor_document: str  # CNPJ


NegativationAction = Literal["include", "remove", "status"]
NegativationStatus = Literal["notice_sent", "waiting", "included", "removed", "rejected"]


class NegativationRequest(msgspec.Struct, frozen=True, kw_only=True):
    action: NegativationAction
    debtor_document: str  # CPF/CNPJ: personal data
    debt: Debt
    protocol: str = ""  # required for remove/status
    debtor_uf: str = ""  # the debtor's state (UF): some states set a longer waiting period (SP Lei 15.659/2015)
    # The moment of the request as the collection run sees it (a run for a past or future date, a
    # simulation): a service that keeps its own calendar (the sandbox) judges and stamps by it.
    at: dt.datetime | None = None
    version: str = CONTRACT_VERSION


class NegativationRecord(msgspec.Struct, frozen=True, kw_only=True):
    protocol: str  # the bureau's protocol number
    status: NegativationStatus
    notice_sent_at: dt.datetime | None = None
    included_at: dt.datetime | None = None
    removed_at: dt.datetime | None = None
    reason: str = ""  # why it was rejected, when it was
    version: str = CONTRACT_VERSION


AlertKind = Literal["negativation", "protest", "score_change", "inquiry", "registration_change"]


class MonitoringAlert(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A change a bureau saw in a monitored CPF/CNPJ: the body of POST /events, or one polled alert.

    An alert is handled once per (bureau, id): the same alert sent again is answered from the store."""

    id: str  # the bureau's own event id
    kind: AlertKind
    bureau: str  # who sent it: serasa, spc, boavista…
    document: str  # the monitored CPF/CNPJ: personal data, never logged in clear
    occurred_at: dt.datetime  # when the bureau saw the change (timezone-aware)
    amount: Decimal | None = None  # negativation, protest: the amount registered
    creditor: str = ""  # negativation, protest: who registered it (a company)
    score_before: int | None = None  # score_change
    score_after: int | None = None  # score_change
    registration_status: str = ""  # registration_change: the new status (active, suspended, closed…)
    inquirer: str = ""  # inquiry: who consulted the document (a company)
    version: str = CONTRACT_VERSION


class AlertBatch(msgspec.Struct, frozen=True, kw_only=True):
    """What one poll of a monitoring source returns: new alerts and where the next poll starts."""

    alerts: list[MonitoringAlert] = []
    cursor: str | None = None  # opaque to Régua: stored and given back on the next poll
    version: str = CONTRACT_VERSION
