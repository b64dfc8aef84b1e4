"""The highlighting grammars (dsl/highlight.py) cannot drift from the language: their word lists
are the grammar's keywords, the built-in types, functions and actions; and every bundled policy
and every policy in the docs is tokenised with the Pygments lexer and with the TextMate grammar
(its patterns run by Oniguruma, the engine VS Code uses), each token checked against what Lark's
own lexer says it is."""

from __future__ import annotations

import json
import re
from pathlib import Path

import onigurumacffi
import pytest
from doc_blocks import read_blocks
from pygments.lexers import find_lexer_class_for_filename, get_lexer_by_name
from pygments.token import Comment, Keyword, Literal, Name, Number, Operator, Punctuation, String, Whitespace
from rich.console import Console

from regua.dsl import highlight
from regua.dsl.kinds import KINDS
from regua.dsl.parser import _lark
from regua.dsl.types import BUILTIN_TYPES

ROOT = Path(__file__).resolve().parent.parent
POLICY_KINDS = ("regua", "regua-error", "regua-warning", "regua-fragment")


def _sources() -> list[tuple[str, str]]:
    found = [(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))
             for path in sorted((ROOT / "policies").glob("*.regua"))]
    for doc in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        for block in read_blocks(doc.read_text(encoding="utf-8"), str(doc.relative_to(ROOT))):
            if block.kind in POLICY_KINDS:
                found.append((block.where, block.text))
    return found


SOURCES = _sources()


def _grammar_words() -> set[str]:
    """Every keyword terminal of the Lark grammar: string terminals made of letters (BRL and D too)."""
    return {t.pattern.value for t in _lark().terminals if t.pattern.type == "str" and t.pattern.value.isalpha()}


# ---- the word lists ---------------------------------------------------------------------------------


def test_the_keyword_lists_are_the_grammars_keywords():
    lists = [highlight.DECLARATION_WORDS, highlight.CLAUSE_WORDS, highlight.OPERATOR_WORDS, highlight.CONSTANT_WORDS,
             highlight.UNIT_WORDS]
    listed = [word for words in lists for word in words]
    assert len(listed) == len(set(listed)), "a keyword is in two lists"
    assert set(listed) == _grammar_words()


def test_the_name_lists_are_the_languages_builtins():
    from regua.dsl.infer import AGGREGATES, BUILTIN_NAMES
    from regua.engine.builtins import default_environment

    assert set(highlight.TYPE_NAMES) == set(BUILTIN_TYPES)
    assert set(highlight.FUNCTION_NAMES) == set(default_environment().functions) | set(AGGREGATES) | {"fired",
                                                                                                      "available"}
    assert set(highlight.BUILTIN_NAMES) == set(BUILTIN_NAMES)
    assert set(highlight.ACTION_WORDS) == {action for kind in KINDS.values() for action in kind.actions}


def test_the_committed_textmate_grammars_are_generated_from_the_table():
    expected = highlight.textmate_json()
    for path in ("editors/regua.tmLanguage.json", "editors/vscode/syntaxes/regua.tmLanguage.json"):
        assert (ROOT / path).read_text(encoding="utf-8") == expected, f"{path}: run python -m regua.dsl.highlight"


def test_pygments_finds_the_lexer_by_name_and_file_name():
    # Through the `pygments.lexers` entry point of the installed package.
    assert isinstance(get_lexer_by_name("regua"), highlight.ReguaLexer)
    assert find_lexer_class_for_filename("credito.regua") is highlight.ReguaLexer


def test_there_are_sources_to_tokenise():
    assert sum(where.startswith("policies/") for where, _ in SOURCES) >= 5
    assert sum(where.startswith("docs/") for where, _ in SOURCES) >= 30


# ---- tokenising ---------------------------------------------------------------------------------------


def _lark_tokens(text: str) -> list[tuple[int, str, str]]:
    """(offset, text, kind) for every token Lark's lexer reads, comments included, until the first
    character it cannot read (error examples may hold one)."""
    found = []
    previous = None
    try:
        for token in _lark().lex(text):
            # The parser's contextual lexer reads only a NAME after a dot (`r.kind`); the plain lexer
            # used here would say keyword.
            kind, previous = ("NAME" if previous == "DOT" and str(token).isalpha() else token.type), token.type
            if token.type in ("_INDENT", "_DEDENT"):
                continue
            if token.type == "_NL":
                found += [(token.start_pos + m.start(), m.group(), "COMMENT") for m in re.finditer(r"#[^\n]*", token)]
                continue
            found.append((token.start_pos, str(token), kind))
    except Exception:  # noqa: BLE001 - an error example's bad character ends what can be compared
        pass
    return found


def _pygments_tokens(text: str) -> dict[int, tuple[str, object]]:
    return {i: (v, t) for i, t, v in highlight.ReguaLexer().get_tokens_unprocessed(text) if v.strip()}


_ONIG: dict[str, object] = {}


def _textmate_tokens(text: str) -> dict[int, tuple[str, str]]:
    """Run the generated grammar the way a TextMate engine does: line by line, at each position the
    pattern matching earliest wins (the first listed on a tie); captures name their groups."""
    patterns = json.loads(highlight.textmate_json())["patterns"]
    found: dict[int, tuple[str, str]] = {}
    offset = 0
    for line in text.split("\n"):
        position = 0
        while position < len(line):
            best = None
            for pattern in patterns:
                regex = _ONIG.setdefault(pattern["match"], onigurumacffi.compile(pattern["match"]))
                match = regex.search(line, position)
                if match is not None and (best is None or match.start() < best[0].start()):
                    best = (match, pattern)
            if best is None:
                break
            match, pattern = best
            if "captures" in pattern:
                for group, capture in pattern["captures"].items():
                    if match.group(int(group)):
                        found[offset + match.start(int(group))] = (match.group(int(group)), capture["name"])
            else:
                found[offset + match.start()] = (match.group(), pattern["name"])
            position = max(match.end(), position + 1)
        offset += len(line) + 1
    return found


# What Lark's kind of token may be highlighted as, in each grammar.
KEYWORD_CLASSES = (Keyword, Operator.Word)
KEYWORD_SCOPES = ("storage.type.", "keyword.", "constant.language.", "support.type.unit.")
NAME_CLASSES = (Name, Keyword.Type)
NAME_SCOPES = ("variable.", "entity.name.", "support.function.", "support.type.")


def _expected(kind: str, words: set[str]) -> tuple[tuple, tuple[str, ...]]:
    if kind == "COMMENT":
        return (Comment,), ("comment.",)
    if kind == "NAME":
        return NAME_CLASSES, NAME_SCOPES
    if kind == "STRING":
        return (String,), ("string.",)
    if kind == "DATE":
        return (Literal.Date,), ("constant.numeric.date.",)
    if kind in ("INT", "DECIMAL"):
        return (Number,), ("constant.numeric.",)
    if kind == "COMPARATOR":
        return (Operator,), ("keyword.operator.",)
    if kind in words:
        return KEYWORD_CLASSES, KEYWORD_SCOPES
    return (Operator, Punctuation), ("keyword.operator.", "punctuation.")


def _keyword_kinds() -> set[str]:
    return {t.name for t in _lark().terminals if t.pattern.type == "str" and t.pattern.value.isalpha()}


@pytest.mark.parametrize(("where", "text"), SOURCES, ids=[where for where, _ in SOURCES])
def test_both_grammars_read_every_token_as_lark_does(where: str, text: str):
    words = _keyword_kinds()
    pygments_tokens, textmate_tokens = _pygments_tokens(text), _textmate_tokens(text)
    lark_tokens = _lark_tokens(text)
    assert lark_tokens, f"{where}: nothing to compare"
    problems = []
    for offset, value, kind in lark_tokens:
        classes, scopes = _expected(kind, words)
        line = text.count("\n", 0, offset) + 1
        got = pygments_tokens.get(offset)
        if got is None or got[0] != value or not any(got[1] in c for c in classes):
            problems.append(f"line {line}: {kind} {value!r}: Pygments reads {got}")
        got_tm = textmate_tokens.get(offset)
        if got_tm is None or got_tm[0] != value or not got_tm[1].startswith(scopes):
            problems.append(f"line {line}: {kind} {value!r}: TextMate reads {got_tm}")
    assert not problems, f"{where}:\n" + "\n".join(problems[:20])


@pytest.mark.parametrize(("where", "text"), SOURCES[:8], ids=[where for where, _ in SOURCES[:8]])
def test_the_two_grammars_agree_on_every_token(where: str, text: str):
    # Each Pygments token type goes with the TextMate scopes the table pairs it with.
    pairs: dict[object, set[str]] = {}
    for _pattern, what in highlight.rules():
        for token, scope in (what if isinstance(what, list) else [what]):
            pairs.setdefault(token, set()).add(scope)
    textmate_tokens = _textmate_tokens(text)
    for offset, (value, token) in _pygments_tokens(text).items():
        if token is Whitespace:
            continue
        assert textmate_tokens.get(offset, (None, None))[0] == value, (where, offset, value)
        assert textmate_tokens[offset][1] in pairs[token], (where, value, token, textmate_tokens[offset])


def test_a_field_spelt_like_a_type_is_a_field_and_an_input_named_cnpj_is_a_name():
    tokens = {v: t for _, t, v in highlight.ReguaLexer().get_tokens_unprocessed(
        "input\n  cnpj: cnpj\nlet d = max(r.date for r in bureau.serasa(cnpj).restrictions)\n") if v.strip()}
    assert tokens["date"] is Name.Attribute
    assert tokens["max"] is Name.Builtin
    kinds = [t for _, t, v in highlight.ReguaLexer().get_tokens_unprocessed("  cnpj: cnpj\n") if v == "cnpj"]
    assert kinds == [Name, Keyword.Type]


def test_actions_are_told_apart_from_names():
    text = 'rule r\n  when x\n  deny "A" "b"\ndefault approve\non error review "E" "m"\nlet deny_total = 1\n'
    tokens = [(v, t) for _, t, v in highlight.ReguaLexer().get_tokens_unprocessed(text) if v.strip()]
    assert ("deny", Name.Builtin.Pseudo) in tokens and ("approve", Name.Builtin.Pseudo) in tokens
    assert ("review", Name.Builtin.Pseudo) in tokens and ("deny_total", Name) in tokens


def test_rich_colours_a_policy_with_the_lexer():
    from rich.syntax import Syntax

    console = Console(force_terminal=True, color_system="truecolor", width=80)
    with console.capture() as captured:
        console.print(Syntax('let x = 10 BRL  # dez\n', highlight.ReguaLexer()))
    assert "\x1b[" in captured.get() and "dez" in captured.get()
