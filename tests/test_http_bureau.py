"""The HTTP JSON bureau connector against a real HTTP server on 127.0.0.1 (tests/bureau_harness.py):
mapping a provider's Portuguese JSON into the contract, auth, retries, deadlines, error codes and
the circuit breaker."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import time
from decimal import Decimal

import bureau_harness
import pytest
from bureau_harness import (
    CNPJ_DIGITS,
    CNPJ_RESTRICTED_DIGITS,
    CNPJ_UNKNOWN_DIGITS,
    PROVIDER_ANSWER,
    TOKEN,
    Provider,
    evaluate,
    plugin_settings,
    settings,
)

from regua.engine.connectors import ConnectorError
from regua.plugins.builtin.http_bureau import HTTPJSONBureau, compile_mapping
from regua.plugins.connectors import TransientError
from regua.plugins.contracts import BureauReport
from regua.plugins.registry import Registry
from regua.plugins.runtime import Resilient

# The scripted provider, and its token in the environment for every test (fixtures).
provider, token = bureau_harness.provider, bureau_harness.token

# ---------------------------------------------------------------------------------------------
# Mapping and the request.


def test_maps_a_realistic_provider_answer_into_the_contract(provider):
    connector = HTTPJSONBureau(**settings(provider))
    report = connector.fetch(CNPJ_RESTRICTED_DIGITS)
    assert isinstance(report, BureauReport)
    assert report.score.value == 720 and report.score.bureau == "serasa"
    assert (report.score.band, report.score.model) == ("excelente", "Score PJ 3.0")
    assert report.score.range_max == 1000  # not mapped: the contract's default
    assert report.registration_status == "active"
    assert [(r.kind, r.amount, r.date, r.creditor) for r in report.restrictions] == [
        ("pefin", Decimal("3500.10"), dt.date(2026, 5, 2), "Banco X"),
        ("refin", Decimal("2000.33"), dt.date(2026, 6, 10), "Financeira Y"),
        ("protest", Decimal("1200"), dt.date(2026, 3, 1), "Cartório 2º Ofício"),
    ]
    # Exactly the decimal written in the JSON, never through float.
    assert all(type(r.amount) is Decimal for r in report.restrictions)
    assert str(report.restrictions[0].amount) == "3500.10"
    assert report.inquiries[0].date == dt.date(2026, 8, 10) and report.inquiries[0].inquirer == "Banco A"
    assert report.partners[0].name == "Maria da Silva" and report.partners[0].role == "Sócio-Administrador"


def test_sends_the_auth_header_from_an_environment_variable_and_the_document_in_the_path(provider):
    HTTPJSONBureau(**settings(provider)).fetch(CNPJ_DIGITS)
    request = provider.requests[0]
    assert request["method"] == "GET"
    assert request["path"] == f"/v1/relatorios/cnpj/{CNPJ_DIGITS}"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Accept"] == "application/json"


def test_the_secret_is_read_at_each_call_and_a_missing_one_is_a_configuration_failure(provider, monkeypatch):
    connector = HTTPJSONBureau(**settings(provider))
    assert TOKEN not in repr(connector)
    monkeypatch.setenv("SERASA_TOKEN", "rotated")
    connector.fetch(CNPJ_DIGITS)
    assert provider.requests[-1]["headers"]["Authorization"] == "Bearer rotated"
    monkeypatch.delenv("SERASA_TOKEN")
    with pytest.raises(ConnectorError) as caught:
        connector.fetch(CNPJ_DIGITS)
    assert caught.value.code == "MISCONFIGURED"
    assert provider.hits == 1


def test_post_with_a_json_body_template(provider):
    connector = HTTPJSONBureau(**settings(provider, method="POST", path="/v2/consulta",
                                          body={"documento": "{document}", "tipo": "{kind}", "produto": "RELATO"},
                                          auth={"header": "X-Api-Key", "value": "k1"}))
    report = connector.fetch(CNPJ_DIGITS)
    assert report.score.value == 850
    request = provider.requests[0]
    assert request["method"] == "POST" and request["path"] == "/v2/consulta"
    assert json.loads(request["body"]) == {"documento": CNPJ_DIGITS, "tipo": "cnpj", "produto": "RELATO"}
    assert request["headers"]["X-Api-Key"] == "k1"


def test_without_a_mapping_the_provider_answers_in_the_contract_shape(provider):
    provider.script.append((200, {"score": {"value": 610, "bureau": "quod"}, "registration_status": "active",
                                  "restrictions": [{"kind": "lawsuit", "amount": 90000.01, "date": "2025-01-01"}]},
                            0))
    report = HTTPJSONBureau(**settings(provider, mapping=None)).fetch(CNPJ_DIGITS)
    assert report.score.value == 610 and report.score.bureau == "quod"
    assert report.restrictions[0].amount == Decimal("90000.01") and report.restrictions[0].kind == "lawsuit"


def test_amounts_are_exact_decimals_never_floats(provider):
    # 1234567890123456.78 is 1234567890123456.75 as a float; 0.10 would lose its trailing zero.
    provider.script.append((200, b'{"data": {"score": {"pontuacao": 700}, "pendencias": ['
                                 b'{"tipo": "PEFIN", "valor": 1234567890123456.78, "data": "01/01/2026"},'
                                 b'{"tipo": "REFIN", "valor": 0.10, "data": "01/01/2026"},'
                                 b'{"tipo": "CCF", "valor": 1e2, "data": "01/01/2026"}]}}', 0))
    report = HTTPJSONBureau(**settings(provider)).fetch(CNPJ_DIGITS)
    assert [str(r.amount) for r in report.restrictions] == ["1234567890123456.78", "0.10", "1E+2"]
    assert sum(r.amount for r in report.restrictions) == Decimal("1234567890123556.88")


def test_brazilian_number_format_integral_decimals_and_defaults(provider):
    provider.script.append((200, {"r": {"s": "742.0", "d": [{"t": "CCF", "v": "R$ 1.234,56", "dt": "2026-01-02"}]}},
                            0))
    mapping = {"score.value": "r.s", "registration_status": {"path": "r.situacao", "default": "unknown"},
               "restrictions": {"from": "r.d", "item": {
                   "kind": {"path": "t", "map": {"CCF": "bounced_cheque"}},
                   "amount": {"path": "v", "number_format": "br"}, "date": "dt"}}}
    report = HTTPJSONBureau(**settings(provider, mapping=mapping)).fetch(CNPJ_DIGITS)
    assert report.score.value == 742
    assert report.registration_status == "unknown"
    assert report.restrictions[0].amount == Decimal("1234.56") and report.restrictions[0].kind == "bounced_cheque"


@pytest.mark.parametrize("mapping, message", [
    ({"score.valor": "x"}, "not a field"),
    ({"score": "x"}, "map the fields"),
    ({"registration_status": "x"}, "score"),  # the required score is not mapped
    ({"score.value": {"path": "x", "mapa": {}}}, "unknown key"),
    ({"score.value": "x", "restrictions": {"from": "p", "item": {"kind": "t", "date": "d"}}}, "restrictions[].amount"),
    ({"score.value": "x", "restrictions": "p"}, "list"),
])
def test_a_wrong_mapping_fails_at_configuration_time(mapping, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compile_mapping(mapping)


# ---------------------------------------------------------------------------------------------
# Failures: each becomes a stable code, transient ones are retried.


def resilient(provider: Provider, **overrides):
    connector = HTTPJSONBureau(**settings(provider, **overrides))
    return connector, Resilient(connector, connector.fetch)


def failure(call, *args) -> tuple[ConnectorError, float]:
    started = time.perf_counter()
    with pytest.raises(ConnectorError) as caught:
        call(*args)
    return caught.value, time.perf_counter() - started


def test_5xx_then_success_is_retried(provider):
    provider.script += [(503, {"erro": "indisponível"}, 0), (500, b"oops", 0)]
    _, call = resilient(provider, retries=2)
    assert call(CNPJ_DIGITS).score.value == 850
    assert provider.hits == 3 and call.attempts == 3
    assert call.breaker.state == "closed"


def test_5xx_exhausting_the_retries_is_unavailable(provider):
    provider.script += [(502, b"", 0)] * 5
    _, call = resilient(provider, retries=2)
    error, _ = failure(call, CNPJ_DIGITS)
    assert isinstance(error, TransientError) and error.code == "UNAVAILABLE"
    assert provider.hits == 3


def test_429_is_transient(provider):
    provider.script.append((429, {"erro": "limite"}, 0))
    _, call = resilient(provider, retries=1)
    assert call(CNPJ_DIGITS).score.value == 850
    assert provider.hits == 2


def test_a_slow_provider_times_out_within_about_the_timeout(provider):
    provider.script.append((200, PROVIDER_ANSWER, 5.0))
    _, call = resilient(provider, timeout=0.3, retries=0)
    error, elapsed = failure(call, CNPJ_DIGITS)
    assert error.code == "TIMEOUT" and isinstance(error, TransientError)
    assert 0.25 <= elapsed < 1.0, elapsed
    assert CNPJ_DIGITS not in str(error)


def test_a_timeout_reaches_the_policy_as_bureau_unavailable(provider):
    provider.script += [(200, PROVIDER_ANSWER, 5.0)] * 2
    registry = Registry.load(plugin_settings(provider, timeout=0.6, retries=1, backoff=0.05))
    started = time.perf_counter()
    decision = evaluate(registry)
    elapsed = time.perf_counter() - started
    assert decision.outcome == "review" and decision.reason_codes == ["BUREAU_INDISPONIVEL"]
    call = decision.connector_calls[0]
    assert (call.connector, call.status, call.error) == ("bureau.serasa", "failed", "CONNECTOR_TIMEOUT")
    assert provider.hits == 2
    assert elapsed < 2 * 0.6 + 0.05 + 1.5, elapsed  # two attempts and one backoff, generously


@pytest.mark.parametrize("status, code", [(404, "NOT_FOUND"), (401, "UNAUTHORIZED"), (403, "UNAUTHORIZED"),
                                          (400, "REJECTED"), (422, "REJECTED")])
def test_client_errors_have_stable_codes_and_are_not_retried(provider, status, code):
    provider.script.append((status, {"erro": "x"}, 0))
    _, call = resilient(provider, retries=3)
    error, _ = failure(call, CNPJ_DIGITS)
    assert error.code == code and not isinstance(error, TransientError)
    assert provider.hits == 1


def test_an_unknown_document_is_not_found(provider):
    _, call = resilient(provider)
    assert failure(call, CNPJ_UNKNOWN_DIGITS)[0].code == "NOT_FOUND"


BROKEN_ANSWERS = {
    "not json": b"<html>erro interno</html>",
    "truncated json": b'{"data": {"score": ',
    "a json list": b"[]",
    "score missing": {"data": {"documento": CNPJ_DIGITS, "situacao": "ATIVA"}},
    "score not a number": {"data": {"documento": CNPJ_DIGITS, "score": {"pontuacao": "alto"}}},
    "unknown restriction kind": {"data": {"documento": CNPJ_DIGITS, "score": {"pontuacao": 500},
                                          "pendencias": [{"tipo": CNPJ_DIGITS, "valor": 1, "data": "01/01/2026"}]}},
    "restrictions not a list": {"data": {"score": {"pontuacao": 500}, "pendencias": {"tipo": "PEFIN"}}},
    "bad date": {"data": {"score": {"pontuacao": 500},
                          "pendencias": [{"tipo": "PEFIN", "valor": 1, "data": "2026-13-45"}]}},
    "amount not a number": {"data": {"score": {"pontuacao": 500}, "pendencias": [
        {"tipo": "PEFIN", "valor": CNPJ_DIGITS + "x", "data": "01/01/2026"}]}},
}


@pytest.mark.parametrize("body", BROKEN_ANSWERS.values(), ids=BROKEN_ANSWERS.keys())
def test_an_unmappable_answer_is_bad_answer_without_the_document(provider, body):
    provider.script.append((200, body, 0))
    _, call = resilient(provider, retries=2)
    error, _ = failure(call, CNPJ_DIGITS)
    assert error.code == "BAD_ANSWER"
    assert CNPJ_DIGITS not in str(error)
    assert provider.hits == 1  # a bad answer is not retried


def test_a_refused_connection_is_transient(provider):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connector = HTTPJSONBureau(**settings(provider, base_url=f"http://127.0.0.1:{port}", retries=0))
    error, _ = failure(Resilient(connector, connector.fetch), CNPJ_DIGITS)
    assert error.code == "CONNECTION" and isinstance(error, TransientError)


def test_httpx_logs_never_show_the_document(provider, caplog):
    caplog.set_level(logging.DEBUG)
    HTTPJSONBureau(**settings(provider)).fetch(CNPJ_DIGITS)
    assert "HTTP Request" in caplog.text  # httpx did log the request…
    assert CNPJ_DIGITS not in caplog.text  # …masked
    assert f"/v1/relatorios/cnpj/{'*' * 12}81" in caplog.text
    assert TOKEN not in caplog.text


# ---------------------------------------------------------------------------------------------
# The circuit breaker.


def test_the_breaker_opens_after_consecutive_failures_and_stops_calling_the_provider(provider):
    provider.script += [(503, b"", 0)] * 3
    _, call = resilient(provider, retries=0, failure_threshold=3, reset_after=0.3)
    for _ in range(3):
        assert failure(call, CNPJ_DIGITS)[0].code == "UNAVAILABLE"
    assert call.breaker.state == "open" and provider.hits == 3
    timings = []
    for _ in range(20):
        error, elapsed = failure(call, CNPJ_DIGITS)
        assert error.code == "CIRCUIT_OPEN"
        timings.append(elapsed)
    assert provider.hits == 3  # the provider was left alone
    assert sorted(timings)[10] < 0.005  # failing fast: microseconds, generously bounded
    # After reset_after: half-open, one call goes through; it succeeds and the breaker closes.
    time.sleep(0.35)
    assert call.breaker.state == "half-open"
    assert call(CNPJ_DIGITS).score.value == 850
    assert provider.hits == 4 and call.breaker.state == "closed"


def test_a_failed_half_open_try_opens_the_breaker_again(provider):
    provider.script += [(503, b"", 0)] * 3
    _, call = resilient(provider, retries=0, failure_threshold=2, reset_after=0.2)
    failure(call, CNPJ_DIGITS), failure(call, CNPJ_DIGITS)
    assert call.breaker.state == "open"
    time.sleep(0.25)
    assert failure(call, CNPJ_DIGITS)[0].code == "UNAVAILABLE"  # the one half-open try
    assert provider.hits == 3
    assert failure(call, CNPJ_DIGITS)[0].code == "CIRCUIT_OPEN"
    assert provider.hits == 3


def test_an_open_breaker_reaches_the_policy_as_bureau_unavailable(provider):
    provider.script += [(500, b"", 0)] * 10
    registry = Registry.load(plugin_settings(provider, retries=0, failure_threshold=2, reset_after=60))
    outcomes = [evaluate(registry) for _ in range(4)]
    assert [d.connector_calls[0].error for d in outcomes] == [
        "CONNECTOR_UNAVAILABLE", "CONNECTOR_UNAVAILABLE", "CONNECTOR_CIRCUIT_OPEN", "CONNECTOR_CIRCUIT_OPEN"]
    assert all(d.reason_codes == ["BUREAU_INDISPONIVEL"] for d in outcomes)
    assert provider.hits == 2
    assert registry.breaker_states()["serasa"] == "open"
