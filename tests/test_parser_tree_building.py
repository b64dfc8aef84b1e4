"""The syntax tree built while Lark parses (dsl.ast_builder) and the saved grammar (dsl.grammar_cache):
the same spans as Lark's own parse tree with propagate_positions, invalid literals reported as before,
from any thread, and a cached grammar that is used when sound and rebuilt when not."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from lark import Lark, Tree

from regua.dsl import ast, grammar_cache
from regua.dsl.diagnostics import PolicyError
from regua.dsl.parser import GRAMMAR_PATH, PolicyIndenter, parse

ROOT = Path(__file__).resolve().parents[1]
POLICIES = sorted((ROOT / "policies").glob("*.regua"))

# Grammar aliases whose tree becomes an expression node (dsl.ast_handlers.ToAst), one node per tree.
EXPRESSIONS = {"otherwise", "if_expr", "or_op", "and_op", "not_op", "compare", "in_range", "not_in_range",
               "in_list", "not_in_list", "add", "sub", "mul", "div", "negate", "attribute", "call", "method_call",
               "comprehension", "name", "int_lit", "decimal_lit", "money_lit", "percent_lit", "days_lit",
               "business_days_lit", "string_lit", "date_lit", "true_lit", "false_lit", "list_lit", "record_lit"}

TRICKY = """# a comment before the header
policy p kind credit version "1"
description "parênteses, not, listas"

input
  a: int
  b: int = 0
  c: list of int = []

let x = (a + 1) * (b - 2)
let y = not (a > 1 and b < 2) or ((a == 3))
let z = -(a) + sum(v for v in c where (v > 0))
let w = [(1), 2, (a)] otherwise []
let k = if (a > 0) then (b) else 2
let r = {n: (a), m: 2}.n

rule regra
  when (a in 1..10) and not (b not in [1, 2])
  deny "X" "y"
  set limite = (a * 2%)

default approve
output limite = 0, x
"""


def _reference_spans(text: str) -> list[tuple]:
    """Lark's own tree, positions propagated: the span of every tree that is an expression."""
    lark = Lark(GRAMMAR_PATH.read_text(encoding="utf-8"), parser="lalr", lexer="contextual",
                postlex=PolicyIndenter(), propagate_positions=True, maybe_placeholders=True)
    tree = lark.parse(text)
    # `bureau.serasa(x)`: the namespace is part of the lookup's node, not a node of its own.
    namespaces = {id(t.children[0]) for t in tree.iter_subtrees() if t.data == "method_call"}
    return sorted((t.meta.line, t.meta.column, t.meta.end_line, t.meta.end_column)
                  for t in tree.iter_subtrees()
                  if isinstance(t, Tree) and t.data in EXPRESSIONS and id(t) not in namespaces)


def _our_spans(policy: ast.Policy) -> list[tuple]:
    found, stack, seen = [], list(policy.items), set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ast.Expr):
            found.append((item.span.line, item.span.column, item.span.end_line, item.span.end_column))
        if isinstance(item, ast.Node):
            stack.extend(vars(item).values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return sorted(found)


@pytest.mark.parametrize("path", [*POLICIES, "tricky"], ids=lambda p: getattr(p, "name", p))
def test_every_expression_has_the_span_lark_propagates(path):
    text = TRICKY if path == "tricky" else path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    assert _our_spans(parse(text)) == _reference_spans(text)


def test_a_parenthesized_operand_widens_its_parent_not_itself():
    policy = parse("policy p kind credit\ninput\n  a: int\nlet y = (a > 1) or a < 0\ndefault approve\n")
    let = policy.lets[0]
    assert (let.value.span.line, let.value.span.column) == (4, 9)  # the `or` starts at "("
    assert (let.value.left.span.column, let.value.left.span.end_column) == (10, 15)  # a > 1


def test_invalid_literal_is_reported_after_the_parse_and_syntax_errors_come_first():
    big = "policy p kind credit\nlet x = 99999999999999999999\ndefault approve\n"
    with pytest.raises(PolicyError) as info:
        parse(big)
    assert [(d.code, d.span.line, d.span.column) for d in info.value.diagnostics] == [("E005", 2, 9)]
    both = big + "let y = 1 +* 2\n"
    with pytest.raises(PolicyError) as info:
        parse(both)
    assert [d.code for d in info.value.diagnostics] == ["E001"]


def test_invalid_literals_in_one_thread_do_not_leak_into_another():
    bad = "policy p kind credit\nlet x = 2026-02-30\ndefault approve\n"
    good = "policy p kind credit\nlet x = 2026-02-28\ndefault approve\n"
    start = threading.Barrier(4)
    results: list[str] = []

    def work(index: int) -> None:
        start.wait()
        for _ in range(30):
            try:
                parse(bad if index % 2 else good)
                results.append("parsed" if index % 2 == 0 else "bad parsed")
            except PolicyError as error:
                codes = [d.code for d in error.diagnostics]
                results.append("parsed" if index % 2 and codes == ["E005"] else f"{index}: {codes}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["parsed"] * 120


# ---- the saved grammar ----

OPTIONS = {"parser": "lalr", "lexer": "contextual", "maybe_placeholders": True}


def _build(monkeypatch, folder) -> Lark:
    monkeypatch.setenv("REGUA_CACHE_DIR", str(folder))
    return grammar_cache.load_or_build(GRAMMAR_PATH.read_text(encoding="utf-8"), OPTIONS, {"postlex": PolicyIndenter()})


def test_the_grammar_is_saved_once_and_loaded_back_the_same(monkeypatch, tmp_path):
    built = _build(monkeypatch, tmp_path)
    saved = list(tmp_path.iterdir())
    assert len(saved) == 1 and saved[0].name.startswith("grammar-")
    loaded = _build(monkeypatch, tmp_path)
    assert list(tmp_path.iterdir()) == saved
    text = (ROOT / "policies" / "credito_b2b.regua").read_text(encoding="utf-8")
    assert loaded.parse(text) == built.parse(text)
    assert isinstance(loaded.options.postlex, PolicyIndenter)


def test_a_damaged_saved_grammar_is_built_again(monkeypatch, tmp_path):
    _build(monkeypatch, tmp_path)
    (saved,) = tmp_path.iterdir()
    saved.write_bytes(saved.read_bytes()[:100])
    parser = _build(monkeypatch, tmp_path)
    assert parser.parse("policy p kind credit\ndefault approve\n") is not None
    assert saved.stat().st_size > 100  # written again, whole


def test_no_cache_folder_means_nothing_is_written(monkeypatch, tmp_path):
    monkeypatch.setenv("REGUA_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    grammar_cache.load_or_build(GRAMMAR_PATH.read_text(encoding="utf-8"), OPTIONS, {"postlex": PolicyIndenter()})
    assert list(tmp_path.iterdir()) == []
