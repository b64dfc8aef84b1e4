"""Warnings (W6xx) about policies that compile but are probably not what the author meant.

Run by the checker after the type pass (every expression has its type): unused inputs, lets and
tables; a reason code used by two rules; conditions that can never be true or are always true
(interval reasoning on numbers, money, percents and dates compared with constants); a rule whose
every firing is covered by an earlier deny; a comparison with a value outside a field's declared
range (the bureau score is 0..1000).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from . import ast
from . import types as T
from .constants import NotConstant, constant
from .diagnostics import DiagnosticBag

ORDERED = (T.INT, T.DECIMAL, T.MONEY, T.PERCENT, T.DATE)
FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


@dataclass(frozen=True)
class Interval:
    """The values a comparison allows: lo..hi, each end None (unbounded), included or not."""

    lo: object = None
    lo_in: bool = False
    hi: object = None
    hi_in: bool = False

    def intersect(self, other: "Interval") -> "Interval":
        lo, lo_in = self.lo, self.lo_in
        if other.lo is not None and (lo is None or other.lo > lo or (other.lo == lo and not other.lo_in)):
            lo, lo_in = other.lo, other.lo_in
        hi, hi_in = self.hi, self.hi_in
        if other.hi is not None and (hi is None or other.hi < hi or (other.hi == hi and not other.hi_in)):
            hi, hi_in = other.hi, other.hi_in
        return Interval(lo, lo_in, hi, hi_in)

    @property
    def empty(self) -> bool:
        if self.lo is None or self.hi is None:
            return False
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_in and self.hi_in))

    def within(self, other: "Interval") -> bool:
        """Every value of self is in other."""
        if self.empty:
            return True
        if other.lo is not None:
            if self.lo is None or self.lo < other.lo or (self.lo == other.lo and self.lo_in and not other.lo_in):
                return False
        if other.hi is not None:
            if self.hi is None or self.hi > other.hi or (self.hi == other.hi and self.hi_in and not other.hi_in):
                return False
        return True

    def text(self) -> str:
        def show(v):
            return v.isoformat() if isinstance(v, dt.date) else str(v)
        if self.lo is not None and self.hi is not None and self.lo_in and self.hi_in:
            return f"{show(self.lo)}..{show(self.hi)}"
        parts = []
        if self.lo is not None:
            parts.append((">= " if self.lo_in else "> ") + show(self.lo))
        if self.hi is not None:
            parts.append(("<= " if self.hi_in else "< ") + show(self.hi))
        return " and ".join(parts) or "any value"


EVERYTHING = Interval()


def _tighten(interval: Interval, typ) -> Interval:
    """Whole numbers and dates: `x > 10` is `x >= 11`."""
    step = 1 if typ == T.INT else dt.timedelta(days=1) if typ == T.DATE else None
    if step is None:
        return interval
    lo, lo_in, hi, hi_in = interval.lo, interval.lo_in, interval.hi, interval.hi_in
    if lo is not None and not lo_in and (typ == T.DATE or isinstance(lo, int)):
        lo, lo_in = lo + step, True
    if hi is not None and not hi_in and (typ == T.DATE or isinstance(hi, int)):
        hi, hi_in = hi - step, True
    return Interval(lo, lo_in, hi, hi_in)


def _subject(e: ast.Expr) -> bool:
    """A value read from an input, let, table, comprehension variable or lookup (with fields)."""
    while isinstance(e, ast.Attribute):
        e = e.target
    if isinstance(e, ast.Call):
        return e.resolved == "connector" and all(_subject(a) or _value(a) is not None for a in e.args)
    return isinstance(e, ast.Name) and e.ref in ("input", "let", "table", "local")


def _value(e: ast.Expr):
    try:
        value = constant(e)
    except NotConstant:
        return None
    return value if isinstance(value, (int, dt.date)) or hasattr(value, "is_finite") else None


def bounds_of(e: ast.Expr) -> Interval | None:
    """The declared range of a field (FieldSpec.bounds), e.g. the bureau score's 0..1000."""
    if isinstance(e, ast.Attribute) and isinstance(e.target.type, T.RecordType):
        spec = e.target.type.field(e.attr)
        bounds = getattr(spec, "bounds", None) if spec else None
        if bounds:
            return Interval(bounds[0], True, bounds[1], True)
    return None


# `subject op value` as the interval of the subject's values that make it true (made only for `op`).
_INTERVAL_OF = {"<": lambda v: Interval(hi=v), "<=": lambda v: Interval(hi=v, hi_in=True),
                ">": lambda v: Interval(lo=v), ">=": lambda v: Interval(lo=v, lo_in=True),
                "==": lambda v: Interval(v, True, v, True)}


def comparison(e: ast.Expr) -> tuple[str, ast.Expr, Interval] | None:
    """(subject text, subject, allowed interval) for `subject op constant` (either side) or
    `subject in a..b`, on an ordered type; None for anything else."""
    if isinstance(e, ast.Binary) and e.op in FLIP:
        left, right, op = e.left, e.right, e.op
        if not _subject(left):
            left, right, op = right, left, FLIP[op]
        if not _subject(left) or left.type not in ORDERED:
            return None
        value = _value(right)
        if value is None:
            return None
        interval = _INTERVAL_OF[op](value)
    elif isinstance(e, ast.InRange) and not e.negated and _subject(e.value) and e.value.type in ORDERED:
        left = e.value
        low, high = _value(e.low), _value(e.high)
        if low is None or high is None:
            return None
        interval = Interval(low, True, high, True)
    else:
        return None
    from .formatter import expr as text  # here, not for every node a walk meets: most are not comparisons

    try:
        return text(left), left, _tighten(interval, left.type)
    except TypeError:  # values of kinds that do not compare (the type pass reported it)
        return None


def _compares_bounded(e: ast.Expr) -> bool:
    """Whether `e` may be a comparison whose subject has a declared range (cheap: no texts)."""
    if isinstance(e, ast.Binary):
        return e.op in FLIP and (bounds_of(e.left) is not None or bounds_of(e.right) is not None)
    return isinstance(e, ast.InRange) and bounds_of(e.value) is not None


def conjuncts(e: ast.Expr) -> list[ast.Expr]:
    if isinstance(e, ast.Binary) and e.op == "and":
        return ast.chain(e)[0]
    return [e]


def _universe(subject: ast.Expr) -> Interval:
    return bounds_of(subject) or EVERYTHING


def _and_interval(parts: list[ast.Expr]) -> dict[str, tuple[ast.Expr, Interval]]:
    return _and_interval_of([comparison(part) for part in parts])


def _and_interval_of(comparisons: list) -> dict[str, tuple[ast.Expr, Interval]]:
    found: dict[str, tuple[ast.Expr, Interval]] = {}
    for c in comparisons:
        if c is None:
            continue
        label, subject, interval = c
        previous = found.get(label, (subject, EVERYTHING))[1]  # a declared range is W608's business
        found[label] = (subject, previous.intersect(interval))
    return found


def _covers(intervals: list[Interval], universe: Interval, typ) -> bool:
    """Whether the union of `intervals` holds every value of `universe` (whole numbers and dates:
    `x <= 4 or x >= 5` leaves no gap)."""
    step = 1 if typ == T.INT else dt.timedelta(days=1) if typ == T.DATE else None
    ordered = sorted((i for i in intervals if not i.empty), key=lambda i: (i.lo is not None, i.lo or 0))
    # Everything below `reach` is covered, and `reach` itself when `reach_in`.
    started = universe.lo is not None
    reach, reach_in = universe.lo, not universe.lo_in
    for interval in ordered:
        if not started:
            if interval.lo is not None:
                return False
            started = True
        elif interval.lo is not None:
            touching = interval.lo == reach and (reach_in or interval.lo_in)
            next_whole = step is not None and reach_in and interval.lo_in and interval.lo == reach + step
            if interval.lo > reach and not next_whole:
                return False
            if interval.lo == reach and not touching:
                return False
        if interval.hi is None:
            return True
        if reach is None or interval.hi > reach:
            reach, reach_in = interval.hi, interval.hi_in
        elif interval.hi == reach:
            reach_in = reach_in or interval.hi_in
    if universe.hi is None or reach is None:
        return False
    return reach > universe.hi or (reach == universe.hi and (reach_in or not universe.hi_in))


class Linter:
    def __init__(self, policy: ast.Policy, bag: DiagnosticBag, severities: dict[str, int],
                 fired_readers: frozenset[int] | None = None):
        self.policy = policy
        self.bag = bag
        self.severities = severities
        self.fired_readers = fired_readers  # the rules calling fired(), when the checker knows them

    def run(self, declared_inputs: bool) -> None:
        if declared_inputs:
            self.unused()
        self.duplicate_reasons()
        for rule in self.policy.rules:
            self.rule_condition(rule)
        for let in self.policy.lets:
            self.conditions(let.value, None)
        for rule in self.policy.rules:
            self.rule_settings(rule)
        for output in self.policy.outputs:
            if output.value is not None:
                self.conditions(output.value, None)
        self.covered_rules()

    # What the passes need of one rule; each reads only that rule (and the types the checker wrote
    # on it), so regua lsp keeps their results for a rule it did not check again (lsp/checking.py).
    def rule_condition(self, rule: ast.Rule) -> None:
        self.conditions(rule.condition, f"the condition of rule '{rule.name}'")

    def rule_settings(self, rule: ast.Rule) -> None:
        for assignment in rule.sets:
            self.conditions(assignment.value, None)

    def rule_reads(self, rule: ast.Rule) -> set[str]:
        """The inputs, lets and tables a rule reads."""
        return _reads([rule.condition] + [a.value for a in rule.sets])

    def rule_conjuncts(self, rule: ast.Rule) -> "_Conjuncts":
        return _Conjuncts(rule.condition)

    def rule_reads_fired(self, rule: ast.Rule) -> bool:
        if self.fired_readers is not None and rule.index not in self.fired_readers:
            return False
        return _reads_fired(rule.condition)

    # ---- unused declarations ----
    def unused(self) -> None:
        p = self.policy
        exprs: list[ast.Expr] = []
        for let in p.lets:
            exprs.append(let.value)
        for table in p.tables:
            exprs += table.inputs
            for row in table.rows:
                exprs.append(row.result)
                for cell in row.cells or []:
                    exprs += cell.values
        used = {o.name for o in p.outputs if o.value is None}
        exprs += [o.value for o in p.outputs if o.value is not None]
        used |= _reads(exprs)
        for rule in p.rules:
            used |= self.rule_reads(rule)
        for f in p.fields:
            if f.name not in used:
                self.bag.warning("W601", f"input '{f.name}' is never read", f.span,
                                 "remove it, or use it in a rule, let, table or output")
        for let in p.lets:
            if let.name not in used:
                self.bag.warning("W602", f"let '{let.name}' is never read", let.span,
                                 f"remove it, or declare it an output (output {let.name})")
        for table in p.tables:
            if table.name not in used:
                self.bag.warning("W603", f"table '{table.name}' is never read", table.span,
                                 f"remove it, or declare it an output (output {table.name})")

    # ---- reasons ----
    def duplicate_reasons(self) -> None:
        first: dict[str, ast.Rule] = {}
        for rule in self.policy.rules:
            code = rule.action.code
            if rule.is_step or not code:
                continue
            if code in first:
                self.bag.warning("W604", f"reason code \"{code}\" is also given by rule '{first[code].name}' "
                                 f"(line {first[code].span.line})", rule.action.span,
                                 "give each rule its own code, or join the conditions with `or`")
            else:
                first[code] = rule

    # ---- conditions ----
    def conditions(self, root: ast.Expr, what: str | None) -> None:
        """W605/W606/W608 for every `and`/`or` chain and comparison under `root`."""
        reported: set[int] = set()
        for node in ast.walk(root):
            if id(node) in reported:
                continue
            if isinstance(node, ast.Binary) and node.op == "and":
                parts, links = ast.chain(node)
                reported |= {id(link) for link in links}
                for label, (_subject, interval) in _and_interval(parts).items():
                    if interval.empty:
                        self.bag.warning("W605", f"this can never be true: no value of {label} satisfies every "
                                         "comparison", node.span, "check the limits (`>` for `<`?)")
                        break
            elif isinstance(node, ast.Binary) and node.op == "or":
                parts, links = ast.chain(node)
                reported |= {id(link) for link in links}
                groups: dict[str, list] = {}
                for part in parts:
                    c = comparison(part)
                    if c is not None:
                        groups.setdefault(c[0], []).append(c)
                for label, found in groups.items():
                    if len(found) > 1 and _covers([c[2] for c in found], _universe(found[0][1]), found[0][1].type):
                        self.bag.warning("W606", f"this is always true: every value of {label} satisfies one "
                                         "of the comparisons", node.span, "check the limits")
                        break
            else:
                # Only a declared range (bounds_of) makes a lone comparison worth a warning: the
                # comparison itself (its subject's text, the interval) is worked out for those only.
                if not _compares_bounded(node):
                    continue
                c = comparison(node)
                if c is None:
                    continue
                label, subject, interval = c
                bounds = bounds_of(subject)
                if bounds is None:
                    continue
                if bounds.intersect(interval).empty:
                    self.bag.warning("W608", f"{label} is declared {bounds.text()}, so this is never true",
                                     node.span, "check the value (another scale?)")
                elif bounds.within(interval):
                    self.bag.warning("W606", f"this is always true: {label} is declared {bounds.text()}",
                                     node.span, "remove the comparison")

    # ---- rules covered by an earlier deny ----
    def covered_rules(self) -> None:
        """W607. Comparing pairs is quadratic: a policy past COVERED_PAIRS comparisons (thousands of
        rules, e.g. generated ones) is checked up to there, so checking stays linear in practice.
        What a pair comparison needs of each condition is worked out once per rule (_Conjuncts)."""
        if not self.severities:
            return
        worst = max(self.severities.values())
        rules = [r for r in self.policy.rules if not r.is_step and r.has_when]
        reads_fired = {id(r): self.rule_reads_fired(r) for r in rules}
        budget = COVERED_PAIRS
        # Earlier rules of the most severe action, in order, with their _Conjuncts.
        self.denies = denies = []
        for rule in rules:
            if not reads_fired[id(rule)] and self.severities.get(rule.action.verb, worst) <= worst and denies:
                earlier, budget = self.covering(rule, self.rule_conjuncts(rule), denies, budget)
                if budget < 0:
                    return
                if earlier is not None:
                    self.bag.warning("W607", f"rule '{rule.name}' never changes the decision: whenever it "
                                     f"fires, rule '{earlier.name}' ({earlier.action.verb}, line "
                                     f"{earlier.span.line}) fires too", rule.condition.span,
                                     "narrow its condition, or merge it into the earlier rule")
            if self.severities.get(rule.action.verb) == worst and not reads_fired[id(rule)]:
                denies.append((rule, self.rule_conjuncts(rule)))

    def covering(self, rule: ast.Rule, mine: "_Conjuncts", denies: list, budget: int) -> tuple[ast.Rule | None, int]:
        """The first of `denies` that fires whenever `rule` does, and the budget of comparisons left
        (negative: it ran out first, and nothing more is said)."""
        for earlier, theirs in denies:
            budget -= 1
            if budget < 0:
                return None, budget
            if mine.implies(theirs):
                return earlier, budget
        return None, budget


#: Most rule pairs W607 compares in one policy (about 1 s of checking).
COVERED_PAIRS = 20_000


def _reads(exprs: list[ast.Expr]) -> set[str]:
    return {n.name for e in exprs for n in ast.walk(e) if isinstance(n, ast.Name) and n.ref in ("input", "let", "table")}


def _reads_fired(e: ast.Expr) -> bool:
    return any(isinstance(n, ast.Call) and n.resolved == "fired" for n in ast.walk(e))


def implies(a: ast.Expr, b: ast.Expr) -> bool:
    """Whether condition `a` being true makes `b` true: each conjunct of b is a conjunct of a (same
    text) or a comparison that a's comparisons on the same value already satisfy."""
    return _Conjuncts(a).implies(_Conjuncts(b))


class _Conjuncts:
    """A condition as `implies` reads it: its conjuncts' texts, their comparisons, and the interval
    each compared value is held to (computed once, compared many times)."""

    __slots__ = ("texts", "parts", "intervals")

    def __init__(self, condition: ast.Expr):
        from .formatter import expr as text

        parts = conjuncts(condition)
        self.parts = [(text(part), comparison(part)) for part in parts]
        self.texts = {label for label, _ in self.parts}
        self.intervals = _and_interval_of([c for _, c in self.parts])

    def implies(self, other: "_Conjuncts") -> bool:
        texts, intervals = self.texts, self.intervals
        for label, c in other.parts:
            if label in texts:
                continue
            if c is None or c[0] not in intervals or not intervals[c[0]][1].within(c[2]):
                return False
        return True


