"""The coercers' fast paths (money as plain text, dates as ISO text) take exactly what the full
coercion takes, with the same value, and leave everything else to it (same errors)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from regua.dsl import types as T
from regua.dsl.values import CoercionError, _coerce_scalar, _whole_cents, coercer

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


@given(st.dates().map(dt.date.isoformat) | st.text(alphabet="0123456789-WT: ", max_size=12))
def test_date_text_fast_path_agrees_with_the_full_coercion(text):
    assert _outcome(_date, text) == _outcome(lambda v: _coerce_scalar(v, T.DATE), text)
