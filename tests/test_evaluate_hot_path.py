"""PreparedPolicy.evaluate_validated builds the decision of the common cases itself (nothing
fired, or one rule fired, with nothing failed; trace off or rules) and leaves the rest to the
general path (`_evaluate_general`, Combiner.decide). Both must give the same decision, all of
it: outcome, outputs (values and types), reason codes, reasons with their facts and errors, the
trace at every level, the connector calls and the JSON. Checked on random policies and inputs,
and on the bundled B2B policy with random bureau and portfolio answers and failures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_properties import INPUTS, generated_policies

from regua.engine.compiler import compile_file, compile_policy
from regua.engine.connectors import ConnectorError, Connectors

ROOT = Path(__file__).resolve().parents[1]
DAY = dt.date(2026, 1, 15)
LEVELS = ("off", "rules", "full")
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def everything(decision) -> dict:
    """All of a decision that a caller can see, durations aside (they are measured, never equal)."""
    data = decision.to_dict()
    for call in data["connector_calls"]:
        call.pop("duration_ms")
    data["outputs_typed"] = [(name, type(value).__name__, value) for name, value in decision.outputs.items()]
    data["reason_codes"] = list(decision.reason_codes)
    data["reasons_raw"] = [(r.code, r.message, r.rule, r.outcome, r.line, r.values, r.error) for r in decision.reasons]
    data["calls_raw"] = [(c.connector, c._args, c.status, c.error, c.cached, c.cost, c.answer)
                         for c in decision.connector_calls]
    data["identity"] = (decision.policy, decision.version, decision.output_types)
    return data


def assert_same(prepared, inputs, **options) -> None:
    for level in LEVELS:
        hot = prepared.evaluate_validated(inputs, trace=level, **options)
        general = prepared._evaluate_general(inputs, trace=level, **options)
        assert everything(hot) == everything(general), level


@SETTINGS
@given(generated_policies(), st.lists(INPUTS, min_size=1, max_size=4))
def test_hot_path_gives_the_general_decision_on_random_policies(policy, inputs):
    source, _comments, (n_int, n_money, n_pct) = policy
    prepared = compile_policy(source)
    for data in inputs:
        values = {n_int: data["int"], n_money: str(data["money"])}
        if data["percent"] is not None:
            values[n_pct] = data["percent"]
        assert_same(prepared, prepared.validate(values), as_of=DAY)


B2B = compile_file(ROOT / "policies" / "credito_b2b.regua")
MONEY = st.one_of(st.integers(0, 200_000), st.decimals(0, 200_000, places=2, allow_nan=False, allow_infinity=False)
                  .map(str))
RESTRICTION = st.fixed_dictionaries({
    "kind": st.sampled_from(["pefin", "refin", "protest", "lawsuit", "judicial_recovery", "bankruptcy"]),
    "amount": st.integers(0, 10_000), "date": st.just("2026-05-02")})
INQUIRY = st.fixed_dictionaries({"date": st.sampled_from(["2026-11-20", "2026-08-01"]), "inquirer": st.just("B")})
REPORT = st.fixed_dictionaries({"score": st.fixed_dictionaries({"value": st.integers(0, 1000)})}, optional={
    "restrictions": st.lists(RESTRICTION, max_size=3), "inquiries": st.lists(INQUIRY, max_size=6),
    "registration_status": st.sampled_from(["active", "closed"])})
# A bad answer breaks the contract (CONNECTOR_BAD_ANSWER); None: the connector fails.
BUREAU = st.one_of(REPORT, st.none(), st.just({"score": {"value": "alto"}}))
CUSTOMER = st.one_of(
    st.just("not configured"), st.none(),
    st.fixed_dictionaries({"known": st.booleans()}, optional={
        "limit": st.integers(0, 100_000), "has_limit": st.booleans(), "limit_blocked": st.booleans(),
        "open_balance": st.integers(0, 50_000), "cycles_without_delay": st.integers(0, 5),
        "days_late_now": st.integers(0, 60)}))
ORDER = st.fixed_dictionaries({
    "cnpj": st.just("11.222.333/0001-81"), "faturamento_anual": MONEY,
    "data_fundacao": st.sampled_from(["2015-03-10", "2025-06-01", "2026-11-30"]), "ticket_medio": MONEY,
    "valor_pedido": MONEY}, optional={"saldo_em_aberto": MONEY, "dias_atraso_max": st.integers(0, 60),
                                      "ciclos_sem_atraso": st.integers(0, 5)})


def _answering(answer):
    def connector(document):
        if answer is None:
            raise ConnectorError("UNAVAILABLE", "fora do ar")
        return answer
    return connector


@SETTINGS
@given(ORDER, BUREAU, CUSTOMER)
def test_hot_path_gives_the_general_decision_on_the_b2b_policy(order, bureau, customer):
    implementations = {"bureau.serasa": _answering(bureau)}
    if customer != "not configured":
        implementations["portfolio.customer"] = _answering(customer)
    connectors = Connectors(implementations)
    assert_same(B2B, B2B.validate(order), connectors=connectors, as_of=dt.date(2026, 11, 22))


def test_hot_path_without_connectors_and_without_a_date():
    inputs = B2B.validate({"cnpj": "11.222.333/0001-81", "faturamento_anual": 1_000, "data_fundacao": "2015-03-10",
                           "ticket_medio": 100, "valor_pedido": 50})
    assert_same(B2B, inputs)  # no connectors: every lookup is CONNECTOR_NOT_CONFIGURED; today's date


def test_an_unknown_trace_level_is_refused_on_both_paths():
    inputs = B2B.validate({"cnpj": "11.222.333/0001-81", "faturamento_anual": 1_000, "data_fundacao": "2015-03-10",
                           "ticket_medio": 100, "valor_pedido": 50})
    for evaluate in (B2B.evaluate_validated, B2B._evaluate_general):
        with pytest.raises(ValueError, match="trace must be one of"):
            evaluate(inputs, trace="verbose")
