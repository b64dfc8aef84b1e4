"""What the `monitoring` policy kind brings to the language: its input, its actions, its outputs.

A monitoring policy decides what a change in a customer's situation means for their credit
limit: a bureau alert (a new negativation, a protest, a score change, a new inquiry, a change in
the company's registration) or a periodic re-check of the portfolio. The monitor
(engine.monitoring) fills the fixed input below from the alert, the customer's current limit and
their payment behaviour in the portfolio; like a collection régua, the policy declares no input.

The outcome is the most severe action that fired:

    keep < raise < review < reduce < block

`raise` and `reduce` set the new limit through the output `new_limit`; `notify` lists who is
told ("manager", "customer"). A `review` reason anywhere among the fired rules opens a review.
"""

from __future__ import annotations

from decimal import Decimal

from . import types as T

#: Alert kinds a bureau sends, plus `recheck` (the periodic portfolio re-check).
EVENTS = ("negativation", "protest", "score_change", "inquiry", "registration_change", "recheck")
EVENT_TYPE = T.EnumType("MonitoringEvent", EVENTS)
TRENDS = ("improving", "stable", "worsening")
TREND_TYPE = T.EnumType("PaymentTrend", TRENDS)

# Payment behaviour, computed from the portfolio (portfolio/monitoring/features.py). The same fields
# make the `CustomerAccount` record that `portfolio.customer(document)` returns to credit policies.
BEHAVIOUR: dict[str, tuple[T.Type, object, str]] = {
    "avg_days_late": (T.DECIMAL, Decimal("0.0"), "average days late over receivables due so far (paid ones: at payment; open ones: until today)"),  # noqa: E501
    "max_days_late": (T.INT, 0, "the most days late of any receivable due so far"),
    "days_late_now": (T.INT, 0, "days late of the customer's most overdue open receivable (0: nothing overdue)"),
    "on_time_ratio": (T.PERCENT, Decimal("1"), "share of receivables due so far that were paid by their due date"),
    "cycles_without_delay": (T.INT, 0, "receivables paid on time in a row, counting back from the latest due"),
    "open_balance": (T.MONEY, Decimal("0.00"), "everything the customer still owes"),
    "overdue_balance": (T.MONEY, Decimal("0.00"), "what the customer owes past its due date"),
    "open_receivables": (T.INT, 0, "how many receivables are open"),
    "paid_receivables": (T.INT, 0, "how many receivables were paid"),
    "trend": (TREND_TYPE, "stable", "improving, stable or worsening: the last 3 receivables due against the 3 before"),
    "trend_days": (T.DECIMAL, Decimal("0.0"), "average days late of the last 3 receivables due minus that of the 3 before"),
}

# The customer's limit as the limit history has it (portfolio/monitoring/limits.py).
LIMIT: dict[str, tuple[T.Type, object, str]] = {
    "limit": (T.MONEY, Decimal("0.00"), "the customer's current credit limit (0 when none was ever set)"),
    "has_limit": (T.BOOL, False, "a limit was ever set for the customer"),
    "limit_blocked": (T.BOOL, False, "the limit is blocked: no new orders until a person lifts the block"),
    "days_since_limit_change": (T.INT, 0, "days since the limit last changed (0 when it never did)"),
}

# name -> (type, default, what it means). docs/monitoring.md lists these; a test keeps them in step.
INPUT: dict[str, tuple[T.Type, object, str]] = {
    "event": (EVENT_TYPE, "recheck", "what happened: " + ", ".join(EVENTS)),
    "bureau": (T.TEXT, "", "the bureau that sent the alert (empty for a re-check)"),
    "amount": (T.MONEY, Decimal("0.00"), "negativation, protest: the amount registered"),
    "creditor": (T.TEXT, "", "negativation, protest: who registered it"),
    "score_before": (T.INT, 0, "score_change: the previous score"),
    "score_after": (T.INT, 0, "score_change: the new score"),
    "score_change": (T.INT, 0, "score_change: score_after - score_before"),
    "registration_status": (T.TEXT, "active", "registration_change: the new registration status (active, suspended, closed…)"),
    "inquirer": (T.TEXT, "", "inquiry: who consulted the document"),
    "document": (T.TEXT, "", "the customer's CPF or CNPJ, for bureau lookups (masked in every trace)"),
    "person": (T.TEXT, "pj", "pf (a person, CPF) or pj (a company, CNPJ)"),
    "segment": (T.TEXT, "default", "the customer's segment"),
    "uf": (T.TEXT, "SP", "the customer's state"),
    **LIMIT,
    **BEHAVIOUR,
}

INPUT_TYPE = T.RecordType("input", tuple(T.FieldSpec(name, typ, required=False, default=default, doc=doc)
                                         for name, (typ, default, doc) in INPUT.items()))

# Actions in order of severity: the most severe action that fires is the outcome.
ACTIONS: dict[str, int] = {"keep": 0, "raise": 1, "review": 2, "reduce": 3, "block": 4}
# Actions that change the limit amount, and so need the output `new_limit`.
LIMIT_ACTIONS = frozenset({"raise", "reduce"})

# Outputs with a meaning to the monitor: name -> (type, required, what it means).
NEW_LIMIT = "new_limit"
NOTIFY = "notify"
OUTPUTS: dict[str, tuple[T.Type, bool, str]] = {
    NEW_LIMIT: (T.MONEY, True, "raise, reduce: the limit the customer should have"),
    NOTIFY: (T.ListType(T.TEXT), False, "who is told about the decision: \"manager\", \"customer\""),
}
RECIPIENTS = ("manager", "customer")

# The record `portfolio.customer(document)` returns to any policy (the order gate of a credit policy).
ACCOUNT = T.RecordType("CustomerAccount", (
    T.FieldSpec("known", T.BOOL, False, False, doc="the document is a customer of the portfolio"),
    T.FieldSpec("segment", T.TEXT, False, "", doc="the customer's segment"),
    *(T.FieldSpec(name, typ, False, default, doc=doc) for name, (typ, default, doc) in {**LIMIT, **BEHAVIOUR}.items()),
))
