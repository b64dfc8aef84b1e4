"""Parsing a policy being edited, item by item, so a change re-parses only the items it touched.

A policy is its header followed by top-level items (`let`, `rule`, `table`...), each starting at
the margin; the grammar reads each item the same way wherever it stands. So the text is cut at
the lines where items start, each piece is parsed on its own by the real parser (dsl.parser.parse,
behind a one-line header) and kept by its text; a piece seen before is reused, its spans moved to
its new lines. The items are then put together into the Policy the checker reads.

Whenever the pieces are not plainly independent (a bracket left open across an item, a piece that
does not parse, anything but a header at the top), the whole text is parsed as `regua check` parses
it: syntax errors, and their recovery, are always exactly the parser's.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata

from regua.dsl import ast
from regua.dsl.diagnostics import PolicyError, Span
from regua.dsl.limits import check_size
from regua.dsl.parser import parse
from regua.dsl.source import code_chars

# dsl.parser's item keywords: a line at the margin starting with one of them starts an item.
ITEM_WORDS = frozenset(("description", "input", "record", "enum", "let", "rule", "step", "table", "default", "on",
                        "output", "actionable", "test"))
BRACKETS = re.compile(r"[()\[\]{}]")
PREFIX = "policy p kind credit\n"  # what a piece is parsed behind; its first line is line 2
MAX_CACHED = 20_000


class Cancelled(Exception):
    """A newer text of the document arrived: this analysis is of no use any more."""


class ItemCache:
    def __init__(self):
        self.pieces: dict[str, tuple[list[ast.Node], int]] = {}  # piece text -> (items, first line now)
        # piece text -> where the spans of its kept items are (_span_slots), once it moved: moved
        # again (every edit above it), it is shifted through this list, not walked again.
        self.slots: dict[str, list] = {}
        self.reused = self.parsed = 0

    def parse(self, text: str, file: str, keep_notes: bool = False, cancelled=None) -> ast.Policy:
        """The policy `parse(text, file)` would give; PolicyError as it would raise it. With
        `keep_notes`, reused items keep what the checker wrote on them (lsp/checking.py decides
        what to check again and forgets the rest itself). `cancelled()` true stops it (Cancelled)
        before it changes anything."""
        check_size(text, file)  # the whole text's size (E007), as parse checks it; pieces are smaller
        text = unicodedata.normalize("NFC", text)
        if not text.endswith("\n"):
            text += "\n"
        cuts = _item_starts(text)
        if cuts is None:
            return parse(text, file)
        lines = text.split("\n")
        try:
            header = parse("\n".join(lines[: cuts[0]]) + "\n", file) if cuts[0] else None
            if header is None or header.items:
                return parse(text, file)
            bounds = cuts + [len(lines) - 1]
            pieces = ["\n".join(lines[start:end]) + "\n" for start, end in zip(bounds, bounds[1:])]
            found = self._pieces(pieces, cancelled)
        except PolicyError:
            return parse(text, file)  # the parser's own errors, recovery and all
        # Only now that every piece parsed are reused ones touched: until then they still belong to
        # the last analysis (the editor's hover and completion may be reading it).
        items: list[ast.Node] = []
        for (piece, nodes, line, keep), start in zip(found, bounds):
            # The checker writes on the nodes (types, what names refer to): a reused piece starts
            # afresh, so it is checked exactly as one just parsed (unless the caller keeps them).
            if not keep_notes:
                _refresh(nodes, start + 1 - line)
            elif start + 1 != line:
                if keep:
                    if piece not in self.slots:
                        self.slots[piece] = _span_slots(nodes)
                    _shift_slots(self.slots[piece], start + 1 - line)
                else:
                    _shift(nodes, start + 1 - line)
            if keep:
                self.pieces[piece] = (nodes, start + 1)
            items += nodes
        if len(self.pieces) > MAX_CACHED:
            self.pieces.clear()
            self.slots.clear()
        # The parser's span of the whole policy runs to the line after the last newline.
        whole = Span(header.span.line, header.span.column, text.count("\n") + 1, 1)
        policy = ast.Policy(header.name, header.kind, header.version, items, file=file, source=text, span=whole)
        policy.name_span, policy.kind_span = header.name_span, header.kind_span
        return policy

    def _pieces(self, pieces: list[str], cancelled=None) -> list[tuple[str, list[ast.Node], int, bool]]:
        """(piece, its items, the line they are at, whether to keep them) for each piece, parsing only
        the new ones; PolicyError when one does not parse."""
        found, used = [], set()
        for piece in pieces:
            if cancelled is not None and cancelled():
                raise Cancelled()
            cached = self.pieces.get(piece) if piece not in used else None
            if cached is None:  # new, or the same text twice in a policy (two equal tests): its own nodes
                self.parsed += 1
                cached = (parse(PREFIX + piece).items, 2)
            else:
                self.reused += 1
            found.append((piece, *cached, piece not in used))
            used.add(piece)
        return found


def _item_starts(text: str) -> list[int] | None:
    """0-based line indexes where the first item and every later one start (the header is before the
    first); None when the text is not plainly cut into items."""
    starts: list[int] = []
    depth, header_seen = 0, False
    for index, line in enumerate(text.split("\n")):
        word = line.split(maxsplit=1)[0] if line[:1] not in ("", " ", "\t", "#") and line.split() else ""
        if word == "policy" and not header_seen:
            if depth:
                return None
            header_seen = True
        elif word in ITEM_WORDS:
            if depth or not header_seen:
                return None
            starts.append(index)
        elif word and not header_seen:
            return None
        if not BRACKETS.search(line):
            continue  # most lines: nothing to count, and no need to walk them character by character
        for _, char in code_chars(line):
            if char == "#":
                break
            if char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
    return starts if header_seen and starts and depth == 0 else None


# Fields the checker fills in (dsl/ast_nodes.py says so of each).
CHECKER_NOTES = frozenset(("type", "ref", "resolved"))

@functools.cache
def _fields_of(cls) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A node class's fields the checker fills in, and the others."""
    names = [spec.name for spec in dataclasses.fields(cls)]
    return tuple(n for n in names if n in CHECKER_NOTES), tuple(n for n in names if n not in CHECKER_NOTES)


def _moved(span: Span, delta: int) -> Span:
    return Span(span.line + delta, span.column, span.end_line + delta if span.end_line else 0, span.end_column)


def forget_notes(items: list[ast.Node]) -> None:
    """Forget what the checker wrote under `items` (Expr.type, Name.ref, Call.resolved), in place."""
    _refresh(items, 0)


def _refresh(items: list[ast.Node], delta: int, clear_notes: bool = True) -> None:
    """Move every span under `items` by `delta` lines and (unless told not to) forget what the
    checker wrote on them (Expr.type, Name.ref, Call.resolved), in place (iterative: any nesting)."""
    stack: list = list(items)
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Node):
            if id(node) in seen:
                continue
            seen.add(id(node))
            notes, others = _fields_of(type(node))
            if clear_notes:
                for name in notes:
                    setattr(node, name, None)
            for name in others:
                value = getattr(node, name)
                if isinstance(value, Span):
                    if delta:
                        setattr(node, name, _moved(value, delta))
                elif isinstance(value, (ast.Node, list)):
                    stack.append(value)
                elif isinstance(value, tuple):
                    setattr(node, name, _shift_tuple(value, delta, stack))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, tuple):
                    node[index] = _shift_tuple(value, delta, stack)
                elif isinstance(value, (ast.Node, list)):
                    stack.append(value)


# Fields that never hold a span or a node, by their declared type: not looked at when shifting.
_PLAIN_FIELD_TYPES = frozenset(("str", "int", "bool", "str | None", "int | None", "bool | None", "list[str]"))


@functools.cache
def _shifted_fields(cls) -> tuple[str, ...]:
    """The fields of a node class that may hold a span or a node (every field but plain values and
    what the checker writes)."""
    return tuple(spec.name for spec in dataclasses.fields(cls)
                 if spec.type not in _PLAIN_FIELD_TYPES and spec.name not in CHECKER_NOTES)


def _shift(items: list[ast.Node], delta: int) -> None:
    """Move every span under `items` by `delta` lines, in place (what _refresh does when the notes
    stay: an edit that adds a line moves every later item's spans)."""
    _shift_slots(_span_slots(items), delta)


def _span_slots(items: list[ast.Node]) -> list[tuple[object, object, bool]]:
    """Every place under `items` that holds a span: (holder, key, whether it is a tuple holding
    spans), where holder[key] is the span or tuple (a node's __dict__ and a field name, or a list
    and an index). The nodes' dicts and lists stay the same objects while the items are kept (the
    checker writes only its notes), so the list stays true."""
    slots: list[tuple[object, object, bool]] = []
    stack: list = list(items)
    seen: set[int] = set()
    node_types, span_type = (ast.Node, list), Span
    while stack:
        node = stack.pop()
        if type(node) is list:
            for index, value in enumerate(node):
                if isinstance(value, tuple):
                    slots.append((node, index, True))
                    stack += [part for part in value if isinstance(part, node_types)]
                elif isinstance(value, node_types):
                    stack.append(value)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        fields = node.__dict__
        for name in _shifted_fields(type(node)):
            value = fields[name]
            if type(value) is span_type:
                slots.append((fields, name, False))
            elif isinstance(value, node_types):
                stack.append(value)
            elif isinstance(value, tuple):
                slots.append((fields, name, True))
                stack += [part for part in value if isinstance(part, node_types)]
    return slots


def _shift_slots(slots: list[tuple[object, object, bool]], delta: int) -> None:
    moved = _fast_moved
    for holder, key, is_tuple in slots:
        value = holder[key]
        holder[key] = tuple(moved(part, delta) if type(part) is Span else part for part in value) if is_tuple \
            else moved(value, delta)


def _fast_moved(span: Span, delta: int) -> Span:
    moved = object.__new__(Span)  # Span is frozen: filled through its __dict__, as its __init__ would
    moved.__dict__.update(line=span.line + delta, column=span.column,
                          end_line=span.end_line + delta if span.end_line else 0, end_column=span.end_column)
    return moved


def _shift_tuple(value: tuple, delta: int, stack: list) -> tuple:
    """A tuple of the AST (a test's `given` entry: name, value, span; a record entry: name, value)."""
    moved = []
    for part in value:
        if isinstance(part, Span):
            moved.append(_moved(part, delta))
        else:
            if isinstance(part, (ast.Node, list)):
                stack.append(part)
            moved.append(part)
    return tuple(moved)
