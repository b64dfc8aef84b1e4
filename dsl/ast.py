"""The policy syntax tree: plain dataclasses, each node with its source span.

The parser produces it, the checker annotates it (resolved names, types), the
graph builder and code generator read it, and the formatter prints it back.

The node classes are defined in dsl.ast_nodes and re-exported here; this module adds the one
way to walk expressions (below).
"""

from __future__ import annotations

from typing import Any

from .ast_nodes import (  # noqa: F401 — re-exported: every pass reads the nodes as ast.Rule, ast.Binary…
    Action,
    Actionable,
    ActionableDecl,
    Assignment,
    Attribute,
    Binary,
    Call,
    Cell,
    Comprehension,
    DefaultDecl,
    Description,
    EnumDecl,
    Expr,
    Field,
    IfExpr,
    InList,
    InputBlock,
    InRange,
    Let,
    ListLit,
    Literal,
    Name,
    Node,
    OnErrorDecl,
    Otherwise,
    OutputDecl,
    OutputItem,
    Policy,
    RecordDecl,
    RecordLit,
    Row,
    Rule,
    Table,
    TestDecl,
    TestStmt,
    TypeRef,
    Unary,
)

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
