"""A `first` table of monotonic thresholds on one number is generated as a binary search of its
rows' own conditions (engine.tables_codegen `_threshold_rows`, `_row_tree`) instead of the
if/elif chain. It must pick exactly the chain's row: checked on random tables and inputs against
a reference interpreter and against the same policy generated as a chain, at every trace level."""

from __future__ import annotations

import datetime as dt
import gc
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_evaluate_hot_path import assert_same, everything

from regua.engine import compiler, tables_codegen
from regua.engine.prepared import PreparedPolicy

AS_OF = dt.date(2026, 11, 22)
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OPS = (">=", ">", "<", "<=")


@st.composite
def threshold_tables(draw):
    """(column type, op, thresholds in row order, results, else result or None)."""
    column = draw(st.sampled_from(["int", "money"]))
    op = draw(st.sampled_from(OPS))
    count = draw(st.integers(tables_codegen.TREE_MIN_ROWS, 30))
    keys = sorted(draw(st.sets(st.integers(-200, 200), min_size=count, max_size=count)))
    if op in (">=", ">"):
        keys.reverse()
    results = draw(st.lists(st.integers(0, 9), min_size=count, max_size=count))
    otherwise = draw(st.one_of(st.none(), st.integers(0, 9)))
    return column, op, keys, results, otherwise


def _policy(column: str, op: str, keys: list, results: list, otherwise) -> str:
    lines = ["policy faixas kind credit", "", "input", f"  x: {column}", "", "table faixa (first) by x"]
    unit = " BRL" if column == "money" else ""
    lines += [f"  {op} {key}{unit} -> {result}" for key, result in zip(keys, results)]
    if otherwise is not None:
        lines.append(f"  else -> {otherwise}")
    lines += ["", "rule baixa", "  when faixa <= 3", '  deny "FAIXA_BAIXA" "faixa baixa"', "",
              "rule via_funcao", "  when 0 + faixa >= 8", '  review "FAIXA_ALTA" "faixa alta"', "",
              "default approve", "", "output nivel = faixa, dobro = faixa * 2", ""]
    return "\n".join(lines)


def _reference(op: str, keys: list, results: list, otherwise, x):
    """(row index, result) of the first row that holds; None when none holds and no `else`."""
    for index, key in enumerate(keys):
        if {">=": x >= key, ">": x > key, "<": x < key, "<=": x <= key}[op]:
            return index, results[index]
    return None if otherwise is None else (len(keys), otherwise)


def _chained(prepared) -> bool:
    """Whether a table of the policy is an if/elif chain (its rows' conditions are parenthesised)."""
    return "elif (" in prepared.meta.generated_source


def _as_chain(source: str, monkeypatch) -> PreparedPolicy:
    """The same policy generated as the if/elif chain (the search switched off)."""
    with monkeypatch.context() as patch:
        patch.setattr(tables_codegen, "TREE_MIN_ROWS", 10 ** 9)
        compiler.clear_memory_cache()
        chain = compiler.compile_policy(source)
    compiler.clear_memory_cache()
    assert _chained(chain)
    return chain


def _value(column: str, x: int):
    return {"x": x}  # a money input of 150 is R$ 150


@SETTINGS
@given(threshold_tables(), st.lists(st.integers(-250, 250), min_size=1, max_size=6), st.data())
def test_the_search_picks_the_chains_row(table, xs, data):
    column, op, keys, results, otherwise = table
    # Inputs on the thresholds themselves and one off them, where `>` and `>=` differ.
    key = data.draw(st.sampled_from(keys))
    xs = xs + [key, key - 1, key + 1]
    source = _policy(*table)
    compiler.clear_memory_cache()
    tree = compiler.compile_policy(source)
    assert not _chained(tree)  # the table really is searched
    for x in xs:
        inputs = tree.validate(_value(column, x))
        expected = _reference(op, keys, results, otherwise, Decimal(x) if column == "money" else x)
        decision = tree.evaluate_validated(inputs, trace="full", as_of=AS_OF)
        if expected is None:
            assert "TABLE_NO_MATCH" in str(decision.to_dict()), decision.to_dict()
        else:
            row, result = expected
            assert decision.outputs["nivel"] == result
            assert [hit["row"] for hit in decision.trace["tables"]["faixa"]] == [row + 1]
        assert_same(tree, inputs, as_of=AS_OF)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(threshold_tables(), st.lists(st.integers(-250, 250), min_size=1, max_size=6))
def test_the_search_and_the_chain_give_the_same_decisions(monkeypatch, table, xs):
    source = _policy(*table)
    compiler.clear_memory_cache()
    tree = compiler.compile_policy(source)
    chain = _as_chain(source, monkeypatch)
    for x in xs:
        for level in ("off", "rules", "full"):
            got = tree.evaluate_validated(tree.validate(_value(table[0], x)), trace=level, as_of=AS_OF)
            want = chain.evaluate_validated(chain.validate(_value(table[0], x)), trace=level, as_of=AS_OF)
            assert everything(got) == everything(want), (x, level)


@pytest.mark.parametrize("change", ["few rows", "a range row", "two operators", "two columns"])
def test_tables_the_search_cannot_answer_stay_a_chain(change):
    keys = [900 - 100 * k for k in range(9)]
    ops = [">="] * 9
    by = "by x"
    if change == "few rows":
        keys, ops = keys[:tables_codegen.TREE_MIN_ROWS - 1], ops[:tables_codegen.TREE_MIN_ROWS - 1]
    elif change == "two operators":
        ops[2] = ">"
    lines = ["policy p kind credit", "", "input", "  x: int", "  y: int", ""]
    if change == "two columns":
        by = "by x, y"
        rows = [f"  {op} {key}, - -> {n}" for n, (op, key) in enumerate(zip(ops, keys))]
    else:
        rows = [f"  {op} {key} -> {n}" for n, (op, key) in enumerate(zip(ops, keys))]
        if change == "a range row":
            rows[4] = "  350..380 -> 4"
    lines += [f"table t (first) {by}", *rows, "  else -> 99", "", "default approve", "", "output o = t", ""]
    source = "\n".join(lines)
    compiler.clear_memory_cache()
    assert _chained(compiler.compile_policy(source))


def test_row_results_may_be_expressions():
    rows = "".join(f"  >= {900 - 100 * k} -> x + {k}\n" for k in range(9))
    source = ("policy p kind credit\n\ninput\n  x: int\n\ntable t (first) by x\n" + rows
              + "  else -> 0 - x\n\ndefault approve\n\noutput o = t\n")
    compiler.clear_memory_cache()
    prepared = compiler.compile_policy(source)
    assert not _chained(prepared)
    for x, want in ((950, 950), (900, 900), (899, 900), (100, 108), (99, -99), (-5, 5)):
        assert prepared.evaluate({"x": x}, as_of=AS_OF).outputs["o"] == want, x


def test_evaluate_validated_is_the_generated_function_and_the_class_method_agrees():
    source = _policy("int", ">=", [900 - 100 * k for k in range(9)], list(range(9)), 0)
    prepared = compiler.compile_policy(source)
    inputs = prepared.validate({"x": 150})
    assert prepared.evaluate_validated is prepared._fast
    for level in ("off", "rules", "full"):
        through_class = PreparedPolicy.evaluate_validated(prepared, inputs, trace=level, as_of=AS_OF)
        assert everything(through_class) == everything(prepared.evaluate_validated(inputs, trace=level, as_of=AS_OF))
    # By position, the parameters mean what their names say (connectors, trace, as_of).
    positional = prepared.evaluate_validated(inputs, None, "rules", AS_OF)
    assert everything(positional) == everything(prepared.evaluate_validated(inputs, trace="rules", as_of=AS_OF))
    # With slots, evaluate_fast is the rules' results, as engine.prepared's other callers read them.
    fired, errors, outputs, output_errors = prepared.evaluate_raw(inputs, AS_OF)
    assert (fired, list(errors), outputs, list(output_errors)) == ([(1, None)], [], {"nivel": 8, "dobro": 16}, [])


def test_evaluate_validated_kept_without_its_policy_answers_every_level():
    source = _policy("int", ">=", [900 - 100 * k for k in range(9)], list(range(9)), 0)
    compiler.clear_memory_cache()
    evaluate = compiler.compile_policy(source).evaluate_validated
    compiler.clear_memory_cache()
    gc.collect()
    for level in ("off", "rules", "full"):
        decision = evaluate({"x": 150}, trace=level, as_of=AS_OF)
        assert decision.outputs == {"nivel": 8, "dobro": 16}
    assert decision.trace["level"] == "full" and decision.trace["tables"]["faixa"] == [{"row": 9, "line": 15}]
