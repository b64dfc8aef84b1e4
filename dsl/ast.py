"""The policy syntax tree: plain dataclasses, each node with its source span.

The parser produces it, the checker annotates it (resolved names, types), the
graph builder and code generator read it, and the formatter prints it back.
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


# ---- walking the tree ----------------------------------------------------------
#
# One way to walk expressions, used by inference, code generation, the formatter, the rule graph
# and the connector projection. Long chains such as `a or b or c ...` (the parser makes them
# left-deep Binary nodes) are seen as one node with many operands, so a recursive visitor recurses
# by the real nesting of the expression, never by the length of a chain; `check_nesting` bounds that.

# Binary operators that chain: a left operand with the same group continues the chain.
CHAIN_GROUPS: dict[str, str] = {"or": "or", "and": "and", "+": "+", "-": "+", "*": "*", "/": "*"}
#: The deepest expression nesting a policy may use (chains count once): beyond it the generated
#: Python would exceed CPython's own limits.
MAX_NESTING = 64


def chain(node: Binary) -> tuple[list[Expr], list[Binary]]:
    """The operands of the chain `node` ends, left to right, and its Binary nodes, innermost first."""
    group = CHAIN_GROUPS.get(node.op)
    links: list[Binary] = [node]
    left = node.left
    while group is not None and isinstance(left, Binary) and CHAIN_GROUPS.get(left.op) == group:
        links.append(left)
        left = left.left
    links.reverse()
    return [left] + [link.right for link in links], links


def direct_children(node) -> list:
    """The sub-expressions of `node` (None for an absent `where`), a new list."""
    try:
        return _CHILDREN[node.__class__](node)
    except KeyError:  # a class not in the table (a subclass): the isinstance chain
        return _direct_children(node)


def _direct_children(node) -> list:
    if isinstance(node, Attribute):
        return [node.target]
    if isinstance(node, Call):
        return list(node.args)
    if isinstance(node, Comprehension):
        return [node.source, node.condition, node.element]
    if isinstance(node, Unary):
        return [node.operand]
    if isinstance(node, Binary):
        return [node.left, node.right]
    if isinstance(node, InRange):
        return [node.value, node.low, node.high]
    if isinstance(node, InList):
        return [node.value, node.container]
    if isinstance(node, IfExpr):
        return [node.condition, node.then, node.otherwise]
    if isinstance(node, Otherwise):
        return [node.value, node.fallback]
    if isinstance(node, ListLit):
        return list(node.items)
    if isinstance(node, RecordLit):
        return [v for _, v in node.entries]
    return []


# Every walk of every pass goes through direct_children: one table look-up, not a chain of isinstance.
_CHILDREN = {
    Attribute: lambda n: [n.target],
    Call: lambda n: list(n.args),
    Comprehension: lambda n: [n.source, n.condition, n.element],
    Unary: lambda n: [n.operand],
    Binary: lambda n: [n.left, n.right],
    InRange: lambda n: [n.value, n.low, n.high],
    InList: lambda n: [n.value, n.container],
    IfExpr: lambda n: [n.condition, n.then, n.otherwise],
    Otherwise: lambda n: [n.value, n.fallback],
    ListLit: lambda n: list(n.items),
    RecordLit: lambda n: [v for _, v in n.entries],
    Name: lambda n: [],
    Literal: lambda n: [],
}


def children(node) -> list:
    """Like `direct_children`, but a chain's children are all its operands."""
    if isinstance(node, Binary) and node.op in CHAIN_GROUPS:
        return chain(node)[0]
    return direct_children(node)


def walk(expr):
    """Every expression node under `expr`, itself included, depth first (iterative)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        yield node
        stack.extend(direct_children(node))


def value_exprs(node) -> list:
    """The expressions a `let` or a table computes its value from (a table: its inputs, and every
    row's conditions and result); nothing for any other item."""
    if isinstance(node, Let):
        return [node.value]
    if isinstance(node, Table):
        exprs = list(node.inputs)
        for row in node.rows:
            exprs.append(row.result)
            for cell in row.cells or []:
                exprs.extend(cell.values)
        return exprs
    return []


def free_names(expr) -> set[str]:
    """Names an expression reads, minus comprehension variables."""
    found: set[str] = set()
    stack: list[tuple[Any, frozenset]] = [(expr, frozenset())]
    while stack:
        node, bound = stack.pop()
        if node is None:
            continue
        if isinstance(node, Name):
            if node.name not in bound:
                found.add(node.name)
        elif isinstance(node, Comprehension):
            inner = bound | {node.var}
            stack += [(node.source, bound), (node.condition, inner), (node.element, inner)]
        else:
            stack += [(child, bound) for child in direct_children(node)]
    return found


def always_read(expr) -> list[Name]:
    """The Name nodes an expression reads whatever the values: short-circuits excluded (only the
    left operand of `and`/`or`, the condition of `if`, the value of `otherwise`, a comprehension's source)."""
    found: list[Name] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        if isinstance(node, Name):
            found.append(node)
        elif isinstance(node, Binary) and node.op in ("and", "or"):
            stack.append(chain(node)[0][0])
        elif isinstance(node, IfExpr):
            stack.append(node.condition)
        elif isinstance(node, Otherwise):
            stack.append(node.value)
        elif isinstance(node, Comprehension):
            stack.append(node.source)
        else:
            stack.extend(direct_children(node))
    return found


def unconditional(expr) -> set[str]:
    """Inputs, lets and tables an expression always reads (see always_read)."""
    return {n.name for n in always_read(expr) if n.ref in ("input", "let", "table")}


def nesting(expr) -> tuple[int, Expr | None]:
    """How deeply `expr` nests (a chain counts once), and the first node found at MAX_NESTING + 1."""
    deepest, stack = 0, [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        if node is None:
            continue
        if depth > MAX_NESTING:
            return depth, node
        if depth > deepest:
            deepest = depth
        depth += 1
        for child in children(node):  # a loop, not a generator: every node of the policy comes here
            stack.append((child, depth))
    return deepest, None


class Visitor:
    """`visit(node)` calls `visit_<ClassName>(node)`, or `generic_visit(node)` when the subclass
    has no such method; the method is looked up once per class (a cached dispatch table)."""

    _dispatch: dict[type, Any]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls._dispatch = {}

    def visit(self, node):
        try:
            method = self._dispatch[type(node)]
        except KeyError:
            cls = type(self)
            method = getattr(cls, "visit_" + type(node).__name__, None) or cls.generic_visit
            self._dispatch[type(node)] = method
        return method(self, node)

    def generic_visit(self, node) -> None:
        """Visit the children (a chain's operands), skipping an absent `where`."""
        for child in children(node):
            if child is not None:
                self.visit(child)
