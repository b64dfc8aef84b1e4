"""Static types of the policy language and the rules for combining them.

Runtime representation (what generated code and connectors exchange):
int -> int, decimal/money/percent -> Decimal (percent as a fraction: 10% == Decimal("0.10")),
bool -> bool, text/cpf/cnpj/enum -> str, date -> datetime.date,
duration -> datetime.timedelta or engine.runtime.BusinessDays, list -> list, record -> dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class Type:
    """Base of all types; every subclass has a `name`."""

    def __str__(self) -> str:
        return self.name  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Prim(Type):
    name: str


@dataclass(frozen=True)
class EnumType(Type):
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class ListType(Type):
    element: Type

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"list of {self.element}"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: Type
    required: bool = True
    default: object = None  # runtime value used when an optional field is missing
    # The declared range of a number (inclusive), e.g. (0, 1000) for the bureau score: comparisons
    # outside it are warnings (W606, W608).
    bounds: tuple | None = None
    # What the field means, for people (the language server's hover); never part of the type.
    doc: str = field(default="", compare=False)


@dataclass(frozen=True, eq=False)
class RecordType(Type):
    name: str
    fields: tuple[FieldSpec, ...] = field(default=())

    def field(self, name: str) -> FieldSpec | None:
        for spec in self.fields:
            if spec.name == name:
                return spec
        return None

    def __eq__(self, other) -> bool:
        return isinstance(other, RecordType) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("record", self.name))


class _Unknown(Type):
    """The type of an expression that already produced an error: compatible with everything,
    so one mistake is reported once instead of cascading."""

    name = "unknown"

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()
INT = Prim("int")
DECIMAL = Prim("decimal")
MONEY = Prim("money")
PERCENT = Prim("percent")
BOOL = Prim("bool")
TEXT = Prim("text")
DATE = Prim("date")
DURATION = Prim("duration")
# Business days are their own type: "5 business days" and "7 days" cannot be compared or mixed.
BUSINESS_DAYS = Prim("business_days")
CPF = Prim("cpf")
CNPJ = Prim("cnpj")

BUILTIN_TYPES: dict[str, Type] = {
    t.name: t for t in (INT, DECIMAL, MONEY, PERCENT, BOOL, TEXT, DATE, DURATION, BUSINESS_DAYS, CPF, CNPJ)
}

NUMBERS = {INT, DECIMAL}
ORDERED = {INT, DECIMAL, MONEY, PERCENT, DATE, DURATION, BUSINESS_DAYS, TEXT}
SUMMABLE = {INT, DECIMAL, MONEY, PERCENT, DURATION}
DURATIONS = {DURATION, BUSINESS_DAYS}
TEXTUAL = {TEXT, CPF, CNPJ}


def is_unknown(t: Type | None) -> bool:
    return t is None or t is UNKNOWN


def assignable(value: Type, target: Type) -> bool:
    """Can a value of type `value` be used where `target` is expected?"""
    if is_unknown(value) or is_unknown(target) or value == target:
        return True
    if value == INT and target == DECIMAL:
        return True
    if isinstance(value, ListType) and isinstance(target, ListType):
        return assignable(value.element, target.element)
    if isinstance(target, EnumType) and value == TEXT:
        return True  # literal membership is checked separately
    if target in (CPF, CNPJ) and value == TEXT:
        return True  # literals are validated separately
    if target == TEXT and (value in (CPF, CNPJ) or isinstance(value, EnumType)):
        return True  # documents and enum values are texts
    return False


def unify(a: Type, b: Type) -> Type | None:
    """The common type of two branches (if/else, table rows, list items), or None."""
    if is_unknown(a):
        return b
    if is_unknown(b) or a == b:
        return a
    if {a, b} == {INT, DECIMAL}:
        return DECIMAL
    if isinstance(a, ListType) and isinstance(b, ListType):
        inner = unify(a.element, b.element)
        return ListType(inner) if inner is not None else None
    if isinstance(a, EnumType) and b == TEXT:
        return a
    if isinstance(b, EnumType) and a == TEXT:
        return b
    return None


def arithmetic(op: str, left: Type, right: Type) -> Type | None:
    """Result type of `left op right` for + - * /, or None when the combination makes no sense."""
    if is_unknown(left) or is_unknown(right):
        return UNKNOWN
    pair = (left, right)
    if op in "+-":
        if left in NUMBERS and right in NUMBERS:
            return INT if pair == (INT, INT) else DECIMAL
        if left == right and left in (MONEY, PERCENT, DURATION, BUSINESS_DAYS):
            return left
        if left == DATE and right in DURATIONS:
            return DATE
        if op == "+" and right == DATE and left in DURATIONS:
            return DATE
        if op == "-" and pair == (DATE, DATE):
            return DURATION
        return None
    if op == "*":
        for a, b in (pair, pair[::-1]):
            if a == MONEY and b in (INT, DECIMAL, PERCENT):
                return MONEY
            if a == PERCENT and b in (INT, DECIMAL, PERCENT):
                return PERCENT  # 10% * 1.5 is 15%
            if a in DURATIONS and b == INT:
                return a
        if left in NUMBERS and right in NUMBERS:
            return INT if pair == (INT, INT) else DECIMAL
        return None
    if op == "/":
        if left == MONEY and right in (INT, DECIMAL, PERCENT):
            return MONEY
        if left == MONEY and right == MONEY:
            return DECIMAL
        if left == PERCENT and right in (INT, DECIMAL):
            return PERCENT
        if left == PERCENT and right == PERCENT:
            return DECIMAL
        if left in NUMBERS and right in NUMBERS:
            return DECIMAL  # 7 / 2 is 3.5, never 3
        return None
    return None


def comparable(op: str, left: Type, right: Type) -> bool:
    """Can `left op right` be compared (== != < <= > >=)?"""
    if is_unknown(left) or is_unknown(right):
        return True
    ordering = op not in ("==", "!=")
    if left in NUMBERS and right in NUMBERS:
        return True
    if {left, right} == {DECIMAL, PERCENT}:
        # A ratio such as parcela / renda is a decimal fraction; comparing it with 30% is meaningful.
        # int vs percent stays an error: `taxa > 30` almost always means 30%.
        return True
    if left == right:
        return not ordering or left in ORDERED
    if isinstance(left, EnumType) or isinstance(right, EnumType):
        other = right if isinstance(left, EnumType) else left
        return not ordering and other == TEXT
    if left in TEXTUAL and right in TEXTUAL:
        return not ordering
    return False


def describe_mismatch(op: str, left: Type, right: Type) -> str | None:
    """A hint for the most common type mistakes."""
    if MONEY in (left, right) and ({left, right} & NUMBERS):
        return "write money amounts as money literals, e.g. 5_000 BRL"
    if PERCENT in (left, right) and ({left, right} & NUMBERS) and op in ("==", "!=", "<", "<=", ">", ">="):
        return "write percentages as percent literals, e.g. 10%"
    if DATE in (left, right) and ({left, right} & NUMBERS):
        return "add or subtract durations such as 30 days or 5 business days"
    if {left, right} == DURATIONS:
        return "business days and calendar days cannot be mixed; convert with add_business_days()"
    if ({left, right} & DURATIONS) and ({left, right} & NUMBERS):
        return "write durations with their unit, e.g. 30 days"
    return None
