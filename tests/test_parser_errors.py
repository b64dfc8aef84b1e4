"""Parser: syntax errors with stable codes, positions and friendly hints, and parsing from many threads at once."""

from __future__ import annotations

import pytest
from parser_harness import EXAMPLE, H, errors_of, only, position_of

from regua.dsl.diagnostics import PolicyError
from regua.dsl.parser import parse
from regua.dsl.syntax_examples import CHARACTER_HINTS, SYNTAX_EXAMPLES
from regua.engine.compiler import check_source, compile_policy

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
