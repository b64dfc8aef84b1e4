"""Static checks: one or more tests per diagnostic code, with positions and 'did you mean' hints.

`CODE_SNIPPETS` maps every code of dsl.diagnostics.CODES to a minimal policy that produces it
at a known position; `test_every_code_has_a_snippet` fails when a code is added without one.
"""

from __future__ import annotations

import pytest

from regua.dsl.diagnostics import CODES, Diagnostic, PolicyError, Severity
from regua.engine.compiler import check_source, compile_policy

H = "policy p kind credit\n"
D = "default approve\n"


def position_of(source: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the n-th occurrence of `needle`."""
    index = -1
    for _ in range(occurrence):
        index = source.index(needle, index + 1)
    return source.count("\n", 0, index) + 1, index - (source.rfind("\n", 0, index) + 1) + 1


# Most snippets here declare inputs and lets only to type an expression: the "never read" warnings
# are left out unless a test asks for them.
UNUSED = {"W601", "W602", "W603"}


def diagnostics(source: str, unused: bool = False) -> list[Diagnostic]:
    """Every diagnostic (errors and warnings) of a policy, in reported order."""
    try:
        checked = check_source(source, "f.regua")
    except PolicyError as error:
        return error.diagnostics
    return [w for w in checked.warnings if unused or w.code not in UNUSED]


def codes(source: str) -> list[str]:
    return [d.code for d in diagnostics(source)]


def single(source: str, code: str) -> Diagnostic:
    found = [d for d in diagnostics(source, unused=code in UNUSED) if d.code == code]
    assert len(found) == 1, f"expected one {code}, got {[(d.code, d.message) for d in diagnostics(source)]}"
    return found[0]


def at(d: Diagnostic) -> tuple[int, int]:
    return d.span.line, d.span.column


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
    "E201": (H + "input\n  m: money\nlet x = m + 1\n" + D, "m + 1", 1),
    "E202": (H + "rule r\n  when 1\n  deny \"A\" \"b\"\n" + D, "1\n", 1),
    "E203": (H + "let x = round(\"a\")\n" + D, "round", 1),
    "E204": (H + "input\n  m: money = \"abc\"\n" + D, "\"abc\"", 1),
    "E205": (H + "input\n  m: money\ntable t (first) by m\n  >= 5 -> 1\n  else -> 2\n" + D, "5 ->", 1),
    "E206": (H + "rule r\n  when true\n  deny\n" + D, "deny", 1),
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


# ---- cycles (E301) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "let a = b\nlet b = a\n",
        "let a = a + 1\n",
        "let a = b + 1\nlet b = c * 2\nlet c = a\n",
        "input\n  x: int\ntable t (first) by u\n  1 -> 1\n  else -> 2\nlet u = t\n",
        "input\n  x: int\ntable t (first) by x\n  < u -> 1\n  else -> 2\nlet u = t\n",
    ],
)
def test_cycles_are_reported_once_as_E301(body):
    found = diagnostics(H + body + D)
    assert [d.code for d in found] == ["E301"]
    assert "cycle" in found[0].message


def test_cycle_message_names_the_path():
    d = single(H + "let a = b\nlet b = a\n" + D, "E301")
    assert "a -> b -> a" in d.message or "b -> a -> b" in d.message


def test_no_cycle_through_comprehension_variables():
    # `a` as a comprehension variable is not the let `a`.
    source = H + "let a = 1\nlet b = sum(a for a in [1, 2])\n" + D
    assert codes(source) == []


# ---- tables (E401, E402, E403, W404) -----------------------------------------------------------

TABLE_INPUTS = H + "input\n  x: int\n  y: int\n  q: decimal\n  m: money\n  b: bool\n  d: date\n  s: text\n"


def table_diagnostics(table: str):
    source = TABLE_INPUTS + table + D + "output tb\n"
    return source, diagnostics(source)


def test_row_after_else_is_unreachable():
    source, found = table_diagnostics("table tb (first) by x\n  else -> 1\n  < 3 -> 2\n")
    assert [(d.code, at(d)) for d in found] == [("E401", position_of(source, "< 3"))]


def test_row_shadowed_by_one_earlier_row():
    source, found = table_diagnostics("table tb (first) by x\n  >= 0 -> 1\n  >= 5 -> 2\n  else -> 3\n")
    assert [(d.code, at(d)) for d in found] == [("E401", position_of(source, ">= 5"))]


def test_row_shadowed_by_the_union_of_two_earlier_rows():
    source, found = table_diagnostics("table tb (first) by x\n  < 5 -> 1\n  >= 5 -> 2\n  0..10 -> 3\n")
    assert [(d.code, at(d)) for d in found] == [("E401", position_of(source, "0..10"))]


def test_row_shadowed_by_a_union_in_two_columns():
    source, found = table_diagnostics(
        "table tb (first) by x, y\n  < 5, - -> 1\n  >= 5, < 0 -> 2\n  >= 5, >= 0 -> 3\n  7, 3 -> 4\n")
    assert [(d.code, at(d)) for d in found] == [("E401", position_of(source, "7, 3"))]


def test_row_covered_only_by_three_rows_together():
    # No single earlier row covers 0..10 x 0..10, but together they do.
    source, found = table_diagnostics(
        "table tb (first) by x, y\n  < 5, < 5 -> 1\n  >= 5, - -> 2\n  < 5, >= 5 -> 3\n  0..10, 0..10 -> 4\n")
    assert [(d.code, at(d)) for d in found] == [("E401", position_of(source, "0..10, 0..10"))]


@pytest.mark.parametrize(
    "table",
    [
        "table tb (first) by x, y\n  < 5, - -> 1\n  >= 5, < 0 -> 2\n  7, 3 -> 4\n  else -> 0\n",  # (7, 3) not covered
        "table tb (first) by x, y\n  0..10, 0..10 -> 1\n  5..15, 5..15 -> 2\n  0..15, 0..15 -> 3\n  else -> 0\n",
        "table tb (first) by s\n  \"a\" -> 1\n  in [\"a\", \"b\"] -> 2\n  else -> 3\n",  # "b" still reaches row 2
        "table tb (first) by x\n  < y -> 1\n  < y -> 2\n  else -> 0\n",  # not constant: never claimed unreachable
        "table tb (collect) by x\n  < 5 -> 1\n  < 3 -> 2\n",  # collect tables run every matching row
    ],
)
def test_partially_shadowed_rows_are_fine(table):
    _, found = table_diagnostics(table)
    assert found == []


def test_bool_and_discrete_columns_can_be_exhausted():
    source, found = table_diagnostics("table tb (first) by b\n  true -> 1\n  false -> 2\n  - -> 3\n")
    assert [(d.code, at(d)) for d in found] == [("E401", position_of(source, "- -> 3"))]
    source, found = table_diagnostics("table tb (first) by x\n  in [1, 2, 3] -> 1\n  2 -> 2\n  else -> 0\n")
    assert [(d.code, at(d)) for d in found] == [("E401", position_of(source, "2 -> 2"))]


def test_priority_tables_use_priority_order():
    source, found = table_diagnostics("table tb (priority) by x\n  < 5 -> 1\n  < 10 -> 2 priority 3\n  else -> 0\n")
    assert [(d.code, at(d)) for d in found] == [("E401", position_of(source, "< 5"))]
    _, found = table_diagnostics("table tb (priority) by x\n  < 10 -> 1\n  < 5 -> 2 priority 3\n  else -> 0\n")
    assert found == []


def test_unique_overlap_is_E402_on_the_later_row():
    source, found = table_diagnostics("table tb (unique) by x\n  0..10 -> 1\n  5..20 -> 2\n  else -> 3\n")
    assert [(d.code, at(d)) for d in found] == [("E402", position_of(source, "5..20"))]
    assert "5" in found[0].message and "10" in found[0].message


@pytest.mark.parametrize(
    "table, overlaps",
    [
        ("table tb (unique) by x\n  <= 5 -> 1\n  >= 5 -> 2\n", True),  # touch at 5
        ("table tb (unique) by x\n  < 5 -> 1\n  >= 5 -> 2\n", False),
        ("table tb (unique) by x\n  <= 4 -> 1\n  >= 5 -> 2\n", False),
        ("table tb (unique) by q\n  <= 4.5 -> 1\n  >= 4.5 -> 2\n", True),
        ("table tb (unique) by x\n  < 4.5 -> 1\n  > 4 -> 2\n", False),  # no whole number is both < 4.5 and > 4
        ("table tb (unique) by q\n  < 4.5 -> 1\n  > 4 -> 2\n", True),  # 4.2 is both
        ("table tb (unique) by x, y\n  < 5, < 5 -> 1\n  >= 5, - -> 2\n  < 5, >= 5 -> 3\n", False),
        ("table tb (unique) by x, y\n  < 5, - -> 1\n  -, < 0 -> 2\n  else -> 0\n", True),
        ("table tb (unique) by s\n  \"a\" -> 1\n  != \"a\" -> 2\n", False),
        ("table tb (unique) by s\n  in [\"a\", \"b\"] -> 1\n  \"b\" -> 2\n  else -> 0\n", True),
    ],
)
def test_unique_overlaps(table, overlaps):
    _, found = table_diagnostics(table)
    assert [d.code for d in found if d.code == "E402"] == (["E402"] if overlaps else [])


def test_wrong_number_of_cells_is_E403():
    source, found = table_diagnostics("table tb (first) by x, y\n  1 -> 1\n  1, 2, 3 -> 2\n  else -> 0\n")
    assert [(d.code, at(d)) for d in found] == [("E403", position_of(source, "1 -> 1")),
                                                 ("E403", position_of(source, "1, 2, 3"))]


def _w404(table: str):
    source, found = table_diagnostics(table)
    assert all(d.severity is Severity.WARNING for d in found), [(d.code, d.message) for d in found]
    return source, [d for d in found if d.code == "W404"]


def test_gap_in_an_int_table_is_W404_on_the_table_name():
    source, found = _w404("table tb (first) by x\n  < 0 -> 1\n  > 0 -> 2\n")
    assert [at(d) for d in found] == [position_of(source, "tb (")]
    assert "0" in found[0].message
    assert found[0].hint and "else" in found[0].hint


@pytest.mark.parametrize(
    "table",
    [
        "table tb (first) by x\n  < 5 -> 1\n  >= 5 -> 2\n",
        "table tb (first) by x\n  <= 4 -> 1\n  >= 5 -> 2\n",  # no whole number between 4 and 5
        "table tb (first) by x\n  < 4.5 -> 1\n  >= 5 -> 2\n",
        "table tb (first) by x\n  <= 0 -> 1\n  1..9 -> 2\n  >= 10 -> 3\n",
        "table tb (first) by x\n  != 3 -> 1\n  3 -> 2\n",
        "table tb (first) by x\n  < -5 -> 1\n  >= -5 -> 2\n",
        "table tb (first) by x\n  < 0 -> 1\n  else -> 2\n",
        "table tb (first) by q\n  < 0 -> 1\n  else -> 2\n",
        "table tb (first) by q\n  < 4.5 -> 1\n  >= 4.5 -> 2\n",
        "table tb (first) by m\n  < 100 BRL -> 1\n  >= 100 BRL -> 2\n",
        "table tb (first) by d\n  <= 2025-12-31 -> 1\n  >= 2026-01-01 -> 2\n",  # dates are whole days
        "table tb (unique) by x\n  < 5 -> 1\n  >= 5 -> 2\n",
        "table tb (collect) by x\n  < 0 -> 1\n",  # collect: no match is an empty list, not a gap
        "table tb (first) by x, y\n  < 0, < 0 -> 1\n",  # coverage is only analysed for one column
    ],
)
def test_complete_tables_have_no_W404(table):
    _, found = _w404(table)
    assert found == []


@pytest.mark.parametrize(
    "table, missing",
    [
        ("table tb (first) by q\n  <= 4 -> 1\n  >= 5 -> 2\n", "4"),  # 4.5 is not covered
        ("table tb (first) by q\n  < 4.5 -> 1\n  > 4.5 -> 2\n", "4.5"),
        ("table tb (first) by m\n  < 100 BRL -> 1\n  > 100 BRL -> 2\n", "100"),
        ("table tb (first) by x\n  <= 0 -> 1\n  2..9 -> 2\n  >= 10 -> 3\n", "1"),
        ("table tb (first) by x\n  >= 0 -> 1\n", "-1"),  # whole numbers: x <= -1
    ],
)
def test_gaps_are_W404(table, missing):
    _, found = _w404(table)
    assert len(found) == 1
    assert missing in found[0].message


def test_warnings_do_not_stop_compilation():
    source, found = table_diagnostics("table tb (first) by x\n  < 0 -> 1\n  > 0 -> 2\n")
    prepared = compile_policy(source)
    assert [w.code for w in prepared.meta.warnings if w.code not in UNUSED] == ["W404"]
    decision = prepared.evaluate({"x": 0, "y": 0, "q": 0, "m": 0, "b": True, "d": "2026-01-01", "s": ""})
    # The gap is real: x = 0 matches no row, which is an evaluation error for the output.
    assert decision.outcome == "review"


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


@pytest.mark.parametrize(
    "column, cell",
    [("int", "\"a\""), ("int", "< \"a\""), ("int", "in [\"a\"]"), ("int", "30 days"), ("int", "[1]"),
     ("date", "\"2026-01-01\""), ("decimal", "\"a\"")],
)
def test_wrongly_typed_constant_cell_is_E205_not_a_crash(column, cell):
    source = H + f"input\n  x: {column}\ntable t (first) by x\n  {cell} -> 1\n  < 0 -> 2\n  else -> 3\n" + D
    assert set(codes(source)) == {"E205"}


def test_w404_for_dates_shows_dates():
    _, found = _w404("table tb (first) by d\n  < 2026-01-01 -> 1\n  > 2026-01-01 -> 2\n")
    assert len(found) == 1
    assert "2026-01-01" in found[0].message


def test_example_policy_checks_without_diagnostics():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "policies" / "credito_b2b.regua"
    checked = check_source(path.read_text(encoding="utf-8"), str(path))
    assert checked.warnings == []


# ---- residual table/format cases -----------------------------------------------------------


def test_a_row_whose_range_is_empty_can_never_match():
    source = ("policy p kind credit\n\ninput\n  n: int\n\ntable t (first) by n\n  5..1 -> 1\n  else -> 2\n\n"
              "default approve\n\noutput t\n")
    with pytest.raises(PolicyError) as raised:
        check_source(source, "f.regua")
    [d] = raised.value.diagnostics
    assert (d.code, d.span.line) == ("E401", 7)


def test_w404_describes_open_gaps_between_decimal_rows_exactly():
    source = ("policy p kind credit\n\ninput\n  q: decimal\n\ntable t (first) by q\n  <= 4 -> 1\n  >= 5 -> 2\n\n"
              "default approve\n\noutput t\n")
    [warning] = check_source(source, "f.regua").warnings
    assert warning.code == "W404"
    assert "q > 4 and < 5" in warning.message


def test_monitoring_policy_needs_the_new_limit_output_and_money():
    missing = "policy p kind monitoring\ndefault keep\n"
    with pytest.raises(PolicyError) as info:
        compile_policy(missing)
    assert [d.code for d in info.value.diagnostics] == ["E117"]
    assert "output new_limit" in info.value.diagnostics[0].message
    wrong = "policy p kind monitoring\ndefault keep\noutput new_limit = 3\n"
    with pytest.raises(PolicyError) as info:
        compile_policy(wrong)
    assert [d.code for d in info.value.diagnostics] == ["E117"]


def test_monitoring_policy_reads_a_fixed_input_and_its_actions():
    source = ("policy p kind monitoring\ninput\n  x: int\nrule r\n  when event == \"protest\"\n  deny \"A\" \"b\"\n"
              "default keep\noutput new_limit = limit\n")
    with pytest.raises(PolicyError) as info:
        compile_policy(source)
    codes = sorted(d.code for d in info.value.diagnostics)
    assert codes == ["E108", "E115"]
    ok = ("policy p kind monitoring\nrule r\n  when event == \"protest\"\n  block \"P\" \"protesto\"\n"
          "default keep\noutput new_limit = limit\n")
    assert compile_policy(ok).evaluate({"event": "protest"}).outcome == "block"
    assert compile_policy(ok).evaluate({"event": "inquiry"}).outcome == "keep"


# ---- rules reading other rules: fired(...) -----------------------------------------------------

R = H + "input\n  x: int\n" + D


def test_fired_outside_a_rule_condition_is_E203():
    source = R + "let f = fired(r)\nrule r\n  when x > 1\n  deny \"A\" \"a\"\n"
    assert at(single(source, "E203")) == position_of(source, "fired(r)")


def test_fired_of_an_unknown_rule_is_E101_with_a_hint():
    source = R + "rule restricao\n  when x > 1\n  deny \"A\" \"a\"\nrule r\n  when not fired(restricoa)\n  approve\n"
    d = single(source, "E101")
    assert at(d) == position_of(source, "restricoa")
    assert d.hint == "did you mean 'restricao'?"


def test_fired_of_itself_is_E303():
    source = R + "rule r\n  when x > 1 and not fired(r)\n  deny \"A\" \"a\"\n"
    assert at(single(source, "E303")) == position_of(source, "r)")


def test_two_deny_rules_reading_fired_deny_are_a_cycle():
    source = R + ("rule a\n  when x > 1 and not fired(deny)\n  deny \"A\" \"a\"\n"
                  "rule b\n  when x > 2 and not fired(deny)\n  deny \"B\" \"b\"\n")
    d = single(source, "E303")
    assert "a -> b -> a" in d.message or "b -> a -> b" in d.message


def test_rules_are_ordered_after_the_rules_they_read():
    source = R + ("rule a\n  when fired(c)\n  approve\nrule b\n  when true\n  approve\n"
                  "rule c\n  when fired(deny)\n  approve\nrule d\n  when x > 1\n  deny \"D\" \"d\"\n")
    checked = check_source(source, "f.regua")
    names = [checked.policy.rules[k].name for k in checked.rule_order]
    assert names.index("d") < names.index("c") < names.index("a")
    assert sorted(names) == ["a", "b", "c", "d"]


# ---- lint warnings (W6xx) ----------------------------------------------------------------------

L = H + "input\n  x: int\n  d: date\n  m: money\n  p: percent\n  c: cnpj\n" + D + "output x, d, m, p, c\n"


def lint_codes(body: str) -> list[str]:
    return [d.code for d in diagnostics(L + body)]


@pytest.mark.parametrize(
    "condition, code",
    [
        ("x > 10 and x < 5", "W605"),
        ("x > 4 and x < 5", "W605"),  # whole numbers: nothing in between
        ("x >= 5 and x <= 5", None),
        ("x > 4 and x <= 5", None),
        ("d >= 2026-01-01 and d < 2025-01-01", "W605"),
        ("m > 1_000 BRL and m < 500 BRL", "W605"),
        ("p > 10% and p < 5%", "W605"),
        ("x in 1..5 and x > 7", "W605"),
        ("x < 5 or x >= 5", "W606"),
        ("x <= 4 or x >= 5", "W606"),  # whole numbers again
        ("m < 5 BRL or m > 5 BRL", None),  # 5 BRL itself
        ("m <= 5 BRL or m >= 5 BRL", "W606"),
        ("x < 5 or x > 7", None),
        ("bureau.serasa(c).score.value > 1500", "W608"),
        ("bureau.serasa(c).score.value < 0", "W608"),
        ("bureau.serasa(c).score.value >= 0", "W606"),
        ("bureau.serasa(c).score.value in 0..1000", "W606"),
        ("bureau.serasa(c).score.value > 500", None),
        ("x > 1 and (x < 0 or m > 1 BRL)", None),
    ],
)
def test_conditions_that_can_never_or_always_be_true(condition, code):
    found = lint_codes(f"rule r\n  when {condition}\n  deny \"A\" \"a\"\n")
    assert found == ([code] if code else []), found


def test_impossible_condition_inside_a_let_or_a_comprehension_where():
    source = (H + "record f\n  v: money\ninput\n  fs: list of f\n" + D
              + "output n = count(x for x in fs where x.v > 10 BRL and x.v < 1 BRL)\n")
    assert codes(source) == ["W605"]


@pytest.mark.parametrize(
    "first, second, warned",
    [
        ("x > 1", "x > 5", True),
        ("x > 1", "x > 5 and m > 0 BRL", True),
        ("x > 1 and m > 0 BRL", "m > 0 BRL and x > 3", True),
        ("x > 1", "x > 1", True),
        ("x > 5", "x > 1", False),
        ("x > 1 and m > 0 BRL", "x > 5", False),
        ("x > 1", "x > 5 and not fired(deny)", False),
    ],
)
def test_rule_covered_by_an_earlier_deny(first, second, warned):
    body = (f"rule a\n  when {first}\n  deny \"A\" \"a\"\nrule b\n  when {second}\n"
            f"  review \"B\" \"b\"\n")
    assert lint_codes(body) == (["W607"] if warned else [])


def test_a_deny_later_in_the_file_or_a_review_does_not_cover():
    body = ("rule b\n  when x > 5\n  review \"B\" \"b\"\nrule a\n  when x > 1\n  deny \"A\" \"a\"\n"
            "rule c\n  when x > 5\n  review \"C\" \"c\"\nrule e\n  when x > 5 and m > 1 BRL\n  review \"E\" \"e\"\n")
    # b comes before the deny; e is covered by a (a deny); c too. A review never covers.
    assert lint_codes(body) == ["W607", "W607"]


def test_unused_declarations_and_what_counts_as_a_read():
    source = (H + "input\n  x: int\n  y: int\n  z: int\nlet a = x\nlet b = 1\nlet lido = y\n"
              "table t (first) by z\n  else -> 1\ntable u (first) by lido\n  else -> 2\n" + D + "output a, u\n")
    assert [(d.code, d.message) for d in diagnostics(source, unused=True)] == [
        ("W602", "let 'b' is never read"),
        ("W603", "table 't' is never read"),
    ]


def test_collection_policies_have_no_unused_input_warnings():
    source = "policy p kind collection\ndefault wait\nstep s at D+1\n  remind \"t\"\n"
    assert diagnostics(source, unused=True) == []


def test_duplicate_reason_codes_point_at_the_second_rule():
    source = L + ("rule a\n  when x > 1\n  deny \"A\" \"a\"\nrule b\n  when x < 0\n  review \"A\" \"b\"\n")
    d = single(source, "W604")
    assert "rule 'a'" in d.message and at(d) == position_of(source, 'review "A"')


def test_no_lint_warnings_on_a_policy_with_errors():
    assert codes(H + "input\n  x: int\n  y: int\nlet z = w\n" + D) == ["E101"]
