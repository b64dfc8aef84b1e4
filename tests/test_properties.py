"""Property tests (hypothesis): parser robustness and the formatter round trip (exact money and
documents: tests/test_properties_values.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regua.dsl.diagnostics import PolicyError
from regua.dsl.formatter import format_source, scan_comments
from regua.dsl.parser import parse
from regua.engine.compiler import check_source, compile_policy

EXAMPLE = (Path(__file__).resolve().parents[1] / "policies" / "credito_b2b.regua").read_text(encoding="utf-8")
H = "policy p kind credit\n"

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MEDIUM = settings(max_examples=100, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


# ---- (a) parser robustness ---------------------------------------------------------------------


def parses_or_policy_error(text: str) -> None:
    try:
        parse(text, "fuzz.regua")
    except PolicyError as error:
        assert error.diagnostics, "a PolicyError always carries at least one diagnostic"
        for d in error.diagnostics:
            assert d.code.startswith("E0")
            assert d.span.line >= 1 and d.span.column >= 1
        error.render()  # rendering never fails either


@FAST
@given(st.text(max_size=300))
def test_arbitrary_text_parses_or_raises_policy_error(text):
    parses_or_policy_error(text)


SOUP = st.sampled_from(list("abcxyzáç_019 \t\n()[]{}.,:=<>+-*/%#\"\\'$") +
                      ["BRL", "days", "rule ", "let ", "when ", "table ", "in", "..", "->", "else", "test ", "given",
                       "expect ", "input", "  ", "\n  ", "2026-01-31", "10%", "5 BRL"])


@FAST
@given(st.lists(SOUP, max_size=60).map("".join))
def test_token_soup_after_a_header_parses_or_raises_policy_error(text):
    parses_or_policy_error(H + text)


MUTATION = st.tuples(
    st.sampled_from(["delete_char", "insert_char", "duplicate_char", "delete_line", "duplicate_line", "swap_lines"]),
    st.floats(min_value=0, max_value=1, exclude_max=True),
    st.sampled_from(list("\n\t #\"\\()[]{}:,.=<>-+*/%0123456789aeçã_") + ["BRL", "days", "  ", "rule", "else"]),
)


def mutate(source: str, mutations) -> str:
    for kind, where, text in mutations:
        if kind.endswith("_char"):
            i = int(where * len(source))
            if kind == "delete_char":
                source = source[:i] + source[i + 1:]
            elif kind == "insert_char":
                source = source[:i] + text + source[i:]
            else:
                source = source[:i] + source[i:i + 1] * 2 + source[i + 1:]
        else:
            lines = source.splitlines(keepends=True)
            i = int(where * len(lines))
            if kind == "delete_line":
                del lines[i]
            elif kind == "duplicate_line":
                lines.insert(i, lines[i])
            elif i + 1 < len(lines):
                lines[i], lines[i + 1] = lines[i + 1], lines[i]
            source = "".join(lines)
    return source


@FAST
@given(st.lists(MUTATION, min_size=1, max_size=5))
def test_mutated_example_parses_or_raises_policy_error(mutations):
    parses_or_policy_error(mutate(EXAMPLE, mutations))


@settings(max_examples=60, deadline=None)
@given(st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_example_checks_or_raises_policy_error(mutations):
    try:
        check_source(mutate(EXAMPLE, mutations), "fuzz.regua")
    except PolicyError:
        pass


# ---- (b) formatter round trip on generated policies ---------------------------------------------

LETTERS = "abcdefghijklmnopqrstuvwxyzáéíóúâêôãõçàüñ"
COMMENT_CHARS = LETTERS + "ABCXYZ0123456789 #\"'\\-–—:;.,!?()[]{}=<>+*/%@$&|ºª🙂"
STRING_CHARS = LETTERS + "ABCXYZ0123456789 #'-–:;.,!?()[]{}=<>+*/%@$&|ºª🙂"  # plus escaped " \\ \n \t below


def _name(draw, n: int) -> str:
    # The `_n` suffix keeps names unique and never a keyword.
    return draw(st.text(alphabet=LETTERS, min_size=1, max_size=6)) + f"_{n}"


def _money_literal(draw) -> str:
    whole = draw(st.integers(min_value=0, max_value=99_999))
    text = f"{whole:_}" if draw(st.booleans()) else str(whole)
    if draw(st.booleans()):
        text += "." + f"{draw(st.integers(min_value=0, max_value=99)):02d}"
    return text + " BRL"


def _string_literal(draw) -> str:
    parts = draw(st.lists(st.one_of(st.text(alphabet=STRING_CHARS, max_size=5),
                                    st.sampled_from(['\\"', "\\\\", "\\n", "\\t"])), max_size=5))
    return '"' + "".join(parts) + '"'


class PolicyBuilder:
    """Builds the text of a random valid policy, tracking the comments it places."""

    def __init__(self, draw):
        self.draw = draw
        self.lines: list[str] = []
        self.comments: list[str] = []
        self.counter = 0

    def comment(self) -> str:
        self.counter += 1
        body = self.draw(st.text(alphabet=COMMENT_CHARS, max_size=12)).strip()
        text = f"#c{self.counter}: {body} :{self.counter}"
        self.comments.append(text)
        return text

    def maybe_trailing(self, line: str) -> str:
        if self.draw(st.integers(0, 3)) == 0:
            return line + " " * self.draw(st.integers(1, 3)) + self.comment()
        return line

    def maybe_own_line(self, indent: str = "") -> None:
        if self.draw(st.integers(0, 4)) == 0:
            self.lines.append(indent + self.comment())
        if self.draw(st.integers(0, 8)) == 0:
            self.lines.append("")

    def add(self, line: str) -> None:
        self.lines.append(self.maybe_trailing(line))


def _wrap(draw, text: str) -> str:
    """Parenthesise a sub-expression, sometimes spread over lines (newlines are free inside parentheses)."""
    if draw(st.integers(0, 6)) == 0:
        return "(\n    " + text + "\n  )"
    return f"({text})"


def _int_expr(draw, names: list[str], depth: int) -> str:
    if depth <= 0 or draw(st.integers(0, 2)) == 0:
        if names and draw(st.booleans()):
            return draw(st.sampled_from(names))
        value = draw(st.integers(min_value=-50, max_value=50))
        return str(value) if value >= 0 else f"({value})"
    kind = draw(st.sampled_from(["+", "-", "*", "neg", "if", "min", "max", "abs", "otherwise"]))
    a = _int_expr(draw, names, depth - 1)
    b = _int_expr(draw, names, depth - 1)
    if kind in "+-*":
        return f"{_wrap(draw, a)} {kind} {_wrap(draw, b)}"
    if kind == "neg":
        return f"-{_wrap(draw, a)}"
    if kind == "if":
        return f"if {_wrap(draw, _bool_expr(draw, names, [], depth - 1))} then {_wrap(draw, a)} else {_wrap(draw, b)}"
    if kind == "otherwise":
        # An `if` on the left of `otherwise` must keep its parentheses when formatted
        # (regression: test_formatter_keeps_if_inside_otherwise).
        return f"{_wrap(draw, a)} otherwise {_wrap(draw, b)}"
    return f"{kind}({a}, {b})" if kind != "abs" else f"abs({a})"


def _money_expr(draw, ints: list[str], moneys: list[str], percents: list[str], depth: int) -> str:
    if depth <= 0 or draw(st.integers(0, 2)) == 0:
        if moneys and draw(st.booleans()):
            return draw(st.sampled_from(moneys))
        return _money_literal(draw)
    kind = draw(st.sampled_from(["+", "-", "*int", "int*", "*pct", "/int", "neg", "if", "max", "round", "otherwise"]))
    a = _money_expr(draw, ints, moneys, percents, depth - 1)
    b = _money_expr(draw, ints, moneys, percents, depth - 1)
    if kind in "+-":
        return f"{_wrap(draw, a)} {kind} {_wrap(draw, b)}"
    if kind == "*int":
        return f"{_wrap(draw, a)} * {_wrap(draw, _int_expr(draw, ints, 1))}"
    if kind == "int*":
        return f"{_wrap(draw, _int_expr(draw, ints, 1))} * {_wrap(draw, a)}"
    if kind == "*pct":
        pct = draw(st.sampled_from(percents)) if percents and draw(st.booleans()) else \
            f"{draw(st.integers(0, 200))}{draw(st.sampled_from(['', '.5', '.25']))}%"
        return f"{_wrap(draw, a)} * {pct}"
    if kind == "/int":  # may divide by zero: an evaluation error that `otherwise` can catch
        divisor = draw(st.sampled_from(["0", draw(st.sampled_from(ints)), _int_expr(draw, ints, 1)]))
        return f"{_wrap(draw, a)} / {_wrap(draw, divisor)}"
    if kind == "neg":
        return f"-{_wrap(draw, a)}"
    if kind == "if":
        return f"if {_wrap(draw, _bool_expr(draw, ints, moneys, depth - 1))} then {_wrap(draw, a)} else {_wrap(draw, b)}"
    if kind == "otherwise":
        return f"{_wrap(draw, a)} otherwise {_wrap(draw, b)}"
    if kind == "max":
        return f"max({a}, {b})"
    return f"round({a})"


def _bool_expr(draw, ints: list[str], moneys: list[str], depth: int) -> str:
    kind = draw(st.sampled_from(["cmp_int", "cmp_money", "and", "or", "not", "in_list", "in_range", "lit"]
                                if depth > 0 else ["cmp_int", "cmp_money", "in_list", "in_range", "lit"]))
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
    if kind == "cmp_int":
        return f"{_wrap(draw, _int_expr(draw, ints, depth))} {op} {_wrap(draw, _int_expr(draw, ints, depth))}"
    if kind == "cmp_money":
        return f"{_wrap(draw, _money_expr(draw, ints, moneys, [], depth))} {op} {_money_literal(draw)}"
    if kind in ("and", "or"):
        return f"{_wrap(draw, _bool_expr(draw, ints, moneys, depth - 1))} {kind} " \
               f"{_wrap(draw, _bool_expr(draw, ints, moneys, depth - 1))}"
    if kind == "not":
        return f"not {_wrap(draw, _bool_expr(draw, ints, moneys, depth - 1))}"
    word = draw(st.sampled_from(["in", "not in"]))
    if kind == "in_list":
        items = draw(st.lists(st.integers(-20, 20), min_size=1, max_size=4))
        return f"{_wrap(draw, _int_expr(draw, ints, 1))} {word} [{', '.join(str(i) for i in items)}]"
    if kind == "in_range":
        lo = draw(st.integers(-20, 20))
        return f"{_wrap(draw, _int_expr(draw, ints, 1))} {word} {lo}..{lo + draw(st.integers(0, 20))}"
    return draw(st.sampled_from(["true", "false"]))


@st.composite
def generated_policies(draw):
    """(source, comment texts, input names) of a random valid credit policy."""
    b = PolicyBuilder(draw)
    b.maybe_own_line()
    policy_name = _name(draw, 0)
    header = f"policy {policy_name} kind credit"
    if draw(st.booleans()):
        header += f" version {_string_literal(draw)}"
    b.add(header)
    if draw(st.booleans()):
        b.add(f"description {_string_literal(draw)}")
    b.maybe_own_line()
    indent = draw(st.sampled_from(["  ", "    ", "\t"]))
    n_int, n_money, n_pct = _name(draw, 1), _name(draw, 2), _name(draw, 3)
    b.add("input")
    b.maybe_own_line(indent)
    b.add(f"{indent}{n_int}: int")
    b.add(f"{indent}{n_money}: money")
    b.add(f"{indent}{n_pct}: percent = {draw(st.integers(0, 100))}%")
    ints, moneys, percents = [n_int], [n_money], [n_pct]
    counter = 10
    for _ in range(draw(st.integers(0, 3))):
        b.maybe_own_line()
        counter += 1
        name = _name(draw, counter)
        if draw(st.booleans()):
            b.add(f"let {name} = {_int_expr(draw, ints, 2)}")
            ints.append(name)
        else:
            b.add(f"let {name} = {_money_expr(draw, ints, moneys, percents, 2)}")
            moneys.append(name)
    tables = []
    for _ in range(draw(st.integers(0, 2))):
        b.maybe_own_line()
        counter += 1
        name = _name(draw, counter)
        cuts = sorted(draw(st.sets(st.integers(-30, 30), min_size=1, max_size=4)))
        b.add(f"table {name} (first) by {draw(st.sampled_from(ints))}")
        rows = [f"< {cuts[0]}"] + [f"{lo}..{hi - 1}" for lo, hi in zip(cuts, cuts[1:])] + [f">= {cuts[-1]}"]
        keep = [row for row in rows if draw(st.integers(0, 4)) > 0] or rows[:1]
        for row in keep:
            b.maybe_own_line(indent)
            b.add(f"{indent}{row} -> {_money_literal(draw)}")
        if draw(st.booleans()):
            b.add(f"{indent}else -> {_money_literal(draw)}")
        tables.append(name)
    moneys += tables
    uses_limit = draw(st.booleans())
    for _ in range(draw(st.integers(1, 4))):
        b.maybe_own_line()
        counter += 1
        b.add(f"rule {_name(draw, counter)}")
        b.maybe_own_line(indent)
        b.add(f"{indent}when {_bool_expr(draw, ints, moneys, 2)}")
        verb = draw(st.sampled_from(["deny", "review", "approve"]))
        message = '"m' + _string_literal(draw)[1:]  # a reason needs a non-empty message
        reason = f' "R{counter}" {message}' if verb != "approve" or draw(st.booleans()) else ""
        b.add(f"{indent}{verb}{reason}")
        if uses_limit and draw(st.booleans()):
            b.add(f"{indent}set limite = {_money_expr(draw, ints, moneys, percents, 1)}")
    b.maybe_own_line()
    b.add("default approve")
    outputs = moneys[1:] + ints[1:]
    if uses_limit:
        outputs.append("limite = 0 BRL")
    if outputs:
        b.add("output " + ", ".join(outputs))
    b.maybe_own_line()
    return "\n".join(b.lines) + "\n", b.comments, (n_int, n_money, n_pct)


INPUTS = st.fixed_dictionaries({
    "int": st.integers(min_value=-40, max_value=40),
    "money": st.decimals(min_value=-100_000, max_value=100_000, places=2, allow_nan=False, allow_infinity=False),
    "percent": st.one_of(st.none(), st.integers(0, 100).map(lambda p: f"{p}%")),
})


def _decision_key(decision):
    return decision.outcome, [(r.code, r.rule, r.outcome) for r in decision.reasons], decision.outputs


@MEDIUM
@given(generated_policies(), st.lists(INPUTS, min_size=1, max_size=4))
def test_formatter_round_trip_on_generated_policies(policy, inputs):
    source, comments, (n_int, n_money, n_pct) = policy
    original = compile_policy(source)  # the generator only builds valid policies
    formatted = format_source(source)
    assert format_source(formatted) == formatted, "formatting is not idempotent"
    # Every comment is kept, exactly once, as a comment.
    kept = [c.text for c in scan_comments(formatted)]
    assert sorted(kept) == sorted(comments)
    for text in comments:
        assert formatted.count(text) == 1
    reformatted = compile_policy(formatted)
    for data in inputs:
        values = {n_int: data["int"], n_money: str(data["money"])}
        if data["percent"] is not None:
            values[n_pct] = data["percent"]
        day = dt.date(2026, 1, 15)
        assert _decision_key(reformatted.evaluate(values, as_of=day)) == \
            _decision_key(original.evaluate(values, as_of=day))


def test_formatter_round_trip_on_the_example_policy():
    assert format_source(EXAMPLE) == EXAMPLE


def test_formatter_keeps_if_inside_otherwise():
    from regua.engine.connectors import ConnectorError, Connectors, Fixture

    source = (H + "input\n  c: cnpj\nlet r = bureau.serasa(c)\n"
              "let a = (if r.score.value > 500 then 1 else 2) otherwise 3\n"
              "default approve\noutput a\n")
    down = Connectors({"bureau.serasa": Fixture(failure=ConnectorError("DOWN"))})
    data = {"c": "11.222.333/0001-81"}
    before = compile_policy(source).evaluate(data, connectors=down)
    assert before.outputs == {"a": 3}
    after = compile_policy(format_source(source)).evaluate(data, connectors=down)
    assert _decision_key(after) == _decision_key(before)


@pytest.mark.parametrize("char", ["\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"])
def test_formatter_keeps_comments_after_strings_with_line_separator_characters(char):
    source = H + f'let a = "x{char}y"  # c1\n# c2\nlet b = 2  # c3\ndefault approve\n'
    assert parse(source).lets[0].value.value == f"x{char}y"
    formatted = format_source(source)
    assert [c.text for c in scan_comments(formatted)] == ["# c1", "# c2", "# c3"]
    lines = formatted.splitlines()
    assert any(line.startswith("let b = 2") and line.endswith("# c3") for line in lines)
    assert format_source(formatted) == formatted


def test_trailing_comment_inside_a_multiline_expression_stays_with_its_item():
    source = H + "let a = (1 +  # one\n  2)  # two\nlet b = 3\ndefault approve\n"
    formatted = format_source(source)
    assert formatted.index("# two") < formatted.index("let b")
