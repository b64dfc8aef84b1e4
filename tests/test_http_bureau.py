"""The HTTP JSON bureau connector against a real HTTP server on 127.0.0.1: mapping a provider's
Portuguese JSON into the contract, auth, retries, deadlines, error codes, the circuit breaker,
the SQLite cache (hits, TTL, no document in clear) and the PostgreSQL one replicas share,
record/replay, and the bundled B2B policy reaching the bureau through the plugin system."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import logging
import socket
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import msgspec
import pytest
from loopback import LoopbackHTTP

from regua.engine.compiler import compile_file
from regua.engine.connectors import ConnectorError
from regua.plugins.builtin.http_bureau import HTTPJSONBureau, compile_mapping
from regua.plugins.cache import BureauCache
from regua.plugins.connectors import BureauConnector, TransientError
from regua.plugins.contracts import BureauReport, Score
from regua.plugins.manager import PluginSettings, get_plugin_manager
from regua.plugins.recording import BureauPlugin, RecordingBureau, ReplayBureau, record, recording_path, replay
from regua.plugins.registry import Registry
from regua.plugins.runtime import Resilient

ROOT = Path(__file__).resolve().parent.parent
B2B = ROOT / "policies" / "credito_b2b.regua"
AS_OF = dt.date(2026, 11, 22)

CNPJ = "11.222.333/0001-81"
CNPJ_DIGITS = "11222333000181"
CNPJ_RESTRICTED = "45.371.045/0001-00"
CNPJ_RESTRICTED_DIGITS = "45371045000100"
CNPJ_UNKNOWN = "60.874.484/0001-20"
CNPJ_UNKNOWN_DIGITS = "60874484000120"
TOKEN = "s3cr3t-token-for-tests"

# What a Brazilian bureau answers: Portuguese names, its own codes, dd/mm/yyyy dates, numbers
# with cents as JSON numbers, and the queried document echoed back (which must not leak).
PROVIDER_ANSWER = {
    "status": "OK",
    "protocolo": "2026112200001",
    "data": {
        "documento": CNPJ_DIGITS,
        "razaoSocial": "Comércio de Exemplo Ltda",
        "situacao": "ATIVA",
        "score": {"pontuacao": 850, "faixa": "EXCELENTE", "modelo": "Score PJ 3.0"},
        "pendencias": [],
        "consultas": [{"data": "10/08/2026", "consulente": "Banco A"}],
        "socios": [{"nome": "Maria da Silva", "cpf": "52998224725", "qualificacao": "Sócio-Administrador"}],
    },
}
RESTRICTED_ANSWER = copy.deepcopy(PROVIDER_ANSWER)
RESTRICTED_ANSWER["data"].update({
    "documento": CNPJ_RESTRICTED_DIGITS,
    "score": {"pontuacao": 720, "faixa": "EXCELENTE", "modelo": "Score PJ 3.0"},
    "pendencias": [
        # Sent as the JSON numbers 3500.10 and 2000.33 (see JSON below), exactly as written.
        {"tipo": "PEFIN", "valor": Decimal("3500.10"), "data": "02/05/2026", "credor": "Banco X"},
        {"tipo": "REFIN", "valor": Decimal("2000.33"), "data": "10/06/2026", "credor": "Financeira Y"},
        {"tipo": "PROTESTO", "valor": 1200, "data": "01/03/2026", "credor": "Cartório 2º Ofício"},
    ],
})

MAPPING = {
    "score.value": "data.score.pontuacao",
    "score.band": {"path": "data.score.faixa", "map": {"BAIXO": "baixo", "REGULAR": "regular", "BOM": "bom",
                                                       "EXCELENTE": "excelente"}},
    "score.model": "data.score.modelo",
    "score.bureau": {"const": "serasa"},
    "registration_status": {"path": "data.situacao",
                            "map": {"ATIVA": "active", "SUSPENSA": "suspended", "BAIXADA": "closed", "NULA": "null"},
                            "otherwise": "other"},
    "restrictions": {"from": "data.pendencias", "item": {
        "kind": {"path": "tipo", "map": {"PEFIN": "pefin", "REFIN": "refin", "PROTESTO": "protest",
                                         "CCF": "bounced_cheque", "ACAO_JUDICIAL": "lawsuit"}},
        "amount": "valor",
        "date": {"path": "data", "date_format": "%d/%m/%Y"},
        "creditor": "credor"}},
    "inquiries": {"from": "data.consultas", "item": {
        "date": {"path": "data", "date_format": "%d/%m/%Y"}, "inquirer": "consulente"}},
    "partners": {"from": "data.socios", "item": {"name": "nome", "document": "cpf", "role": "qualificacao"}},
}

B2B_INPUT = {
    "cnpj": CNPJ,
    "faturamento_anual": "2000000",
    "data_fundacao": "2015-03-10",
    "ticket_medio": "40000",
    "valor_pedido": "30000",
    "saldo_em_aberto": "50000",
    "ciclos_sem_atraso": 4,
}


# The provider writes Decimals as JSON numbers, digit for digit (json.dumps would go through float).
JSON = msgspec.json.Encoder(decimal_format="number")

# ---------------------------------------------------------------------------------------------
# A bureau provider on 127.0.0.1, scripted by each test.


class Provider:
    """What the fake provider answers. By default each document's report (404 when unknown);
    `script` queues (status, body, delay) answers that take precedence, one per request."""

    def __init__(self):
        self.reports = {CNPJ_DIGITS: PROVIDER_ANSWER, CNPJ_RESTRICTED_DIGITS: RESTRICTED_ANSWER}
        self.script: list[tuple[int, bytes | dict, float]] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # set at teardown: sleeping handlers wake up and finish
        self.base_url = ""

    @property
    def hits(self) -> int:
        return len(self.requests)

    def answer(self, method: str, path: str, headers: dict, body: bytes):
        with self.lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            if self.script:
                return self.script.pop(0)
        document = path.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
        if method == "POST" and body:
            document = json.loads(body).get("documento", "")
        if document in self.reports:
            return 200, self.reports[document], 0.0
        return 404, {"erro": "documento não encontrado"}, 0.0


def _handler(provider: Provider):
    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload, delay = provider.answer(self.command, self.path, dict(self.headers), body)
            if delay:
                provider.release.wait(delay)
            data = payload if isinstance(payload, bytes) else JSON.encode(payload)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

        do_GET = do_POST = _serve

        def log_message(self, *args):  # the request line holds the document: never print it
            pass

    return Handler


@pytest.fixture
def provider():
    state = Provider()
    with LoopbackHTTP(_handler(state), "fake-bureau") as http:
        state.base_url = http.base_url
        state.server = http.server
        try:
            yield state
        finally:
            state.release.set()  # handlers told to hang let go before the server stops


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("SERASA_TOKEN", TOKEN)


def settings(provider: Provider, **overrides) -> dict:
    config = {
        "name": "serasa", "base_url": provider.base_url, "path": "/v1/relatorios/{kind}/{document}",
        "auth": {"header": "Authorization", "prefix": "Bearer ", "env": "SERASA_TOKEN"},
        "mapping": MAPPING, "timeout": 2, "retries": 2, "backoff": 0.01, "failure_threshold": 5,
        "reset_after": 30, "ttl": 3600, "cost": "3.90",
    }
    config.update(overrides)
    return config


def plugin_settings(provider: Provider, **overrides) -> PluginSettings:
    return PluginSettings(config={"http_bureau": {"bureaus": [settings(provider, **overrides)]}})


def evaluate(registry: Registry, data: dict | None = None):
    prepared = compile_file(B2B, env=registry.environment())
    return prepared.evaluate(data or B2B_INPUT, connectors=registry.engine_connectors(), as_of=AS_OF)


def stopped(provider: Provider) -> None:
    provider.server.shutdown()
    provider.server.server_close()


def summary(decision) -> dict:
    """What must be the same when a decision is replayed (durations and cache flags aside)."""
    data = decision.to_dict()
    return {"outcome": data["outcome"], "outputs": data["outputs"],
            "reasons": [(r["code"], r["rule"], r["outcome"]) for r in data["reasons"]],
            "calls": [(c["connector"], c["args"], c["status"], c["error"]) for c in data["connector_calls"]]}


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


# ---------------------------------------------------------------------------------------------
# Through the plugin system: configuration, the bundled policy, the cache.


def test_no_http_bureau_unless_configured():
    registry = Registry.load()
    assert "http_bureau" in registry.pm.infos
    assert not any(isinstance(c, HTTPJSONBureau) for c in registry.bureaus.values())


def test_one_connector_per_configured_bureau(provider):
    config = {"http_bureau": {"bureaus": [settings(provider), settings(provider, name="spc", cost="1.50")]}}
    registry = Registry.load(PluginSettings(config=config))
    assert isinstance(registry.bureaus["serasa"], HTTPJSONBureau)
    assert registry.bureaus["spc"].cost == "1.50" and registry.bureaus["spc"].ttl == 3600


@pytest.mark.parametrize("overrides, message", [
    ({"name": "not an identifier"}, "name"),
    ({"base_url": "ftp://x"}, "base_url"),
    ({"cost": "caro"}, "cost"),
    ({"auth": {"header": "Authorization"}}, "auth"),
    ({"mapping": {"score.valor": "x"}}, "score.valor"),
    ({"unknown_setting": 1}, "unknown_setting"),
])
def test_a_bad_configuration_fails_when_loading(provider, overrides, message):
    with pytest.raises(ValueError, match=message):
        Registry.load(plugin_settings(provider, **overrides))


def test_the_bundled_b2b_policy_reaches_the_bureau_through_the_plugin_system(provider):
    registry = Registry.load(plugin_settings(provider))
    prepared = compile_file(B2B, env=registry.environment())
    connectors = registry.engine_connectors()
    assert "bureau.serasa" in connectors.names()

    approved = prepared.evaluate(B2B_INPUT, connectors=connectors, as_of=AS_OF)
    assert approved.outcome == "approve" and approved.reason_codes == ["DENTRO_DO_LIMITE"]
    assert approved.outputs["limite"] == Decimal("120000")
    assert provider.requests[0]["path"] == f"/v1/relatorios/cnpj/{CNPJ_DIGITS}"

    denied = prepared.evaluate({**B2B_INPUT, "cnpj": CNPJ_RESTRICTED}, connectors=connectors, as_of=AS_OF)
    assert denied.outcome == "deny"
    assert denied.reason_codes == ["RESTRICOES", "PROTESTO"]  # 3500.10 + 2000.33 > 5000, and a protest
    unknown = prepared.evaluate({**B2B_INPUT, "cnpj": CNPJ_UNKNOWN}, connectors=connectors, as_of=AS_OF)
    assert unknown.reason_codes == ["BUREAU_INDISPONIVEL"]
    assert unknown.connector_calls[0].error == "CONNECTOR_NOT_FOUND"
    assert provider.hits == 3
    # The decision shows the document masked, never in clear.
    assert CNPJ_DIGITS not in json.dumps(approved.to_dict(), default=str)


def test_the_cache_answers_the_second_evaluation(provider, tmp_path):
    registry = Registry.load(plugin_settings(provider), cache_path=str(tmp_path / "c.db"))
    first, second = evaluate(registry), evaluate(registry)
    assert provider.hits == 1
    assert summary(first) == summary(second)
    miss, hit = first.connector_calls[0], second.connector_calls[0]
    assert (miss.cached, miss.cost) == (False, "3.90")
    assert (hit.cached, hit.cost) == (True, "0")
    assert second.to_dict()["connector_calls"][0]["cached"] is True
    # A new registry on the same file (another process, a restart) still hits the cache.
    assert evaluate(Registry.load(plugin_settings(provider), cache_path=str(tmp_path / "c.db"))).outcome == "approve"
    assert provider.hits == 1


def test_failures_are_not_cached(provider, tmp_path):
    provider.script.append((503, b"", 0))
    registry = Registry.load(plugin_settings(provider, retries=0), cache_path=str(tmp_path / "c.db"))
    assert evaluate(registry).reason_codes == ["BUREAU_INDISPONIVEL"]
    assert evaluate(registry).outcome == "approve"
    assert provider.hits == 2


def test_n_evaluations_with_and_without_the_cache(provider, tmp_path):
    uncached = Registry.load(plugin_settings(provider))
    for _ in range(5):
        evaluate(uncached)
    assert provider.hits == 5
    cached = Registry.load(plugin_settings(provider), cache_path=str(tmp_path / "c.db"))
    for _ in range(5):
        evaluate(cached)
    assert provider.hits == 6


def test_an_expired_answer_is_fetched_again(provider, tmp_path):
    now = [1_000_000.0]
    cache = BureauCache(str(tmp_path / "c.db"), clock=lambda: now[0])
    registry = Registry(get_plugin_manager(plugin_settings(provider, ttl=60)), cache)
    assert not evaluate(registry).connector_calls[0].cached
    now[0] += 59
    assert evaluate(registry).connector_calls[0].cached
    assert provider.hits == 1
    now[0] += 2  # 61 s after it was stored
    call = evaluate(registry).connector_calls[0]
    assert (call.cached, call.cost) == (False, "3.90")
    assert provider.hits == 2
    assert evaluate(registry).connector_calls[0].cached
    assert provider.hits == 2


def test_the_cache_never_holds_the_document_in_clear(provider, tmp_path):
    registry = Registry.load(plugin_settings(provider), cache_path=str(tmp_path / "c.db"))
    for cnpj in (CNPJ, CNPJ_RESTRICTED):
        evaluate(registry, {**B2B_INPUT, "cnpj": cnpj})
    registry.cache.db.conn.execute("pragma wal_checkpoint(FULL)")
    rows = list(registry.cache.db.query("select * from connector_cache"))
    assert len(rows) == 2
    files = list(tmp_path.glob("c.db*"))
    blob = b"".join(f.read_bytes() for f in files)
    assert b"Banco X" in blob  # the answers are there…
    for document in (CNPJ_DIGITS, CNPJ, CNPJ_RESTRICTED_DIGITS, CNPJ_RESTRICTED):
        assert document.encode() not in blob  # …but never the document (the provider echoed it)


# ---------------------------------------------------------------------------------------------
# Record, then replay with the provider gone.


def test_record_then_replay_gives_identical_decisions_with_the_server_stopped(provider, tmp_path):
    folder = tmp_path / "recordings"
    recorder = RecordingBureau(HTTPJSONBureau(**settings(provider)), folder)
    recording = Registry.load(extra=[BureauPlugin(recorder)])
    documents = (CNPJ, CNPJ_RESTRICTED, CNPJ_UNKNOWN)
    recorded = [evaluate(recording, {**B2B_INPUT, "cnpj": cnpj}) for cnpj in documents]
    assert [d.outcome for d in recorded] == ["approve", "deny", "review"]
    assert provider.hits == 3

    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(recording_path(folder, "serasa", d).name
                           for d in (CNPJ_DIGITS, CNPJ_RESTRICTED_DIGITS, CNPJ_UNKNOWN_DIGITS))
    for path in folder.iterdir():
        for document in (CNPJ_DIGITS, CNPJ_RESTRICTED_DIGITS, CNPJ_UNKNOWN_DIGITS):
            assert document not in path.name and document.encode() not in path.read_bytes()
    not_found = json.loads(recording_path(folder, "serasa", CNPJ_UNKNOWN_DIGITS).read_text())
    assert not_found["error"] == {"code": "NOT_FOUND", "transient": False}

    stopped(provider)
    replaying = Registry.load(extra=[BureauPlugin(ReplayBureau(folder, "serasa"), name="replay")])
    replayed = [evaluate(replaying, {**B2B_INPUT, "cnpj": cnpj}) for cnpj in documents]
    assert [summary(d) for d in replayed] == [summary(d) for d in recorded]
    assert provider.hits == 3
    assert replayed[1].outputs == recorded[1].outputs
    # Never recorded: a failure the policy handles, not a crash.
    other = evaluate(replaying, {**B2B_INPUT, "cnpj": "11.444.777/0001-61"})
    assert other.connector_calls[0].error == "CONNECTOR_NOT_RECORDED"
    assert other.reason_codes == ["BUREAU_INDISPONIVEL"]


def test_replay_returns_the_recorded_report_exactly(provider, tmp_path):
    inner = HTTPJSONBureau(**settings(provider))
    live = RecordingBureau(inner, tmp_path).fetch(CNPJ_RESTRICTED_DIGITS)
    replayed = ReplayBureau(tmp_path, "serasa").fetch(CNPJ_RESTRICTED_DIGITS)
    assert replayed == live
    assert replayed.restrictions[0].amount == Decimal("3500.10")


def test_record_and_replay_a_whole_registry(provider, tmp_path):
    live = Registry.load(plugin_settings(provider))
    record(live, tmp_path)
    assert isinstance(live.bureaus["serasa"], RecordingBureau)
    recorded = evaluate(live)
    assert provider.hits == 1 and recorded.connector_calls[0].cost == "3.90"  # the recorder keeps the settings

    offline = Registry.load(plugin_settings(provider))
    replay(offline, tmp_path)
    replayed = evaluate(offline)
    assert summary(replayed) == summary(recorded) and provider.hits == 1
    assert replayed.connector_calls[0].cost == "0"


def test_recording_an_async_connector_and_replaying_its_failures(tmp_path):
    class AsyncBureau(BureauConnector):
        name, retries = "quod", 0

        async def fetch(self, document):
            await asyncio.sleep(0)
            if document == CNPJ_UNKNOWN_DIGITS:
                raise TransientError("UNAVAILABLE", "down")
            return BureauReport(score=Score(value=640, bureau="quod"))

    recorder = RecordingBureau(AsyncBureau(), tmp_path)
    call = Resilient(recorder, recorder.fetch)
    assert call(CNPJ_DIGITS).score.value == 640
    with pytest.raises(TransientError):
        call(CNPJ_UNKNOWN_DIGITS)
    replayer = ReplayBureau(tmp_path, "quod")
    assert replayer.fetch(CNPJ_DIGITS) == BureauReport(score=Score(value=640, bureau="quod"))
    with pytest.raises(TransientError) as caught:
        replayer.fetch(CNPJ_UNKNOWN_DIGITS)
    assert caught.value.code == "UNAVAILABLE"
    with pytest.raises(ConnectorError) as caught:
        replayer.fetch(CNPJ_RESTRICTED_DIGITS)
    assert caught.value.code == "NOT_RECORDED"
    recording_path(tmp_path, "quod", CNPJ_DIGITS).write_bytes(b"{not json")
    with pytest.raises(ConnectorError) as caught:
        replayer.fetch(CNPJ_DIGITS)
    assert caught.value.code == "BAD_ANSWER"


def test_replicas_share_what_one_paid_for_through_the_postgresql_cache(provider, postgres_url):
    """Two replicas on one PostgreSQL (server.connector_cache, what the server uses there): the
    answer replica A paid for is served to B from the cache, for free, until its ttl runs out."""
    from regua import postgres
    from regua.server.connector_cache import PostgresBureauCache
    from regua.server.store import open_store

    store = open_store(postgres_url)  # the server's migrations create connector_cache
    now = [1_000_000.0]
    # B's own connection pool (another application_name): only the database is shared.
    url_b = postgres_url + ("&" if "?" in postgres_url else "?") + "application_name=replica-b"

    def replica(url: str) -> Registry:
        return Registry(get_plugin_manager(plugin_settings(provider, ttl=60)),
                        PostgresBureauCache(url, clock=lambda: now[0]))

    a, b = replica(postgres_url), replica(url_b)
    try:
        paid = evaluate(a).connector_calls[0]
        assert (paid.cached, paid.cost) == (False, "3.90")
        now[0] += 59
        served = evaluate(b)
        assert (served.connector_calls[0].cached, served.connector_calls[0].cost) == (True, "0")
        assert summary(served) == summary(evaluate(a))
        assert provider.hits == 1  # paid once, by A
        rows = store.query("select key, connector, cost from connector_cache")
        assert rows == [{"key": BureauCache.key("bureau.serasa", CNPJ_DIGITS), "connector": "bureau.serasa",
                         "cost": "3.90"}]

        now[0] += 2  # 61 s after A stored it: B pays again, and its answer is what A then reads
        expired = evaluate(b).connector_calls[0]
        assert (expired.cached, expired.cost) == (False, "3.90")
        assert provider.hits == 2
        assert evaluate(a).connector_calls[0].cached and provider.hits == 2
        assert len(store.query("select key from connector_cache")) == 1
    finally:
        postgres.close_pools(url_b)
