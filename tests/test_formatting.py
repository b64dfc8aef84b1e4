"""The Brazilian formatting filters of notification templates (plugins/formatting.py): money
(R$ 1.234,56), dates, CPF/CNPJ and percentages, round-trips checked with hypothesis.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.br import cnpj as stdnum_cnpj
from stdnum.br import cpf as stdnum_cpf

from regua.dsl.values import Percent, normalize_cnpj
from regua.plugins.formatting import brl, data, documento, parse_brl, pct

# ------------------------------------------------------------------ formatting filters

money = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, min_value=-10**15, max_value=10**15),
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10**9, max_value=10**9),
    st.integers(min_value=-10**20, max_value=10**20).map(Decimal),
    st.builds(lambda d, e: d.scaleb(e), st.decimals(allow_nan=False, allow_infinity=False, min_value=-999,
                                                    max_value=999), st.integers(-30, 30)),
)


@given(money)
def test_brl_round_trip(value):
    text = brl(value)
    assert re.fullmatch(r"-?R\$ \d{1,3}(\.\d{3})*,\d{2}", text)
    with localcontext() as ctx:
        ctx.prec = 100
        expected = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert parse_brl(text) == expected
    assert text.startswith("-") == (expected < 0)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_brl_floats_go_through_their_repr(value):
    assert brl(value) == brl(Decimal(repr(value)))


def test_brl_examples():
    assert brl(Decimal("1234.56")) == "R$ 1.234,56"
    assert brl(Decimal("-1234.56")) == "-R$ 1.234,56"
    assert brl(Decimal("0.005")) == "R$ 0,01" and brl(Decimal("-0.005")) == "-R$ 0,01"  # half-up
    assert brl(2.675) == "R$ 2,68"  # exact: not the binary float 2.67499999…
    assert brl(Decimal("-0.004")) == "R$ 0,00"
    assert brl(1000000) == "R$ 1.000.000,00" and brl("12.3") == "R$ 12,30"
    for bad in (None, True, float("nan"), "1.234,56", Decimal("Infinity"), [1]):
        with pytest.raises((TypeError, ValueError)) as raised:
            brl(bad)
        assert "1.234,56" not in str(raised.value).split("(")[0]


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(9999, 12, 31)))
def test_data_round_trip(day):
    text = data(day)
    assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", text)
    assert dt.datetime.strptime(text, "%d/%m/%Y").date() == day
    assert data(day.isoformat()) == text


def test_data_examples():
    assert data(dt.date(2026, 3, 1)) == "01/03/2026"
    assert data(dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.timezone.utc)) == "01/03/2026"  # Brasília time
    assert data(dt.datetime(2026, 3, 2, 1, 30)) == "02/03/2026"
    assert data("2026-03-02T12:00:00Z") == "02/03/2026"
    with pytest.raises(ValueError):
        data("02/03/2026")


ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@given(st.text(alphabet=ALNUM, min_size=12, max_size=12))
def test_documento_cnpj_round_trip(base):
    compact = base + stdnum_cnpj.calc_check_digits(base)
    formatted = documento(compact)
    assert re.fullmatch(r"[0-9A-Z]{2}\.[0-9A-Z]{3}\.[0-9A-Z]{3}/[0-9A-Z]{4}-\d{2}", formatted)
    assert documento(formatted) == formatted
    if len(set(compact)) > 1:
        assert normalize_cnpj(formatted) == compact


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_documento_cpf(base):
    compact = base + stdnum_cpf._calc_check_digits(base)
    formatted = documento(compact)
    assert re.fullmatch(r"\d{3}\.\d{3}\.\d{3}-\d{2}", formatted) and formatted.replace(".", "").replace("-", "") \
        == compact


def test_documento_examples():
    assert documento("11222333000181") == "11.222.333/0001-81"
    assert documento("12ABC34501DE35") == "12.ABC.345/01DE-35"
    assert documento("52998224725") == "529.982.247-25"
    assert documento("abc") == "abc"


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10**6, max_value=10**6))
def test_pct_round_trip(value):
    text = pct(value)
    assert text.endswith("%")
    assert Decimal(text[:-1].replace(".", "").replace(",", ".")) == value
    assert pct(Percent(value / 100)) == text


def test_pct_examples():
    assert pct(10.5) == "10,5%" and pct(Decimal("10.50")) == "10,5%" and pct(10) == "10%"
    assert pct(Percent("0.105")) == "10,5%"  # a policy's 10,5% is the fraction 0.105
    assert pct(Decimal("0.125")) == "0,13%" and pct(12.3456, 3) == "12,346%" and pct(1500) == "1.500%"
    assert pct(Decimal("-2.5")) == "-2,5%"
