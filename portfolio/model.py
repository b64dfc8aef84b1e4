"""The collection portfolio's records: customers, receivables, payments, agreements.

Each record is a msgspec Struct (the shape) plus `check()` (the domain rules msgspec cannot
say: documents with valid check digits, a known UF, a due date not before the issue date,
positive amounts). `parse(kind, data)` turns one raw row (from CSV, JSON or HTTP) into a record
or a list of `RowError`s naming each field, so an import can report every problem of every row.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Literal

import msgspec

from regua.dsl.values import normalize_cnpj, normalize_cpf
from regua.engine.brazil import UFS

Channel = Literal["email", "sms", "whatsapp", "phone", "letter"]
ReceivableStatus = Literal["open", "paid", "cancelled", "renegotiated"]
_PHONE = re.compile(r"^\+?\d{10,13}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_AMOUNT = Decimal("1e15")  # R$ 1 quadrillion: beyond any receivable, and exact as text


class RowError(msgspec.Struct):
    field: str
    code: str
    message: str


class Customer(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    document: str  # CPF (11 digits) or CNPJ (14 characters), compact after check()
    name: str
    uf: str
    segment: str = "default"
    email: str | None = None
    phone: str | None = None  # digits, with country code (+55…)
    whatsapp: str | None = None
    #: Channels in order of the customer's preference.
    channels: list[Channel] = []
    #: The account manager's e-mail: credit monitoring tells them about changes (not personal data
    #: of the customer, but still masked in logs).
    manager: str | None = None

    @property
    def kind(self) -> str:
        return "pf" if len(self.document) == 11 else "pj"


class Receivable(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    customer_id: str
    amount: str  # money as text (exact), two decimal places after check()
    issue_date: dt.date
    due_date: dt.date
    status: ReceivableStatus = "open"
    disputed: bool = False


class Payment(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    receivable_id: str
    amount: str
    paid_on: dt.date


class Instalment(msgspec.Struct, forbid_unknown_fields=True):
    due_date: dt.date
    amount: str


class Agreement(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    customer_id: str
    receivable_ids: list[str]
    created_on: dt.date
    instalments: list[Instalment]
    status: Literal["active", "fulfilled", "broken"] = "active"


KINDS: dict[str, type[msgspec.Struct]] = {
    "customers": Customer, "receivables": Receivable, "payments": Payment, "agreements": Agreement,
}


def _money(value: str, field: str, errors: list[RowError]) -> str:
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        errors.append(RowError(field, "TYPE", "expected an amount such as 1234.56"))
        return value
    if not amount.is_finite() or amount <= 0 or amount >= MAX_AMOUNT or amount.as_tuple().exponent < -2:
        errors.append(RowError(field, "VALUE", "expected a positive amount with at most 2 decimal places"))
        return value
    return str(amount.quantize(Decimal("0.01")))


def check(record: msgspec.Struct) -> tuple[msgspec.Struct, list[RowError]]:
    """Apply the domain rules; return the normalised record and the errors found."""
    errors: list[RowError] = []
    changes: dict = {}
    for field in ("id", "customer_id", "receivable_id", "name"):
        value = getattr(record, field, None)
        if value is not None and not str(value).strip():
            errors.append(RowError(field, "REQUIRED", "must not be empty"))
    if isinstance(record, Customer):
        compact = normalize_cpf(record.document) or normalize_cnpj(record.document.upper())
        if compact is None:
            errors.append(RowError("document", "INVALID_DOCUMENT", "is not a valid CPF or CNPJ"))
        else:
            changes["document"] = compact
        if record.uf.upper() not in UFS:
            errors.append(RowError("uf", "VALUE", f"'{record.uf}' is not a Brazilian state (UF)"))
        else:
            changes["uf"] = record.uf.upper()
        for field in ("phone", "whatsapp"):
            value = getattr(record, field)
            if value:
                digits = re.sub(r"[\s().-]", "", value)
                if not _PHONE.match(digits):
                    errors.append(RowError(field, "VALUE", "expected a phone number with area code"))
                else:
                    changes[field] = digits
        if record.email and not _EMAIL.match(record.email):
            errors.append(RowError("email", "VALUE", "is not an e-mail address"))
        if record.manager and not _EMAIL.match(record.manager):
            errors.append(RowError("manager", "VALUE", "is not an e-mail address"))
        for channel in record.channels:
            contact = {"email": record.email, "sms": record.phone, "phone": record.phone,
                       "whatsapp": record.whatsapp or record.phone}.get(channel, "letter")
            if not contact:
                errors.append(RowError("channels", "VALUE", f"prefers {channel} but has no contact for it"))
    if isinstance(record, (Receivable, Payment)):
        changes["amount"] = _money(record.amount, "amount", errors)
    if isinstance(record, Receivable) and record.due_date < record.issue_date:
        errors.append(RowError("due_date", "VALUE", "is before issue_date"))
    if isinstance(record, Agreement):
        if not record.receivable_ids:
            errors.append(RowError("receivable_ids", "REQUIRED", "an agreement settles at least one receivable"))
        if not record.instalments:
            errors.append(RowError("instalments", "REQUIRED", "an agreement has at least one instalment"))
        instalments = []
        for i, instalment in enumerate(record.instalments):
            amount = _money(instalment.amount, f"instalments[{i}].amount", errors)
            if instalment.due_date < record.created_on:
                errors.append(RowError(f"instalments[{i}].due_date", "VALUE", "is before created_on"))
            instalments.append(Instalment(instalment.due_date, amount))
        changes["instalments"] = instalments
    return (msgspec.structs.replace(record, **changes) if not errors else record), errors


def parse(kind: str, data: dict) -> tuple[msgspec.Struct | None, list[RowError]]:
    """One raw row (text values from CSV are converted) as a checked record, or its errors."""
    try:
        record = msgspec.convert(data, KINDS[kind], strict=False)
    except msgspec.ValidationError as error:
        return None, [_from_msgspec(str(error))]
    record, errors = check(record)
    return (None if errors else record), errors


def _from_msgspec(message: str) -> RowError:
    """msgspec says "Expected `int`, got `str` - at `$.amount`": field first, stable code."""
    field = ""
    if " - at `$." in message:
        message, field = message.rsplit(" - at `$.", 1)
        field = field.rstrip("`")
    if (match := re.search(r"Object missing required field `(.+)`", message)):
        return RowError(f"{field}.{match.group(1)}" if field else match.group(1), "REQUIRED", "is required")
    if (match := re.search(r"Object contains unknown field `(.+)`", message)):
        return RowError(f"{field}.{match.group(1)}" if field else match.group(1), "UNKNOWN_FIELD",
                        "is not a field of this record")
    return RowError(field, "TYPE" if message.startswith("Expected") else "VALUE", message.replace("`", ""))
