"""Parse policy text into the AST (dsl.ast), with positions and friendly syntax errors."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import DedentError, Indenter

from . import ast, ast_builder, grammar_cache, lark_runtime
from .ast_handlers import ToAst as _ToAst
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
