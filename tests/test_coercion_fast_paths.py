"""The coercers' fast paths (money as plain text, dates as ISO text) take exactly what the full
coercion takes, with the same value, and leave everything else to it (same errors); the CPF and
CNPJ check digits computed in regua.dsl.values agree with python-stdnum's."""

from __future__ import annotations

import datetime as dt
import re

from hypothesis import example, given
from hypothesis import strategies as st
from stdnum.br import cnpj, cpf

from regua.dsl import types as T
from regua.dsl.coercers import coercer
from regua.dsl.values import CoercionError, _coerce_scalar, _whole_cents, normalize_cnpj, normalize_cpf

_money = coercer(T.MONEY, strict=True, cents=True)
_date = coercer(T.DATE, strict=True)

# Texts near the fast path's shape: digits, a point, signs, exponents, spaces, underscores, other digits.
_NUMBER_TEXT = st.text(alphabet="0123456789.-+eE _١٢", max_size=24) | \
    st.decimals(allow_nan=True, places=None).map(str) | \
    st.from_regex(r"-?[0-9]{1,20}(\.[0-9]{0,4})?", fullmatch=True)


def _outcome(function, value):
    try:
        result = function(value)
        return "ok", result, str(result)  # str: the exponent too (10.5 and 10.50 are different texts)
    except CoercionError as error:
        return "error", error.code, error.message


@given(_NUMBER_TEXT)
def test_money_text_fast_path_agrees_with_the_full_coercion(text):
    assert _outcome(_money, text) == _outcome(lambda v: _whole_cents(_coerce_scalar(v, T.MONEY), ""), text)


_decimal = coercer(T.DECIMAL, strict=False)


# Floats of up to 17 significant digits at every scale near the limits (18 places, 10^18).
_FLOATS = st.floats() | st.builds(lambda digits, exponent: float(f"{digits}e{exponent}"),
                                   st.integers(10 ** 15, 10 ** 17) | st.integers(-10 ** 17, 10 ** 17),
                                   st.integers(-36, 20))


@given(_FLOATS)
@example(0.0012345678901234567)  # 19 places: out of range, and adjusted() is -3
@example(0.012345678901234567)  # 18 places: in range
@example(1e18)
@example(-9.999999999999998e17)
def test_float_fast_path_agrees_with_the_full_coercion(number):
    # Connector answers (strict=False) given as Python floats: the range check without as_tuple().
    assert _outcome(_decimal, number) == _outcome(lambda v: _coerce_scalar(v, T.DECIMAL), number)


@given(st.dates().map(dt.date.isoformat) | st.text(alphabet="0123456789-WT: ", max_size=12))
def test_date_text_fast_path_agrees_with_the_full_coercion(text):
    assert _outcome(_date, text) == _outcome(lambda v: _coerce_scalar(v, T.DATE), text)


def _with_check_digits(module, body: str) -> str:
    try:
        return body + module.calc_check_digits(body + "00") if module is cnpj else body + module._calc_check_digits(body)
    except (ValueError, TypeError):
        return body + "00"


_CNPJ_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@given(st.one_of(
    st.text(alphabet=_CNPJ_CHARS, min_size=12, max_size=12).map(lambda body: _with_check_digits(cnpj, body)),
    st.text(alphabet=_CNPJ_CHARS[:10], min_size=12, max_size=12).map(lambda body: _with_check_digits(cnpj, body)),
    st.text(alphabet=_CNPJ_CHARS + "٣./- a", min_size=12, max_size=16),
    st.just("00000000000000"), st.just("00000000000191")))
def test_cnpj_check_agrees_with_stdnum(text):
    normalize_cnpj.cache_clear()
    compact = text.replace(".", "").replace("/", "").replace("-", "").replace(" ", "")
    expected = compact if re.fullmatch(r"[0-9A-Z]{12}\d{2}", compact) and len(set(compact)) > 1 and \
        cnpj.is_valid(compact) else None
    assert normalize_cnpj(text) == expected


@given(st.one_of(
    st.text(alphabet="0123456789", min_size=9, max_size=9).map(lambda body: _with_check_digits(cpf, body)),
    st.text(alphabet="0123456789٣.- a", min_size=9, max_size=14)))
def test_cpf_check_agrees_with_stdnum(text):
    normalize_cpf.cache_clear()
    compact = text.replace(".", "").replace("-", "").replace(" ", "")
    expected = compact if re.fullmatch(r"\d{11}", compact) and len(set(compact)) > 1 and cpf.is_valid(compact) else None
    assert normalize_cpf(text) == expected


@given(st.one_of(st.text(alphabet=_CNPJ_CHARS + "./-", max_size=18), st.integers(), st.none() | st.booleans()))
def test_document_coercers_agree_with_the_full_coercion(value):
    for typ in (T.CPF, T.CNPJ):
        fast = coercer(typ, strict=True)
        assert _outcome(fast, value) == _outcome(lambda v, typ=typ: _coerce_scalar(v, typ), value)
