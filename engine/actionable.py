"""Compile-time part of counterfactual explanations: each actionable fact with the thresholds the
policy compares it against, read from the checked syntax tree.

A threshold is a constant that an expression depending on the fact is compared with: in a rule
(`score <= 300`), a `let`, a range (`score in 501..700`) or a table cell (`>= 701` in a table
`by score`). "Depending on" follows lets and tables (`let score = relatorio.score.value`, `table
teto by score`). For a comparison that is linear in the fact (`x > 300`) the threshold is exact;
for arithmetic against other values (`saldo + valor_pedido > limite`) the search in
engine.counterfactuals bisects between the values it tries. Only constants of the fact's own type
are kept (a money fact is never compared with an int).

The specs live in PolicyMeta (pickled in the disk cache), so a warm start needs no syntax tree:
ActionableSpec has a module of its own (engine.actionable_spec), as unpickling imports the module
of each class and this one imports the syntax tree (dsl.ast alone is ~20 ms of a CLI start).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from regua.dsl import ast
from regua.dsl import types as T
from regua.dsl.constants import NotConstant, constant

from .actionable_spec import ActionableSpec

if TYPE_CHECKING:
    from regua.dsl.checker import CheckedPolicy

_COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")


def _unit(type_name: str, values) -> object:
    if type_name == "int":
        return 1
    places = 2 if type_name != "percent" else 4  # a percent is a fraction: 0.0001 is 0.01 point
    for value in values:
        if isinstance(value, Decimal):
            exponent = value.normalize().as_tuple().exponent
            if isinstance(exponent, int):
                places = max(places, -exponent)
    return Decimal(1).scaleb(-min(places, 8))


def _calls(expr, connector: str) -> bool:
    return any(isinstance(n, ast.Call) and n.namespace is not None and f"{n.namespace}.{n.func}" == connector
               for n in ast.walk(expr))


def _dependents(checked: CheckedPolicy, target) -> set[str]:
    """The names whose value may change when the fact does: the input itself, or the lets that call
    the connector, and every let and table computed from them."""
    policy = checked.policy
    found: set[str] = {target.path[0]} if target.connector is None else set()
    if target.connector is not None:
        found |= {let.name for let in policy.lets if _calls(let.value, target.connector)}
    for name in checked.order:
        symbol = checked.symbols.get(name)
        if symbol is None or name in found:
            continue
        if any(ast.free_names(e) & found for e in ast.value_exprs(symbol.node)):
            found.add(name)
    return found


def _roots(policy: ast.Policy) -> list:
    roots = [let.value for let in policy.lets] + [r.condition for r in policy.rules]
    roots += [a.value for r in policy.rules for a in r.sets]
    roots += [o.value for o in policy.outputs if o.value is not None]
    for table in policy.tables:
        roots += [row.result for row in table.rows]
    return roots


def _same_type(expr, type_name: str) -> bool:
    typ = getattr(expr, "type", None)
    return isinstance(typ, T.Prim) and typ.name == type_name


def _constant(expr):
    try:
        value = constant(expr)
    except NotConstant:
        return None
    return value if isinstance(value, (int, Decimal)) and not isinstance(value, bool) else None


def _depends(expr, found: set[str], connector: str | None) -> bool:
    return bool(ast.free_names(expr) & found) or (connector is not None and _calls(expr, connector))


def thresholds(checked: CheckedPolicy, target) -> tuple:
    found = _dependents(checked, target)
    policy, kind, out = checked.policy, target.type_name, set()

    def take(subject, *others) -> None:
        if not _depends(subject, found, target.connector):
            return
        for other in others:
            value = _constant(other)
            if value is not None and (_same_type(other, kind) or _same_type(subject, kind)):
                out.add(value)

    for root in _roots(policy):
        for node in ast.walk(root):
            if isinstance(node, ast.Binary) and node.op in _COMPARISONS:
                take(node.left, node.right)
                take(node.right, node.left)
            elif isinstance(node, ast.InRange):
                take(node.value, node.low, node.high)
    for table in policy.tables:
        for column, subject in enumerate(table.inputs):
            for row in table.rows:
                if row.cells is not None and column < len(row.cells):
                    take(subject, *row.cells[column].values)
    return tuple(sorted(out))


# ---- exact points: where a comparison of the fact changes its answer ----------------------------

# `fact OP c` changes its answer between the two values of the pair (-1: c - unit and c; +1: c and
# c + unit; 0: both sides of c, for == and !=).
_SIDE = {"<": -1, ">=": -1, "<=": 1, ">": 1, "==": 0, "!=": 0}
_FLIPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "==", "!=": "!="}


def _chain(node) -> tuple[object, list[str]]:
    """`relatorio.score.value` as (the Name `relatorio`, ["score", "value"])."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.target
    return node, attrs[::-1]


class _Reads:
    """Whether an expression may read the fact: the input itself or a name computed from it; for a
    connector fact, the answer read along the fact's path (`relatorio.score.value`, `relatorio.score`)
    or whole (`available(relatorio)`), never another field of it (`relatorio.restrictions`)."""

    def __init__(self, checked: CheckedPolicy, target):
        self.connector = target.connector
        self.path = list(target.path)
        policy = checked.policy
        self.carriers = set()  # lets holding the connector's whole answer
        self.found: set[str] = set()
        if target.connector is None:
            self.found.add(target.path[0])
            self.path = []
        else:
            self.carriers = {let.name for let in policy.lets if self._lookup(let.value)}
        for name in checked.order:
            symbol = checked.symbols.get(name)
            if symbol is None or name in self.found or name in self.carriers:
                continue
            if any(self(e) for e in ast.value_exprs(symbol.node)):
                self.found.add(name)

    def _lookup(self, node) -> bool:
        return isinstance(node, ast.Call) and node.namespace is not None and \
            f"{node.namespace}.{node.func}" == self.connector

    def __call__(self, expr) -> bool:
        stack = [expr]
        while stack:
            node = stack.pop()
            if node is None:
                continue
            if isinstance(node, ast.Attribute) and self.connector is not None:
                root, attrs = _chain(node)
                if (isinstance(root, ast.Name) and root.name in self.carriers) or self._lookup(root):
                    common = min(len(attrs), len(self.path))
                    if attrs[:common] == self.path[:common]:
                        return True
                    continue  # another field of the answer
                stack.append(root)
            elif isinstance(node, ast.Name):
                if node.name in self.found or node.name in self.carriers:
                    return True
            elif self._lookup(node):
                return True
            else:
                stack.extend(ast.direct_children(node))
        return False


def _breaks(checked: CheckedPolicy, target) -> list[tuple[object, int]]:
    """(constant, side) for each comparison of an expression that may read the fact with a constant
    of the fact's type, the side as in _SIDE."""
    reads = _Reads(checked, target)
    policy, kind, out = checked.policy, target.type_name, []

    def take(subject, other, side: int) -> None:
        value = _constant(other)
        if value is not None and (_same_type(other, kind) or _same_type(subject, kind)) and reads(subject):
            out.append((value, side))

    for root in _roots(policy):
        for node in ast.walk(root):
            if isinstance(node, ast.Binary) and node.op in _SIDE:
                take(node.left, node.right, _SIDE[node.op])
                take(node.right, node.left, _SIDE[_FLIPPED[node.op]])
            elif isinstance(node, ast.InRange):
                take(node.value, node.low, -1)
                take(node.value, node.high, 1)
    for table in policy.tables:
        for column, subject in enumerate(table.inputs):
            for row in table.rows:
                if row.cells is None or column >= len(row.cells):
                    continue
                cell = row.cells[column]
                if cell.kind == "compare" and cell.op in _SIDE and cell.values:
                    take(subject, cell.values[0], _SIDE[cell.op])
                elif cell.kind == "range" and len(cell.values) == 2:
                    take(subject, cell.values[0], -1)
                    take(subject, cell.values[1], 1)
                else:
                    for value in cell.values:
                        take(subject, value, 0)
    return out


def _points(breaks: list[tuple[object, int]], unit) -> tuple:
    points = set()
    for value, side in breaks:
        points.add(value)
        if side <= 0:
            points.add(value - unit)
        if side >= 0:
            points.add(value + unit)
    return tuple(sorted(points))


def actionable_specs(checked: CheckedPolicy) -> list[ActionableSpec]:
    specs = []
    for target in checked.actionable:
        found = thresholds(checked, target)
        breaks = _breaks(checked, target)
        unit = _unit(target.type_name, (target.low, target.high, *found, *(value for value, _ in breaks)))
        specs.append(ActionableSpec(target.label, target.connector, target.path, target.type_name, target.low,
                                    target.high, target.text, found, unit, _points(breaks, unit)))
    return specs
