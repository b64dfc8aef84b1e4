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


def actionable_specs(checked: CheckedPolicy) -> list[ActionableSpec]:
    specs = []
    for target in checked.actionable:
        found = thresholds(checked, target)
        specs.append(ActionableSpec(target.label, target.connector, target.path, target.type_name, target.low,
                                    target.high, target.text, found,
                                    _unit(target.type_name, (target.low, target.high, *found))))
    return specs
