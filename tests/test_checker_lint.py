"""Lint warnings (W6xx): conditions that can never or always be true, rules covered by an earlier
deny, unused declarations, duplicate reason codes; none on a policy that has errors.
"""

from __future__ import annotations

import pytest
from check_harness import D, H, at, codes, diagnostics, position_of, single

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
