"""The syntax tree built while Lark parses: one callback per grammar rule, so no parse tree.

Lark's LALR parser calls a callback per reduction with the values of the rule's symbols. Lark's own
callbacks build a parse tree (`Tree` with a `meta` per node when `propagate_positions` is on) that
a Transformer then turns into dsl.ast; here each callback goes straight to the handler method of
the rule (dsl.ast_handlers.ToAst), which is over twice as fast for a large policy (issue 14) and gives
the same nodes at the same positions. What Lark's tree builder does, each callback does too:

- the extent (`meta`): from the start of the first child to the end of the last one, counting the
  tokens the tree leaves out (`(`, keywords, line ends), as `propagate_positions` computes it; a
  value remembers its extent in `_x` when its span is not that (a rule's span is its name's);
- the children handed over: anonymous tokens left out, `_rule`s inlined, `None` for a missing
  `[optional]` (`maybe_placeholders`), exactly as Lark's `ChildFilter` does, from the same rules;
- a `?rule` with one child is that child (with its extent widened, as `( expr )`).

Lark's interface for this is the `callbacks` mapping of its LALR parser (rule -> function of the
list of values), which its own `transformer=` option fills too; that option hands over children
without positions, which the policy's diagnostics need, hence this module.
"""

from __future__ import annotations

import threading
from decimal import InvalidOperation
from operator import itemgetter

from lark import Lark, Token

from . import ast
from .diagnostics import Span


class InvalidLiteral(Exception):
    """A literal that parses but cannot be (a whole number too large, a date that does not exist)."""

    def __init__(self, message: str, token: Token):
        self.message = message
        self.token = token


class Carried:
    """A rule's value that is not a tree node (a tuple, a number, a list of assignments), carried
    with its extent while parsing; the handler of the rule using it takes `.value`."""

    __slots__ = ("value", "_x")

    def __init__(self, value) -> None:
        self.value = value
        self._x = None


class _Inlined(list):
    """The children of a `_rule` (and of Lark's helper rules for `x*`, `x+`), spliced into the
    parent's children."""

    __slots__ = ("_x",)


#: The callback of `?a: b`: b's value, same extent (lark_runtime.FastParserState leaves it in place).
PASS = itemgetter(0)

# The first literal that could not be converted in the parse running in this thread (reported once
# the whole text parsed, as E005, like the transform did after parsing): (message, span).
_local = threading.local()


def start_parse() -> None:
    _local.invalid = None


def invalid_literal() -> tuple[str, Span] | None:
    return getattr(_local, "invalid", None)


def _note_invalid(message: str, span: Span) -> None:
    if getattr(_local, "invalid", None) is None:
        _local.invalid = (message, span)


_new = object.__new__


def span(line: int, column: int, end_line: int, end_column: int) -> Span:
    """Span(line, column, end_line, end_column), made as the frozen dataclass's __init__ would but
    without its four object.__setattr__ calls (two of them per syntax-tree node)."""
    made = _new(Span)
    fields = made.__dict__
    fields["line"] = line
    fields["column"] = column
    fields["end_line"] = end_line
    fields["end_column"] = end_column
    return made


def token_span(token: Token) -> Span:
    """Span.of(token)."""
    return span(token.line or 1, token.column or 1, token.end_line or 0, token.end_column or 0)


def _extent(children: list) -> Span:
    """From the start of the first child to the end of the last (every child has a position)."""
    first, last = children[0], children[-1]
    if first.__class__ is not Token:
        first = first._x or first.span
    if last.__class__ is not Token:
        last = last._x or last.span
    return span(first.line or 1, first.column or 1, last.end_line or 0, last.end_column or 0)


def _placeholder(span: Span) -> ast.Literal:
    """Stands for an invalid literal until the parse ends and E005 is reported."""
    return ast.Literal("int", 0, "0", span=span)


def _children_filter(rule):
    """Lark's ChildFilter for `rule` (lark.parse_tree_builder.maybe_create_child_filter, LALR,
    with placeholders): [(index, inline, Nones before)], Nones after; None when it passes all."""
    expansion = rule.expansion
    empty = rule.options.empty_indices
    if empty:
        bits = "".join(str(int(b)) for b in empty)
        nones_at = [len(ones) for ones in bits.split("0")]
    else:
        nones_at = [0] * (len(expansion) + 1)
    include, nones = [], 0
    for index, symbol in enumerate(expansion):
        nones += nones_at[index]
        if rule.options.keep_all_tokens or not (symbol.is_term and symbol.filter_out):
            inline = not symbol.is_term and symbol.name.startswith("_")
            include.append((index, inline, nones))
            nones = 0
    trailing = nones + nones_at[len(expansion)]
    if not empty and len(include) == len(expansion) and not any(inline for _, inline, _ in include):
        return None
    return include, trailing


def _select(children: list, include, trailing: int) -> list:
    selected: list = []
    for index, inline, nones in include:
        if nones:
            selected += [None] * nones
        if inline:
            if selected:
                selected += children[index]
            else:  # `x*` is left-recursive: extend the list so far, not a copy (linear, as in Lark)
                selected = children[index]
        else:
            selected.append(children[index])
    if trailing:
        selected += [None] * trailing
    return selected


def _callback(rule, handler):
    shape = _children_filter(rule)
    include, trailing = shape if shape is not None else (None, 0)
    name = rule.alias or rule.options.template_source or rule.origin.name
    if handler is None:
        if name.startswith("_"):  # inlined into the parent: its children, with their extent
            def inlined(children: list) -> _Inlined:
                extent = _extent(children)
                value = children if include is None else _select(children, include, trailing)
                if value.__class__ is not _Inlined:
                    value = _Inlined(value)
                value._x = extent
                return value
            return inlined
        if not (rule.options.expand1 and not rule.alias):
            raise TypeError(f"no handler for grammar rule {name!r}")
        if include is None and len(rule.expansion) == 1:
            return PASS

    may_pass = handler is None or (rule.options.expand1 and not rule.alias)

    def call(children: list):
        extent = _extent(children)
        selected = children if include is None else _select(children, include, trailing)
        if may_pass and len(selected) == 1:
            value = selected[0]  # `?rule` with one child: that child
        else:
            try:
                value = handler(extent, *selected)
            except InvalidLiteral as error:
                _note_invalid(error.message, Span.of(error.token))
                return _placeholder(extent)
            except (InvalidOperation, ValueError) as error:
                _note_invalid(f"invalid literal: {error}", extent)
                return _placeholder(extent)
        if getattr(value, "span", None) is not extent:
            try:
                value._x = extent
            except AttributeError:  # a handler returned a plain value: only allowed inside a rule
                pass
        return value

    return call


def install(parser: Lark, handlers: object) -> None:
    """Make `parser` (LALR) build the tree with `handlers`' methods, named as the rules (or aliases)."""
    callbacks = {rule: _callback(rule, getattr(handlers, rule.alias or rule.origin.name, None))
                 for rule in parser.rules}
    for rule in parser.rules:
        # The parser looks up the rule's name in its tables (plain str) after each reduction; as a
        # lark Token (how the grammar loader leaves it) every lookup runs Token.__eq__ in Python.
        rule.origin.name = str(rule.origin.name)
    lalr = parser.parser.parser.parser  # ParsingFrontend -> LALR_Parser -> _Parser (lark 1.x)
    lalr.callbacks = callbacks

