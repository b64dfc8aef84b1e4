"""Parser: the variety of valid syntax, and syntax errors with stable codes, positions and friendly hints."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal
from pathlib import Path

import pytest

from regua.dsl import ast
from regua.dsl.diagnostics import PolicyError
from regua.dsl.parser import keywords, parse, parse_file
from regua.dsl.syntax_examples import CHARACTER_HINTS, SYNTAX_EXAMPLES
from regua.engine.compiler import check_source, compile_policy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "policies" / "credito_b2b.regua"
H = "policy p kind credit\n"


def errors_of(source: str, file: str = "f.regua"):
    with pytest.raises(PolicyError) as info:
        parse(source, file)
    return info.value


def only(source: str, file: str = "f.regua"):
    error = errors_of(source, file)
    assert len(error.diagnostics) == 1, error.render()
    return error.diagnostics[0]


def let_value(policy: ast.Policy, name: str) -> ast.Expr:
    return next(let.value for let in policy.lets if let.name == name)


def position_of(source: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the n-th occurrence of `needle` in `source`."""
    index = -1
    for _ in range(occurrence):
        index = source.index(needle, index + 1)
    line = source.count("\n", 0, index) + 1
    column = index - (source.rfind("\n", 0, index) + 1) + 1
    return line, column


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


# ---- syntax errors: codes, positions, friendly messages ------------------------------------


def test_equals_in_condition_suggests_double_equals():
    source = H + 'rule r\n  when x = 1\n  deny "A" "b"\n'
    d = only(source)
    assert d.code == "E001"
    assert (d.file, d.span.line, d.span.column) == ("f.regua", 3, 10)
    assert "`==`" in d.message
    assert d.location() == "f.regua:3:10"


def test_misspelt_keyword_gets_did_you_mean():
    d = only(H + "rul x\n  when true\n  approve\n")
    assert d.code == "E001"
    assert (d.span.line, d.span.column) == (2, 1)
    assert d.hint == "did you mean 'rule'?"
    d = only(H + "rule r\n  wen x > 1\n  approve\n")
    assert (d.span.line, d.span.column) == (3, 3)
    assert d.hint == "did you mean 'when'?"


def test_currency_symbol_hints_brl():
    source = H + "let limite = R$ 5000\n"
    d = only(source)
    assert d.code == "E002"
    assert (d.span.line, d.span.column) == position_of(source, "$")
    assert "BRL" in d.hint


# `=` and `|` are tokens of the language (let/enum); every other hinted character is not.
@pytest.mark.parametrize("char", sorted(set(CHARACTER_HINTS) - {"=", "|"}))
def test_every_character_hint_is_used(char):
    source = H + f"let x = 1 {char} 2\n"
    d = only(source)
    assert d.code == "E002"
    assert (d.span.line, d.span.column) == position_of(source, char)
    assert d.hint == CHARACTER_HINTS[char]
    assert repr(char)[1:-1] in d.message or char in d.message


@pytest.mark.parametrize(
    "source",
    [
        H + 'rule r\n  when a || b\n  deny "A" "b"\n',
        H + "let x = a | b\n",
        H + "let x = a b\n",
    ],
    ids=["double-bar-in-when", "bar-in-let", "two-names"],
)
def test_friendly_message_is_not_about_a_token_that_is_not_there(source):
    d = only(source)
    assert d.code == "E001"
    assert "`=`" not in d.message
    if "|" in source:
        assert "or" in (d.hint or "")


@pytest.mark.parametrize(
    "label, snippet",
    [(label, snippet) for label, snippets in SYNTAX_EXAMPLES.items() for snippet in snippets],
)
def test_every_syntax_example_yields_its_message(label, snippet):
    d = errors_of(snippet).diagnostics[0]
    assert d.code in ("E001", "E003")
    assert d.message.startswith(label)


def test_unexpected_token_lists_what_was_expected():
    d = only(H + "input\n  x: int\nlet y = x +* 2\n")
    assert d.code == "E001"
    assert (d.span.line, d.span.column) == (4, 12)


def test_unexpected_end_of_file_inside_parentheses_is_E003():
    source = H + "let y = (1 +"
    d = only(source)
    assert d.code == "E003"
    assert (d.span.line, d.span.column) == (2, len("let y = (1 +") + 1)
    assert "end of file" in d.message


def test_unclosed_bracket_is_E003_at_the_end_of_the_file():
    source = H + "let xs = [1,\n  2,\n  3\n"
    d = only(source)
    assert d.code == "E003"
    assert (d.span.line, d.span.column) == (4, 4)  # just after the last character of the file


def test_missing_operand_at_end_of_line_points_at_that_line():
    source = H + "let y = 1 +\n\n# comment\nlet z = 2\n"
    d = only(source)
    assert d.code == "E001"
    assert (d.span.line, d.span.column) == (2, len("let y = 1 +") + 1)


def test_inconsistent_dedent_is_E004_on_the_offending_line():
    source = H + "input\n    x: int\n  y: int\ndefault approve\n"
    d = only(source)
    assert d.code == "E004"
    assert (d.span.line, d.span.column) == (4, 1)
    source = H + "input\n        x: int\n\ty: int\n  z: int\n"
    d = only(source)
    assert d.code == "E004"
    assert d.span.line == 5


def test_inconsistent_dedent_with_mixed_tabs_reports_the_right_line():
    source = H + "input\n  \tx: int\n \ty: int\ndefault approve\n"
    try:
        parse(source)
    except PolicyError as error:
        d = error.diagnostics[0]
        assert d.code == "E004"
        assert d.span.line == 4


def test_unexpected_indentation_is_E001_on_that_line():
    d = only(H + "let x = 1\n  let y = 2\n")
    assert d.code == "E001"
    assert (d.span.line, d.span.column) == (3, 3)
    assert "indented" in d.message


@pytest.mark.parametrize("text", ["2026-02-30", "2025-02-29", "2026-13-01", "0000-01-01"])
def test_invalid_date_literal_is_E005(text):
    source = H + f"let d = {text}\n"
    d = only(source)
    assert d.code == "E005"
    assert (d.span.line, d.span.column) == (2, 9)
    assert text in d.message


def test_method_call_on_a_value_is_E005():
    source = H + "let x = a.b.c(1)\n"
    d = only(source)
    assert d.code == "E005"
    assert (d.span.line, d.span.column) == position_of(source, "c(")


def test_out_of_range_duration_literal_is_a_policy_error():
    with pytest.raises(PolicyError) as info:
        compile_policy(H + "let d = today + 1000000000 days\ndefault approve\n")
    assert info.value.diagnostics[0].code == "E005"


def test_unterminated_string_is_E002_at_the_quote():
    source = H + 'let x = "abc\n'
    d = only(source)
    assert d.code == "E002"
    assert (d.span.line, d.span.column) == (2, 9)


def test_file_line_column_and_caret_rendering():
    source = H + "input\n  x: int\nrule r\n  when x = 1\n  deny \"A\" \"b\"\n"
    error = errors_of(source, "políticas/x.regua")
    text = error.render()
    lines = text.splitlines()
    assert lines[0].startswith("políticas/x.regua:5:10: error E001:")
    assert lines[1].endswith("|   when x = 1")
    caret = lines[2]
    # The caret sits under the `=`: same offset from the bar as the column.
    bar = caret.index("|")
    assert caret[bar + 2:].index("^") == 10 - 1
    assert lines[1][lines[1].index("|") + 2 + 9] == "="
    assert str(error).startswith("políticas/x.regua:5:10")


def test_caret_spans_the_whole_unexpected_word():
    error = errors_of(H + "rul x\n")
    caret = error.render().splitlines()[2]
    assert caret.rstrip().endswith("^^^")
    assert caret.count("^") == 3


def test_caret_is_aligned_on_lines_with_tabs():
    source = H + "let x =\t$5\n"
    error = errors_of(source)
    _, shown, caret = error.render().splitlines()[:3]
    text = shown[shown.index("|") + 2:]
    mark = caret[caret.index("|") + 2:]
    assert text[mark.index("^")] == "$"


def test_diagnostic_to_dict_has_location_and_hint():
    d = only(H + "let x = R$ 1\n", "a.regua")
    data = d.to_dict()
    assert data["code"] == "E002"
    assert data["severity"] == "error"
    assert data["location"] == {"file": "a.regua", "line": 2, "column": 10}
    assert "BRL" in data["message"]


def test_syntax_errors_stop_before_checking():
    # A syntax error is reported alone: the checker never runs on a half-parsed file.
    with pytest.raises(PolicyError) as info:
        check_source(H + "let y = undefined_name\nlet z = 1 +* 2\n")
    assert [d.code for d in info.value.diagnostics] == ["E001"]


# ---- thread safety (issue 13, item 1) ----
def test_parsing_from_many_threads_at_once_gives_every_thread_the_same_tree():
    """All threads share one Lark parser; its indentation post-lexer must not share state between parses."""
    import threading

    from regua.dsl.formatter import format_policy

    source = EXAMPLE.read_text(encoding="utf-8")
    expected = format_policy(parse(source, str(EXAMPLE)), source)
    broken = "policy p kind credit\nrule r\n  when (1 >\n"  # a syntax error, parsed alongside
    start = threading.Barrier(8)
    results: list = []

    def work(index: int) -> None:
        start.wait()
        for round_ in range(20):
            if index == 0 and round_ % 4 == 0:
                try:
                    parse(broken, "broken.regua")
                    results.append("broken parsed")
                except PolicyError as error:
                    results.append("ok" if error.diagnostics[0].code in ("E001", "E003") else repr(error))
                continue
            try:
                results.append("ok" if format_policy(parse(source, str(EXAMPLE)), source) == expected else "different tree")
            except Exception as error:  # noqa: BLE001 — every failure is counted and shown
                results.append(repr(error)[:200])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 160
    assert [r for r in results if r != "ok"] == []


def test_formatter_keeps_one_blank_line_between_groups_of_lets():
    from regua.dsl.formatter import format_source

    source = ("policy p kind credit\ninput\n  x: int\ndefault approve\n\nlet a = 1\nlet b = 2\n\n\n"
              "# grupo 2\nlet c = 3\n\nlet d = 4  # d\nlet e = 5\n# junto\nlet f = 6\noutput a\noutput b\n")
    formatted = format_source(source)
    assert formatted == ("policy p kind credit\n\ninput\n  x: int\n\ndefault approve\n\nlet a = 1\nlet b = 2\n\n"
                         "# grupo 2\nlet c = 3\n\nlet d = 4  # d\nlet e = 5\n# junto\nlet f = 6\n\n"
                         "output a\noutput b\n")
    assert format_source(formatted) == formatted


RECOVERY = """policy p kind credit

input
  x: int
  y: int

rule a
  when x = 1
  deny "A" "a"

let z = (x +

let ok = 1

rule b
  when y > 2 &&
  deny "B" "b"

rule c
when x > 1
  deny "C" "c"

table t (first) by x
  1 -> 1
  else 2

default approve
"""


def test_every_syntax_error_is_reported_after_the_first():
    with pytest.raises(PolicyError) as raised:
        parse(RECOVERY, "f.regua")
    found = [(d.code, d.span.line, d.span.column) for d in raised.value.diagnostics]
    assert found == [("E001", 8, 10), ("E001", 13, 5), ("E002", 16, 14), ("E001", 20, 1), ("E001", 25, 8)]
    messages = [d.message for d in raised.value.diagnostics]
    assert messages[0].startswith("use `==` to compare")  # the friendly messages stay
    assert raised.value.diagnostics[1].hint == "the bracket opened on line 11 is not closed"
    assert messages[3].startswith("a rule's body must be indented")


def test_recovery_reports_an_incomplete_item_once_not_its_neighbour():
    source = "policy p kind credit\ninput\nlet x = 1\nrule r\n  when x = 1\n  deny \"A\" \"a\"\n"
    with pytest.raises(PolicyError) as raised:
        parse(source)
    assert [(d.code, d.span.line) for d in raised.value.diagnostics] == [("E001", 3), ("E001", 5)]


def test_an_error_in_the_header_or_an_unclosed_bracket_at_the_end_stops_there():
    for source, count in [("policy p kind\nlet x = = 1\n", 1), ("policy p kind credit\nlet x = (1 +\n", 1)]:
        with pytest.raises(PolicyError) as raised:
            parse(source)
        assert len(raised.value.diagnostics) == count


@pytest.mark.parametrize("text", ["\xa0\n", "policy p kind credit\n\xa0\nlet x = = 1\n\f\nlet y = = 2\n"])
def test_recovery_copes_with_lines_of_other_white_space(text):
    with pytest.raises(PolicyError):
        parse(text)
