"""Parsing item by item (lsp/incremental.py) gives exactly what the parser gives for the whole text:
the same AST, spans included, on every bundled policy and docs example, and after any sequence
of edits made to a text whose pieces were parsed before; the same errors when the text is broken;
and the same diagnostics once checked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from doc_blocks import read_blocks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regua.dsl import ast
from regua.dsl.diagnostics import PolicyError
from regua.dsl.parser import parse
from regua.engine.builtins import default_environment
from regua.engine.compiler import check_source
from regua.lsp.analysis import analyse
from regua.lsp.incremental import ItemCache

ROOT = Path(__file__).resolve().parent.parent
POLICIES = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "policies").glob("*.regua"))}
DOC_POLICIES = {block.where: block.text for doc in sorted((ROOT / "docs").glob("*.md"))
                for block in read_blocks(doc.read_text(encoding="utf-8"), str(doc.relative_to(ROOT)))
                if block.kind in ("regua", "regua-error", "regua-warning")}
ENV = default_environment()


def dump(node):
    """A node as plain data: every field but what the checker writes (and the source text)."""
    if isinstance(node, ast.Node):
        return (type(node).__name__, tuple((f.name, dump(getattr(node, f.name))) for f in dataclasses.fields(node)
                                           if f.name not in ("type", "ref", "resolved", "source")))
    if isinstance(node, (list, tuple)):
        return tuple(dump(x) for x in node)
    return node


def outcome(parser, text: str):
    try:
        return "ok", dump(parser(text, "f.regua"))
    except PolicyError as error:
        return "error", [d.headline() for d in error.diagnostics]


@pytest.mark.parametrize("name", sorted(POLICIES) + sorted(DOC_POLICIES))
def test_item_by_item_is_the_parser(name):
    text = POLICIES.get(name) or DOC_POLICIES[name]
    cache = ItemCache()
    assert outcome(cache.parse, text) == outcome(parse, text)
    assert outcome(cache.parse, text) == outcome(parse, text)  # the second time every piece is reused
    assert cache.reused > 0 or outcome(parse, text)[0] == "error"


def test_only_the_changed_item_is_parsed_again():
    text = POLICIES["credito_b2b.regua"]
    cache = ItemCache()
    cache.parse(text, "f")
    parsed = cache.parsed
    cache.parse(text.replace("let score = relatorio.score.value", "let score = relatorio.score.value + 0"), "f")
    assert cache.parsed == parsed + 1
    # Lines added before an item: the item before ends later (its span runs over the blank lines).
    cache.parse(text.replace("let score = relatorio.score.value", "\n\nlet score = relatorio.score.value"), "f")
    assert cache.parsed == parsed + 2


# One edit of a policy's lines: (line index, what to do).
EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(
    ["insert blank", "insert comment", "delete", "duplicate", "indent", "dedent", "bump number", "open bracket",
     "rename", "swap"])), min_size=1, max_size=6)


def _edit(text: str, line: int, how: str) -> str:
    lines = text.split("\n")
    i = line % len(lines)
    if how == "insert blank":
        lines.insert(i, "")
    elif how == "insert comment":
        lines.insert(i, "# nota")
    elif how == "delete":
        del lines[i]
    elif how == "duplicate":
        lines.insert(i, lines[i])
    elif how == "indent":
        lines[i] = "  " + lines[i]
    elif how == "dedent":
        lines[i] = lines[i].lstrip()
    elif how == "bump number":
        lines[i] = lines[i].replace("0", "1", 1)
    elif how == "open bracket":
        lines[i] += " ("
    elif how == "rename":
        lines[i] = lines[i].replace("score", "scor", 1)
    elif how == "swap" and i + 1 < len(lines):
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    return "\n".join(lines)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(POLICIES)), edits=EDITS)
def test_edits_parse_as_the_parser_parses_them(name, edits):
    cache = ItemCache()
    text = POLICIES[name]
    cache.parse(text, "f.regua")
    for line, how in edits:
        text = _edit(text, line, how)
        assert outcome(cache.parse, text) == outcome(parse, text), (how, line)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(POLICIES)), edits=EDITS)
def test_edited_policies_check_as_regua_check_does(name, edits):
    cache = ItemCache()
    text = POLICIES[name]
    analyse(text, "f.regua", ENV, cache)
    for line, how in edits:
        text = _edit(text, line, how)
        try:
            expected = check_source(text, "f.regua", ENV).warnings
        except PolicyError as error:
            expected = error.diagnostics
        assert analyse(text, "f.regua", ENV, cache).diagnostics == list(expected), (how, line)


def test_a_checker_failure_is_one_diagnostic_not_a_crash():
    from regua.lsp.server import ReguaLanguageServer

    server = ReguaLanguageServer(env=object())  # an environment the checker cannot read: it fails
    analysis = server._analyse("file:///x.regua", "policy p kind credit\nlet x = round(1)\noutput x\ndefault approve\n")
    assert analysis.internal_error.startswith("AttributeError") and not analysis.parsed


def test_a_policy_over_the_size_limit_is_refused_as_the_parser_refuses_it():
    from regua.dsl import limits

    text = POLICIES["credito_b2b.regua"]
    saved = limits.MAX_SOURCE_CHARS
    limits.configure(max_source_chars=len(text) - 10)
    try:
        assert outcome(ItemCache().parse, text) == outcome(parse, text)
        assert outcome(parse, text)[1][0].split(": ")[1] == "error E007"
    finally:
        limits.configure(max_source_chars=saved)
