"""floor, ceil and rounding to a multiple (issue 15 #8): what a credit limit needs ("down to a
multiple of R$ 100"), checked by type, exact in Decimal, and failing clearly on a bad step."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regua.dsl.diagnostics import PolicyError
from regua.engine.compiler import check_source, compile_policy

HEADER = "policy arred kind credit\n\ninput\n  limite: money\n  taxa: percent\n  n: int\n  x: decimal\n\n"
FOOTER = "\ndefault approve\n"


def outputs(expressions: str, **data):
    data = {"limite": "0", "taxa": "0%", "n": 0, "x": "0", **data}
    policy = compile_policy(HEADER + FOOTER + f"\noutput {expressions}\n")
    return policy.evaluate(data).to_dict()["outputs"]


def test_a_limit_rounded_to_a_multiple_of_100_brl_in_each_direction():
    got = outputs("a = floor_to(limite, 100 BRL), b = ceil_to(limite, 100 BRL), c = round_to(limite, 100 BRL)",
                  limite="12350.00")
    assert got == {"a": "12300.00", "b": "12400.00", "c": "12400.00"}  # halves go up, away from zero
    assert outputs("c = round_to(limite, 100 BRL)", limite="-12350.00") == {"c": "-12400.00"}


def test_floor_and_ceil_with_places_and_ints_stay_ints():
    got = outputs("a = floor(limite), b = ceil(x, 1), c = floor(x, 1), d = floor(n), e = ceil_to(n, 10), "
                  "f = floor_to(taxa, 0.5%), g = round(limite, -2)", limite="12345.67", x="-2.01", n=41, taxa="3.7%")
    assert got == {"a": "12345.00", "b": "-2", "c": "-2.1", "d": 41, "e": 50, "f": "3.5%", "g": "12300.00"}


@pytest.mark.parametrize("expression, message", [
    ("floor(taxa)", "floor() of a percent is ambiguous"),
    ("floor_to(limite, 100)", "the step must be of the same type as the value (money)"),
    ("ceil(limite, 1.5)", "the number of decimal places must be an int"),
    ("round_to(limite)", "round_to() takes a value and the step"),
])
def test_wrong_arguments_are_e203_with_a_message(expression, message):
    with pytest.raises(PolicyError) as raised:
        check_source(HEADER + FOOTER + f"\noutput y = {expression}\n")
    [diagnostic] = raised.value.diagnostics
    assert diagnostic.code == "E203" and message in diagnostic.message


def test_a_step_that_is_not_positive_fails_the_output_with_invalid_argument():
    policy = compile_policy(HEADER + "\non error review \"ERRO\" \"erro\"\n" + FOOTER
                            + "\noutput y = floor_to(limite, x * 1 BRL)\n")
    decision = policy.evaluate({"limite": "10", "taxa": "0%", "n": 0, "x": "0"})
    assert decision.outcome == "review"
    assert any(r.code == "ERRO" for r in decision.reasons)


MONEY = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=2, allow_nan=False)
STEPS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1e6"), places=2, allow_nan=False)


@given(MONEY, STEPS)
def test_multiples_bracket_the_value_exactly(value, step):
    from regua.engine.builtins import default_environment

    functions = default_environment().functions
    down, up, near = (functions[name].impl(value, step) for name in ("floor_to", "ceil_to", "round_to"))
    for rounded in (down, up, near):
        assert (rounded / step) == (rounded / step).to_integral_value()  # a multiple of step
    assert down <= value < down + step
    assert up - step < value <= up
    assert abs(near - value) <= step / 2 and near in (down, up)
