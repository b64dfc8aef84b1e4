"""Decision-table analysis at the size of real tables (CNAE lists, pricing grids): rows are
compared only with rows that can share a value, so the work grows with the rows, not with their
square; past a fixed budget the analysis stops with warning W405 instead of running for minutes.
And the index never changes what the analysis finds (property test against the full comparison)."""

from __future__ import annotations

from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from regua.dsl import tables
from regua.dsl.diagnostics import PolicyError
from regua.engine.compiler import check_source

HEAD = "policy p kind credit\n\ninput\n  cnae: text\n  score: int\n  q: decimal\n\n"
TAIL = "\ndefault approve\noutput preco\n"


def diagnostics(source: str) -> list[tuple[str, int]]:
    try:
        found = check_source(source, "f.regua").warnings
    except PolicyError as error:
        found = error.diagnostics
    return sorted((d.code, d.span.line) for d in found if d.code.startswith(("E4", "W40")))


def keyed_table(rows: int, duplicate_at: int | None = None) -> str:
    lines = [f'  "{4700000 + k}", {k % 50}..{k % 50 + 10} -> {k % 97} BRL' for k in range(rows)]
    if duplicate_at is not None:  # the same code and scores as row 3: never reached
        lines.insert(duplicate_at, '  "4700003", 5..8 -> 1 BRL')
    return HEAD + "table preco (first) by cnae, score\n" + "\n".join(lines) + "\n  else -> 0 BRL\n" + TAIL


class Counting:
    """Counts the box subtractions the analysis makes (its unit of work)."""

    def __init__(self):
        self.calls = 0
        self.real = tables._box_minus

    def __call__(self, box, cover):
        self.calls += 1
        return self.real(box, cover)


def test_a_table_keyed_on_codes_is_analysed_in_work_proportional_to_its_rows():
    counter = Counting()
    source = keyed_table(3000, duplicate_at=2500)
    with mock.patch.object(tables, "_box_minus", counter):
        found = diagnostics(source)
    line = source.splitlines().index('  "4700003", 5..8 -> 1 BRL') + 1
    assert found == [("E401", line)]  # found, and nothing else: no W405
    assert counter.calls < 3 * 3000  # each row meets the few rows with its code; all pairs would be 4.5 million


def test_a_whole_number_key_is_indexed_too():
    rows = "\n".join(f"  {4700000 + k}, >= {k % 7} -> {k}" for k in range(2000))
    source = HEAD + "table preco (first) by score, score\n" + rows + "\n  4700010, 9 -> 1\n  else -> 0\n" + TAIL
    counter = Counting()
    with mock.patch.object(tables, "_box_minus", counter):
        found = diagnostics(source)
    assert found == [("E401", source.splitlines().index("  4700010, 9 -> 1") + 1)]
    assert counter.calls < 3 * 2000


def test_a_table_too_tangled_to_compare_whole_gets_W405_not_minutes_of_analysis():
    # Overlapping decimal ranges: every row can share values with every other one.
    rows = "\n".join(f"  {k}.5..{k + 900}.5 -> {k}" for k in range(3000))
    source = HEAD + "table preco (unique) by q\n" + rows + "\n  else -> 0\n" + TAIL
    with mock.patch.object(tables, "MAX_COMPARISONS", 20_000):
        try:
            found = check_source(source, "f.regua").warnings
        except PolicyError as error:
            found = error.diagnostics
    codes = [d.code for d in found]
    assert "W405" in codes
    w405 = next(d for d in found if d.code == "W405")
    assert "preco" in w405.message and "row" in w405.message and w405.span.line == HEAD.count("\n") + 1
    assert codes.count("E402") <= 20_000  # stopped at the budget: not the 4.5 million overlapping pairs


CELLS_TEXT = st.sampled_from(['"a"', '"b"', '"c"', 'in ["a", "b"]', '!= "a"', "-"])
CELLS_INT = st.sampled_from(["1", "2", "3", "in [1, 3]", "0..2", ">= 2", "< 2", "!= 1", "-"])


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(CELLS_TEXT, CELLS_INT, st.integers(0, 2)), min_size=1, max_size=9),
       policy=st.sampled_from(["first", "unique", "priority"]), else_row=st.booleans())
def test_the_index_never_changes_what_the_analysis_finds(rows, policy, else_row):
    body = "\n".join(f"  {t}, {i} -> {k}" + (f" priority {p}" if policy == "priority" else "")
                     for k, (t, i, p) in enumerate(rows))
    source = (HEAD + f"table preco ({policy}) by cnae, score\n" + body + "\n"
              + ("  else -> 0\n" if else_row else "") + TAIL)
    indexed = diagnostics(source)

    class Unindexed(tables._Index):
        def __init__(self, *args):
            super().__init__(*args)
            self.column = None

    with mock.patch.object(tables, "_Index", Unindexed):
        assert diagnostics(source) == indexed
