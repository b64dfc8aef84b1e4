"""What the `collection` policy kind brings to the language: its input, its actions, its step settings.

A collection policy (a régua de cobrança) is a list of steps placed by days relative to the due
date. The runner (engine.collection) evaluates it for every open receivable and fills the input
below from the portfolio; the policy never declares an input of its own, so every régua reads
the same, documented facts and a test can give only the ones it cares about.
"""

from __future__ import annotations

from decimal import Decimal

from . import types as T

# name -> (type, default, what it means). docs/collection.md lists these; a test keeps them in step.
INPUT: dict[str, tuple[T.Type, object, str]] = {
    "amount": (T.MONEY, Decimal("0.00"), "the receivable's amount"),
    "open_amount": (T.MONEY, Decimal("0.00"), "what is still owed on it (amount minus payments)"),
    "paid_amount": (T.MONEY, Decimal("0.00"), "what was paid on it so far"),
    "partial_payments": (T.INT, 0, "how many payments were received on it"),
    "days_late": (T.INT, 0, "days from the due date to the run date: negative before it, 0 on it"),
    "days_since_issue": (T.INT, 0, "days from the issue date to the run date"),
    "disputed": (T.BOOL, False, "the customer disputes the debt"),
    "segment": (T.TEXT, "default", "the customer's segment"),
    "uf": (T.TEXT, "SP", "the customer's state"),
    "person": (T.TEXT, "pf", "pf (a person, CPF) or pj (a company, CNPJ)"),
    "channels": (T.ListType(T.TEXT), [], "the customer's contact channels, in order of preference"),
    "sent": (T.ListType(T.TEXT), [], "steps already planned for this receivable (done, waiting or superseded)"),
    "delivered": (T.ListType(T.TEXT), [], "steps whose delivery is proven by a receipt"),
    "negativated": (T.BOOL, False, "a negative record of this debt is open at a bureau"),
    "protested": (T.BOOL, False, "this debt was sent to protest"),
    "customer_open_amount": (T.MONEY, Decimal("0.00"), "everything the customer still owes"),
    "customer_open_receivables": (T.INT, 1, "how many open receivables the customer has"),
    "customer_max_days_late": (T.INT, 0, "days late of the customer's most overdue receivable"),
    "paid_on_time_before": (T.INT, 0, "receivables of this customer paid by their due date"),
    "paid_late_before": (T.INT, 0, "receivables of this customer paid after their due date"),
    "broken_agreements": (T.INT, 0, "agreements of this customer that were broken"),
}

DAYS_LATE, SENT = "days_late", "sent"  # what a step's guard reads (dsl.kinds)

INPUT_TYPE = T.RecordType("input", tuple(T.FieldSpec(name, typ, required=False, default=default, doc=doc)
                                         for name, (typ, default, doc) in INPUT.items()))

# Actions in escalation order: the most escalated step that fires is the evaluation's outcome.
ACTIONS: dict[str, int] = {
    "wait": 0, "remind": 1, "offer_agreement": 2, "notify_negativation": 3, "negativate": 4, "protest": 5,
    "send_to_agency": 6, "send_to_legal": 7,
}
# Actions that write to the debtor: they need a template, go through the customer's preferred
# channel and obey the contact windows and the frequency cap.
CONTACT_ACTIONS = frozenset({"remind", "offer_agreement", "notify_negativation"})

# What a step may `set`: name -> (type, what it means).
STEP_SETTINGS: dict[str, tuple[T.Type, str]] = {
    "channel": (T.TEXT, "send through this channel instead of the customer's preferred one"),
    "discount": (T.PERCENT, "offer_agreement: the discount offered on the open amount"),
    "instalments": (T.INT, "offer_agreement: how many instalments are offered"),
    "bureau": (T.TEXT, "negativate, protest, notify_negativation: the negativation service (and the bureau named in the notice)"),
    "agency": (T.TEXT, "send_to_agency: which collection agency receives the debt"),
}

# `output priority = …` ranks debtors for human collectors (higher first).
PRIORITY = "priority"
