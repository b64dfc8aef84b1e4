"""Static checks of types (E2xx): well-typed expressions and their result types, type errors located
at the culprit, defaults, and table rows agreeing on their result type.
"""

from __future__ import annotations

import pytest
from check_harness import D, H, at, codes, diagnostics, position_of, single

from regua.engine.compiler import check_source

# ---- types (E2xx) ------------------------------------------------------------------------------

TYPED_INPUTS = H + ("input\n  m: money\n  d: date\n  n: int\n  q: decimal\n  pc: percent\n  t: text\n  b: bool\n"
                    "  du: duration\n")


@pytest.mark.parametrize(
    "expression, hint_word",
    [
        ("m + n", "BRL"),  # money + int
        ("n + m", "BRL"),
        ("m + 100", "BRL"),
        ("m + q", "BRL"),  # money + decimal
        ("d - m", None),  # date - money
        ("d + n", "days"),  # date + int
        ("du + n", "days"),
        ("m > 100", "BRL"),  # comparing money with int
        ("m == 0", "BRL"),
        ("pc > 10", "%"),  # percent vs int: almost always meant 10%
        ("pc + n", None),
        ("m * m", None),
        ("t + t", None),
        ("d < m", None),
        ("b < b", None),
        ("d == \"2020-01-01\"", None),
        ("m - 5%", None),
    ],
)
def test_type_mismatches_are_E201_at_the_expression(expression, hint_word):
    source = TYPED_INPUTS + f"let x = {expression}\n" + D
    d = single(source, "E201")
    assert at(d) == position_of(source, expression)
    if hint_word:
        assert hint_word in (d.hint or "")


@pytest.mark.parametrize(
    "expression",
    ["m + 100 BRL", "m * 2", "2 * m", "m * pc", "m / 2", "m / m", "d - d", "d + 30 days", "d - 5 business days",
     "today - d", "du * 2", "pc * pc", "pc == 10%", "n == 1.5", "n / n", "q + n", "t < t", "m > 0 BRL",
     "d > 2026-01-01", "-m", "not b", "b and not b", "n in 1..10", "t in [\"a\", \"b\"]", "[1, 2.5]"],
)
def test_well_typed_expressions_check(expression):
    assert codes(TYPED_INPUTS + f"let x = {expression}\n" + D) == []


@pytest.mark.parametrize(
    "expression, result",
    [("n / n", "decimal"), ("m / m", "decimal"), ("m * pc", "money"), ("d - d", "duration"), ("q * pc", "percent"),
     ("pc * 2", "percent"), ("[1, 2.5]", "list of decimal"), ("if b then 1 else 2.5", "decimal")],
)
def test_result_types(expression, result):
    checked = check_source(TYPED_INPUTS + f"let x = {expression}\n" + D)
    assert str(checked.symbols["x"].type) == result


@pytest.mark.parametrize(
    "expression, needle",
    [
        ("[1, \"a\"]", "\"a\""),
        ("if b then m else n", "n\n"),
        ("m otherwise 0", "0\n"),
        ("n in 1..m", "m\n"),
        ("n in m", "m\n"),
        ("t in [1, 2]", "t in"),
        ("-t", "-t"),
    ],
)
def test_other_type_errors_point_at_the_culprit(expression, needle):
    source = TYPED_INPUTS + f"let x = {expression}\n" + D
    d = single(source, "E201")
    assert at(d) == position_of(source, needle, source.count(needle) if needle.endswith("\n") else 1)


@pytest.mark.parametrize(
    "source, needle",
    [
        (TYPED_INPUTS + "rule r\n  when n\n  deny \"A\" \"b\"\n" + D, "n\n  deny"),
        (TYPED_INPUTS + "rule r\n  when m + 1 BRL\n  deny \"A\" \"b\"\n" + D, "m + 1 BRL"),
        (TYPED_INPUTS + "let x = not n\n" + D, "n\n" + D),
        (TYPED_INPUTS + "let x = b and n\n" + D, "n\n" + D),
        (TYPED_INPUTS + "let x = if n then 1 else 2\n" + D, "n then"),
        (TYPED_INPUTS + "let x = count(v for v in [1, 2] where v)\n" + D, "v)"),
    ],
)
def test_non_bool_conditions_are_E202(source, needle):
    d = single(source, "E202")
    assert at(d) == position_of(source, needle)


@pytest.mark.parametrize(
    "source, needle",
    [
        (TYPED_INPUTS + "let x = round(\"a\")\n" + D, "round"),
        (TYPED_INPUTS + "let x = days_between(d)\n" + D, "days_between"),
        (TYPED_INPUTS + "let x = years_between(d, m)\n" + D, "years_between"),
        (TYPED_INPUTS + "let x = min(m, n)\n" + D, "n)"),
        (TYPED_INPUTS + "let x = sum(n)\n" + D, "n)"),
        (TYPED_INPUTS + "let x = sum([true])\n" + D, "sum"),
        (TYPED_INPUTS + "let x = any([1])\n" + D, "any"),
        (TYPED_INPUTS + "let x = count(v for v in 3)\n" + D, "3"),
        (TYPED_INPUTS + "let x = available(n)\n" + D, "available"),
        (TYPED_INPUTS + "let x = bureau.serasa(n, n)\n" + D, "bureau"),
        (TYPED_INPUTS + "table tb (first) by n\n  1 -> 1 priority 2\n  else -> 2\n" + D, "1 -> 1"),
    ],
)
def test_wrong_arguments_are_E203(source, needle):
    d = single(source, "E203")
    assert at(d) == position_of(source, needle)


@pytest.mark.parametrize(
    "field",
    ["m: money = \"abc\"", "n: int = 1.5", "d: date = 5", "b: bool = 1", "c: cpf = \"123\"", "x: int = base",
     "l: list of int = [\"a\"]"],
)
def test_bad_defaults_are_E204(field):
    source = H + f"input\n  base: int\n  {field}\n" + D
    d = single(source, "E204")
    # Points at the default value, on the field's line.
    assert at(d) == (4, len("  ") + field.index("= ") + 2 + 1)


def test_good_defaults_check():
    source = H + ("input\n  m: money = 0 BRL\n  c: cpf = \"111.444.777-35\"\n  l: list of int = []\n"
                  "  d: date = 2026-01-01\n  p: percent = 10%\n  du: duration = 30 days\n") + D
    assert codes(source) == []


@pytest.mark.parametrize(
    "column_type, cell, needle",
    [("money", ">= 5", "5 ->"), ("money", "5", "5 ->"), ("int", "true", "true"), ("date", "< 10", "10"),
     ("percent", "> 10", "10"), ("text", "in [1, 2]", "1,"), ("int", "1..5 BRL", "5 BRL")],
)
def test_cells_of_the_wrong_type_are_E205(column_type, cell, needle):
    source = H + f"input\n  v: {column_type}\ntable t (first) by v\n  {cell} -> 1\n  else -> 2\n" + D
    found = [d for d in diagnostics(source) if d.code == "E205"]
    assert found and at(found[0]) == position_of(source, needle)
    assert all(d.code == "E205" for d in diagnostics(source))


def test_set_of_the_wrong_type_is_E201():
    source = H + "rule r\n  when true\n  review \"A\" \"b\"\n  set limite = 5\n" + D + "output limite = 0 BRL\n"
    d = single(source, "E201")
    assert at(d) == position_of(source, "5\n")


def test_table_rows_must_agree_on_the_result_type():
    source = H + "input\n  x: int\ntable t (first) by x\n  < 0 -> 1 BRL\n  else -> 2\n" + D
    d = single(source, "E201")
    assert at(d) == position_of(source, "2\n")
