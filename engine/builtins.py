"""Built-in functions and connector contracts every policy can use.

Plugins (issue: plugins) add their own through the same Environment; the built-ins are
registered exactly the way a third-party function or connector is.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from regua.dsl import types as T
from regua.dsl.environment import ConnectorSpec, Environment, FunctionSpec
from regua.dsl.monitoring import ACCOUNT

from . import brazil
from .runtime import EvalError

# ---- the bureau report contract (v1) -----------------------------------------------
# Field names follow the bureau contract documented in docs/language.md; connectors
# translate each provider's answer into this shape.

SCORE = T.RecordType("Score", (
    T.FieldSpec("value", T.INT, bounds=(0, 1000), doc="the score"),
    T.FieldSpec("bureau", T.TEXT, False, "", doc="which bureau computed it"),
    T.FieldSpec("model", T.TEXT, False, "", doc="the score model"),
    T.FieldSpec("range_min", T.INT, False, 0, doc="the lowest value of the score's scale"),
    T.FieldSpec("range_max", T.INT, False, 1000, doc="the highest value of the score's scale"),
    T.FieldSpec("band", T.TEXT, False, "", doc="the bureau's band (faixa)"),
))
RESTRICTION_KINDS = T.EnumType("RestrictionKind", (
    "pefin", "refin", "protest", "bounced_cheque", "lawsuit", "bankruptcy", "judicial_recovery",
))
RESTRICTION = T.RecordType("Restriction", (
    T.FieldSpec("kind", RESTRICTION_KINDS, doc="the kind of negative record: " + ", ".join(RESTRICTION_KINDS.values)),
    T.FieldSpec("amount", T.MONEY, doc="the amount"),
    T.FieldSpec("date", T.DATE, doc="when it was registered"),
    T.FieldSpec("creditor", T.TEXT, False, "", doc="the creditor"),
))
INQUIRY = T.RecordType("Inquiry", (
    T.FieldSpec("date", T.DATE, doc="when the inquiry was made"),
    T.FieldSpec("inquirer", T.TEXT, False, "", doc="who made it"),
))
PARTNER = T.RecordType("Partner", (
    T.FieldSpec("name", T.TEXT, doc="the partner's name"),
    T.FieldSpec("document", T.TEXT, False, "", doc="the partner's CPF or CNPJ (masked in traces)"),
    T.FieldSpec("role", T.TEXT, False, "", doc="the partner's role"),
))
BUREAU_REPORT = T.RecordType("BureauReport", (
    T.FieldSpec("score", SCORE, doc="the credit score"),
    T.FieldSpec("restrictions", T.ListType(RESTRICTION), False, [], doc="negative records (negativações)"),
    T.FieldSpec("inquiries", T.ListType(INQUIRY), False, [], doc="recent credit inquiries (consultas)"),
    T.FieldSpec("registration_status", T.TEXT, False, "active",
                doc="registration status (situação cadastral); \"active\" when regular"),
    T.FieldSpec("partners", T.ListType(PARTNER), False, [], doc="partners (sócios) of a company"),
))
DOCUMENT = T.TEXT  # a lookup takes a CPF or a CNPJ

BUREAUS = ("serasa", "spc", "boavista", "quod", "sandbox")


# ---- functions ------------------------------------------------------------------------


def _round(value, places: int = 2):
    quantum = Decimal(1).scaleb(-places)
    return Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP)


def _round_signature(args):
    if not 1 <= len(args) <= 2:
        return "round() takes a value and, optionally, the number of decimal places"
    if args[0] not in (T.DECIMAL, T.MONEY, T.PERCENT, T.INT) and not T.is_unknown(args[0]):
        return f"cannot round {args[0]}"
    if len(args) == 2 and args[1] != T.INT and not T.is_unknown(args[1]):
        return "the number of decimal places must be an int"
    return T.DECIMAL if args[0] == T.INT else args[0]


def _directed(rounding: str):
    """floor(x, places=0) / ceil(x, places=0): round toward -infinity / +infinity."""

    def apply(value, places: int = 0):
        if type(value) is int and places >= 0:
            return value
        rounded = Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=rounding)
        return int(rounded) if type(value) is int else rounded

    return apply


def _directed_signature(name: str):
    def signature(args):
        if not 1 <= len(args) <= 2:
            return f"{name}() takes a value and, optionally, the number of decimal places"
        if args[0] == T.PERCENT:
            return f"{name}() of a percent is ambiguous: use {name}_to(x, 0.5%) to choose the step"
        if args[0] not in (T.DECIMAL, T.MONEY, T.INT) and not T.is_unknown(args[0]):
            return f"cannot {name} {args[0]}"
        if len(args) == 2 and args[1] != T.INT and not T.is_unknown(args[1]):
            return "the number of decimal places must be an int"
        return args[0]

    return signature


def _to_multiple(rounding: str):
    """round_to / floor_to / ceil_to(x, step): the multiple of `step` nearest to x (half away
    from zero), at or below x, or at or above x. `step` must be positive."""

    def apply(value, step):
        if step <= 0:
            raise EvalError("INVALID_ARGUMENT", f"the step of a rounding to a multiple must be positive, got {step}")
        if type(value) is int and type(step) is int:
            steps = Decimal(value) / step
            return int(steps.to_integral_value(rounding=rounding)) * step
        return (Decimal(value) / Decimal(step)).to_integral_value(rounding=rounding) * Decimal(step)

    return apply


def _to_multiple_signature(name: str):
    def signature(args):
        if len(args) != 2:
            return f"{name}() takes a value and the step to round it to, e.g. {name}(limite, 100 BRL)"
        value, step = args
        if T.is_unknown(value) or T.is_unknown(step):
            return value if not T.is_unknown(value) else step
        if value not in (T.INT, T.DECIMAL, T.MONEY, T.PERCENT):
            return f"cannot {name} {value}"
        if value == step or (value == T.DECIMAL and step == T.INT):
            return value
        if value == T.INT and step == T.DECIMAL:
            return T.DECIMAL
        return f"the step must be of the same type as the value ({value}), got {step}"

    return signature


def _abs_signature(args):
    if len(args) != 1 or (args[0] not in T.SUMMABLE and not T.is_unknown(args[0])):
        return "abs() takes one number, money, percent or duration"
    return args[0]


def _uf(uf: str | None) -> str | None:
    if uf is None:
        return None
    if uf not in brazil.UFS:
        raise EvalError("UNKNOWN_UF", f"'{uf}' is not a Brazilian state (UF)")
    return uf


def _days_between(a: dt.date, b: dt.date) -> int:
    return (b - a).days


def _years_between(a: dt.date, b: dt.date) -> int:
    """Whole years from a to b (an age)."""
    years = b.year - a.year - ((b.month, b.day) < (a.month, a.day))
    return years


def default_environment() -> Environment:
    env = Environment()
    for spec in (
        FunctionSpec("round", _round_signature, _round, "round(x, places=2): half-up rounding"),
        FunctionSpec("floor", _directed_signature("floor"), _directed(ROUND_FLOOR),
                     "floor(x, places=0): round down (toward -infinity)"),
        FunctionSpec("ceil", _directed_signature("ceil"), _directed(ROUND_CEILING),
                     "ceil(x, places=0): round up (toward +infinity)"),
        FunctionSpec("round_to", _to_multiple_signature("round_to"), _to_multiple(ROUND_HALF_UP),
                     "round_to(x, step): nearest multiple of step, halves away from zero"),
        FunctionSpec("floor_to", _to_multiple_signature("floor_to"), _to_multiple(ROUND_FLOOR),
                     "floor_to(x, step): largest multiple of step at or below x"),
        FunctionSpec("ceil_to", _to_multiple_signature("ceil_to"), _to_multiple(ROUND_CEILING),
                     "ceil_to(x, step): smallest multiple of step at or above x"),
        FunctionSpec("abs", _abs_signature, abs, "abs(x): absolute value"),
        FunctionSpec.simple("days_between", [T.DATE, T.DATE], T.INT, _days_between,
                            "days_between(a, b): calendar days from a to b"),
        FunctionSpec.simple("years_between", [T.DATE, T.DATE], T.INT, _years_between,
                            "years_between(a, b): whole years from a to b"),
        FunctionSpec.simple("business_days_between", [T.DATE, T.DATE, T.TEXT], T.INT,
                            lambda a, b, uf=None: brazil.business_days_between(a, b, _uf(uf)),
                            "business_days_between(a, b, uf?): business days after a up to b", optional=1),
        FunctionSpec.simple("add_business_days", [T.DATE, T.INT, T.TEXT], T.DATE,
                            lambda d, n, uf=None: brazil.add_business_days(d, n, _uf(uf)),
                            "add_business_days(d, n, uf?): n business days after d", optional=1),
        FunctionSpec.simple("is_business_day", [T.DATE, T.TEXT], T.BOOL,
                            lambda d, uf=None: brazil.is_business_day(d, _uf(uf)),
                            "is_business_day(d, uf?): not a weekend nor a holiday", optional=1),
    ):
        env.add_function(spec)
    for bureau in BUREAUS:
        env.add_connector(ConnectorSpec("bureau", bureau, (DOCUMENT,), BUREAU_REPORT,
                                        f"credit report from {bureau} for a CPF or CNPJ"))
    # The customer's account in our own portfolio: current limit and payment behaviour
    # (portfolio/monitoring answers it; unknown customers come back with `known` false).
    env.add_connector(ConnectorSpec("portfolio", "customer", (DOCUMENT,), ACCOUNT,
                                    "the customer's limit and payment behaviour in the portfolio"))
    for record in (SCORE, RESTRICTION, INQUIRY, PARTNER, BUREAU_REPORT, ACCOUNT):
        env.records[record.name] = record
    env.records[RESTRICTION_KINDS.name] = RESTRICTION_KINDS
    return env
