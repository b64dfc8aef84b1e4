"""The cheaper counterfactual search: exact points read from the policy (where each comparison of a
fact changes its answer, a connector fact followed along its field path), connector answers
shared across the evaluations of one search, and the cache of recent searches of stored decisions.

The cheaper search must answer what the first version answered wherever that one was exact (single
changes, to the unit), and every answer is checked by evaluating the policy again from scratch."""

from __future__ import annotations

import datetime as dt
import random
import sys
from pathlib import Path

import pytest

from regua.engine import Connectors, Fixture, compile_file, compile_policy
from regua.engine.counterfactuals import find_counterfactuals
from regua.engine.recorded import decode_answers, encode_answers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_experiments import _b2b_case, _b2c_case  # noqa: E402 — the benchmark's own random cases

AS_OF = dt.date(2026, 11, 22)


def spec(prepared, label: str):
    return next(s for s in prepared.meta.actionable if s.label == label)


def test_exact_points_follow_the_operator_and_the_connector_path():
    b2b = compile_file(ROOT / "policies" / "credito_b2b.regua")
    score = spec(b2b, "bureau.serasa.score.value")
    # `score <= 300`, the table's `>= 701`, `501..700`, `301..500`: each pair straddles one change;
    # `protestos > 0` and `consultas_30_dias >= 5` read other fields of the same answer: not the score's.
    assert score.points == (300, 301, 500, 501, 700, 701)
    assert 0 in score.thresholds and 5 in score.thresholds  # the first version's constants, for comparison
    assert spec(b2b, "ciclos_sem_atraso").points == (2, 3)  # `by ciclos`: `>= 3`
    assert spec(b2b, "valor_pedido").points == ()  # only arithmetic: found by bisection

    source = """policy p kind credit
input
  doc: text
  x: int
  y: money
let r = bureau.serasa(doc)
rule a
  when x == 10 or 20 < x or r.score.value in 5..7
  deny "A" "a"
rule b
  when y >= 100 BRL
  review "B" "b"
default approve "OK" "ok"
actionable
  x in 0..100
  y in 0 BRL..1_000 BRL
  bureau.serasa.score.value in 0..10
"""
    prepared = compile_policy(source, "p.regua")
    assert spec(prepared, "x").points == (9, 10, 11, 20, 21)
    assert [str(p) for p in spec(prepared, "y").points] == ["99.99", "100"]
    assert spec(prepared, "bureau.serasa.score.value").points == (4, 5, 7, 8)


def cases(make, count: int, seed: int):
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        data, answers = make(rng)
        connectors = Connectors({k: Fixture(v) for k, v in answers.items()})
        out.append((data, answers, connectors))
    return out


@pytest.mark.parametrize("name, make", [("credito_b2b", _b2b_case), ("credito_b2c", _b2c_case)])
def test_the_cheaper_search_finds_the_same_single_changes_and_only_verified_answers(name, make):
    prepared = compile_file(ROOT / "policies" / f"{name}.regua")
    searched, totals = 0, [0, 0]
    for data, answers, connectors in cases(make, 80, 5):
        inputs = prepared.validate(data)
        decision = prepared.evaluate_validated(inputs, connectors=connectors, as_of=AS_OF)
        if decision.outcome == "approve":
            continue
        searched += 1
        record = decode_answers(encode_answers(decision.connector_calls))
        first = find_counterfactuals(prepared, inputs, record, AS_OF, exact=False, shared=False)
        cheaper = find_counterfactuals(prepared, inputs, record, AS_OF)
        # sharing answers changes how, never what
        assert find_counterfactuals(prepared, inputs, record, AS_OF, shared=False).to_dict() == cheaper.to_dict()
        singles = [a.to_dict() for a in first.alternatives if len(a.changes) == 1]
        assert [a.to_dict() for a in cheaper.alternatives if len(a.changes) == 1] == singles
        totals[0] += first.evaluations
        totals[1] += cheaper.evaluations
        for alternative in cheaper.alternatives:  # from scratch: plain connectors, a fresh validation
            changed, answer = dict(data), {k: dict(v) for k, v in answers.items()}
            for change in alternative.changes:
                if change.fact.startswith("bureau."):
                    connector = change.fact.rsplit(".", 2)[0]
                    answer[connector] = {**answer[connector], "score": {"value": change.after}}
                else:
                    changed[change.fact] = str(change.after)
            again = prepared.evaluate(changed, connectors=Connectors({k: Fixture(v) for k, v in answer.items()}),
                                      as_of=AS_OF)
            assert again.outcome == "approve", (alternative.to_dict(), again.reason_codes)
    assert searched >= 20
    assert totals[1] < totals[0]  # fewer evaluations in all (a search may take more when it finds more)


def test_recent_searches_of_a_stored_decision_are_reused_until_it_is_purged():
    from regua.server.counterfactuals import NotExplainable, counterfactuals_of

    prepared = compile_file(ROOT / "policies" / "credito_b2c.regua")
    data, answers, connectors = cases(_b2c_case, 1, 11)[0]
    data["valor_compra"] = "90000.00"  # far above any limit: a review or a deny
    decision = prepared.evaluate(data, connectors=connectors, as_of=AS_OF)
    import msgspec

    row = {"id": "01JD0000000000000000000000", "input": msgspec.json.encode(data).decode(),
           "connector_answers": encode_answers(decision.connector_calls), "purged_at": None}
    found = counterfactuals_of(row, prepared)
    assert counterfactuals_of(row, prepared) is found  # the same search, not done again
    assert counterfactuals_of(row, prepared, target="review") is not found  # other options: another search
    with pytest.raises(NotExplainable) as purged:
        counterfactuals_of({**row, "purged_at": "2027-01-01", "input": None}, prepared)
    assert purged.value.code == "DECISION_PURGED"
