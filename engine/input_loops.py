"""Whether a policy's evaluation cost grows with its input: some list the generated code loops over
comes from the input (PolicyMeta.input_loops; the server then never evaluates it on its event loop).
"""

from __future__ import annotations

from regua.dsl import ast
from regua.dsl.checker import CheckedPolicy


def reads_input(checked: CheckedPolicy, exprs: list[ast.Expr]) -> bool:
    """Whether any of `exprs` reads an input, directly or through lets and tables (iterative).
    A connector's answer does not count, whatever its arguments: its size is the provider's."""
    symbols, seen, stack = checked.symbols, set(), list(exprs)
    while stack:
        for name in _names_outside_lookups(stack.pop()):
            symbol = symbols.get(name)
            if symbol is None or name in seen:
                continue
            seen.add(name)
            if symbol.kind == "input":
                return True
            node = symbol.node
            if isinstance(node, ast.Let):
                stack.append(node.value)
            elif isinstance(node, ast.Table):
                stack.extend(node.inputs)
                for row in node.rows:
                    stack.append(row.result)
                    stack.extend(value for cell in row.cells or [] for value in cell.values)
    return False


def _names_outside_lookups(expr) -> set[str]:
    """ast.free_names, without looking into the arguments of connector lookups."""
    found: set[str] = set()
    stack = [(expr, frozenset())]
    while stack:
        node, bound = stack.pop()
        if node is None or (isinstance(node, ast.Call) and node.resolved == "connector"):
            continue
        if isinstance(node, ast.Name):
            if node.name not in bound:
                found.add(node.name)
        elif isinstance(node, ast.Comprehension):
            inner = bound | {node.var}
            stack += [(node.source, bound), (node.condition, inner), (node.element, inner)]
        else:
            stack += [(child, bound) for child in ast.direct_children(node)]
    return found
