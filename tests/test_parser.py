"""Parser: the variety of valid syntax (syntax errors: tests/test_parser_errors.py)."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal

import pytest
from parser_harness import EXAMPLE, H, position_of

from regua.dsl import ast
from regua.dsl.parser import keywords, parse, parse_file
from regua.engine.compiler import compile_policy


def let_value(policy: ast.Policy, name: str) -> ast.Expr:
    return next(let.value for let in policy.lets if let.name == name)


# ---- valid syntax ---------------------------------------------------------------------------


def test_example_policy_parses_with_every_block_kind():
    policy = parse_file(EXAMPLE)
    assert policy.name == "credito_b2b"
    assert policy.kind == "credit"
    assert policy.version == "2026.11.1"
    assert policy.file == str(EXAMPLE)
    assert policy.description.startswith("Limite de crédito")
    assert [f.name for f in policy.fields][:2] == ["cnpj", "faturamento_anual"]
    assert {t.name for t in policy.tables} == {"teto_por_score", "ciclos_de_compra", "prazo_por_score"}
    assert len(policy.rules) == 11
    assert len(policy.tests) == 13


def test_accented_identifiers_and_strings():
    source = (
        "policy política_ação kind credit\n"
        'description "Política de crédito: análise, ação, coração — “aspas” e emoji 🙂"\n'
        "input\n"
        "  análise_prévia: int\n"
        "  prazo_médio: int = 0\n"
        "let ação = análise_prévia + prazo_médio\n"
        "let ñandú_ü = ação * 2\n"
        "rule reprovação_por_índice\n"
        "  when ñandú_ü > 10\n"
        '  deny "ÍNDICE" "Índice acima do permitido: não aprovar"\n'
        "default approve\n"
        "output ñandú_ü\n"
    )
    policy = parse(source)
    assert policy.name == "política_ação"
    assert policy.description == "Política de crédito: análise, ação, coração — “aspas” e emoji 🙂"
    assert [f.name for f in policy.fields] == ["análise_prévia", "prazo_médio"]
    assert [let.name for let in policy.lets] == ["ação", "ñandú_ü"]
    rule = policy.rules[0]
    assert rule.name == "reprovação_por_índice"
    assert rule.action.code == "ÍNDICE"
    assert rule.action.message == "Índice acima do permitido: não aprovar"
    prepared = compile_policy(source)
    decision = prepared.evaluate({"análise_prévia": 4, "prazo_médio": 2})
    assert decision.outcome == "deny"
    assert decision.outputs == {"ñandú_ü": 12}


def test_accented_identifiers_in_decomposed_form_parse():
    source = H + "input\n  análise: int\nlet prazo_médio = análise * 2\ndefault approve\n"
    decomposed = unicodedata.normalize("NFD", source)
    assert decomposed != source
    policy = parse(decomposed)
    assert len(policy.lets) == 1


def test_comments_everywhere_are_ignored():
    source = (
        "# leading comment\n"
        "\n"
        "# another one, with \"quotes\" and # hashes\n"
        "policy p kind credit  # after the header\n"
        "# between items\n"
        "input  # after a block header\n"
        "  # inside the input block\n"
        "  x: int  # after a field\n"
        "\n"
        "  # blank line and comment before the next field\n"
        "  y: int = 1 # default\n"
        'let s = "not # a comment"  # but this is\n'
        "let total = (x +  # inside parentheses\n"
        "  # a whole comment line inside parentheses\n"
        "  y)\n"
        "table t (first) by x  # table header\n"
        "  # before a row\n"
        "  < 0 -> 1  # after a row\n"
        "  else -> 2\n"
        "rule r  # rule header\n"
        "  when total > 10  # condition\n"
        '  deny "A" "b"  # action\n'
        "default approve  # default\n"
        "output total, t  # outputs\n"
        "# trailing comment without newline at the end"
    )
    policy = parse(source)
    assert [f.name for f in policy.fields] == ["x", "y"]
    assert let_value(policy, "s").value == "not # a comment"
    total = let_value(policy, "total")
    assert isinstance(total, ast.Binary) and total.op == "+"
    assert [r.is_else for r in policy.tables[0].rows] == [False, True]
    assert [o.name for o in policy.outputs] == ["total", "t"]
    decision = compile_policy(source).evaluate({"x": 20})
    assert decision.outcome == "deny"
    assert decision.outputs == {"total": 21, "t": 2}


def _indent_with_tabs(source: str) -> str:
    return re.sub(r"(?m)^((?:  )+)", lambda m: "\t" * (len(m.group(1)) // 2), source)


def test_tabs_and_spaces_give_the_same_policy():
    source = EXAMPLE.read_text(encoding="utf-8")
    tabbed = _indent_with_tabs(source)
    assert "\t\t" in tabbed  # nested blocks (test/given) use two tabs
    from regua.dsl.formatter import format_source

    assert format_source(tabbed) == format_source(source)
    a, b = parse(source), parse(tabbed)
    assert [type(i).__name__ for i in a.items] == [type(i).__name__ for i in b.items]
    # Same line numbers: only columns move.
    assert [r.span.line for r in a.rules] == [r.span.line for r in b.rules]


def test_a_tab_counts_as_eight_spaces_consistently_within_a_block():
    source = H + "input\n\tx: int\n        y: int\ndefault approve\n"
    assert [f.name for f in parse(source).fields] == ["x", "y"]


def test_crlf_line_endings():
    source = (H + "input\n  x: int\nlet y = x + 1\ndefault approve\noutput y\n").replace("\n", "\r\n")
    decision = compile_policy(source).evaluate({"x": 1})
    assert decision.outputs == {"y": 2}


def test_multiline_expressions_inside_parentheses_brackets_and_braces():
    source = (
        H
        + "input\n  a: int\n  b: int\n"
        + "let total = (\n"
          "    a +\n"
          "        b\n"
          ")\n"
          "let xs = [\n"
          "  1,\n"
          "  2,\n"
          "      3\n"
          "]\n"
          "let rec = {\n"
          "  um: 1,\n"
          "  dois: [a,\n"
          "         b]\n"
          "}\n"
          "let m = max(a,\n"
          "            b)\n"
          "table t (first) by a\n"
          "  in [1,\n"
          "      2] -> 10\n"
          "  else -> 20\n"
          "rule r\n"
          "  when (a > 1 and\n"
          "        b < 5)\n"
          '  deny "A" "b"\n'
          "default approve\n"
          "output total, xs, rec, m, t\n"
    )
    policy = parse(source)
    assert isinstance(let_value(policy, "total"), ast.Binary)
    assert len(let_value(policy, "xs").items) == 3
    assert [k for k, _ in let_value(policy, "rec").entries] == ["um", "dois"]
    assert policy.rules[0].action.verb == "deny"
    # Positions keep counting lines inside the parentheses.
    action_line, _ = position_of(source, 'deny "A"')
    assert policy.rules[0].action.span.line == action_line
    decision = compile_policy(source).evaluate({"a": 2, "b": 3})
    assert decision.outcome == "deny"
    assert decision.outputs == {"total": 5, "xs": [1, 2, 3], "rec": {"um": 1, "dois": [2, 3]}, "m": 3, "t": 10}


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("5_000 BRL", "money", Decimal("5000")),
        ("1_234.56 BRL", "money", Decimal("1234.56")),
        ("0.01 BRL", "money", Decimal("0.01")),
        ("10%", "percent", Decimal("0.10")),
        ("2.5%", "percent", Decimal("0.025")),
        ("100%", "percent", Decimal("1")),
        ("30 days", "days", 30),
        ("1 day", "days", 1),
        ("5 business days", "business_days", 5),
        ("1 business day", "business_days", 1),
        ("2026-01-31", "date", dt.date(2026, 1, 31)),
        ("2024-02-29", "date", dt.date(2024, 2, 29)),
        ("1_000_000", "int", 1_000_000),
        ("0", "int", 0),
        ("2.5", "decimal", Decimal("2.5")),
        ('"texto"', "text", "texto"),
        ('"a\\"b\\\\c\\nd\\te"', "text", 'a"b\\c\nd\te'),
        ('""', "text", ""),
        ("true", "bool", True),
        ("false", "bool", False),
    ],
)
def test_literal_forms(text, kind, value):
    policy = parse(H + f"let v = {text}\ndefault approve\n")
    literal = let_value(policy, "v")
    assert isinstance(literal, ast.Literal)
    assert literal.kind == kind
    assert literal.value == value
    assert type(literal.value) is type(value)
    assert (literal.span.line, literal.span.column) == (2, 9)


def test_literal_values_at_runtime():
    source = (
        H
        + "let money = 5_000 BRL\n"
          "let pct = 2.5%\n"
          "let d = 2026-01-31 + 1 day\n"
          "let d30 = 2026-01-01 + 30 days\n"
          "let bd = 2026-01-02 + 5 business days\n"
          "let xs = [1, 2, 3]\n"
          "let rec = {nome: \"Ana\", limite: 1_500.50 BRL, tags: [\"a\", \"b\"]}\n"
          "default approve\n"
          "output money, pct, d, d30, bd, xs, rec\n"
    )
    decision = compile_policy(source).evaluate({})
    out = decision.outputs
    assert out["money"] == Decimal("5000")
    assert out["pct"] == Decimal("0.025")
    assert out["d"] == dt.date(2026, 2, 1)
    assert out["d30"] == dt.date(2026, 1, 31)
    # 2026-01-02 is a Friday; five business days later (no holidays in between) is Friday 2026-01-09.
    assert out["bd"] == dt.date(2026, 1, 9)
    assert out["xs"] == [1, 2, 3]
    assert out["rec"] == {"nome": "Ana", "limite": Decimal("1500.50"), "tags": ["a", "b"]}
    data = decision.to_dict()["outputs"]
    assert data["money"] == "5000.00"
    assert data["pct"] == "2.5%"


def test_lists_and_records_nest_and_may_be_empty():
    policy = parse(H + "let e = []\nlet r = {}\nlet n = [[1], [], [2, 3]]\nlet rr = {a: {b: {c: 1}}}\ndefault approve\n")
    assert let_value(policy, "e").items == []
    assert let_value(policy, "r").entries == []
    assert [len(i.items) for i in let_value(policy, "n").items] == [1, 0, 2]
    inner = let_value(policy, "rr").entries[0][1].entries[0][1]
    assert inner.entries[0][0] == "c"


def test_operator_precedence():
    policy = parse(H + "let a = 1 + 2 * 3 - -4\nlet b = not x == 1 and y or z\nlet c = a otherwise if p then 1 else 2\n"
                   "default approve\n")
    a = let_value(policy, "a")
    assert a.op == "-" and a.left.op == "+" and a.left.right.op == "*" and isinstance(a.right, ast.Unary)
    b = let_value(policy, "b")
    assert b.op == "or" and b.left.op == "and" and isinstance(b.left.left, ast.Unary)
    assert b.left.left.operand.op == "=="
    c = let_value(policy, "c")
    assert isinstance(c, ast.Otherwise) and isinstance(c.fallback, ast.IfExpr)


def test_keywords_are_reported_by_the_parser():
    words = keywords()
    assert {"policy", "kind", "rule", "when", "let", "table", "test", "given", "expect", "otherwise"} <= words
    assert all(re.fullmatch(r"[a-z]+", w) for w in words)


def test_file_name_is_recorded():
    policy = parse(H + "default approve\n", "dir/x.regua")
    assert policy.file == "dir/x.regua"
