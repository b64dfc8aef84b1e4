"""What generated policy code calls at run time. Kept small: every helper is on the hot path."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal, DecimalException, DivisionByZero, InvalidOperation, Overflow

from regua.dsl.values import BusinessDays

from . import brazil
from .errors import EvalError

# The "not computed yet" marker for lazy values.
UNSET = object()


class Unavailable:
    """The value of a connector lookup that failed. Reading anything from it raises EvalError,
    so rules that need it fail explicitly, while `available(x)` lets a policy branch on it."""

    __slots__ = ("connector", "code", "reason")

    def __init__(self, connector: str, code: str, reason: str):
        self.connector = connector
        self.code = code
        self.reason = reason

    def _fail(self, *args):
        raise EvalError(self.code, f"connector {self.connector} unavailable: {self.reason}", self.connector)

    __getitem__ = __lt__ = __le__ = __gt__ = __ge__ = __add__ = __radd__ = __sub__ = __rsub__ = _fail
    __mul__ = __rmul__ = __truediv__ = __iter__ = __len__ = __contains__ = _fail

    def __eq__(self, other):
        self._fail()

    __ne__ = __eq__
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<unavailable {self.connector}: {self.code}>"


def classify(error: BaseException) -> EvalError:
    """Map any exception raised by generated code to an EvalError with a stable code."""
    if isinstance(error, EvalError):
        return error
    if isinstance(error, (ZeroDivisionError, DivisionByZero)):
        return EvalError("DIVISION_BY_ZERO", "division by zero")
    if isinstance(error, (OverflowError, Overflow)):
        return EvalError("OVERFLOW", "a value is out of range")
    if isinstance(error, (InvalidOperation, DecimalException)):
        return EvalError("INVALID_ARITHMETIC", "invalid arithmetic operation")
    if isinstance(error, (KeyError, TypeError, ValueError, AttributeError, IndexError)):
        return EvalError("INTERNAL_ERROR", f"{type(error).__name__}: {error}")
    return EvalError("INTERNAL_ERROR", type(error).__name__)


def div(a, b):
    if not b:
        raise EvalError("DIVISION_BY_ZERO", "division by zero")
    if type(a) is int:
        a = Decimal(a)
    return a / b


def fold(value, steps: str, terms: tuple):
    """A long arithmetic chain, left to right (generated code keeps short chains inline). A step is
    an operator, or A/B/S: date + business days, business days + date, date - business days."""
    for step, term in zip(steps, terms):
        if step == "+":
            value = value + term
        elif step == "-":
            value = value - term
        elif step == "*":
            value = value * term
        elif step == "/":
            value = div(value, term)
        elif step == "S":
            value = date_sub(value, term)
        else:
            value = date_add(value, term) if step == "A" else date_add(term, value)
    return value


def date_add(day: dt.date, duration) -> dt.date:
    if isinstance(duration, BusinessDays):
        return brazil.add_business_days(day, duration.days)
    return day + duration


def date_sub(day: dt.date, duration) -> dt.date:
    if isinstance(duration, BusinessDays):
        return brazil.add_business_days(day, -duration.days)
    return day - duration


def smallest(items):
    if not items:
        raise EvalError("EMPTY_AGGREGATE", "min() of an empty list")
    return min(items)


def largest(items):
    if not items:
        raise EvalError("EMPTY_AGGREGATE", "max() of an empty list")
    return max(items)


def average(items):
    items = list(items)
    if not items:
        raise EvalError("EMPTY_AGGREGATE", "avg() of an empty list")
    total = sum(items, Decimal(0) if type(items[0]) is int else type(items[0])(0))
    return Decimal(total) / len(items)


def otherwise(value, fallback):
    """`a otherwise b`: evaluate a; when it fails with an evaluation error, evaluate b. A spent
    evaluation budget is not a failure of `a` that b could make up for: it goes on up."""
    try:
        return value()
    except Exception as error:  # every failure of `a` is, by definition, handled here (but a spent budget)
        if classify(error).code == EVALUATION_TIMEOUT:
            raise
        return fallback()


def no_match(table: str):
    raise EvalError("TABLE_NO_MATCH", f"no row of table '{table}' matches")


def rule_failed(rule: str):
    raise EvalError("RULE_FAILED", f"fired({rule}) is unknown: rule '{rule}' failed")


def not_unique(table: str):
    raise EvalError("TABLE_NOT_UNIQUE", f"more than one row of unique table '{table}' matches")


# ---- the evaluation budget ----
# Only lists make an evaluation's cost grow with its input: every other expression costs what
# its text does. So generated code hands every list it iterates (comprehensions, `list.field`)
# to `each` and every list it scans (`in`, aggregates) to `charge`; both take the list's length
# from `rt.room`, the items left before the evaluation thread's CPU clock (time.thread_time,
# ~1 µs a read) is read again, every CHECK_EVERY items. The clock starts at the first read, so
# an evaluation that goes through fewer items never reads it: the common case costs one
# subtraction per list.

EVALUATION_TIMEOUT = "EVALUATION_TIMEOUT"
#: List items gone through between two reads of the CPU clock.
CHECK_EVERY = 1024
_NEVER = 1 << 62


def each(rt, items):
    """`items`, to iterate, counted against the evaluation's budget; a long list is iterated in
    slices of CHECK_EVERY items with a clock read before each."""
    room = rt.room = rt.room - len(items)
    if room < 0:
        spend(rt)
        if len(items) > CHECK_EVERY:
            return _in_slices(rt, items)
    return items


def charge(rt, items):
    """`items` unchanged, its length counted against the evaluation's budget (a scan: `in`, sum)."""
    room = rt.room = rt.room - len(items)
    if room < 0:
        spend(rt)
    return items


def _in_slices(rt, items):
    for start in range(0, len(items), CHECK_EVERY):
        if start:
            spend(rt)
        yield from items[start:start + CHECK_EVERY]


def spend(rt) -> None:
    """Read the CPU clock: EVALUATION_TIMEOUT once the evaluation has used more than its budget."""
    budget = rt.budget
    if budget is None:
        rt.room = _NEVER
        return
    now = time.thread_time()
    if rt.cpu_deadline is None:
        rt.cpu_deadline = now + budget
    elif now > rt.cpu_deadline:
        rt.room = -_NEVER  # every later list fails at once, without reading the clock again
        raise EvalError(EVALUATION_TIMEOUT, f"the evaluation used more than its budget of {budget:g} s of CPU")
    rt.room = CHECK_EVERY
