"""Static checks of decision tables: unreachable and shadowed rows (E401), overlaps in unique tables,
gaps (W404), priority order, wrongly typed constant cells (E205); warnings never stop compilation.
"""

from __future__ import annotations

import pytest
from check_harness import UNUSED, D, H, at, codes, diagnostics, position_of

from regua.dsl.diagnostics import PolicyError, Severity
from regua.engine.compiler import check_source, compile_policy

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
