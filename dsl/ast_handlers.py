"""The handler per grammar rule that turns what Lark parsed into dsl.ast nodes (ToAst), and the
conversion and validation of literals (whole numbers, durations, dates, strings). dsl.ast_builder
calls these handlers while Lark parses; they are apart from dsl.parser, which drives the parse and
turns syntax errors into friendly diagnostics, because they are the language's tree shape, one
method per rule of grammar.lark, and change with the grammar rather than with error reporting.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from lark import Token

from . import ast
from .ast_builder import Carried as _Carried
from .ast_builder import InvalidLiteral as _Invalid
from .ast_builder import token_span as _token_span


def _text(token: Token) -> str:
    """The content of a STRING token, escapes resolved."""
    raw = str(token)[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), raw)


class ToAst:
    """The syntax tree, built while Lark parses (see dsl.ast_builder): one method per grammar rule (or
    alias), called with the rule's extent (`meta`, a Span from its first to its last token, as
    Lark's propagate_positions computes it) and its children, Lark's anonymous tokens left out.
    Literals are converted and validated here."""

    # ---- header and items ----
    def start(self, meta, header, *items):
        name, kind, version = header.value
        policy = ast.Policy(str(name), str(kind), _text(version) if version else None, list(items), span=meta)
        policy.name_span = _token_span(name)
        policy.kind_span = _token_span(kind)
        return policy

    def policy_header(self, meta, name, kind, version):
        return _Carried((name, kind, version))

    def description(self, meta, text):
        return ast.Description(_text(text), span=meta)

    def input_block(self, meta, *fields):
        return ast.InputBlock(list(fields), span=meta)

    def record_decl(self, meta, name, *fields):
        return ast.RecordDecl(str(name), list(fields), span=_token_span(name))

    def field(self, meta, name, type_ref, default):
        return ast.Field(str(name), type_ref, default, span=_token_span(name))

    def named_type(self, meta, name):
        return ast.TypeRef(str(name), span=meta)

    def list_type(self, meta, element):
        return ast.TypeRef("list", element, span=meta)

    def enum_decl(self, meta, name, *values):
        return ast.EnumDecl(str(name), [str(v) for v in values], span=_token_span(name))

    def let_decl(self, meta, name, value):
        return ast.Let(str(name), value, span=_token_span(name))

    def rule_decl(self, meta, name, condition, action, sets=None):
        return ast.Rule(str(name), condition, action, list(sets.value) if sets else [], span=_token_span(name))

    def step_decl(self, meta, name, day, condition, action, sets=None):
        has_when = condition is not None
        if condition is None:
            condition = ast.Literal("bool", True, "true", span=_token_span(name))
        return ast.Rule(str(name), condition, action, list(sets.value) if sets else [], span=_token_span(name), day=day.value,
                        has_when=has_when)

    def step_when(self, meta, condition):
        return condition

    def step_day(self, meta, *tokens):
        words = [str(t) for t in tokens]
        if words == ["due"]:
            return _Carried(0)
        number = int(next(w for w in words if w[0].isdigit()).replace("_", ""))
        return _Carried(-number if ("-" in words or "before" in words) else number)

    def action(self, meta, verb, code, message):
        return ast.Action(str(verb), _text(code) if code else None, _text(message) if message else None, span=_token_span(verb))

    def set_clause(self, meta, *assignments):
        return _Carried(assignments)

    def assignment(self, meta, name, value):
        return ast.Assignment(str(name), value, span=_token_span(name))

    def default_decl(self, meta, action):
        return ast.DefaultDecl(action, span=meta)

    def on_error_decl(self, meta, action):
        return ast.OnErrorDecl(action, span=meta)

    def output_decl(self, meta, *items):
        return ast.OutputDecl(list(items), span=meta)

    def output_item(self, meta, name, value):
        return ast.OutputItem(str(name), value, span=_token_span(name))

    # ---- tables ----
    def actionable_decl(self, meta, *items):
        return ast.ActionableDecl(list(items), span=meta)

    def actionable_item(self, meta, target, low, high, label):
        path, span = target.value
        return ast.Actionable(path, low, high, _text(label) if label else None, span=span)

    def actionable_target(self, meta, *names):
        return _Carried(([str(n) for n in names], meta))

    def table_decl(self, meta, name, hit_policy, *rest):
        inputs = [r for r in rest if isinstance(r, ast.Expr)]
        rows = [r for r in rest if isinstance(r, ast.Row)]
        return ast.Table(str(name), str(hit_policy), inputs, rows, span=_token_span(name),
                         hit_policy_span=_token_span(hit_policy))

    def row(self, meta, *parts):
        *cells, result, priority = parts
        return ast.Row(list(cells), result, priority.value if priority else 0, span=meta)

    def else_row(self, meta, result):
        return ast.Row(None, result, span=meta)

    def priority(self, meta, value):
        return _Carried(int(str(value).replace("_", "")))

    def cell_any(self, meta):
        return ast.Cell("any", span=meta)

    def cell_compare(self, meta, op, value):
        return ast.Cell("compare", str(op), [value], span=meta)

    def cell_range(self, meta, low, high):
        return ast.Cell("range", None, [low, high], span=meta)

    def cell_in(self, meta, *values):
        return ast.Cell("in", None, [v for v in values if v is not None], span=meta)

    def cell_equals(self, meta, value):
        return ast.Cell("equals", "==", [value], span=meta)

    # ---- tests ----
    def test_decl(self, meta, name, *statements):
        return ast.TestDecl(_text(name), list(statements), span=meta)

    def test_given(self, meta, *values):
        return ast.TestStmt("given", value=[v.value for v in values], span=meta)

    def given_value(self, meta, name, value):
        return _Carried((str(name), value, _token_span(name)))

    def test_as_of(self, meta, date):
        return ast.TestStmt("as_of", value=_date(date), span=meta)

    def test_fixture(self, meta, dotted, value):
        return ast.TestStmt("fixture", name=dotted.value, value=value, span=meta)

    def test_failure(self, meta, dotted):
        return ast.TestStmt("failure", name=dotted.value, span=meta)

    def expect_outcome(self, meta, outcome):
        return ast.TestStmt("outcome", name=str(outcome), span=_token_span(outcome))

    def expect_reasons(self, meta, *codes):
        return ast.TestStmt("reasons", value=[_text(c) for c in codes], span=meta)

    def expect_output(self, meta, name, value):
        return ast.TestStmt("output", name=str(name), value=value, span=_token_span(name))

    def expect_steps(self, meta, *names):
        return ast.TestStmt("steps", value=[_text(n) for n in names if n is not None], span=meta)

    def dotted(self, meta, *names):
        return _Carried(".".join(str(n) for n in names))

    # ---- expressions ----
    def otherwise(self, meta, value, fallback):
        return ast.Otherwise(value, fallback, span=meta)

    def if_expr(self, meta, condition, then, otherwise):
        return ast.IfExpr(condition, then, otherwise, span=meta)

    def or_op(self, meta, left, right):
        return ast.Binary("or", left, right, span=meta)

    def and_op(self, meta, left, right):
        return ast.Binary("and", left, right, span=meta)

    def not_op(self, meta, operand):
        return ast.Unary("not", operand, span=meta)

    def compare(self, meta, left, op, right):
        return ast.Binary(str(op), left, right, span=meta)

    def in_range(self, meta, value, low, high):
        return ast.InRange(value, low, high, span=meta)

    def not_in_range(self, meta, value, low, high):
        return ast.InRange(value, low, high, negated=True, span=meta)

    def in_list(self, meta, value, container):
        return ast.InList(value, container, span=meta)

    def not_in_list(self, meta, value, container):
        return ast.InList(value, container, negated=True, span=meta)

    def add(self, meta, left, right):
        return ast.Binary("+", left, right, span=meta)

    def sub(self, meta, left, right):
        return ast.Binary("-", left, right, span=meta)

    def mul(self, meta, left, right):
        return ast.Binary("*", left, right, span=meta)

    def div(self, meta, left, right):
        return ast.Binary("/", left, right, span=meta)

    def negate(self, meta, operand):
        return ast.Unary("-", operand, span=meta)

    def attribute(self, meta, target, attr):
        return ast.Attribute(target, str(attr), span=meta)

    def call(self, meta, func, *args):
        return ast.Call(str(func), [a for a in args if a is not None], span=meta)

    def method_call(self, meta, target, func, *args):
        args = [a for a in args if a is not None]
        if isinstance(target, ast.Name):  # connector lookup: namespace.name(args)
            return ast.Call(str(func), args, namespace=target.name, span=meta)
        raise _Invalid("a call must be a function `f(x)` or a connector lookup `bureau.nome(x)`", func)

    def comprehension(self, meta, element, var, source, condition):
        return ast.Comprehension(element, str(var), source, condition, span=meta)

    def name(self, meta, token):
        return ast.Name(str(token), span=meta)

    def int_lit(self, meta, token):
        return ast.Literal("int", _whole(token), str(token), span=meta)

    def decimal_lit(self, meta, token):
        return ast.Literal("decimal", Decimal(str(token).replace("_", "")), str(token), span=meta)

    def money_lit(self, meta, token):
        return ast.Literal("money", Decimal(str(token).replace("_", "")), f"{token} BRL", span=meta)

    def percent_lit(self, meta, token):
        value = Decimal(str(token).replace("_", "")) / 100
        return ast.Literal("percent", value, f"{token}%", span=meta)

    def days_lit(self, meta, token):
        n = _days(token)
        return ast.Literal("days", n, f"{token} {'day' if n == 1 else 'days'}", span=meta)

    def business_days_lit(self, meta, token):
        n = _days(token)
        return ast.Literal("business_days", n, f"{token} business {'day' if n == 1 else 'days'}", span=meta)

    def string_lit(self, meta, token):
        return ast.Literal("text", _text(token), str(token), span=meta)

    def date_lit(self, meta, token):
        return ast.Literal("date", _date(token), str(token), span=meta)

    def true_lit(self, meta):
        return ast.Literal("bool", True, "true", span=meta)

    def false_lit(self, meta):
        return ast.Literal("bool", False, "false", span=meta)

    def list_lit(self, meta, *items):
        return ast.ListLit([i for i in items if i is not None], span=meta)

    def record_lit(self, meta, *entries):
        return ast.RecordLit([e.value for e in entries if e is not None], span=meta)

    def record_entry(self, meta, name, value):
        return _Carried((str(name), value))


MAX_DAYS = 999_999_999  # what a date difference can hold


#: Whole numbers in a policy, like whole-number inputs, stay below 10^18 (docs/language.md §5).
MAX_INT = 10**18 - 1


def _whole(token: Token) -> int:
    digits = str(token).replace("_", "")
    if len(digits) > 18 or int(digits) > MAX_INT:  # length first: int() refuses over 4300 digits
        shown = str(token) if len(str(token)) <= 24 else str(token)[:24] + "…"
        raise _Invalid(f"the whole number {shown} is too large (at most 10^18 - 1)", token)
    return int(digits)


def _days(token: Token) -> int:
    if len(str(token).replace("_", "")) > 9:
        raise _Invalid(f"a duration of {str(token)[:24]}… days is too long", token)
    n = int(str(token).replace("_", ""))
    if n > MAX_DAYS:
        raise _Invalid(f"a duration of {token} days is too long", token)
    return n


def _date(token: Token) -> dt.date:
    try:
        return dt.date.fromisoformat(str(token))
    except ValueError:
        raise _Invalid(f"'{token}' is not a valid date (use YYYY-MM-DD)", token) from None
