"""The node classes of the policy syntax tree: plain dataclasses, each node with its source span
(expressions, declarations, tests and the policy itself, with Policy's filtered views of its
items). They are apart from dsl.ast, which re-exports every one of them (the passes read them as
`ast.Rule`, `ast.Binary`…) and adds the ways to walk expressions, so that what a node holds and
how the passes traverse the nodes can each be read on their own.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from .diagnostics import NO_SPAN, Span


@dataclass(eq=False)
class Node:
    span: Span = field(default=NO_SPAN, kw_only=True)
    # While parsing: the node's extent as a child when that is not its span (dsl.ast_builder).
    _x = None


# ---- expressions -------------------------------------------------------------


@dataclass(eq=False)
class Expr(Node):
    # Filled by the checker: the static type of the expression.
    type: Any = field(default=None, kw_only=True, repr=False)


@dataclass(eq=False)
class Literal(Expr):
    """A literal. `kind` is one of int, decimal, money, percent, days, business_days, text, date, bool."""

    kind: str
    value: Any
    text: str  # as written, for the formatter


@dataclass(eq=False)
class Name(Expr):
    name: str
    # Filled by the checker: what the name refers to ("input", "let", "table", "local",
    # "builtin", "enum_value", "connector_namespace").
    ref: str | None = field(default=None, kw_only=True)


@dataclass(eq=False)
class Attribute(Expr):
    target: Expr
    attr: str


@dataclass(eq=False)
class Call(Expr):
    """A function call `f(a, b)` or a connector lookup `bureau.serasa(cnpj)` (`namespace` set)."""

    func: str
    args: list[Expr]
    namespace: str | None = None
    # Filled by the checker: "function" or "connector".
    resolved: str | None = field(default=None, kw_only=True)


@dataclass(eq=False)
class Comprehension(Expr):
    """`element for var in source [where condition]`, only as the argument of an aggregate."""

    element: Expr
    var: str
    source: Expr
    condition: Expr | None


@dataclass(eq=False)
class Unary(Expr):
    op: str  # "-" or "not"
    operand: Expr


@dataclass(eq=False)
class Binary(Expr):
    op: str  # + - * / == != < <= > >= and or
    left: Expr
    right: Expr


@dataclass(eq=False)
class InRange(Expr):
    value: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(eq=False)
class InList(Expr):
    value: Expr
    container: Expr
    negated: bool = False


@dataclass(eq=False)
class IfExpr(Expr):
    condition: Expr
    then: Expr
    otherwise: Expr


@dataclass(eq=False)
class Otherwise(Expr):
    """`a otherwise b`: the value of `a`, or `b` when evaluating `a` fails."""

    value: Expr
    fallback: Expr


@dataclass(eq=False)
class ListLit(Expr):
    items: list[Expr]


@dataclass(eq=False)
class RecordLit(Expr):
    entries: list[tuple[str, Expr]]


# ---- declarations ------------------------------------------------------------


@dataclass(eq=False)
class TypeRef(Node):
    name: str  # a builtin type, enum or record name; "list" for lists
    element: "TypeRef | None" = None


@dataclass(eq=False)
class Field(Node):
    name: str
    type_ref: TypeRef
    default: Expr | None = None


@dataclass(eq=False)
class Description(Node):
    text: str


@dataclass(eq=False)
class InputBlock(Node):
    fields: list[Field]


@dataclass(eq=False)
class RecordDecl(Node):
    name: str
    fields: list[Field]


@dataclass(eq=False)
class EnumDecl(Node):
    name: str
    values: list[str]


@dataclass(eq=False)
class Let(Node):
    name: str
    value: Expr


@dataclass(eq=False)
class Action(Node):
    verb: str  # approve / review / deny for credit policies
    code: str | None = None
    message: str | None = None


@dataclass(eq=False)
class Assignment(Node):
    name: str
    value: Expr


@dataclass(eq=False)
class Rule(Node):
    name: str
    condition: Expr
    action: Action
    sets: list[Assignment] = field(default_factory=list)
    index: int = 0  # declaration order among rules
    # Collection steps are rules placed by days relative to the due date (D-3 is -3).
    day: int | None = None  # None: a plain rule
    has_when: bool = True  # False: a step written without `when` (its condition is `true`)

    @property
    def is_step(self) -> bool:
        return self.day is not None


@dataclass(eq=False)
class Cell(Node):
    """One condition cell of a table row: any, compare, range, in, equals."""

    kind: str
    op: str | None = None
    values: list[Expr] = field(default_factory=list)


@dataclass(eq=False)
class Row(Node):
    cells: list[Cell] | None  # None for the `else` row
    result: Expr
    priority: int = 0

    @property
    def is_else(self) -> bool:
        return self.cells is None


@dataclass(eq=False)
class Table(Node):
    name: str
    hit_policy: str
    inputs: list[Expr]
    rows: list[Row]
    hit_policy_span: Span = NO_SPAN


@dataclass(eq=False)
class DefaultDecl(Node):
    action: Action


@dataclass(eq=False)
class OnErrorDecl(Node):
    action: Action


@dataclass(eq=False)
class OutputItem(Node):
    name: str
    value: Expr | None


@dataclass(eq=False)
class OutputDecl(Node):
    items: list[OutputItem]


@dataclass(eq=False)
class Actionable(Node):
    """One actionable fact: an input (`path == [name]`) or a connector fact
    (`bureau.serasa.score.value`: the connector's qualified name, then the field path), which a
    counterfactual explanation may move within `low..high`."""

    path: list[str]
    low: Expr
    high: Expr
    label: str | None = None

    @property
    def target(self) -> str:
        return ".".join(self.path)


@dataclass(eq=False)
class ActionableDecl(Node):
    items: list[Actionable]


# ---- tests -------------------------------------------------------------------


@dataclass(eq=False)
class TestStmt(Node):
    kind: str  # given / as_of / fixture / failure / outcome / reasons / output / steps
    name: str | None = None
    value: Any = None  # Expr, list of (name, Expr), a date, or a list of codes


@dataclass(eq=False)
class TestDecl(Node):
    name: str
    statements: list[TestStmt]


# ---- the policy --------------------------------------------------------------


# Policy.of_type's filters, per policy (by identity: Policy has eq=False), dropped with it.
_OF_TYPE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(eq=False)
class Policy(Node):
    name: str
    kind: str
    version: str | None
    items: list[Node]
    file: str = "<policy>"
    source: str = ""
    name_span: Span = NO_SPAN
    kind_span: Span = NO_SPAN

    def of_type(self, cls):
        """The items that are `cls`, in order (a new list). Each filter is kept while `items` is the
        same list of the same length: the passes over a policy read `rules`, `lets`... dozens of
        times, and each filter goes through every item (10,000 rules: 51 reads, ~50 ms)."""
        items = self.items
        kept = _OF_TYPE.get(self)
        if kept is None or kept[0] is not items or kept[1] != len(items):
            kept = _OF_TYPE[self] = (items, len(items), {})
        found = kept[2].get(cls)
        if found is None:
            found = kept[2][cls] = [item for item in items if isinstance(item, cls)]
        return list(found)

    @property
    def description(self) -> str | None:
        found = self.of_type(Description)
        return found[0].text if found else None

    @property
    def fields(self) -> list[Field]:
        return [f for block in self.of_type(InputBlock) for f in block.fields]

    @property
    def rules(self) -> list[Rule]:
        return self.of_type(Rule)

    @property
    def tables(self) -> list[Table]:
        return self.of_type(Table)

    @property
    def lets(self) -> list[Let]:
        return self.of_type(Let)

    @property
    def tests(self) -> list[TestDecl]:
        return self.of_type(TestDecl)

    @property
    def actionable(self) -> list[Actionable]:
        return [i for decl in self.of_type(ActionableDecl) for i in decl.items]

    @property
    def outputs(self) -> list[OutputItem]:
        return [i for decl in self.of_type(OutputDecl) for i in decl.items]
