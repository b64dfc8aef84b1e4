"""Static checks: one or more tests per diagnostic code, with positions and 'did you mean' hints.

`CODE_SNIPPETS` maps every code of dsl.diagnostics.CODES to a minimal policy that produces it
at a known position; `test_every_code_has_a_snippet` fails when a code is added without one.
This file also holds the checks of tests written in policies (E501) and how errors are reported;
the other codes have their own files: test_checker_names, _types, _rules, _tables, _lint.
"""

from __future__ import annotations

import pytest
from check_harness import D, H, at, codes, diagnostics, position_of, single

from regua.dsl.diagnostics import CODES, PolicyError, Severity
from regua.engine.compiler import check_source

# ---- one snippet per code ----------------------------------------------------------------------

# code -> (policy, text whose position the diagnostic must point at, occurrence)
CODE_SNIPPETS: dict[str, tuple[str, str, int]] = {
    "E001": (H + "rule r\n  when x = 1\n  deny \"A\" \"b\"\n" + D, "= 1", 1),
    "E002": (H + "let x = R$ 1\n" + D, "$", 1),
    "E003": (H + "let x = (1 +", "+", 1),  # position checked separately (end of file)
    "E004": (H + "input\n    x: int\n  y: int\n" + D, "  y: int", 1),
    "E005": (H + "let d = 2026-02-30\n" + D, "2026-02-30", 1),
    "E006": (H + "let x = " + "not " * 70 + "true\n" + D, "not", 65),
    "E007": (H + 'let x = "' + "a" * 10_001 + '"\n' + D, '"aaa', 1),
    "E101": (H + "input\n  renda: money\nlet x = rendaa\n" + D, "rendaa", 1),
    "E102": (H + "let x = 1\nlet x = 2\n" + D, "x", 2),
    "E103": (H + "rule r\n  when true\n  approve\nrule r\n  when false\n  approve\n" + D, "r\n", 2),
    "E104": (H + "input\n  x: mony\n" + D, "mony", 1),
    "E105": (H + "input\n  c: cnpj\nlet r = bureau.serasaa(c)\n" + D, "bureau.serasaa", 1),
    "E106": (H + "let x = rond(1.5)\n" + D, "rond", 1),
    "E107": (H + "input\n  c: cnpj\nlet r = bureau.serasa(c)\nlet s = r.scor\n" + D, "r.scor", 1),
    "E108": (H + "rule r\n  when true\n  deni \"A\" \"b\"\n" + D, "deni", 1),
    "E109": (H + "input\n  x: int\ntable t (frist) by x\n  else -> 1\n" + D, "frist", 1),
    "E110": (H + "enum porte = mei | me | epp\ninput\n  p: porte\nlet z = p == \"mee\"\n" + D, "\"mee\"", 1),
    "E111": (H + "rule r\n  when true\n  review \"A\" \"b\"\n  set limte = 1 BRL\n" + D + "output limite = 0 BRL\n",
             "limte", 1),
    "E112": (H.replace("credit", "credito") + D, "credito", 1),
    "E113": (H + "let x = 1\n", "p kind", 1),
    "E114": (H + "step s at D+1\n  deny \"A\" \"b\"\n" + D, "s at", 1),
    "E115": ("policy p kind collection\ninput\n  x: int\n", "input", 1),
    "E116": ("policy p kind collection\nstep s at D0\n  remind \"t\"\n  set canal = \"sms\"\n", "canal", 1),
    "E117": ("policy p kind monitoring\ndefault keep\noutput new_limit = limit, notify = [\"gerente\"]\n",
             "\"gerente\"", 1),
    "E118": (H + "input\n  m: money\nrule r\n  when m > 1 BRL\n  deny \"A\" \"b\"\n" + D
             + "actionable\n  n in 0 BRL..1 BRL\n", "n in", 1),
    "E119": (H + "input\n  idade: int\nrule r\n  when idade > 1\n  deny \"A\" \"b\"\n" + D
             + "actionable\n  idade in 0..1\n", "idade in", 1),
    "E201": (H + "input\n  m: money\nlet x = m + 1\n" + D, "m + 1", 1),
    "E202": (H + "rule r\n  when 1\n  deny \"A\" \"b\"\n" + D, "1\n", 1),
    "E203": (H + "let x = round(\"a\")\n" + D, "round", 1),
    "E204": (H + "input\n  m: money = \"abc\"\n" + D, "\"abc\"", 1),
    "E205": (H + "input\n  m: money\ntable t (first) by m\n  >= 5 -> 1\n  else -> 2\n" + D, "5 ->", 1),
    "E206": (H + "rule r\n  when true\n  deny\n" + D, "deny", 1),
    "E207": (H + "input\n  m: money\nrule r\n  when m > 1 BRL\n  deny \"A\" \"b\"\n" + D
             + "actionable\n  m in 5 BRL..1 BRL\n", "5 BRL..", 1),
    "E301": (H + "let a = b\nlet b = a\n" + D, "a = b", 1),
    "E302": (H + "let a0 = 1\n" + "".join(f"let a{k} = a{k - 1} + 1\n" for k in range(1, 201))
             + "rule r\n  when false or a200 > 0\n  deny \"A\" \"b\"\n" + D, "a200 >", 1),
    "E303": (H + "rule a\n  when fired(b)\n  deny \"A\" \"a\"\nrule b\n  when fired(a)\n  deny \"B\" \"b\"\n" + D,
             "fired(a)", 1),
    "E401": (H + "input\n  x: int\ntable t (first) by x\n  >= 0 -> 1\n  >= 5 -> 2\n  else -> 3\n" + D, ">= 5", 1),
    "E402": (H + "input\n  x: int\ntable t (unique) by x\n  0..10 -> 1\n  5..20 -> 2\n  else -> 3\n" + D, "5..20", 1),
    "E403": (H + "input\n  x: int\ntable t (first) by x\n  1, 2 -> 1\n  else -> 3\n" + D, "1, 2", 1),
    "W404": (H + "input\n  x: int\ntable t (first) by x\n  < 0 -> 1\n  > 0 -> 2\n" + D + "output t\n", "t (", 1),
    "E501": (H + "input\n  x: int\n" + D + "test \"a\"\n  given\n    x = 1\n    y = 1\n  expect approve\n", "y = 1", 1),
    "W601": (H + "input\n  x: int\n  y: int\n" + D + "output x\n", "y: int", 1),
    "W602": (H + "let a = 1\nlet b = 2\n" + D + "output a\n", "b = 2", 1),
    "W603": (H + "input\n  x: int\ntable t (first) by x\n  else -> 1\n" + D + "output x\n", "t (", 1),
    "W604": (H + "input\n  x: int\nrule a\n  when x > 1\n  deny \"A\" \"a\"\nrule b\n  when x < 0\n"
             "  review \"A\" \"b\"\n" + D, "review", 1),
    "W605": (H + "input\n  x: int\nrule a\n  when x > 10 and x < 5\n  deny \"A\" \"a\"\n" + D, "x > 10", 1),
    "W606": (H + "input\n  x: int\nrule a\n  when x < 5 or x >= 5\n  deny \"A\" \"a\"\n" + D, "x < 5", 1),
    "W607": (H + "input\n  x: int\nrule a\n  when x > 1\n  deny \"A\" \"a\"\nrule b\n  when x > 5\n"
             "  review \"B\" \"b\"\n" + D, "x > 5", 1),
    # 700 rows of disjoint decimal ranges: no column lists values, so every row is compared with
    # every earlier one, past dsl.tables.MAX_COMPARISONS.
    "W405": (H + "input\n  q: decimal\ntable t (first) by q\n"
             + "".join(f"  {k}.5..{k}.6 -> {k}\n" for k in range(700)) + "  else -> 0\n" + D + "output t\n",
             "t (", 1),
    "W608": (H + "input\n  c: cnpj\nrule a\n  when bureau.serasa(c).score.value > 1500\n  deny \"A\" \"a\"\n" + D,
             "bureau.serasa(c).score", 1),
}


# E000 is about the file, not its text (a folder, a FIFO, not UTF-8): tests/test_cli_files.py.
SOURCE_CODES = set(CODES) - {"E000"}


def test_every_code_has_a_snippet():
    assert set(CODE_SNIPPETS) == SOURCE_CODES


@pytest.mark.parametrize("code", sorted(SOURCE_CODES))
def test_each_code_is_reported_at_its_position(code):
    source, needle, occurrence = CODE_SNIPPETS[code]
    d = single(source, code)
    assert d.file == "f.regua"
    if code == "E003":
        assert at(d) == (2, len("let x = (1 +") + 1)
    else:
        assert at(d) == position_of(source, needle, occurrence)
    assert d.severity is (Severity.WARNING if code.startswith("W") else Severity.ERROR)
    assert d.message


# ---- tests (E501) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "test_body, needle",
    [
        ("  given\n    x = \"abc\"\n  expect approve\n", "\"abc\""),
        ("  given\n    x = 1\n  bureau.serasaa returns {}\n  expect approve\n", "bureau.serasaa"),
        ("  given\n    x = 1\n  bureau.serasa returns {score: {valor: 1}}\n  expect approve\n", "{score"),
        ("  given\n    x = 1\n  expect aprove\n", "aprove"),
        ("  given\n    x = 1\n  expect output oo = 1\n", "oo"),
        ("  given\n    x = 1\n  expect output o = \"T\"\n", "\"T\""),
        ("  given\n    x = 1\n  as of 2026-01-01\n", "test \"t\""),  # expects nothing
        ("  expect approve\n", "test \"t\""),  # required input missing
    ],
)
def test_invalid_tests_are_E501(test_body, needle):
    source = H + "input\n  x: int\n" + D + "output o = 1\ntest \"t\"\n" + test_body
    d = single(source, "E501")
    assert at(d) == position_of(source, needle)


def test_duplicate_test_names_are_E501():
    source = H + "input\n  x: int\n" + D + "test \"t\"\n  given\n    x = 1\n  expect approve\n" \
                 "test \"t\"\n  given\n    x = 2\n  expect approve\n"
    d = single(source, "E501")
    assert at(d) == position_of(source, "test \"t\"", 2)


def test_invalid_document_in_a_test_is_E501():
    source = H + "input\n  c: cpf\n" + D + "test \"t\"\n  given\n    c = \"111.444.777-36\"\n  expect approve\n"
    d = single(source, "E501")
    assert at(d) == position_of(source, "\"111.444.777-36\"")
    assert "111.444.777-36" not in d.message  # documents are personal data: never echoed


# ---- reporting --------------------------------------------------------------------------------


def test_all_errors_are_reported_at_once_sorted_by_position():
    source = (
        "policy p kind credit\n"                       # 1
        "input\n"                                      # 2
        "  m: money\n"                                 # 3
        "  x: mony\n"                                  # 4  E104 (declarations pass)
        "let a = m + 1\n"                              # 5  E201 (types pass)
        "let b = c\n"                                  # 6  E101
        "let c = b\n"                                  # 7  E301 (cycles pass)
        "rule r\n"                                     # 8
        "  when 1\n"                                   # 9  E202 (rules pass)
        "  deni \"A\" \"b\"\n"                         # 10 E108
        "rule r\n"                                     # 11 E103
        "  when m > 1\n"                               # 12 E201
        "  approve\n"                                  # 13
        "table t (first) by m\n"                       # 14
        "  >= 1 -> 1\n"                                # 15 E205 (tables pass)
        "  else -> 2\n"                                # 16
        "test \"x\"\n"                                 # 17 E501 (tests pass)
        "  given\n"                                    # 18
        "    m = 1 BRL\n"                              # 19
        "  expect aprove\n"                            # 20 E501
    )
    with pytest.raises(PolicyError) as info:
        check_source(source, "f.regua")
    found = info.value.diagnostics
    got = [(d.code, d.span.line) for d in found]
    assert ("E113", 1) in got  # no default
    for expected in [("E104", 4), ("E201", 5), ("E301", 6), ("E202", 9), ("E108", 10), ("E103", 11),
                     ("E201", 12), ("E205", 15), ("E501", 17), ("E501", 20)]:
        assert expected in got, (expected, got)
    positions = [(d.span.line, d.span.column) for d in found]
    assert positions == sorted(positions)
    assert "and" in str(info.value) and "more" in str(info.value)
    rendered = info.value.render()
    assert rendered.count("f.regua:") == len(found)


CASCADE = H + "let a = x + 1\nlet b = a * 2 BRL\nrule r\n  when b > 0 BRL\n  deny \"A\" \"b\"\n" + D


def test_errors_do_not_cascade_from_an_unknown_name():
    # `x` is undefined; expressions built on it are not reported with other errors.
    assert set(codes(CASCADE)) == {"E101"}


def test_each_error_is_reported_once():
    found = diagnostics(CASCADE)
    assert [(d.code, at(d)) for d in found] == [("E101", position_of(CASCADE, "x + 1"))]


def test_example_policy_checks_without_diagnostics():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "policies" / "credito_b2b.regua"
    checked = check_source(path.read_text(encoding="utf-8"), str(path))
    assert checked.warnings == []
