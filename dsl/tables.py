"""Static analysis of decision tables: rows that can never match, overlaps, coverage gaps.

Each row is a box: one set of values per input column. A row is unreachable when the
rows that win before it (earlier rows for `first`, higher priority for `priority`)
cover its whole box; the check subtracts boxes, so unions of several rows count.
Cells that are not constants are treated conservatively: they never help cover
another row, and the row they belong to is only unreachable if its whole column is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from . import ast
from . import types as T
from .constants import NotConstant, constant
from .diagnostics import DiagnosticBag

INF = float("inf")
MAX_BOXES = 4096  # beyond this the analysis gives up quietly (never a false error)
# Row-against-row comparisons one table's analysis may make. Rows are only compared with rows
# that can share a value (an index on a column of listed values: codes, kinds), so real tables
# of tens of thousands of rows stay far below it; past it the remaining rows are not checked and
# the table gets warning W405 (never a false error).
MAX_COMPARISONS = 200_000


# ---- one column's value sets -------------------------------------------------


@dataclass(frozen=True)
class Interval:
    lo: object
    hi: object
    lo_closed: bool
    hi_closed: bool

    def empty(self) -> bool:
        if self.lo == -INF or self.hi == INF:
            return self.lo == self.hi == INF or self.lo == self.hi == -INF
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_closed and self.hi_closed))


class Numeric:
    """A finite union of intervals over an ordered domain; `discrete` for whole numbers."""

    def __init__(self, parts: list[Interval], discrete: bool, dates: bool = False):
        self.discrete = discrete
        self.dates = dates
        self.parts = [self._norm(p) for p in parts]
        self.parts = [p for p in self.parts if not p.empty()]

    def _norm(self, p: Interval) -> Interval:
        if not self.discrete:
            return p
        lo, hi = p.lo, p.hi
        if lo not in (INF, -INF):
            lo = _ceil(lo) if p.lo_closed else _floor(lo) + 1
        if hi not in (INF, -INF):
            hi = _floor(hi) if p.hi_closed else _ceil(hi) - 1
        return Interval(lo, hi, True, True)

    @classmethod
    def everything(cls, discrete: bool) -> "Numeric":
        return cls([Interval(-INF, INF, False, False)], discrete)

    def is_empty(self) -> bool:
        return not self.parts

    def intersect(self, other: "Numeric") -> "Numeric":
        out = []
        for a in self.parts:
            for b in other.parts:
                lo, lo_c = _max_lo(a, b)
                hi, hi_c = _min_hi(a, b)
                out.append(Interval(lo, hi, lo_c, hi_c))
        return Numeric(out, self.discrete)

    def subtract(self, other: "Numeric") -> "Numeric":
        d = self.discrete
        parts = self.parts
        for b in other.parts:
            pieces = []
            for a in parts:
                keep = Numeric([a], d)
                if b.lo != -INF:  # the part of a left of b
                    pieces += keep.intersect(Numeric([Interval(-INF, b.lo, False, not b.lo_closed)], d)).parts
                if b.hi != INF:  # the part of a right of b
                    pieces += keep.intersect(Numeric([Interval(b.hi, INF, not b.hi_closed, False)], d)).parts
            parts = pieces
        return Numeric(parts, d)

    def describe(self, label: str) -> str:
        show = (lambda x: dt.date.fromordinal(x).isoformat()) if self.dates else _show
        texts = []
        for p in self.parts:
            if p.lo == -INF and p.hi == INF:
                texts.append(f"any {label}")
            elif p.lo == -INF:
                texts.append(f"{label} {'<=' if p.hi_closed else '<'} {show(p.hi)}")
            elif p.hi == INF:
                texts.append(f"{label} {'>=' if p.lo_closed else '>'} {show(p.lo)}")
            elif p.lo == p.hi:
                texts.append(f"{label} = {show(p.lo)}")
            elif p.lo_closed and p.hi_closed:
                texts.append(f"{label} in {show(p.lo)}..{show(p.hi)}")
            else:
                texts.append(f"{label} {'>=' if p.lo_closed else '>'} {show(p.lo)} and "
                             f"{'<=' if p.hi_closed else '<'} {show(p.hi)}")
        return ", ".join(texts)


def _floor(x):
    if isinstance(x, Decimal):
        return int(x.to_integral_value(rounding="ROUND_FLOOR"))
    return int(x) if not isinstance(x, float) else int(x // 1)


def _ceil(x):
    if isinstance(x, Decimal):
        return int(x.to_integral_value(rounding="ROUND_CEILING"))
    return -_floor(-x)


def _max_lo(a: Interval, b: Interval):
    if a.lo == b.lo:
        return a.lo, a.lo_closed and b.lo_closed
    return (a.lo, a.lo_closed) if _lt(b.lo, a.lo) else (b.lo, b.lo_closed)


def _min_hi(a: Interval, b: Interval):
    if a.hi == b.hi:
        return a.hi, a.hi_closed and b.hi_closed
    return (a.hi, a.hi_closed) if _lt(a.hi, b.hi) else (b.hi, b.hi_closed)


def _lt(x, y) -> bool:
    if x == -INF or y == INF:
        return x != y
    if x == INF or y == -INF:
        return False
    return x < y


def _show(x) -> str:
    return str(x)


class Discrete:
    """A finite set of values, or everything except a finite set (`negated`)."""

    def __init__(self, values: frozenset, negated: bool = False):
        self.values = values
        self.negated = negated

    @classmethod
    def everything(cls, universe: frozenset | None) -> "Discrete":
        return cls(universe, False) if universe is not None else cls(frozenset(), True)

    def is_empty(self) -> bool:
        return not self.negated and not self.values

    def intersect(self, other: "Discrete") -> "Discrete":
        if not self.negated and not other.negated:
            return Discrete(self.values & other.values)
        if self.negated and other.negated:
            return Discrete(self.values | other.values, True)
        pos, neg = (self, other) if not self.negated else (other, self)
        return Discrete(pos.values - neg.values)

    def subtract(self, other: "Discrete") -> "Discrete":
        return self.intersect(Discrete(other.values, not other.negated))

    def describe(self, label: str) -> str:
        if self.negated:
            return f"{label} not in {sorted(map(str, self.values))}"
        return f"{label} in {sorted(map(str, self.values))}"


# ---- cells to sets -------------------------------------------------------------


def _domain_kind(typ: T.Type):
    if typ in (T.INT, T.DATE):
        return "discrete-numeric"
    if typ in (T.DECIMAL, T.MONEY, T.PERCENT):
        return "numeric"
    if isinstance(typ, T.EnumType) or typ in (T.BOOL, T.TEXT, T.CPF, T.CNPJ):
        return "set"
    return None


def _universe(typ: T.Type):
    if isinstance(typ, T.EnumType):
        return frozenset(typ.values)
    if typ == T.BOOL:
        return frozenset({True, False})
    return None


def _num(value):
    return value.toordinal() if isinstance(value, dt.date) else value


def cell_set(cell: ast.Cell, typ: T.Type):
    """The set of column values a cell accepts, or None when it cannot be known statically."""
    kind = _domain_kind(typ)
    if kind is None:
        return None
    try:
        values = [constant(v) for v in cell.values]
    except NotConstant:
        return None
    if kind == "set":
        if any(isinstance(v, (list, dict)) for v in values):
            return None
        if cell.kind == "any":
            return Discrete.everything(_universe(typ))
        if cell.kind in ("equals", "in"):
            return Discrete(frozenset(values))
        if cell.kind == "compare" and cell.op == "!=":
            return Discrete(frozenset(values), True).intersect(Discrete.everything(_universe(typ)))
        return None
    discrete = kind == "discrete-numeric"
    wanted = (dt.date,) if typ == T.DATE else (int, Decimal)
    if any(isinstance(v, bool) or not isinstance(v, wanted) for v in values):
        return None  # a wrongly typed cell is reported as E205 by the type pass; nothing to analyse
    nums = [_num(v) for v in values]
    if cell.kind == "any":
        return Numeric.everything(discrete)
    if cell.kind == "range":
        return Numeric([Interval(nums[0], nums[1], True, True)], discrete)
    if cell.kind in ("equals", "in"):
        return Numeric([Interval(v, v, True, True) for v in nums], discrete)
    if cell.kind == "compare":
        v = nums[0]
        return {
            "==": Numeric([Interval(v, v, True, True)], discrete),
            "<": Numeric([Interval(-INF, v, False, False)], discrete),
            "<=": Numeric([Interval(-INF, v, False, True)], discrete),
            ">": Numeric([Interval(v, INF, False, False)], discrete),
            ">=": Numeric([Interval(v, INF, True, False)], discrete),
            "!=": Numeric([Interval(-INF, v, False, False), Interval(v, INF, False, False)], discrete),
        }[cell.op]
    return None


def _everything(typ: T.Type):
    kind = _domain_kind(typ)
    if kind == "set":
        return Discrete.everything(_universe(typ))
    if kind is not None:
        result = Numeric.everything(kind == "discrete-numeric")
        result.dates = typ == T.DATE
        return result
    return None


def _box_minus(box: list, cover: list) -> list[list]:
    if any(b.intersect(c).is_empty() for b, c in zip(box, cover)):
        return [box]
    out = []
    prefix = list(box)
    for d, c in enumerate(cover):
        outside = prefix[d].subtract(c)
        if not outside.is_empty():
            out.append(prefix[:d] + [outside] + prefix[d + 1:])
        prefix[d] = prefix[d].intersect(c)
    return out


def _covered(box: list, covers: list[list], budget: "_Budget") -> bool | None:
    """Whether `covers` together cover `box`; None when the budget ran out first."""
    remaining = [box]
    for cover in covers:
        if not budget.spend(len(remaining)):
            return None
        nxt = []
        for b in remaining:
            nxt.extend(_box_minus(b, cover))
            if len(nxt) > MAX_BOXES:
                return False
        remaining = nxt
        if not remaining:
            return True
    return not remaining


# ---- the pass --------------------------------------------------------------------


class _Budget:
    """Counts comparisons (a box against a row, a coverage step); `stopped_at` is the first row
    left unchecked once they run out."""

    def __init__(self, limit: int):
        self.left = limit
        self.stopped_at: int | None = None

    def spend(self, comparisons: int) -> bool:
        self.left -= comparisons
        return self.left >= 0


class _Index:
    """Which rows can share a value with row i: all of them, unless a column lists its values
    (a set column whose cells are `"a"` or `in [...]`). Then rows are indexed by those values,
    and a row is compared only with the rows listing one of its values and the rows that accept
    any value there. Exact: two rows with no value in common in one column cannot overlap, and a
    row cannot help cover another it shares no value with (dsl.tables._box_minus)."""

    def __init__(self, cover_boxes: list, test_boxes: list, column_types: list):
        self.n = len(cover_boxes)
        self.column = next((d for d in range(len(column_types))
                            if sum(_listed(box[d]) is not None for box in cover_boxes) * 2 > len(cover_boxes)), None)
        self.by_value: dict = {}
        self.open_rows: list[int] = []  # rows that accept values they do not list (ranges, negations)
        self.test_values: list = []
        if self.column is None:
            return
        d = self.column
        for j, box in enumerate(cover_boxes):
            values = _listed(box[d])
            if values is not None:
                for value in values:
                    self.by_value.setdefault(value, []).append(j)
            elif not box[d].is_empty():
                self.open_rows.append(j)
        self.test_values = [_listed(box[d]) for box in test_boxes]

    def around(self, i: int) -> list[int]:
        """The rows that can share a value with row i (itself excluded), in row order."""
        if self.column is None or self.test_values[i] is None:
            return [j for j in range(self.n) if j != i]
        found = set(self.open_rows)
        for value in self.test_values[i]:
            found.update(self.by_value.get(value, ()))
        found.discard(i)
        return sorted(found)

    def before(self, i: int) -> list[int]:
        if self.column is None or self.test_values[i] is None:
            return list(range(i))
        return [j for j in self.around(i) if j < i]


def _listed(part) -> frozenset | None:
    """The values a cell lists (`"a"`, `in ["a", "b"]`, `3`, `in [1, 2]` in a whole-number
    column), or None when it accepts values it does not list (a range, `!=`, `-`)."""
    if isinstance(part, Discrete):
        return None if part.negated else part.values
    if isinstance(part, Numeric) and part.discrete and 0 < len(part.parts) <= 64 \
            and all(p.lo == p.hi for p in part.parts):
        return frozenset(p.lo for p in part.parts)
    return None


def analyse_table(table: ast.Table, column_types: list[T.Type], bag: DiagnosticBag, column_labels: list[str]) -> None:
    rows = [r for r in table.rows if not r.is_else]
    if any(_domain_kind(t) is None for t in column_types):
        return
    # For each row: the box used to cover others (unknown cells -> empty) and the box
    # tested for reachability (unknown cells -> everything).
    cover_boxes, test_boxes = [], []
    for row in rows:
        cover, test = [], []
        for cell, typ in zip(row.cells or [], column_types):
            known = cell_set(cell, typ)
            everything = _everything(typ)
            cover.append(known if known is not None else everything.subtract(everything))
            test.append(known if known is not None else everything)
        cover_boxes.append(cover)
        test_boxes.append(test)

    for i, row in enumerate(rows):
        if any(part.is_empty() for part in test_boxes[i]):
            bag.error("E401", f"this row of table '{table.name}' can never match: a cell accepts no value "
                      "(e.g. a range whose start is above its end)", row.span)
    budget = _Budget(MAX_COMPARISONS)
    candidates = _Index(cover_boxes, test_boxes, column_types)
    if table.hit_policy in ("first", "priority"):
        for i, row in enumerate(rows):
            if any(part.is_empty() for part in test_boxes[i]):
                continue
            if table.hit_policy == "first":
                winners = candidates.before(i)
            else:
                winners = [j for j in candidates.around(i) if rows[j].priority > row.priority
                           or (rows[j].priority == row.priority and j < i)]
            covered = _covered(test_boxes[i], [cover_boxes[j] for j in winners], budget) if winners else False
            if covered is None:
                budget.stopped_at = i
                break
            if covered:
                which = "earlier rows" if table.hit_policy == "first" else "rows that win over it"
                bag.error("E401", f"this row of table '{table.name}' can never match: {which} cover all its values",
                          row.span)
    elif table.hit_policy == "unique":
        for i in range(len(rows)):
            earlier = candidates.before(i)
            if not budget.spend(len(earlier)):
                budget.stopped_at = i
                break
            for j in earlier:
                overlap = [a.intersect(b) for a, b in zip(cover_boxes[i], cover_boxes[j])]
                if not any(part.is_empty() for part in overlap):
                    bag.error("E402", f"rows {j + 1} and {i + 1} of unique table '{table.name}' both match "
                              + "; ".join(p.describe(lbl) for p, lbl in zip(overlap, column_labels)), rows[i].span)

    has_else = any(r.is_else for r in table.rows)
    if (budget.stopped_at is None and len(column_types) == 1 and not has_else and table.hit_policy != "collect"
            and _domain_kind(column_types[0]) in ("numeric", "discrete-numeric")):
        rest = _everything(column_types[0])
        for cover in cover_boxes:
            if not budget.spend(len(rest.parts)):
                budget.stopped_at = len(rows) - 1
                break
            rest = rest.subtract(cover[0])
        else:
            rest.dates = column_types[0] == T.DATE
            if not rest.is_empty():
                bag.warning("W404", f"no row of table '{table.name}' matches {rest.describe(column_labels[0])}",
                            table.span, "add the missing rows or an `else` row")
    if budget.stopped_at is not None:
        bag.warning("W405", f"table '{table.name}' has too many rows that can match the same values to analyse "
                    f"it whole: from row {budget.stopped_at + 1} on, rows that never match (E401), overlap "
                    "(E402) or leave values uncovered (W404) are not reported", table.span,
                    "split the table, or key its rows on a column of listed values (codes, kinds)")
