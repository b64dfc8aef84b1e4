"""Which parts of each connector's answer a policy reads, and the answer type cut down to them.

A bureau report has dozens of fields; a policy typically reads five. The engine validates and
converts only what the policy reads (like a hand-written integration would), so the cost of a
lookup follows the policy, not the size of the contract. Unknown or unread fields in an
answer are ignored: providers add fields over time, and that must not break decisions.
"""

from __future__ import annotations

from dataclasses import replace

from regua.dsl import ast
from regua.dsl import types as T
from regua.dsl.checker import CheckedPolicy

WHOLE = ()  # the path meaning "all of it"


def connector_paths(checked: CheckedPolicy) -> dict[str, set[tuple]]:
    """For each connector used: the set of field paths read ("[]" stands for list elements)."""
    lookups: dict[str, tuple[str, tuple]] = {}  # let name -> (connector, path prefix)
    for name in checked.order:
        symbol = checked.symbols[name]
        if symbol.kind == "let":
            value = symbol.node.value
            if isinstance(value, ast.Call) and value.namespace is not None:
                lookups[name] = (f"{value.namespace}.{value.func}", WHOLE)
    reads = _Reads(lookups)
    paths = reads.paths
    visit, visit_children = reads.read, reads.read_children

    policy = checked.policy
    for name in checked.order:
        symbol = checked.symbols[name]
        node = symbol.node
        if symbol.kind == "let":
            if name in lookups:
                visit_children(node.value, {})  # the lookup's own arguments
            else:
                visit(node.value, {})
        else:
            for e in node.inputs:
                visit(e, {})
            for row in node.rows:
                visit(row.result, {})
                for cell in row.cells or []:
                    for v in cell.values:
                        visit(v, {})
    for rule in policy.rules:
        visit(rule.condition, {})
        for assignment in rule.sets:
            visit(assignment.value, {})
    for output in checked.outputs:
        if output.value is not None:
            visit(output.value, {})
        elif output.name in lookups:
            paths.setdefault(lookups[output.name][0], set()).add(WHOLE)
    # A connector whose value is only tested with available() still needs a well-formed answer.
    for connector, _ in lookups.values():
        paths.setdefault(connector, set())
    return paths


def project(typ: T.Type, paths: set[tuple]) -> T.Type:
    """`typ` reduced to the fields `paths` reach. A WHOLE path keeps everything."""
    if WHOLE in paths or T.is_unknown(typ):
        return typ
    if isinstance(typ, T.ListType):
        inner = {p[1:] for p in paths if p and p[0] == "[]" and p[1:] != ("#",)}
        # "[]#" marks a list iterated without reading its elements: keep them as empty records.
        return T.ListType(project(typ.element, inner) if inner or not isinstance(typ.element, T.RecordType)
                          else replace(typ.element, fields=()))
    if isinstance(typ, T.RecordType):
        fields = []
        for spec in typ.fields:
            sub = {p[1:] for p in paths if p and p[0] == spec.name}
            if not sub:
                continue
            if any(p == () for p in sub):
                fields.append(spec)
            else:
                inner_paths = set(sub)
                if isinstance(spec.type, T.ListType):
                    # A list field read through projection (`relatorio.restrictions.amount`).
                    inner_paths = {p if p[0] == "[]" else ("[]",) + p for p in inner_paths}
                fields.append(replace(spec, type=project(spec.type, inner_paths)))
        return replace(typ, fields=tuple(fields))
    return typ


class _Reads(ast.Visitor):
    """Collects the connector paths the expressions given to `read` use. `env` maps comprehension
    variables bound to connector list elements to their (connector, path)."""

    def __init__(self, lookups: dict[str, tuple[str, tuple]]):
        self.lookups = lookups
        self.paths: dict[str, set[tuple]] = {}
        self.env: dict[str, tuple[str, tuple]] = {}

    def read(self, expr, env: dict | None = None) -> None:
        if expr is None:
            return
        outer, self.env = self.env, ({} if env is None else env)
        try:
            self.visit(expr)
        finally:
            self.env = outer

    def read_children(self, expr, env: dict | None = None) -> None:
        for child in ast.children(expr):
            self.read(child, self.env if env is None else env)

    def root(self, expr) -> tuple[str, tuple] | None:
        """The connector value an expression denotes, if it is (a path into) one."""
        path: list[str] = []
        while isinstance(expr, ast.Attribute):
            path.append(expr.attr)
            expr = expr.target
        path.reverse()
        base = None
        if isinstance(expr, ast.Name):
            if expr.ref == "local" and expr.name in self.env:
                base = self.env[expr.name]
            elif expr.ref == "let" and expr.name in self.lookups:
                base = self.lookups[expr.name]
        elif isinstance(expr, ast.Call) and expr.namespace is not None:
            base = (f"{expr.namespace}.{expr.func}", WHOLE)
        if base is None:
            return None
        connector, prefix = base
        return connector, tuple(prefix) + tuple(path)

    def use(self, expr) -> None:
        found = self.root(expr)
        if found is not None:
            self.paths.setdefault(found[0], set()).add(found[1])
            inner = expr
            while isinstance(inner, ast.Attribute):
                inner = inner.target
            if isinstance(inner, ast.Call):
                for arg in inner.args:
                    self.read(arg, self.env)
            return
        self.generic_visit(expr)

    visit_Name = visit_Attribute = use

    def visit_Call(self, expr: ast.Call) -> None:
        if expr.resolved == "available":
            return  # availability needs no field
        if expr.namespace is not None:
            self.use(expr)
            return
        if expr.resolved == "aggregate" and expr.args and isinstance(expr.args[0], ast.Comprehension):
            comp = expr.args[0]
            source = self.root(comp.source)
            inner_env = dict(self.env)
            if source is not None:
                self.paths.setdefault(source[0], set()).add(source[1] + ("[]",) + ("#",))
                inner_env[comp.var] = (source[0], source[1] + ("[]",))
            else:
                self.read(comp.source, self.env)
            inner_env = {k: v for k, v in inner_env.items() if source is not None or k != comp.var}
            self.read(comp.condition, inner_env)
            if expr.func != "count":  # count never reads the element itself
                self.read(comp.element, inner_env)
            for arg in expr.args[1:]:
                self.read(arg, self.env)
            return
        self.generic_visit(expr)
