"""Property tests (hypothesis): money arithmetic is exact, and CPF/CNPJ checking agrees with python-stdnum."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from stdnum.br import cnpj as std_cnpj
from stdnum.br import cpf as std_cpf

from regua.engine.compiler import compile_policy
from regua.engine.prepared import InvalidInput

H = "policy p kind credit\n"

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- (c) money arithmetic is exact ------------------------------------------------------------

MONEY_POLICY = compile_policy(
    "policy dinheiro kind credit\n"
    "input\n  valores: list of money\n  a: money\n  b: money\n  k: int\n  taxa: percent\n"
    "let total = sum(valores)\n"
    "default approve\n"
    "output total, soma = a + b, diferenca = a - b, produto = a * k, juros = a * taxa, "
    "combinado = (a + b) * k - total\n"
)
AMOUNT = st.decimals(min_value=Decimal("-1000000000"), max_value=Decimal("1000000000"), places=2,
                     allow_nan=False, allow_infinity=False)
TWO_DECIMALS = re.compile(r"^-?\d+\.\d{2}$")


def _as_json_number(value: Decimal, as_float: bool):
    return float(value) if as_float else str(value)


@FAST
@given(st.lists(AMOUNT, max_size=12), AMOUNT, AMOUNT, st.integers(-1000, 1000),
       st.decimals(min_value=0, max_value=100, places=3, allow_nan=False, allow_infinity=False), st.booleans())
@example([Decimal("0.10"), Decimal("0.20")], Decimal("0.10"), Decimal("0.20"), 3, Decimal("10"), True)
def test_money_arithmetic_is_exact(values, a, b, k, rate, as_float):
    data = {"valores": [_as_json_number(v, as_float) for v in values], "a": _as_json_number(a, as_float),
            "b": _as_json_number(b, as_float), "k": k, "taxa": f"{rate}%"}
    decision = MONEY_POLICY.evaluate(data)
    total = sum(values, Decimal(0))
    expected = {
        "total": total,
        "soma": a + b,
        "diferenca": a - b,
        "produto": a * k,
        "juros": a * rate / 100,
        "combinado": (a + b) * k - total,
    }
    assert decision.outputs == expected
    for name, value in decision.outputs.items():
        assert isinstance(value, Decimal), name
    data = decision.to_dict()["outputs"]
    for name, exact in expected.items():
        text = data[name]
        assert isinstance(text, str) and TWO_DECIMALS.match(text), (name, text)
        # Cents are rounded half-up, like round() (the way Brazilian invoices round).
        assert Decimal(text) == exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        if name != "juros":
            assert Decimal(text) == exact  # sums and whole multiples of cents need no rounding


@FAST
@given(st.lists(st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False),
                min_size=1, max_size=6))
def test_money_literals_add_up_exactly_in_a_policy(amounts):
    total = sum(amounts, Decimal(0))
    literals = " + ".join(f"{a} BRL" for a in amounts)
    source = (H + f"let soma = {literals}\nrule confere\n  when soma == {total} BRL\n  review \"OK\" \"exato\"\n"
              "default approve\noutput soma\n")
    decision = compile_policy(source).evaluate({})
    assert decision.outcome == "review"
    assert decision.outputs["soma"] == total


def test_huge_money_output_does_not_crash():
    big = "9" * 17
    decision = MONEY_POLICY.evaluate({"valores": [], "a": big, "b": big, "k": 10 ** 12, "taxa": "0%"})
    data = decision.to_dict()["outputs"]
    assert data["soma"] == str(2 * int(big)) + ".00"
    assert data["produto"] == str(int(big) * 10 ** 12) + ".00"


@pytest.mark.parametrize("amount", ["1e30", "1e999999", "9" * 5000, "0." + "0" * 30 + "1", 10 ** 40])
def test_amounts_beyond_any_real_amount_are_refused(amount):
    """A 240-byte JSON number must not become a megabyte of digits in a decision."""
    with pytest.raises(InvalidInput) as caught:
        MONEY_POLICY.validate({"valores": [], "a": amount, "b": "0", "k": 1, "taxa": "0%"})
    assert [(e.path, e.code) for e in caught.value.errors] == [("input.a", "OUT_OF_RANGE")]


# ---- (d) CPF and CNPJ ------------------------------------------------------------------------

CPF_POLICY = compile_policy(H + "input\n  doc: cpf\ndefault approve\n")
CNPJ_POLICY = compile_policy(H + "input\n  doc: cnpj\ndefault approve\n")
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def accepted(prepared, text: str) -> str | None:
    try:
        return prepared.validate({"doc": text})["doc"]
    except InvalidInput as error:
        assert [e.code for e in error.errors] == ["INVALID_DOCUMENT"]
        assert text not in str(error)  # never echoed: personal data
        return None


def cpf_digits(base: str) -> str:
    """CPF check digits (mod 11, weights 10..2 then 11..2), computed independently of stdnum."""
    digits = [int(c) for c in base]
    for _ in range(2):
        total = sum(d * w for d, w in zip(digits, range(len(digits) + 1, 1, -1)))
        digits.append((total * 10) % 11 % 10)
    return "".join(map(str, digits[-2:]))


def cnpj_digits(base: str) -> str:
    """Alphanumeric CNPJ check digits (value = ASCII code - 48; mod 11), independent of stdnum."""
    values = [ord(c) - 48 for c in base]
    for weights in ([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]):
        remainder = sum(v * w for v, w in zip(values, weights)) % 11
        values.append(0 if remainder < 2 else 11 - remainder)
    return f"{values[-2]}{values[-1]}"


RANDOM_CPF = st.text(alphabet="0123456789", min_size=11, max_size=11)
VALID_CPF = st.text(alphabet="0123456789", min_size=9, max_size=9).map(lambda b: b + cpf_digits(b))


@FAST
@given(st.one_of(RANDOM_CPF, VALID_CPF))
@example("11144477735")
@example("00000000000")
@example("11111111111")
def test_cpf_accepted_iff_check_digits_are_valid(text):
    # Repeated-digit CPFs (111.111.111-11 ...) pass the check digits but are never issued: rejected by design.
    expected = std_cpf.is_valid(text) and len(set(text)) > 1
    assert (accepted(CPF_POLICY, text) == text) == expected
    assert (accepted(CPF_POLICY, text) is None) == (not expected)
    if expected:
        formatted = f"{text[:3]}.{text[3:6]}.{text[6:9]}-{text[9:]}"
        assert accepted(CPF_POLICY, formatted) == text


@FAST
@given(VALID_CPF)
def test_independent_cpf_digits_agree_with_stdnum(text):
    assert std_cpf.is_valid(text) == (int(text) > 0)


RANDOM_CNPJ = st.tuples(st.text(alphabet=ALNUM, min_size=12, max_size=12),
                        st.text(alphabet="0123456789", min_size=2, max_size=2)).map("".join)
VALID_CNPJ = st.text(alphabet=ALNUM, min_size=12, max_size=12).map(lambda b: b + cnpj_digits(b))


@FAST
@given(st.one_of(RANDOM_CNPJ, VALID_CNPJ))
@example("12ABC34501DE35")
@example("11222333000181")
def test_cnpj_accepted_iff_check_digits_are_valid(text):
    expected = std_cnpj.is_valid(text)
    assert (accepted(CNPJ_POLICY, text) == text) == expected
    if expected:
        formatted = f"{text[:2]}.{text[2:5]}.{text[5:8]}/{text[8:12]}-{text[12:]}"
        assert accepted(CNPJ_POLICY, formatted) == text


@FAST
@given(VALID_CNPJ)
def test_independent_cnpj_digits_agree_with_stdnum(text):
    assert std_cnpj.is_valid(text) == (not text.startswith("000000000000"))


@FAST
@given(st.one_of(RANDOM_CNPJ, VALID_CNPJ), st.data())
def test_lowercase_letters_are_always_rejected(text, data):
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    assume(letters)
    i = data.draw(st.sampled_from(letters))
    lowered = text[:i] + text[i].lower() + text[i + 1:]
    assert accepted(CNPJ_POLICY, lowered) is None
    assert accepted(CNPJ_POLICY, lowered.lower()) is None


@FAST
@given(st.text(alphabet=ALNUM, min_size=12, max_size=12), st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                                                                   min_size=1, max_size=2))
def test_letters_in_the_check_digits_are_rejected(base, letters):
    text = base + (letters + "0")[:2]
    assert accepted(CNPJ_POLICY, text) is None


def test_known_alphanumeric_cnpj_examples():
    assert cnpj_digits("12ABC34501DE") == "35"
    assert accepted(CNPJ_POLICY, "12ABC34501DE35") == "12ABC34501DE35"
    assert accepted(CNPJ_POLICY, "12.ABC.345/01DE-35") == "12ABC34501DE35"
    assert accepted(CNPJ_POLICY, "12ABC34501DE45") is None
    assert accepted(CNPJ_POLICY, "12abc34501de35") is None
    assert accepted(CPF_POLICY, "111.444.777-35") == "11144477735"
    assert accepted(CPF_POLICY, "111.444.777-36") is None
