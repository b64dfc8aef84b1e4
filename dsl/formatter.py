"""The canonical formatter (`regua fmt`): AST -> text, idempotent, comments kept.

Comments are not in the AST; they are scanned from the source and re-attached by line:
a comment at the end of a code line stays at the end of the line printed for that
code, and a comment on a line of its own goes before the next printed line.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ast
from .parser import parse
from .source import code_chars

INDENT = "  "

# Binding strength, loosest first; a child printed in a tighter context gets parentheses.
P_OTHERWISE, P_IF, P_OR, P_AND, P_NOT, P_COMPARE, P_SUM, P_PRODUCT, P_UNARY, P_POSTFIX, P_ATOM = range(1, 12)
COMPARATORS = ("==", "!=", "<", "<=", ">", ">=")


@dataclass
class Comment:
    line: int
    text: str
    trailing: bool


def scan_comments(source: str) -> list[Comment]:
    """Find `#` comments outside of strings (strings are single-line and double-quoted)."""
    found = []
    # Only "\n" ends a line for the lexer; str.splitlines() would also split on \x0c, \u2028…
    for number, line in enumerate(source.split("\n"), start=1):
        for column, char in code_chars(line):
            if char == "#":
                found.append(Comment(number, line[column:].rstrip(), bool(line[:column].strip())))
                break
    return found


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


# ---- expressions ---------------------------------------------------------------------


def expr(e: ast.Expr, context: int = P_OTHERWISE) -> str:
    text, strength = _PRINTER.visit(e)
    return f"({text})" if strength < context else text


class _ExprPrinter(ast.Visitor):
    """Each visit returns (text, binding strength)."""

    def visit_Literal(self, e: ast.Literal):
        return e.text, P_ATOM

    def visit_Name(self, e: ast.Name):
        return e.name, P_ATOM

    def visit_Attribute(self, e: ast.Attribute):
        return f"{expr(e.target, P_POSTFIX)}.{e.attr}", P_POSTFIX

    def visit_Call(self, e: ast.Call):
        prefix = f"{e.namespace}.{e.func}" if e.namespace else e.func
        return f"{prefix}({', '.join(_argument(a) for a in e.args)})", P_POSTFIX

    def visit_Comprehension(self, e: ast.Comprehension):
        return _argument(e), P_OTHERWISE

    def visit_Unary(self, e: ast.Unary):
        if e.op == "not":
            return f"not {expr(e.operand, P_NOT)}", P_NOT
        return f"-{expr(e.operand, P_UNARY)}", P_UNARY

    def visit_Binary(self, e: ast.Binary):
        if e.op in COMPARATORS:
            return f"{expr(e.left, P_SUM)} {e.op} {expr(e.right, P_SUM)}", P_COMPARE
        # A left-deep chain (`a or b or c`, `a + b - c`) is printed in one loop, not recursively.
        strength = {"and": P_AND, "or": P_OR, "+": P_SUM, "-": P_SUM}.get(e.op, P_PRODUCT)
        operands, links = ast.chain(e)
        parts = [expr(operands[0], strength)]
        for link in links:
            parts.append(f" {link.op} {expr(link.right, strength + 1)}")
        return "".join(parts), strength

    def visit_InRange(self, e: ast.InRange):
        word = "not in" if e.negated else "in"
        return f"{expr(e.value, P_SUM)} {word} {expr(e.low, P_SUM)}..{expr(e.high, P_SUM)}", P_COMPARE

    def visit_InList(self, e: ast.InList):
        word = "not in" if e.negated else "in"
        return f"{expr(e.value, P_SUM)} {word} {expr(e.container, P_SUM)}", P_COMPARE

    def visit_IfExpr(self, e: ast.IfExpr):
        return f"if {expr(e.condition, P_OR)} then {expr(e.then)} else {expr(e.otherwise)}", P_IF

    def visit_Otherwise(self, e: ast.Otherwise):
        # An `if` on the left needs parentheses: its `else` branch would swallow the `otherwise`.
        return f"{expr(e.value, P_OR)} otherwise {expr(e.fallback)}", P_OTHERWISE

    def visit_ListLit(self, e: ast.ListLit):
        return "[" + ", ".join(expr(i) for i in e.items) + "]", P_ATOM

    def visit_RecordLit(self, e: ast.RecordLit):
        return "{" + ", ".join(f"{k}: {expr(v)}" for k, v in e.entries) + "}", P_ATOM


_PRINTER = _ExprPrinter()


def _argument(a: ast.Expr) -> str:
    if isinstance(a, ast.Comprehension):
        text = f"{expr(a.element)} for {a.var} in {expr(a.source)}"
        if a.condition is not None:
            text += f" where {expr(a.condition)}"
        return text
    return expr(a)


def _cell(cell: ast.Cell) -> str:
    if cell.kind == "any":
        return "-"
    if cell.kind == "compare":
        return f"{cell.op} {expr(cell.values[0], P_SUM)}"
    if cell.kind == "range":
        return f"{expr(cell.values[0], P_SUM)}..{expr(cell.values[1], P_SUM)}"
    if cell.kind == "in":
        return "in [" + ", ".join(expr(v, P_SUM) for v in cell.values) + "]"
    return expr(cell.values[0], P_SUM)


def _type(ref: ast.TypeRef) -> str:
    return f"list of {_type(ref.element)}" if ref.name == "list" else ref.name


def _action(action: ast.Action) -> str:
    parts = [action.verb] + [quote(t) for t in (action.code, action.message) if t is not None]
    return " ".join(parts)


# ---- items ---------------------------------------------------------------------------


class _Printer:
    def __init__(self, comments: list[Comment]):
        self.out: list[str] = []
        self.comments = sorted(comments, key=lambda c: c.line)
        self.trailing = {c.line: c for c in comments if c.trailing}
        self.pending = [c for c in self.comments if not c.trailing]

    def line(self, depth: int, text: str, source_line: int) -> None:
        # Trailing comments on inner lines of a multi-line item have no printed line of their
        # own: they become standalone comments here, before the next printed line.
        for number in sorted(n for n in self.trailing if n < source_line):
            self.pending.append(Comment(number, self.trailing.pop(number).text, False))
        self.pending.sort(key=lambda c: c.line)
        while self.pending and self.pending[0].line < source_line:
            self.out.append(INDENT * depth + self.pending.pop(0).text)
        trailing = self.trailing.pop(source_line, None)
        self.out.append(INDENT * depth + text + (f"  {trailing.text}" if trailing else ""))

    def blank(self) -> None:
        if self.out and self.out[-1] != "":
            self.out.append("")

    def finish(self) -> str:
        # Comments that belong to no printed line (e.g. after the last item) go at the end, in order.
        leftovers = sorted(self.pending + list(self.trailing.values()), key=lambda c: c.line)
        for comment in leftovers:
            self.out.append(comment.text)
        while self.out and self.out[-1] == "":
            self.out.pop()
        return "\n".join(self.out) + "\n"


_ONE_LINERS = (ast.Let, ast.EnumDecl, ast.OutputDecl, ast.DefaultDecl, ast.OnErrorDecl, ast.Description)


def format_policy(policy: ast.Policy, source: str) -> str:
    p = _Printer(scan_comments(source))
    header = f"policy {policy.name} kind {policy.kind}"
    if policy.version is not None:
        header += f" version {quote(policy.version)}"
    p.line(0, header, policy.name_span.line)
    lines = source.split("\n")
    previous = None
    for item in policy.items:
        groups_with_previous = (
            isinstance(item, _ONE_LINERS) and previous is not None and type(item) is type(previous)
            and not _blank_between(lines, previous, item)
        ) or (isinstance(item, ast.Description) and previous is None)
        if not groups_with_previous:
            p.blank()
        _item(p, item)
        previous = item
    return p.finish()


def _blank_between(lines: list[str], previous, item) -> bool:
    """Whether the author left a blank line between two one-line items (groups of `let`s, of
    `output`s…): the formatter keeps one there."""
    end = max(previous.span.line, previous.span.end_line)
    return any(not text.strip() for text in lines[end:item.span.line - 1])


def _fields(p: _Printer, fields: list[ast.Field]) -> None:
    for f in fields:
        text = f"{f.name}: {_type(f.type_ref)}"
        if f.default is not None:
            text += f" = {expr(f.default)}"
        p.line(1, text, f.span.line)


def step_day(day: int) -> str:
    """D-3, D0, D+30: the notation collection teams use for a régua."""
    return f"D{day:+d}" if day else "D0"


def _item(p: _Printer, item) -> None:
    _ItemPrinter(p).visit(item)


class _ItemPrinter(ast.Visitor):
    """Prints one top-level item of a policy."""

    def __init__(self, p: _Printer):
        self.p = p

    def visit_Description(self, item: ast.Description) -> None:
        self.p.line(0, f"description {quote(item.text)}", item.span.line)

    def visit_InputBlock(self, item: ast.InputBlock) -> None:
        self.p.line(0, "input", item.span.line)
        _fields(self.p, item.fields)

    def visit_RecordDecl(self, item: ast.RecordDecl) -> None:
        self.p.line(0, f"record {item.name}", item.span.line)
        _fields(self.p, item.fields)

    def visit_EnumDecl(self, item: ast.EnumDecl) -> None:
        self.p.line(0, f"enum {item.name} = {' | '.join(item.values)}", item.span.line)

    def visit_Let(self, item: ast.Let) -> None:
        self.p.line(0, f"let {item.name} = {expr(item.value)}", item.span.line)

    def visit_Rule(self, item: ast.Rule) -> None:
        p = self.p
        p.line(0, f"step {item.name} at {step_day(item.day)}" if item.is_step else f"rule {item.name}", item.span.line)
        if item.has_when:
            p.line(1, f"when {expr(item.condition)}", item.condition.span.line)
        p.line(1, _action(item.action), item.action.span.line)
        if item.sets:
            p.line(1, "set " + ", ".join(f"{a.name} = {expr(a.value)}" for a in item.sets), item.sets[0].span.line)

    def visit_Table(self, item: ast.Table) -> None:
        _table(self.p, item)

    def visit_DefaultDecl(self, item: ast.DefaultDecl) -> None:
        self.p.line(0, f"default {_action(item.action)}", item.span.line)

    def visit_OnErrorDecl(self, item: ast.OnErrorDecl) -> None:
        self.p.line(0, f"on error {_action(item.action)}", item.span.line)

    def visit_OutputDecl(self, item: ast.OutputDecl) -> None:
        parts = [o.name + (f" = {expr(o.value)}" if o.value is not None else "") for o in item.items]
        self.p.line(0, "output " + ", ".join(parts), item.span.line)

    def visit_ActionableDecl(self, item: ast.ActionableDecl) -> None:
        self.p.line(0, "actionable", item.span.line)
        for a in item.items:
            text = f"{a.target} in {expr(a.low, P_SUM)}..{expr(a.high, P_SUM)}"
            self.p.line(1, text + (f" {quote(a.label)}" if a.label is not None else ""), a.span.line)

    def visit_TestDecl(self, item: ast.TestDecl) -> None:
        _test(self.p, item)


def _table(p: _Printer, table: ast.Table) -> None:
    p.line(0, f"table {table.name} ({table.hit_policy}) by {', '.join(expr(e) for e in table.inputs)}", table.span.line)
    lefts = ["else" if row.is_else else ", ".join(_cell(c) for c in row.cells) for row in table.rows]
    width = max(len(text) for text in lefts)
    for row, left in zip(table.rows, lefts):
        text = f"{left.ljust(width)} -> {expr(row.result)}"
        if row.priority:
            text += f" priority {row.priority}"
        p.line(1, text, row.span.line)


def _test(p: _Printer, test: ast.TestDecl) -> None:
    p.line(0, f"test {quote(test.name)}", test.span.line)
    for stmt in test.statements:
        line = stmt.span.line
        if stmt.kind == "given":
            p.line(1, "given", line)
            for name, value, span in stmt.value:
                p.line(2, f"{name} = {expr(value)}", span.line)
        elif stmt.kind == "as_of":
            p.line(1, f"as of {stmt.value.isoformat()}", line)
        elif stmt.kind == "fixture":
            p.line(1, f"{stmt.name} returns {expr(stmt.value)}", line)
        elif stmt.kind == "failure":
            p.line(1, f"{stmt.name} fails", line)
        elif stmt.kind == "outcome":
            p.line(1, f"expect {stmt.name}", line)
        elif stmt.kind == "reasons":
            p.line(1, "expect reasons " + ", ".join(quote(c) for c in stmt.value), line)
        elif stmt.kind == "steps":
            p.line(1, " ".join(["expect steps", ", ".join(quote(c) for c in stmt.value)]).rstrip(), line)
        elif stmt.kind == "output":
            p.line(1, f"expect output {stmt.name} = {expr(stmt.value)}", line)


def format_source(source: str, file: str = "<policy>") -> str:
    """Format policy text; raises PolicyError when it does not parse."""
    return format_policy(parse(source, file), source)
