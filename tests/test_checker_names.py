"""Static checks of names (E1xx): unknown or repeated names, 'did you mean' hints, close functions
with their signatures, quoting hints for bare words in table cells, separate namespaces.
"""

from __future__ import annotations

import pytest
from check_harness import D, H, at, codes, diagnostics, position_of, single

# ---- names (E1xx) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, source, hint",
    [
        ("E101", H + "input\n  renda: money\nlet x = rendaa * 2\n" + D, "renda"),
        ("E104", H + "input\n  x: list of mony\n" + D, "money"),
        ("E104", H + "input\n  s: Scor\n" + D, "Score"),
        ("E105", H + "input\n  c: cnpj\nlet r = bureau.serasaa(c)\n" + D, "bureau.serasa"),
        ("E107", H + "input\n  c: cnpj\nlet r = bureau.serasa(c)\nlet s = r.scor\n" + D, "score"),
        ("E107", H + "input\n  c: cnpj\nlet m = sum(bureau.serasa(c).restrictions.amont)\n" + D, "amount"),
        ("E108", H + "rule r\n  when true\n  deni \"A\" \"b\"\n" + D, "deny"),
        ("E108", H + "default aprove\n", "approve"),
        ("E109", H + "input\n  x: int\ntable t (uniqe) by x\n  else -> 1\n" + D, "unique"),
        ("E110", H + "enum porte = mei | micro | epp\ninput\n  p: porte\nlet z = p == \"micr\"\n" + D, "micro"),
        ("E110", H + "enum porte = mei | micro\ninput\n  p: porte\nlet z = p in [\"mei\", \"micr\"]\n" + D, "micro"),
        ("E110", H + "enum porte = mei | micro\ninput\n  p: porte\ntable t (first) by p\n  \"mie\" -> 1\n  else -> 2\n"
         + D, "mei"),
        ("E111", H + "rule r\n  when true\n  review \"A\" \"b\"\n  set limte = 1 BRL\n" + D
         + "output limite = 0 BRL\n", "limite"),
        ("E112", H.replace("credit", "credti") + D, "credit"),
        ("E501", H + "input\n  valor: int\n" + D + "test \"t\"\n  given\n    valr = 1\n    valor = 1\n  expect approve\n",
         "valor"),
        ("E501", H + "input\n  x: int\n" + D + "test \"t\"\n  given\n    x = 1\n  expect aprove\n", "approve"),
        ("E501", H + "input\n  x: int\n" + D + "output limite = 1\ntest \"t\"\n  given\n    x = 1\n"
         "  expect output limit = 1\n", "limite"),
        ("E501", H + "input\n  x: int\n" + D + "test \"t\"\n  given\n    x = 1\n  bureau.serasaa returns {}\n"
         "  expect approve\n", "bureau.serasa"),
    ],
)
def test_did_you_mean_hints(code, source, hint):
    found = [d for d in diagnostics(source) if d.code == code]
    assert found, [(d.code, d.message) for d in diagnostics(source)]
    assert any(d.hint == f"did you mean '{hint}'?" for d in found), [d.hint for d in found]


@pytest.mark.parametrize(
    "call, expected",
    [
        ("rond(1.5)", ["round(x, places=2)", "round_to(x, step)"]),
        ("flor(1.5)", ["floor(x, places=0)", "floor_to(x, step)"]),
        ("days_betwen(today, today)", ["days_between(a, b)", "years_between(a, b)", "business_days_between("]),
        ("arredondar(1.5)", ["round(x, places=2)"]),  # the Portuguese word for it
        ("media([1])", ["avg(list)"]),
    ],
)
def test_unknown_function_lists_close_functions_with_their_signatures(call, expected):
    d = single(H + f"let x = {call}\n" + D, "E106")
    assert d.hint.startswith("close functions: ")
    for text in expected:
        assert text in d.hint, d.hint


def test_unknown_function_far_from_every_name_lists_them_all():
    d = single(H + "let x = xyzzy(1)\n" + D, "E106")
    assert d.hint.startswith("see the built-in functions: ") and "days_between" in d.hint and "sum" in d.hint


@pytest.mark.parametrize(
    "column, cell, hint",
    [
        ("p: porte", "varejo", 'write "varejo" (quoted): it is a value of porte'),
        ("p: porte", "varej", 'values of porte are quoted texts: "varejo", "atacado"; did you mean \'varejo\'?'),
        ("p: text", "varejo", 'write "varejo" (quoted) to compare with the text'),
    ],
)
def test_bare_word_in_a_table_cell_suggests_quoting(column, cell, hint):
    source = (H + "enum porte = varejo | atacado\ninput\n  " + column + "\ntable t (first) by p\n  "
              + cell + " -> 1\n  else -> 2\n" + D + "output t\n")
    d = single(source, "E101")
    assert at(d) == position_of(source, cell + " ->")
    assert d.hint == hint


def test_bare_word_in_a_number_cell_stays_a_plain_undefined_name():
    source = H + "input\n  x: int\ntable t (first) by x\n  limite -> 1\n  else -> 2\n" + D + "output t\n"
    assert single(source, "E101").hint is None


def test_connector_namespace_used_as_a_value_is_E101_with_advice():
    source = H + "let x = bureau\n" + D
    d = single(source, "E101")
    assert at(d) == position_of(source, "bureau")
    assert "connector" in d.message


def test_undefined_output_is_E101():
    source = H + D + "output nada\n"
    d = single(source, "E101")
    assert at(d) == position_of(source, "nada")


def test_no_hint_when_nothing_is_close():
    d = single(H + "let x = zzzzzz\n" + D, "E101")
    assert d.hint is None


@pytest.mark.parametrize(
    "source, needle, occurrence",
    [
        (H + "let x = 1\nlet x = 2\n" + D, "x = 2", 1),
        (H + "let today = 1\n" + D, "today", 1),  # a built-in name
        (H + "input\n  x: int\nlet x = 1\n" + D, "x = 1", 1),  # a let shadowing an input
        (H + "input\n  x: int\ntable x (first) by x\n  else -> 1\n" + D, "x (first)", 1),
        (H + "input\n  x: int\n  x: int\n" + D, "x: int", 2),
        (H + "record R\n  a: int\n  a: text\n" + D, "a: text", 1),
        (H + "enum e = a | b | a\n" + D, "e =", 1),
        (H + "enum e = a | b\nenum e = c\n" + D, "e = c", 1),
        (H + D + "default deny \"A\" \"b\"\n", "default deny", 1),
        (H + D + "on error review \"E\" \"e\"\non error review \"E\" \"e\"\n", "on error", 2),
        (H + "description \"a\"\ndescription \"b\"\n" + D, "description \"b\"", 1),
        (H + D + "output y = 1, y = 2\n", "y = 2", 1),
        (H + "let y = 1\n" + D + "output y = 2\n", "y = 2", 1),  # output hiding a let
    ],
)
def test_duplicate_names_are_E102(source, needle, occurrence):
    d = single(source, "E102")
    assert at(d) == position_of(source, needle, occurrence)


def test_types_and_values_live_in_separate_namespaces():
    # `porte: porte` reads naturally and is not a duplicate.
    assert codes(H + "enum porte = mei | me\ninput\n  porte: porte\n" + D) == []


def test_duplicate_rule_is_E103_and_names_the_first():
    source = H + "rule alto\n  when true\n  approve\nrule baixo\n  when true\n  approve\nrule alto\n  when false\n" \
                 "  approve\n" + D
    d = single(source, "E103")
    assert at(d) == position_of(source, "alto", 2)
    assert "line 2" in d.message


def test_missing_default_is_E113_on_the_policy_name():
    source = "policy minha_política kind credit\nlet x = 1\n"
    d = single(source, "E113")
    assert at(d) == position_of(source, "minha_política")


def test_default_without_reason_is_E206_except_approve():
    assert codes(H + D) == []
    source = H + "default deny\n"
    d = single(source, "E206")
    assert at(d) == position_of(source, "deny")
    source = H + "rule r\n  when true\n  review \"SÓ_CÓDIGO\"\n" + D
    assert at(single(source, "E206")) == position_of(source, "review")


def test_attribute_access_on_non_records_is_E107():
    source = H + "input\n  x: int\nlet a = x.foo\nlet b = {um: 1}.dois\n" + D
    found = [d for d in diagnostics(source) if d.code == "E107"]
    assert [at(d) for d in found] == [position_of(source, "x.foo"), position_of(source, "{um")]
