"""Counterfactual explanations (engine.counterfactuals) and the `actionable` block that drives them.

Every answer is checked by evaluating the policy again from scratch with the changes applied, never
against numbers copied from a run.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regua.dsl.diagnostics import PolicyError
from regua.dsl.formatter import format_source
from regua.engine import Connectors, Fixture, compile_policy
from regua.engine.compiler import check_source
from regua.engine.counterfactuals import counterfactuals_for

AS_OF = dt.date(2026, 11, 22)
HEADER = "policy p kind credit\n"


def policy(body: str) -> str:
    return HEADER + body


def codes(source: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        check_source(source, "p.regua")
    return sorted({d.code for d in caught.value.errors})


def serasa(answer: dict | None) -> Connectors:
    from regua.engine.connectors import ConnectorError

    fixture = Fixture(failure=ConnectorError("TIMEOUT")) if answer is None else Fixture(answer)
    return Connectors({"bureau.serasa": fixture})


def apply(prepared, data: dict, connectors_answer: dict | None, changes: list[dict]) -> tuple[dict, dict | None]:
    """The input and bureau answer with an alternative's changes applied."""
    data, answer = dict(data), None if connectors_answer is None else _copy(connectors_answer)
    for change in changes:
        spec = next(s for s in prepared.meta.actionable if s.label == change["fact"])
        if spec.connector is None:
            data[spec.path[0]] = change["to"]
        else:
            node = answer
            for part in spec.path[:-1]:
                node = node.setdefault(part, {})
            node[spec.path[-1]] = change["to"]
    return data, answer


def _copy(value):
    import copy

    return copy.deepcopy(value)


# ---- the language ----------------------------------------------------------------------------

B2B = """input
  cnpj: cnpj
  valor: money
  saldo: money = 0 BRL
  ciclos: int = 0
  data_fundacao: date = 2010-01-01
  setor: text = "varejo"
  idade_socio: int = 40
let relatorio = bureau.serasa(cnpj)
let score = relatorio.score.value
table limite (first) by ciclos
  >= 3 -> 30_000 BRL
  else -> 20_000 BRL
rule score_baixo
  when score <= 300
  deny "SCORE" "Score baixo"
rule acima
  when saldo + valor > limite
  review "LIMITE" "Acima do limite"
rule setor_ruim
  when setor == "jogos" and data_fundacao > 2020-01-01 and idade_socio < 18
  deny "SETOR" "Setor"
default approve "OK" "Dentro do limite"
"""


def test_actionable_targets_are_checked_with_stable_codes():
    body = B2B + """actionable
  valr in 0 BRL..1 BRL
  bureau.serasa.score.valeu in 0..1000
  bureau.seras.score.value in 0..1000
  cnpj in 0..1
  data_fundacao in 0..1
  setor in 0..1
  idade_socio in 0..120
  bureau.serasa.registration_status in 0..1
"""
    with pytest.raises(PolicyError) as caught:
        check_source(policy(body), "p.regua")
    found = [(d.code, d.span.line) for d in caught.value.errors]
    first = B2B.count("\n") + 3  # the line of `valr`
    assert found == [("E118", first), ("E118", first + 1), ("E118", first + 2), ("E119", first + 3),
                     ("E119", first + 4), ("E119", first + 5), ("E119", first + 6), ("E207", first + 7)]
    messages = {d.code: d for d in caught.value.errors}
    assert "did you mean 'valor'" in (caught.value.errors[0].hint or "")
    assert messages["E207"].message.startswith("'bureau.serasa.registration_status' is text")


@pytest.mark.parametrize("line, code", [
    ("valor in 0..10", "E207"),  # an int bound for money
    ("valor in 10 BRL..1 BRL", "E207"),  # reversed
    ("bureau.serasa.score.value in 0..2000", "E207"),  # outside the score's declared 0..1000
    ("valor in valor..1 BRL", "E207"),  # not a constant
    ("ciclos in 0..3\n  ciclos in 0..4", "E102"),
])
def test_bad_bounds(line, code):
    assert codes(policy(B2B + "actionable\n  " + line + "\n")) == [code]


def test_a_connector_the_policy_never_calls_is_refused():
    body = B2B.replace("let relatorio = bureau.serasa(cnpj)", "let relatorio = {score: {value: 500}}")
    assert codes(policy(body + "actionable\n  bureau.serasa.score.value in 0..1000\n")) == ["E118"]


def test_formatter_prints_the_block_canonically():
    source = policy(B2B + "actionable\n  valor   in 1 BRL .. 50_000 BRL   \"valor do pedido\"\n"
                    "  bureau.serasa.score.value in 0 .. 1000\n")
    formatted = format_source(source)
    assert "actionable\n  valor in 1 BRL..50_000 BRL \"valor do pedido\"\n  bureau.serasa.score.value in 0..1000\n" \
        in formatted
    assert format_source(formatted) == formatted
    check_source(formatted)


def test_thresholds_are_read_from_the_policy():
    prepared = compile_policy(policy(B2B + "actionable\n  ciclos in 0..60\n  bureau.serasa.score.value in 0..1000\n"
                                     "  valor in 0 BRL..1_000_000 BRL\n"))
    ciclos, score, valor = prepared.meta.actionable
    assert ciclos.thresholds == (3,) and ciclos.unit == 1
    assert score.connector == "bureau.serasa" and score.path == ("score", "value") and 300 in score.thresholds
    assert valor.unit == Decimal("0.01")


# ---- the search ------------------------------------------------------------------------------

ACTIONABLE = """actionable
  valor in 0.01 BRL..1_000_000 BRL "valor do pedido"
  saldo in 0 BRL..1_000_000 BRL "saldo em aberto"
  ciclos in 0..60 "ciclos sem atraso"
  bureau.serasa.score.value in 0..1000 "score de crédito"
"""
ORDER = {"cnpj": "11.222.333/0001-81", "valor": "25000.00", "saldo": "0.00", "ciclos": 0}


@pytest.fixture(scope="module")
def b2b():
    return compile_policy(policy(B2B + ACTIONABLE), "b2b.regua")


def search(prepared, data, answer, **options):
    return counterfactuals_for(prepared, data, connectors=serasa(answer), as_of=AS_OF, **options)


def test_exact_threshold_of_a_comparison_with_a_connector_fact(b2b):
    decision, found = search(b2b, {**ORDER, "valor": "1000.00"}, {"score": {"value": 120}})
    assert decision.outcome == "deny" and found.status == "found"
    [best] = found.alternatives
    assert [c.to_dict() for c in best.changes] == [{"fact": "bureau.serasa.score.value", "label": "score de crédito",
                                                    "type": "int", "from": 120, "to": 301, "direction": "up"}]


def test_exact_threshold_of_arithmetic_and_a_table(b2b):
    decision, found = search(b2b, {**ORDER, "saldo": "5000.00"}, {"score": {"value": 700}})
    assert decision.outcome == "review"
    by_facts = {tuple(c.fact for c in a.changes): a for a in found.alternatives}
    # saldo + valor <= 20_000: to the cent
    assert by_facts[("valor",)].changes[0].after == Decimal("15000.00")
    assert ("saldo",) not in by_facts  # even 0 BRL leaves 25_000 > 20_000
    # three cycles lift the limit to 30_000 (the table's threshold): enough on its own
    assert by_facts[("ciclos",)].changes[0].after == 3
    assert [len(a.changes) for a in found.alternatives] == sorted(len(a.changes) for a in found.alternatives)


def test_no_change_within_bounds_is_an_explicit_answer():
    source = policy(B2B + "actionable\n  ciclos in 0..2\n")
    prepared = compile_policy(source, "narrow.regua")
    _, found = search(prepared, ORDER, {"score": {"value": 700}})
    assert found.status == "none_within_bounds" and found.alternatives == [] and found.complete
    assert found.facts == ["ciclos"]


def test_an_approved_decision_needs_nothing(b2b):
    _, found = search(b2b, {**ORDER, "valor": "100.00"}, {"score": {"value": 700}})
    assert found.status == "not_needed" and found.alternatives == []


def test_a_fact_of_a_failed_lookup_is_skipped(b2b):
    decision, found = search(b2b, {**ORDER, "valor": "100.00"}, None)
    assert decision.outcome == "review"  # the bureau is down: on error review
    assert "bureau.serasa.score.value" in found.skipped
    assert found.status == "none_within_bounds"


def test_policy_without_actionable_facts():
    prepared = compile_policy(policy(B2B), "plain.regua")
    _, found = search(prepared, {**ORDER, "valor": "90000.00"}, {"score": {"value": 700}})
    assert found.status == "no_actionable_facts"


def test_review_can_be_the_target(b2b):
    _, found = search(b2b, {**ORDER, "valor": "90000.00"}, {"score": {"value": 100}}, target="review")
    assert found.target == "review"
    assert any(a.outcome == "review" for a in found.alternatives)
    for alternative in found.alternatives:
        assert alternative.outcome == "review"


def test_the_budget_bounds_the_work(b2b):
    _, found = search(b2b, {**ORDER, "valor": "90000.00", "saldo": "90000.00"}, {"score": {"value": 100}}, budget=5)
    assert found.complete is False and found.evaluations <= 5


# ---- properties ------------------------------------------------------------------------------

def _assert_valid(prepared, data, answer, found, target="approve"):
    """Every alternative reaches the target when the policy is evaluated again from scratch, no
    strict subset of its changes does, and only declared facts change, within their bounds."""
    specs = {s.label: s for s in prepared.meta.actionable}
    for alternative in found.alternatives:
        changes = [c.to_dict() for c in alternative.changes]
        assert changes and len({c["fact"] for c in changes}) == len(changes)
        for change in changes:
            spec = specs[change["fact"]]  # KeyError: a fact outside the actionable set changed
            value = alternative.changes[[c["fact"] for c in changes].index(change["fact"])].after
            assert spec.low <= value <= spec.high
        new_data, new_answer = apply(prepared, data, answer, changes)
        assert prepared.evaluate(new_data, connectors=serasa(new_answer), as_of=AS_OF).outcome == target
        for size in range(len(changes)):
            for subset in itertools.combinations(changes, size):
                sub_data, sub_answer = apply(prepared, data, answer, list(subset))
                outcome = prepared.evaluate(sub_data, connectors=serasa(sub_answer), as_of=AS_OF).outcome
                assert outcome != target, f"{subset} already reaches {target}"


def _comparison(draw, names):
    name = draw(st.sampled_from(names))
    op = draw(st.sampled_from(["<", "<=", ">", ">=", "=="]))
    limit = draw(st.integers(-20, 120))
    form = draw(st.sampled_from(["plain", "sum", "scaled", "range"]))
    other = draw(st.sampled_from(names))
    if form == "sum":
        return f"{name} + {other} {op} {limit}"
    if form == "scaled":
        return f"{name} * {draw(st.integers(1, 4))} {op} {limit}"
    if form == "range":
        return f"{name} in {limit}..{limit + draw(st.integers(0, 40))}"
    return f"{name} {op} {limit}"


@st.composite
def random_policies(draw):
    names = ["a", "b", "c", "fixo"]
    rules = []
    for index in range(draw(st.integers(1, 4))):
        parts = [_comparison(draw, names) for _ in range(draw(st.integers(1, 2)))]
        joiner = draw(st.sampled_from([" and ", " or "]))
        verb = draw(st.sampled_from(["deny", "review"]))
        rules.append(f"rule r{index}\n  when {joiner.join(parts)}\n  {verb} \"R{index}\" \"regra {index}\"\n")
    table = ""
    if draw(st.booleans()):
        cut = draw(st.integers(0, 100))
        table = f"table faixa (first) by a\n  >= {cut} -> 1\n  else -> 0\n"
        rules.append("rule faixa_baixa\n  when faixa == 0 and b > 50\n  review \"FX\" \"faixa\"\n")
    bounds = {name: sorted(draw(st.lists(st.integers(-10, 110), min_size=2, max_size=2))) for name in "abc"}
    actionable = [name for name in "abc" if draw(st.booleans())] or ["a"]
    source = (HEADER + "input\n  a: int\n  b: int\n  c: int\n  fixo: int\n" + table + "".join(rules)
              + "default approve \"OK\" \"ok\"\nactionable\n"
              + "".join(f"  {n} in {bounds[n][0]}..{bounds[n][1]}\n" for n in actionable))
    data = {n: draw(st.integers(-10, 110)) for n in ("a", "b", "c", "fixo")}
    return source, data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_policies(), st.sampled_from([1, 2, 3]))
def test_every_alternative_flips_is_minimal_and_stays_in_the_actionable_set(case, max_changes):
    source, data = case
    try:
        prepared = compile_policy(source, "random.regua")
    except PolicyError:
        return  # e.g. a rule the checker rejects: nothing to explain
    decision, found = counterfactuals_for(prepared, data, connectors=None, as_of=AS_OF, max_changes=max_changes,
                                          alternatives=4)
    if decision.outcome == "approve":
        assert found.status == "not_needed"
        return
    assert found.status in ("found", "none_within_bounds")
    assert (found.status == "found") == bool(found.alternatives)
    assert len(found.alternatives) <= 4
    assert all(len(a.changes) <= max_changes for a in found.alternatives)
    sizes = [(len(a.changes), a.size) for a in found.alternatives]
    assert sizes == sorted(sizes)
    _assert_valid(prepared, data, None, found)
    if found.status == "none_within_bounds" and found.complete:
        # Exhaustive over each fact's (small) bounds: no single change reaches the target either.
        for spec in prepared.meta.actionable:
            for value in range(spec.low, spec.high + 1):
                changed = {**data, spec.label: value}
                assert prepared.evaluate(changed, as_of=AS_OF).outcome != "approve", (spec.label, value)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 1000), st.integers(0, 60), st.decimals("0", "60000", places=2), st.decimals("0", "60000", places=2))
def test_connector_facts_and_inputs_together(b2b, score, ciclos, valor, saldo):
    answer = {"score": {"value": score}}
    data = {**ORDER, "valor": str(valor), "saldo": str(saldo), "ciclos": ciclos}
    _, found = search(b2b, data, answer, max_changes=3, alternatives=5)
    _assert_valid(b2b, data, answer, found)
