"""What the language server knows about one policy text.

The diagnostics are the checker's own: the text is parsed and checked exactly as `regua check`
does (dsl.parser.parse, then dsl.checker.Checker.run), so an editor shows the same codes, spans and
hints. The checker's Checker object is kept even when the policy has errors: its symbols,
enums and records, and the types and references it wrote on the AST, are what hover, go to
definition, find references and completion read. Nothing here analyses the language again; it
only indexes where the checker's names are declared and used.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from regua.dsl import ast
from regua.dsl import types as T
from regua.dsl.checker import Checker
from regua.dsl.diagnostics import Diagnostic, PolicyError, Span
from regua.dsl.environment import Environment
from regua.dsl.parser import parse

from .checking import CheckMemo, IncrementalChecker
from .incremental import ItemCache

# A symbol: (kind, name). Kinds: input, let, table, rule, enum, record, enum_value ("porte.mei"),
# output, test.
Key = tuple[str, str]


@dataclass
class Occurrence:
    key: Key
    span: Span  # 1-based, the name only
    definition: bool
    node: object = None  # the declaration or the expression node


@dataclass
class Analysis:
    text: str
    file: str
    diagnostics: list[Diagnostic]
    policy: ast.Policy | None = None
    checker: Checker | None = None
    # Set when the checker itself failed on the text (a bug): said in the editor, never a crash.
    internal_error: str | None = None
    _index: tuple | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def parsed(self) -> bool:
        return self.policy is not None

    def index(self) -> tuple[list[Occurrence], dict[Key, Occurrence], list[tuple[Span, object]]]:
        """Where every name is declared and used, and the expression nodes hover can describe; made
        on first use (diagnostics do not need it: the server makes it after publishing them)."""
        with self._lock:
            if self._index is None:
                indexer = _Indexer(self)
                if self.parsed:
                    indexer.run()
                self._index = (indexer.occurrences, indexer.definitions, indexer.targets)
            return self._index

    @property
    def occurrences(self) -> list[Occurrence]:
        return self.index()[0]

    @property
    def definitions(self) -> dict[Key, Occurrence]:
        return self.index()[1]

    @property
    def targets(self) -> list[tuple[Span, object]]:
        """Expression nodes with a span, for hover: (span of the part to hover, node)."""
        return self.index()[2]

    def occurrence_at(self, line: int, column: int) -> Occurrence | None:
        """The symbol occurrence under a 1-based position (the innermost one)."""
        found = [o for o in self.occurrences if contains(o.span, line, column)]
        return min(found, key=lambda o: width(o.span), default=None)

    def target_at(self, line: int, column: int):
        found = [(span, node) for span, node in self.targets if contains(span, line, column)]
        return min(found, key=lambda t: width(t[0]), default=None)

    def references(self, key: Key, include_declaration: bool = True) -> list[Occurrence]:
        return [o for o in self.occurrences if o.key == key and (include_declaration or not o.definition)]


def contains(span: Span, line: int, column: int) -> bool:
    end_line = span.end_line or span.line
    end_column = span.end_column if span.end_line else span.column + 1
    return (span.line, span.column) <= (line, column) <= (end_line, end_column)


def width(span: Span) -> tuple[int, int]:
    return ((span.end_line or span.line) - span.line, (span.end_column or span.column) - span.column)


def name_span(line: int, column: int, name: str) -> Span:
    return Span(line, column, line, column + len(name))


def analyse(text: str, file: str, env: Environment, cache: ItemCache | None = None, memo: CheckMemo | None = None,
            cancelled=None) -> Analysis:
    """Parse and check `text` as `regua check` does; index the names of whatever parsed. With a
    cache (one per open document), only the items that changed since the last text are parsed;
    with a memo as well, only the rules the change affects are checked again (lsp/checking.py).
    `cancelled()` true (a newer text arrived) stops it with Cancelled."""
    try:
        if cache is None:
            policy = parse(text, file)
        else:
            policy = cache.parse(text, file, keep_notes=memo is not None, cancelled=cancelled)
    except PolicyError as error:
        return Analysis(text, file, list(error.diagnostics))
    checker = Checker(policy, env) if memo is None or cache is None else IncrementalChecker(policy, env, memo, cancelled)
    try:
        checker.run()
        diagnostics = checker.bag.sorted()
    except PolicyError as error:
        diagnostics = list(error.diagnostics)
    return Analysis(policy.source, file, diagnostics, policy, checker)


# ---- the index --------------------------------------------------------------------------------------


def root_expressions(policy: ast.Policy):
    """Every top-level expression of a policy, with the item holding it."""
    for item in policy.items:
        if isinstance(item, (ast.InputBlock, ast.RecordDecl)):
            for f in item.fields:
                if f.default is not None:
                    yield item, f.default
        elif isinstance(item, ast.Let):
            yield item, item.value
        elif isinstance(item, ast.Rule):
            if item.has_when:
                yield item, item.condition
            for assignment in item.sets:
                yield item, assignment.value
        elif isinstance(item, ast.Table):
            yield from ((item, e) for e in item.inputs)
            for row in item.rows:
                for cell in row.cells or []:
                    yield from ((item, v) for v in cell.values)
                yield item, row.result
        elif isinstance(item, ast.OutputDecl):
            yield from ((item, i.value) for i in item.items if i.value is not None)
        elif isinstance(item, ast.ActionableDecl):
            for actionable in item.items:
                yield item, actionable.low
                yield item, actionable.high
        elif isinstance(item, ast.TestDecl):
            for stmt in item.statements:
                if stmt.kind == "given":
                    yield from ((item, value) for _name, value, _span in stmt.value)
                elif isinstance(stmt.value, ast.Expr):
                    yield item, stmt.value


class _Indexer:
    def __init__(self, analysis: Analysis):
        self.policy = analysis.policy
        self.checker = analysis.checker
        self.lines = analysis.text.split("\n")
        self.occurrences: list[Occurrence] = []
        self.definitions: dict[Key, Occurrence] = {}
        self.targets: list[tuple[Span, object]] = []

    def add(self, key: Key, span: Span, definition: bool, node=None) -> None:
        occurrence = Occurrence(key, span, definition, node)
        self.occurrences.append(occurrence)
        if definition:
            self.definitions.setdefault(key, occurrence)

    def run(self) -> None:
        self.declarations()
        for _item, root in root_expressions(self.policy):
            self.expression(root)
        self.tables()
        self.uses_outside_expressions()

    def declarations(self) -> None:
        p = self.policy
        for f in p.fields:
            self.add(("input", f.name), name_span(f.span.line, f.span.column, f.name), True, f)
        for item in p.items:
            if isinstance(item, ast.Let):
                self.add(("let", item.name), item.span, True, item)
            elif isinstance(item, ast.Table):
                self.add(("table", item.name), item.span, True, item)
            elif isinstance(item, ast.Rule):
                self.add(("rule", item.name), item.span, True, item)
            elif isinstance(item, ast.RecordDecl):
                self.add(("record", item.name), item.span, True, item)
                for f in item.fields:
                    self.type_ref(f.type_ref)
            elif isinstance(item, ast.EnumDecl):
                self.add(("enum", item.name), item.span, True, item)
                self.enum_values(item)
            elif isinstance(item, ast.TestDecl):
                self.add(("test", item.name), item.span, True, item)
        for f in p.fields:
            self.type_ref(f.type_ref)
        for output in p.outputs:
            if output.value is None:
                symbol = self.checker.symbols.get(output.name)
                if symbol is not None:
                    self.add((symbol.kind, output.name), output.span, False, output)
            else:
                self.add(("output", output.name), output.span, True, output)

    def enum_values(self, enum: ast.EnumDecl) -> None:
        line = self.lines[enum.span.line - 1] if enum.span.line <= len(self.lines) else ""
        start = line.find("=", enum.span.end_column - 1 if enum.span.end_column else 0)
        for value in enum.values:
            match = re.compile(r"(?<!\w)" + re.escape(value) + r"(?!\w)").search(line, max(start, 0))
            if match:
                start = match.end()
                self.add(("enum_value", f"{enum.name}.{value}"), name_span(enum.span.line, match.start() + 1, value),
                         True, enum)

    def type_ref(self, ref: ast.TypeRef) -> None:
        if ref.name == "list" and ref.element is not None:
            self.type_ref(ref.element)
        elif ref.name in self.checker.enums and any(e.name == ref.name for e in self.policy.of_type(ast.EnumDecl)):
            self.add(("enum", ref.name), ref.span, False, ref)
        elif ref.name in self.checker.records:
            self.add(("record", ref.name), ref.span, False, ref)

    def expression(self, root: ast.Expr) -> None:
        for node in ast.walk(root):
            if isinstance(node, ast.Name):
                self.targets.append((node.span, node))
                if node.ref in ("input", "let", "table", "rule"):
                    self.add((node.ref, node.name), node.span, False, node)
            elif isinstance(node, ast.Attribute):
                end = Span(node.span.end_line, node.span.end_column - len(node.attr), node.span.end_line,
                           node.span.end_column)
                self.targets.append((end, node))
            elif isinstance(node, ast.Call):
                length = len(node.func) + (len(node.namespace) + 1 if node.namespace else 0)
                self.targets.append((name_span(node.span.line, node.span.column, "x" * length), node))
            elif isinstance(node, ast.Binary) and node.op in ("==", "!="):
                self.enum_literals(node.left.type, [node.right])
                self.enum_literals(node.right.type, [node.left])
            elif isinstance(node, ast.InList) and isinstance(node.container, ast.ListLit):
                self.enum_literals(node.value.type, node.container.items)

    def enum_literals(self, typ, exprs) -> None:
        if not isinstance(typ, T.EnumType) or typ.name not in self.checker.enums:
            return
        for e in exprs:
            if isinstance(e, ast.Literal) and e.kind == "text" and e.value in typ.values:
                self.add(("enum_value", f"{typ.name}.{e.value}"), e.span, False, e)

    def tables(self) -> None:
        for table in self.policy.tables:
            columns = [e.type for e in table.inputs]
            for row in table.rows:
                for cell, column in zip(row.cells or [], columns):
                    self.enum_literals(column, cell.values)

    def uses_outside_expressions(self) -> None:
        outputs = {o.name for o in self.policy.outputs}
        for rule in self.policy.rules:
            for assignment in rule.sets:
                if assignment.name in outputs:
                    self.add(("output", assignment.name), assignment.span, False, assignment)
        for f in self.policy.fields:
            if f.default is not None:
                typ = self.checker.symbols.get(f.name)
                self.enum_literals(typ.type if typ else None, [f.default])
        for test in self.policy.tests:
            for stmt in test.statements:
                if stmt.kind == "given":
                    for name, value, span in stmt.value:
                        if ("input", name) in self.definitions:
                            self.add(("input", name), name_span(span.line, span.column, name), False, stmt)
                            self.enum_literals(self.checker.symbols[name].type, [value])
