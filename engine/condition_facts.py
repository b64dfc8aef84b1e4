"""Which facts a rule's condition reads (engine.codegen records them as the reason's values when
the rule fires): an analysis of the checked syntax tree, apart from the code it generates."""

from __future__ import annotations

from regua.dsl import ast
from regua.dsl import types as T

# A set: `in` a tuple compared a node's type with each (dataclass __eq__), for every node of every rule.
SCALARS = frozenset((T.INT, T.DECIMAL, T.MONEY, T.PERCENT, T.BOOL, T.TEXT, T.DATE, T.DURATION, T.BUSINESS_DAYS,
                     T.CPF, T.CNPJ))


def condition_facts(condition: ast.Expr, slot_of: dict[str, int]) -> tuple:
    """The scalar facts `condition` reads, recorded as the reason's values when its rule fires:
    (label, ref, key, path, type) each, `key` a let's or table's slot (`slot_of`) or the name."""
    found: dict[str, tuple] = {}

    def chain(e):
        path = []
        while isinstance(e, ast.Attribute):
            path.append(e.attr)
            e = e.target
        return e, tuple(reversed(path))

    # Depth first, left to right (the order of the reason's values), with an explicit stack.
    stack: list[tuple[ast.Expr | None, bool]] = [(condition, False)]
    while stack:
        e, in_comprehension = stack.pop()
        if e is None or e.__class__ is ast.Literal:  # a third of the nodes; nothing to read
            continue
        if isinstance(e, (ast.Name, ast.Attribute)) and not in_comprehension:
            base, path = chain(e)
            if isinstance(base, ast.Name) and base.ref in ("input", "let", "table", "builtin") \
                    and (e.type in SCALARS or isinstance(e.type, T.EnumType)):
                label = ".".join((base.name,) + path)
                key = base.name if base.ref != "let" and base.ref != "table" else slot_of[base.name]
                found.setdefault(label, (label, base.ref, key, path, str(e.type)))
            elif isinstance(e, ast.Attribute):
                stack.append((e.target, in_comprehension))
        elif isinstance(e, ast.Comprehension):
            stack += [(e.element, True), (e.condition, True), (e.source, in_comprehension)]
        else:
            stack += [(child, in_comprehension) for child in reversed(ast.children(e))]
    return tuple(found.values())
