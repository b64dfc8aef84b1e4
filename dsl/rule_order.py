"""The order rules run in, from their fired(...) reads.

Rules run in declaration order, except that a rule reading fired(x) runs after x. A cycle of such
reads (including a rule reading its own result, or two deny rules both reading fired(deny)) is
E303, located at the fired(...) that closes it. The checker runs this as its "rule order" pass,
after name resolution has marked each fired() argument as a rule or an action; `regua graph`
uses `fired_references` for its fired edges.
"""

from __future__ import annotations

from . import ast
from .diagnostics import DiagnosticBag


def fired_references(rule: ast.Rule, rules: list[ast.Rule], by_name: dict[str, ast.Rule]
                     ) -> list[tuple[ast.Rule, ast.Expr]]:
    """The rules whose result `rule`'s condition reads through fired(...), with the reading call:
    fired(NAME) reads that rule, fired(VERB) every other rule with that action. Needs the checker's
    name resolution (the argument's `ref`)."""
    found = []
    for node in ast.walk(rule.condition):
        if isinstance(node, ast.Call) and node.resolved == "fired" and node.args:
            arg = node.args[0]
            if getattr(arg, "ref", None) == "rule" and by_name[arg.name] is not rule:
                found.append((by_name[arg.name], node))
            elif getattr(arg, "ref", None) == "action":
                found += [(other, node) for other in rules if other is not rule and other.action.verb == arg.name]
    return found


def order_rules(rules: list[ast.Rule], by_name: dict[str, ast.Rule], bag: DiagnosticBag,
                reads=fired_references) -> list[int]:
    """Rule indexes in the order they run: depth-first over the fired() reads, so a rule comes after
    the rules it reads and otherwise keeps its declaration place. Reports E303 on a cycle. `reads`
    is fired_references or one that knows without walking which rules read nothing (regua lsp)."""
    references = {r.index: reads(r, rules, by_name) for r in rules}
    after = {index: sorted({o.index for o, _ in found}) for index, found in references.items()}
    calls = {(index, o.index): call for index, found in references.items() for o, call in found}
    state: dict[int, int] = {}  # 1: on the current path, 2: placed
    order: list[int] = []
    for root in range(len(rules)):
        if root in state:
            continue
        state[root] = 1
        path, pending = [root], [iter(after[root])]
        while pending:
            dep = next(pending[-1], None)
            if dep is None:
                pending.pop()
                state[path[-1]] = 2
                order.append(path.pop())
            elif state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                names = " -> ".join(rules[k].name for k in cycle)
                bag.error("E303", f"rules depend on each other through fired(): {names}", calls[(path[-1], dep)].span)
            elif dep not in state:
                state[dep] = 1
                path.append(dep)
                pending.append(iter(after[dep]))
    return order
