"""Parse policy text into the AST (dsl.ast), with positions and friendly syntax errors."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import replace
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import DedentError, Indenter

from . import ast, ast_builder, grammar_cache, lark_runtime
from .ast_builder import Carried as _Carried
from .ast_builder import InvalidLiteral as _Invalid
from .ast_builder import token_span as _token_span
from .diagnostics import Diagnostic, DiagnosticBag, PolicyError, Span, did_you_mean
from .limits import check_nesting, check_size
from .source import code_chars
from .syntax_examples import CHARACTER_HINTS, SYNTAX_EXAMPLES, TERMINAL_WORDS

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")


class PolicyIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB", "LBRACE"]
    CLOSE_PAREN_types = ["RPAR", "RSQB", "RBRACE"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def process(self, stream):
        # Lark keeps one post-lexer per parser and lark's Indenter keeps the indentation stack and
        # parenthesis depth on it, so parses in several threads would share (and corrupt) that
        # state. Here each parse keeps it in its own generator's locals.
        return self._indent(stream)

    def _indent(self, stream):
        """Lark's Indenter._process and handle_NL, step for step, with the state in locals (every
        token of a policy goes through here: attribute look-ups per token add up)."""
        nl_type, indent_type, dedent_type = self.NL_type, self.INDENT_type, self.DEDENT_type
        opening, closing = frozenset(self.OPEN_PAREN_types), frozenset(self.CLOSE_PAREN_types)
        tab_len, borrow = self.tab_len, Token.new_borrow_pos
        paren_level, levels = 0, [0]
        token = None
        for token in stream:
            kind = token.type
            if kind == nl_type:
                if paren_level <= 0:
                    yield token
                    indent_str = token.rsplit("\n", 1)[1]  # tabs and spaces
                    indent = indent_str.count(" ") + indent_str.count("\t") * tab_len
                    if indent > levels[-1]:
                        levels.append(indent)
                        yield borrow(indent_type, indent_str, token)
                    else:
                        while indent < levels[-1]:
                            levels.pop()
                            yield borrow(dedent_type, indent_str, token)
                        if indent != levels[-1]:
                            raise DedentError(f"Unexpected dedent to column {indent}. Expected dedent to {levels[-1]}")
            else:
                yield token
            if kind in opening:
                paren_level += 1
            elif kind in closing:
                paren_level -= 1
                assert paren_level >= 0
        while len(levels) > 1:
            levels.pop()
            yield borrow(dedent_type, "", token) if token else Token(dedent_type, "", 0, 0, 0, 0, 0, 0)


@lru_cache(maxsize=1)
def _lark() -> Lark:
    """The parser; its parse() returns the dsl.ast.Policy, built while parsing (dsl.ast_builder)."""
    parser = grammar_cache.load_or_build(
        GRAMMAR_PATH.read_text(encoding="utf-8"),
        {"parser": "lalr", "lexer": "contextual", "maybe_placeholders": True},
        {"postlex": PolicyIndenter(), "_plugins": {"ContextualLexer": lark_runtime.FastContextualLexer,
                                                   "LALR_Parser": lark_runtime.FastLALRParser}},
    )
    ast_builder.install(parser, _ToAst())
    return parser


def keywords() -> set[str]:
    """Every keyword of the language (reserved words), for 'did you mean' hints and docs."""
    words = set()
    for term in _lark().terminals:
        pattern = term.pattern
        if pattern.type == "str" and re.fullmatch(r"[a-z]+", pattern.value):
            words.add(pattern.value)
    return words


def _text(token: Token) -> str:
    """The content of a STRING token, escapes resolved."""
    raw = str(token)[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), raw)


class _ToAst:
    """The syntax tree, built while Lark parses (see _callbacks): one method per grammar rule (or
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


# ---- syntax errors -------------------------------------------------------------


@lru_cache(maxsize=1)
def _examples() -> dict[str, list[str]]:
    """SYNTAX_EXAMPLES, each also preceded by another item: LALR states for the first item after
    the header differ from those of later items, and the message should not depend on position."""
    header = "policy p kind credit\n"
    expanded = {}
    for label, examples in SYNTAX_EXAMPLES.items():
        expanded[label] = list(examples) + [
            header + "let anterior = 1\n" + e[len(header):] for e in examples if e.startswith(header)
        ]
    return expanded


@lru_cache(maxsize=1)
def _example_token_types() -> dict[str, frozenset[str]]:
    """For each friendly message, the token types its examples fail on."""
    found: dict[str, set[str]] = {}
    for label, examples in _examples().items():
        for example in examples:
            try:
                _lark().parse(example)
            except UnexpectedToken as error:
                found.setdefault(label, set()).add(error.token.type)
            except UnexpectedInput:
                found.setdefault(label, set()).add("$END")
    return {label: frozenset(types) for label, types in found.items()}


def _expected_words(expected) -> list[str]:
    words = []
    for name in sorted(expected):
        word = TERMINAL_WORDS.get(name)
        if word is None:
            try:
                pattern = _lark().get_terminal(name).pattern
                word = f"'{pattern.value}'" if pattern.type == "str" else name.lower()
            except KeyError:
                word = name.lower()
        if word not in words:
            words.append(word)
    return words


def _describe_token(token: Token) -> str:
    if token.type == "_NL":
        return "end of line"
    if token.type == "_INDENT":
        return "an indented block"
    if token.type == "_DEDENT":
        return "end of block"
    if token.type == "$END":
        return "end of file"
    return f"'{token}'"


def _syntax_diagnostic(error: UnexpectedInput, text: str, bag: DiagnosticBag) -> None:
    line = getattr(error, "line", 1) or 1
    column = getattr(error, "column", 1) or 1
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream] if error.pos_in_stream < len(text) else ""
        bag.error("E002", f"unexpected character '{char}'", Span(line, column, line, column + 1), CHARACTER_HINTS.get(char))
        return
    label = None
    try:
        label = error.match_examples(_lark().parse, _examples(), use_accepts=True)
    except Exception:  # noqa: BLE001 — match_examples re-parses snippets; never let it mask the real error
        label = None
    if label is not None and isinstance(error, UnexpectedToken) and \
            error.token.type not in _example_token_types().get(label, ()):
        label = None  # same parser state, different mistake: the message would mislead
    if isinstance(error, UnexpectedEOF) or (isinstance(error, UnexpectedToken) and error.token.type == "$END"):
        expected = _expected_words(getattr(error, "expected", []) or [])
        message = label or "unexpected end of file" + (f"; expected {', '.join(expected)}" if expected else "")
        lines = text.rstrip().splitlines() or [""]
        bag.error("E003", message, Span(len(lines), len(lines[-1]) + 1))
        return
    assert isinstance(error, UnexpectedToken)
    token = error.token
    accepts = error.accepts or error.expected
    expected = _expected_words(accepts)
    hint = None
    if token.type == "NAME" or re.fullmatch(r"[^\W\d]\w*", str(token)):
        keyword_options = [w.strip("'") for w in expected if w.startswith("'")]
        hint = did_you_mean(str(token), keyword_options)
    if token.type == "_INDENT":
        # The unexpected indentation is where the next line's text starts.
        line = token.end_line or line
        column = token.end_column or column
    elif token.type in ("_NL", "_DEDENT"):
        # Point at the end of the line that is incomplete, not at the next one.
        line = token.line or line
        column = token.column or column
    if hint is None:
        hint = CHARACTER_HINTS.get(str(token))  # e.g. `||` where `or` was meant
    found = _describe_token(token)
    if label:
        message = f"{label} (found {found})"
    else:
        message = f"unexpected {found}; expected " + _join_or(expected)
    end = column + max(1, len(str(token))) if token.type not in ("_NL", "_INDENT", "_DEDENT") else column + 1
    bag.error("E001", message, Span(line, column, line, end), hint)


def _join_or(words: list[str]) -> str:
    if len(words) > 8:
        words = words[:8] + ["…"]
    if len(words) <= 1:
        return "".join(words) or "something else"
    return ", ".join(words[:-1]) + " or " + words[-1]


def parse(text: str, file: str = "<policy>") -> ast.Policy:
    """Parse one policy file. Raises PolicyError (with file:line:col diagnostics) on bad syntax."""
    check_size(text, file)  # before anything costs memory in proportion to the text (E007)
    # Accents typed in decomposed form (NFD, common on macOS) are the same letters to a reader.
    text = unicodedata.normalize("NFC", text)
    if not text.endswith("\n"):
        text += "\n"
    bag = DiagnosticBag(file)
    try:
        policy = _parse_recovering(text, bag)
    except UnexpectedInput as error:
        _syntax_diagnostic(error, text, bag)
        raise PolicyError(bag.sorted(), text) from None
    except DedentError as error:
        line = _dedent_line(text, str(error))
        bag.error("E004", "this line's indentation matches no enclosing block", Span(line, 1))
        raise PolicyError(bag.sorted(), text) from None
    policy.file = file
    policy.source = text
    # Every later pass recurses by the nesting of expressions (chains count once): bound it.
    check_nesting(policy, bag)
    if bag.has_errors:
        raise PolicyError(bag.sorted(), text)
    return policy


MAX_SYNTAX_ERRORS = 50
ITEM_WORDS = frozenset(("description", "input", "record", "enum", "let", "rule", "step", "table", "default", "on",
                        "output", "actionable", "test"))


def _parse_recovering(text: str, bag: DiagnosticBag):
    """Parse; after a syntax error, blank out the top-level item that holds it (line numbers are
    kept) and parse again, so that every item with a syntax error is reported, each once, located
    and with its friendly message. Raises PolicyError when there was any."""
    current = text
    while True:
        ast_builder.start_parse()
        try:
            policy = _lark().parse(current)
        except UnexpectedInput as error:
            before = len(bag.items)
            _syntax_diagnostic(error, current, bag)
            found = bag.items[before:]
            if before and found and found[0].span < bag.items[before - 1].span:
                # Before the last error: a consequence of recovering, not a mistake of its own.
                del bag.items[before:]
                raise PolicyError(bag.sorted(), text) from None
            blanked = _blank_item(current, found)
            bag.items[before:] = found  # _blank_item may add a hint
            # Each round empties one more item, so this ends.
            if blanked is None or blanked == current or len(bag.items) >= MAX_SYNTAX_ERRORS:
                raise PolicyError(bag.sorted(), text) from None
            current = blanked
            continue
        if bag.has_errors:  # the rest parsed: report what the blanked items held
            raise PolicyError(bag.sorted(), text)
        invalid = ast_builder.invalid_literal()
        if invalid is not None:  # the first literal that could not be converted (E005)
            bag.error("E005", *invalid)
            raise PolicyError(bag.sorted(), text)
        return policy


def _blank_item(text: str, found: list[Diagnostic]) -> str | None:
    """`text` with the top-level item holding the first diagnostic replaced by empty lines; None
    when it cannot be (an error in the header, at the end of the file, or in an open bracket)."""
    if not found or found[0].code not in ("E001", "E002"):
        return None
    lines = text.split("\n")
    starts, unclosed = _item_starts(lines)
    line = found[0].span.line
    before = [n for n in starts if n <= line]
    if not before or before[-1] == starts[0]:  # the header: nothing to recover into
        return None
    first = before[-1]
    if first == line and found[0].span.column == 1:
        # The parser stopped at an item's first word: the item before is the incomplete one.
        first, line = max(n for n in starts if n < first), line - 1
        if first == starts[0]:
            return None
    if first in unclosed:
        # The item before left a bracket open: the parser read on into this one. Blank both.
        opened = unclosed[first]
        first = max(n for n in starts if n < first)
        if first == starts[0]:
            return None
        if found[0].hint is None:
            found[0] = replace(found[0], hint=f"the bracket opened on line {opened} is not closed")
    after = [n for n in starts if n > line]
    last = (after[0] - 1) if after else len(lines)
    return "\n".join("" if first <= n <= last else text for n, text in enumerate(lines, start=1))


def _item_starts(lines: list[str]) -> tuple[list[int], dict[int, int]]:
    """Line numbers (1-based) where a top-level item starts: unindented text outside brackets."""
    starts: list[int] = []
    unclosed: dict[int, int] = {}  # item start -> line of a bracket the item before left open
    depth, opened = 0, 0
    for number, line in enumerate(lines, start=1):
        parts = line.split(maxsplit=1) if line[:1] not in ("", " ", "\t", "#") else []
        word = parts[0] if parts else ""  # a line of other white space (\xa0, \f) has no word
        if word in ITEM_WORDS or (word == "policy" and not starts):
            # An item keyword at the margin starts an item, even after an unclosed `(`; other text at
            # the margin (`when` not indented) belongs to the item before.
            starts.append(number)
            if depth:
                unclosed[number] = opened
            depth = 0
        for _, char in code_chars(line):
            if char == "#":
                break
            elif char in "([{":
                depth += 1
                opened = number if depth == 1 else opened
            elif char in ")]}" and depth:
                depth -= 1
    return starts, unclosed


def _dedent_line(text: str, message: str) -> int:
    """Lark's DedentError has no position; find the first line whose indentation is inconsistent."""
    stack = [0]
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        depth += line.count("(") + line.count("[") + line.count("{") - line.count(")") - line.count("]") - line.count("}")
        prefix = line[: len(line) - len(line.lstrip(" \t"))]
        indent = prefix.count(" ") + prefix.count("\t") * PolicyIndenter.tab_len  # as the lexer counts
        if indent > stack[-1]:
            stack.append(indent)
        else:
            while indent < stack[-1]:
                stack.pop()
            if indent != stack[-1]:
                return number
    return 1


def parse_file(path: str | Path) -> ast.Policy:
    path = Path(path)
    return parse(path.read_text(encoding="utf-8"), str(path))


__all__ = ["parse", "parse_file", "keywords", "PolicyError", "Diagnostic"]
